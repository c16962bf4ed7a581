"""The label-free choice among clusterings of the same images, and the close calls it cannot settle.

:func:`select` compares the candidates' hard assignments by the modularity of the mined
k-nearest-neighbour graph (Newman 2006): the share of neighbour links that stay inside a cluster less
the share expected from the clusters' sizes alone. Unlike the raw share of agreeing neighbours it does
not reward one big cluster, and unlike SCAN's entropy term it does not reward equal sizes.
:meth:`Selection.close_alternative` names a candidate that scores nearly as well with other clusters,
for the user to look at. BENCHMARKS.md ("Issue 19: clustering on unbalanced folders") gives the
measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from semclust.core.metrics import moved_share

CRITERION = "modularity"
#: Another candidate scores nearly as well when its :data:`CRITERION` is within this share of the kept
#: one's (the share within which the k choice counts scores as tied), and differs when it places at
#: least :data:`DIFFERS` of the images in other clusters (the two clusterings' clusters matched one to
#: one). The label-free choice between them is then close to a coin toss, and the run says so
#: (:meth:`Selection.close_alternative`): in 15 of 72 scratch runs of the benchmark and 7 of 25 whole
#: runs on photo folders, where the other clustering was the better one by the labels in 5 and 4
#: (BENCHMARKS.md, issue 19's thirteenth round). Nearly tied candidates that differ less are the same
#: clustering for a user.
NEAR_TIE = 0.01
DIFFERS = 0.1


def knn_modularity(neighbours: np.ndarray, assignment: np.ndarray) -> float:
    """Newman's modularity of the directed k-nearest-neighbour graph under a hard assignment.

    Q = (links inside clusters) / m - sum_c (n_c k / m) (in_c / m), with m = N k links, n_c the images of
    cluster c and in_c the links pointing into it: the share of neighbour links kept inside clusters,
    less the share a random graph with the same degrees would keep.
    """
    neighbours = np.asarray(neighbours)
    n, k = neighbours.shape
    m = float(n * k)
    a = np.asarray(assignment)
    inside = float((a[neighbours] == a[:, None]).sum())
    clusters = int(a.max()) + 1
    sizes = np.bincount(a, minlength=clusters)
    in_links = np.bincount(a[neighbours].ravel(), minlength=clusters)
    return inside / m - float((sizes * k / m * in_links / m).sum())


def scores_of(assignment: np.ndarray, neighbours: np.ndarray, k: int) -> dict[str, float]:
    """The label-free scores recorded for every candidate."""
    sizes = np.bincount(assignment, minlength=k)
    return {
        "modularity": knn_modularity(neighbours, assignment),
        "agreement": float((assignment[neighbours] == assignment[:, None]).mean()),
        "clusters_used": float((sizes > 0).sum()),
        "largest_share": float(sizes.max() / len(assignment)),
    }


def select(candidates: dict[str, Candidate], k: int) -> str:
    """The candidate with the highest :func:`knn_modularity` among those that use all ``k`` clusters
    (any candidate when none does)."""
    full = [n for n, c in candidates.items() if c.scores["clusters_used"] == k] or list(candidates)
    return max(full, key=lambda n: candidates[n].scores[CRITERION])


@dataclass
class Candidate:
    """One method's clustering: probabilities, hard assignment, seconds and label-free scores."""

    probabilities: np.ndarray
    seconds: float
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def assignment(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


@dataclass
class Selection:
    """Every candidate tried, and the name of the one :func:`select` kept."""

    candidates: dict[str, Candidate]
    chosen: str

    @property
    def best(self) -> Candidate:
        return self.candidates[self.chosen]

    def close_alternative(self) -> tuple[str, float] | None:
        """The candidate whose clusters score nearly as well as the kept one's and differ from them
        (:data:`NEAR_TIE`, :data:`DIFFERS`), with the share of images it places elsewhere; the best
        scoring such one, or None."""
        top = self.best.scores[CRITERION]
        k = self.best.probabilities.shape[1]
        close = sorted(
            ((c.scores[CRITERION], name) for name, c in self.candidates.items()
             if name != self.chosen and c.scores.get("clusters_used") == k
             and c.scores[CRITERION] >= top - NEAR_TIE * abs(top)),
            reverse=True,
        )  # fmt: skip
        for _, name in close:
            moved = moved_share(self.best.assignment, self.candidates[name].assignment, k)
            if moved >= DIFFERS:
                return name, moved
        return None

    def summary(self) -> dict:
        """JSON-able: the choice, each candidate's scores and seconds, and the close alternative if
        any (a run's ``clustering.json``)."""
        found = {
            "chosen": self.chosen,
            "criterion": CRITERION,
            "candidates": {
                name: {
                    "seconds": round(c.seconds, 2),
                    **{k: round(v, 5) for k, v in c.scores.items()},
                }
                for name, c in self.candidates.items()
            },
        }
        if close := self.close_alternative():
            found["close"] = {"method": close[0], "moved": round(close[1], 3)}
        return found
