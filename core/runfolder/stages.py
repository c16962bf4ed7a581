"""The run folder's bookkeeping while a run writes it: which stage runs, and the records it keeps.

:class:`Stages` runs a stage unless its fingerprint matches and its artefacts are there and whole, and
redoes what was made from a stage that runs again (:data:`LATER_STAGES`); the other functions write
the image list, keep only the pretext checkpoint of this representation, and set aside a damaged
``corrections.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from semclust.core.images import IngestResult, InputError
from semclust.core.progress import CancelToken, Progress, ProgressCallback
from semclust.core.runfolder import artefacts as io
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths, StageRecord

#: The stages made from each stage's artefacts: redone whenever it is (a fingerprint covers the
#: settings upstream, not a stage redone because its artefact was damaged or lost).
LATER_STAGES = {
    "pretext": ("neighbours", "projection", "choose_k", "preview", "clustering", "selflabel"),
    "neighbours": ("projection", "choose_k", "preview", "clustering", "selflabel"),
    "choose_k": ("preview", "clustering", "selflabel"),
    "preview": ("clustering", "selflabel"),
    "clustering": ("selflabel",),
}


class Stages:
    """Runs a stage unless its fingerprint matches and its artefacts are there and whole; times it;
    reports it."""

    def __init__(self, paths: RunPaths, progress: ProgressCallback, cancel: CancelToken | None):
        self.record = StageRecord(paths)
        self.progress = progress
        self.cancel = cancel
        self.last_seconds = 0.0

    def will_run(self, name: str, fp: str, artefacts: list[Path]) -> bool:
        """Whether :meth:`run` would run the stage now: another fingerprint, or an artefact missing or
        damaged. (A later stage is also run again once an earlier one it depends on has run.)"""
        return self._must_run(name, fp, artefacts)[0]

    def _must_run(self, name: str, fp: str, artefacts: list[Path]) -> tuple[bool, list[str]]:
        """:meth:`will_run`, and the names of the stage's artefacts that are there but damaged."""
        damaged = [p.name for p in artefacts if p.exists() and not io.intact(p)]
        done = self.record.is_done(name, fp) and all(p.exists() for p in artefacts)
        return not done or bool(damaged), damaged

    def run(self, name: str, fp: str, artefacts: list[Path], fn: Callable[[], None]) -> None:
        must, damaged = self._must_run(name, fp, artefacts)
        if not must:
            self.record.vouch(name)  # same fingerprint: made from these images
            self.progress(Progress(name, "skipped", 1, 1, message="already done"))
            return
        if damaged:
            self.progress(Progress(name, "progress", 0, 0, message=(
                f"{', '.join(damaged)} damaged (cut short?): {name} runs again"
            )))  # fmt: skip
        # What was made from this stage's artefacts is redone too, even after an interruption; the
        # report (prototypes, names, metrics) is stale until it is redone for the new clusters.
        self.record.forget(name, *LATER_STAGES.get(name, ()), "report")
        self.run_always(name, fn, lambda seconds: self.record.mark_done(name, fp, seconds))

    def run_always(
        self,
        name: str,
        fn: Callable[[], object],
        record: Callable[[float], None] | None = None,
    ):
        """Runs ``fn`` as stage ``name`` between its ``started`` and ``finished`` events; ``record``
        (given the seconds) is called before ``finished``, so that whoever reads the stage's artefacts
        on that event (the app's previews) finds them recorded as made from these images."""
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        self.progress(Progress(name, "started", message=f"{name} started"))
        start = time.perf_counter()
        try:
            result = fn()
        except RunFolderError as exc:  # an artefact of the run folder that cannot be used
            raise InputError(str(exc)) from None
        self.last_seconds = seconds = time.perf_counter() - start
        if record is not None:
            record(seconds)
        self.progress(Progress(name, "finished", 1, 1, message=f"{name} done in {seconds:.1f} s"))
        return result


def write_images(paths: RunPaths, data: IngestResult, fp: str) -> None:
    """``images.json`` (the image list every array follows, with its fingerprint) and ``skipped.csv``."""
    io.write_json(
        paths.images,
        {
            "root": str(data.root),
            "paths": data.paths,
            "labels": data.labels,
            "grey": data.is_grey,
            "cached": data.cached,
            "fingerprint": fp,
        },
    )
    io.write_csv(paths.skipped, ["path", "reason"], data.skipped)


def keep_own_checkpoint(paths: RunPaths, fp_pretext: str) -> None:
    """Removes an epoch checkpoint of other settings (seed, image size, backbone...): only a
    checkpoint of this representation's own fingerprint is resumed from."""
    owner = paths.pretext_checkpoint_owner
    own = owner.is_file() and owner.read_text(encoding="utf-8").strip() == fp_pretext
    if not own:
        for stale in (paths.pretext_checkpoint, paths.pretext_checkpoint_state):
            stale.unlink(missing_ok=True)
        io.write_text(owner, fp_pretext + "\n")


def set_aside_damaged_corrections(paths: RunPaths, progress: ProgressCallback) -> None:
    """A damaged ``corrections.json`` is renamed, not read: the run goes on and the file is kept."""
    try:
        io.read_json(paths.corrections)
    except RunFolderError as exc:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        kept = paths.root / f"corrections.damaged-{stamp}.json"
        paths.corrections.replace(kept)
        progress(Progress("ingest", "progress", 0, 0, message=f"{exc} Kept as {kept.name}."))
