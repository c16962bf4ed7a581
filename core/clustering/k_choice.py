"""The result of choosing the number of clusters (:mod:`semclust.core.clustering.choose_k`), without Keras.

Kept apart so that the GUI can read and plot a run's ``choose_k.json`` without importing Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The label-free criteria recorded for every k tried (:func:`semclust.core.clustering.choose_k.choose_clusters`).
CURVES = ("modularity", "agreement", "largest_share")


@dataclass(frozen=True)
class KChoice:
    """The result of :func:`semclust.core.clustering.choose_k.choose_clusters`.

    Attributes:
        ks: the candidate numbers of clusters tried, ascending.
        curves: each raw criterion (see :data:`CURVES`) as one value per k.
        score: the combined criterion per k (higher is better).
        best: the chosen k.
        seconds: wall time of the whole search.
    """

    ks: tuple[int, ...]
    curves: Mapping[str, tuple[float, ...]]
    score: tuple[float, ...]
    best: int
    seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (stored as ``choose_k.json``)."""
        return {
            "ks": list(self.ks),
            "curves": {name: list(values) for name, values in self.curves.items()},
            "score": list(self.score),
            "best": self.best,
            "seconds": self.seconds,
            "extra": dict(self.extra),
        }

    @property
    def ties(self) -> tuple[int, ...]:
        """The ks that score nearly as well as the best, the best among them (``extra["near_best"]``),
        when there are several; none when the best stands alone, or for a choice recorded before."""
        near = tuple(self.extra.get("near_best") or ())
        return near if len(near) > 1 else ()

    @property
    def ties_said(self) -> str:
        """The ties in words ("5..7 score nearly as well; the fewest is kept"), or "" when none."""
        return f"{spans(self.ties)} score nearly as well; the fewest is kept" if self.ties else ""

    def describe(self, range_option: str = "--clusters-range") -> str:
        """One line on the choice. It names the range of numbers that score nearly as well (the
        images leave the number open there), and a choice at the edge of the range says so and what
        it may mean (``range_option``: what the user widens the range with, in their words)."""
        line = f"{self.best} clusters chosen from {self.ks[0]}..{self.ks[-1]}"
        if self.ties:
            line += f" ({self.ties_said})"
        if not self.extra.get("at_edge"):
            return line
        if self.best == self.ks[-1]:
            return (
                line
                + f" - the largest number tried: there may be more groups; widen {range_option}"
            )
        if self.best > 2:
            return (
                line
                + f" - the smallest number tried: there may be fewer groups; widen {range_option}"
            )
        return line + " - the smallest number possible: the groups may overlap, or be few and small"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KChoice:
        return cls(
            ks=tuple(int(k) for k in data["ks"]),
            curves={
                name: tuple(float(v) for v in values) for name, values in data["curves"].items()
            },
            score=tuple(float(v) for v in data["score"]),
            best=int(data["best"]),
            seconds=float(data.get("seconds", 0.0)),
            extra=dict(data.get("extra", {})),
        )


def spans(ks: list[int]) -> str:
    """[5, 6, 7, 9] -> "5..7, 9": sorted numbers as runs of consecutive ones."""
    runs: list[list[int]] = []
    for k in sorted(ks):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
