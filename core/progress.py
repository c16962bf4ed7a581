"""A small, Qt-free protocol for progress, partial results and cancellation.

The pipeline reports through a plain callable that receives :class:`Progress` events and checks a
:class:`CancelToken` between batches. The GUI adapts both to Qt signals; the command line prints them.

Example:
    >>> token = CancelToken()
    >>> events = []
    >>> report = events.append          # any callable taking a Progress
    >>> report(Progress("clustering", "progress", step=3, total=10, losses={"loss": 1.2}))
    >>> token.cancel(); token.cancelled
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The stages of a run, in order. The map (``projection``) needs no number of clusters: it comes before
#: ``choose_k``, which picks that number (``--clusters auto``). The map and a K-means ``preview`` come
#: before the ``clustering`` (the method asked, or with ``auto`` the best of several), so the app can
#: show them while it runs. ``report`` writes metrics, prototypes and CSVs. (Older run folders name
#: the clustering stage ``scan``: see :data:`semclust.core.runfolder.artefacts.RENAMED_STAGES`.)
STAGES = (
    "ingest", "pretext", "neighbours", "projection", "choose_k", "preview", "clustering",
    "selflabel", "report",
)  # fmt: skip


def format_seconds(s: float) -> str:
    """A duration as people read it: "7 s", "3 min 05 s", "1 h 02 min"."""
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_bytes(n: float) -> str:
    """A size on disk as people read it: "512 bytes", "3.4 MB", "1.2 GB"."""
    units, step = ("bytes", "KB", "MB", "GB", "TB"), 0
    while n >= 1000 and step < len(units) - 1:
        n, step = n / 1000, step + 1
    return f"{n:.0f} bytes" if step == 0 else f"{n:.1f} {units[step]}"


#: Event kinds: a stage starts, advances, finishes, or is skipped because its artefacts exist.
KINDS = ("started", "progress", "finished", "skipped")


@dataclass(frozen=True)
class Progress:
    """One progress event.

    Attributes:
        stage: one of :data:`STAGES`.
        kind: one of :data:`KINDS`.
        step: batches (or items) done in this stage.
        total: batches (or items) this stage will do; 0 when unknown.
        losses: current loss values by name (for live plots).
        message: a short human-readable line.
        partial: partial results, e.g. ``{"cluster_sizes": [...]}`` while SCAN's heads train.
    """

    stage: str
    kind: str
    step: int = 0
    total: int = 0
    losses: Mapping[str, float] = field(default_factory=dict)
    message: str = ""
    partial: Mapping[str, Any] | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    """The default callback: drops every event."""


class Cancelled(Exception):
    """Raised inside the pipeline when the user asked to stop. Finished stages are kept."""


class CancelToken:
    """A thread-safe cancellation flag, set by the GUI thread and polled by the pipeline."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("Stopped by the user.")
