"""Corrections that teach the model: the user's moves recompute the clusters of the other images.

Whatever method clustered the run (SCAN's heads, K-means, a Gaussian mixture, Ward), its result is
cluster probabilities over a frozen representation, whose mined neighbours (``neighbours.npy``) every
run keeps. :func:`refine` turns the user's corrections into constraints and lets every image's
neighbours vote again for its cluster:

- every image votes for its cluster after the corrections (the model's arg-max; the user's cluster for
  an image moved, merged, put in a new cluster or split off), with its confidence as its weight, so
  that doubtful images count least; a corrected image votes with :attr:`RefineSettings.corrected_weight`
  (it must go with its new cluster, and it no longer votes for the one it left);
- an image that has a corrected image among its mined neighbours, and is among that image's mined
  neighbours too (mutual neighbours), gets new probabilities: its neighbours' votes plus its own
  counted :attr:`RefineSettings.own_weight` times, normalised; it changes cluster when the corrected
  neighbours tip the vote. A corrected image that is a neighbour one way only votes with its
  confidence. Every other image keeps the run's probabilities (the vote's own smoothing changes
  nothing), and so do the corrected images, whose cluster is the user's anyway: a correction undone
  later sends its image back to the run's cluster.

The corrected images keep the user's cluster in any case: corrections are applied over the model's
probabilities (:meth:`semclust.core.runfolder.corrections.Corrections.apply`). Refining always
starts from the run's own probabilities, so the same corrections give the same clusters however
often it is repeated. Only the corrected images' mutual neighbours are counted again: no training;
0.4 s on a million images (30 clusters, 20 neighbours each, 50 corrections, 2 cores; 2.8 s before
the mutual rule, on shared cores).

Three options were measured by simulating a user who moves 10 wrongly clustered images at a time on
the 1,797 digits and MNIST-5k, 3 seeds (``bench/corrections.py``, BENCHMARKS.md "Issue 20"): this
vote, a multinomial logistic regression (scikit-learn) trained on the embeddings with the same targets
and weights (corrected images 10 mean confidences), and scikit-learn's ``LabelSpreading`` over the
mined neighbour graph. After 10, 20, 30 and 50 corrections the vote gained as much as the regression
or more every time (digits after 10: ACC 0.970 against 0.963; 0.961 moved alone), in milliseconds
where the regression took 1-12 s on 2 shared cores; label spreading lost accuracy on MNIST-5k (0.935 to
0.897 after 10). After 50 corrections: digits 0.955 to 0.995 (0.983 moved alone), MNIST-5k 0.935 to
0.960 (0.945). Letting only the corrected images' neighbours change (not the vote's own smoothing)
gained on the digits (0.991 to 0.995 after 50) and cost MNIST-5k at most 0.001. Only mutual
neighbours are swayed since the photo folders were measured (BENCHMARKS.md, "Issue 20 again"): on a
few hundred photos every image's 20 neighbours span several classes, and a correction tipped images of
other classes (123 GCompris photos after 10 corrections: 0.854, against 1.000 moved alone; 0.886
now); food_rest after 50 went from 0.714 to 0.811, while the digits, MNIST-5k and the animals moved by
0.005 at most.

Example:
    >>> refined = refine(neighbours, probabilities, {12: 3, 40: 3})  # doctest: +SKIP
    >>> refined.changed, refined.probabilities.shape  # doctest: +SKIP
    (17, (1797, 10))
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RefineSettings:
    """How corrections recompute the clusters (measured on the digits by ``bench/corrections.py``:
    own weight 3 and corrected weight 10 gained more than 1 and 10, or 1 and 3).

    Attributes:
        corrected_weight: a corrected image's vote (an image's confidence is at most 1).
        own_weight: how many times an image's own vote counts against its neighbours'.
    """

    corrected_weight: float = 10.0
    own_weight: float = 3.0


@dataclass(frozen=True)
class Refined:
    """What :func:`refine` computed.

    Attributes:
        probabilities: (N, clusters) new probabilities of every image.
        corrected: images the user placed (their cluster is the user's).
        changed: other images whose cluster differs from the one shown before.
        seconds: time taken.
        method: how the clusters were recomputed (``"neighbour_vote"``).
    """

    probabilities: np.ndarray
    corrected: int
    changed: int
    seconds: float
    method: str = "neighbour_vote"

    def summary(self) -> dict:
        """JSON-able: everything but the probabilities."""
        return {
            "method": self.method,
            "corrected": self.corrected,
            "changed": self.changed,
            "seconds": round(self.seconds, 3),
            "clusters": int(self.probabilities.shape[1]),
        }


def refine(
    neighbours: np.ndarray,
    probabilities: np.ndarray,
    moves: Mapping[int, int],
    n_clusters: int | None = None,
    shown: np.ndarray | None = None,
    settings: RefineSettings = RefineSettings(),
) -> Refined:
    """New cluster probabilities of every image: its neighbours' votes, with the user's corrections.

    Args:
        neighbours: (N, k) the run's mined neighbours of every image.
        probabilities: (N, K) the run's own cluster probabilities (not a previous refinement's).
        moves: image -> cluster the user put it in (merges, new clusters and splits included).
        n_clusters: the clusters now, the run's and the user's (default: ``K`` or the highest cluster
            moved to, plus one); the columns of the result.
        shown: the cluster of every image the user sees now, to count the images that changed
            (default: the arg-max of ``probabilities`` with the moves applied).
        settings: the weights of the votes.

    Raises:
        ValueError: no corrections, shapes that disagree, or a move to a cluster that does not exist.
    """
    start = time.perf_counter()
    n, k = probabilities.shape
    if neighbours.ndim != 2 or len(neighbours) != n:
        raise ValueError(f"Neighbours of shape {neighbours.shape} for {n} rows of probabilities.")
    if not moves:
        raise ValueError("No corrections to retrain with: move some images first.")
    corrected = np.fromiter(moves, dtype=np.int64, count=len(moves))
    to = np.fromiter(moves.values(), dtype=np.int64, count=len(moves))
    clusters = int(n_clusters) if n_clusters is not None else max(k, int(to.max()) + 1)
    if corrected.min() < 0 or corrected.max() >= n or to.min() < 0 or to.max() >= clusters:
        raise ValueError("The corrections name images or clusters that do not exist.")
    targets = probabilities.argmax(axis=1)
    targets[corrected] = to
    confidence = probabilities.max(axis=1).astype(np.float32)
    is_corrected = np.zeros(n, dtype=bool)
    is_corrected[corrected] = True
    # Only the corrections' effect: the other images that a corrected image is a mutual neighbour of
    # vote again (that one with the corrected weight); every other image, the corrected ones
    # included, keeps the run's probabilities.
    rows, cols = np.nonzero(is_corrected[neighbours] & ~is_corrected[:, None])
    mutual = (neighbours[neighbours[rows, cols]] == rows[:, None]).any(axis=1)
    touched, at = np.unique(rows[mutual], return_inverse=True)
    weights = confidence[neighbours[touched]]
    weights[at, cols[mutual]] = settings.corrected_weight
    out = np.zeros((n, clusters), dtype=np.float32)
    out[:, :k] = probabilities
    own = settings.own_weight * confidence[touched]
    out[touched] = _votes(targets[touched], own, targets[neighbours[touched]], weights, clusters)
    before = np.asarray(shown) if shown is not None else _apply(probabilities.argmax(1), moves)
    others = ~is_corrected
    changed = int((out.argmax(axis=1)[others] != before[others]).sum())
    return Refined(out, len(corrected), changed, time.perf_counter() - start)


def _votes(
    own: np.ndarray, own_weights: np.ndarray, theirs: np.ndarray, weights: np.ndarray, clusters: int
) -> np.ndarray:
    """(rows, clusters): each row's vote for its cluster ``own`` with ``own_weights`` plus its
    neighbours' votes for theirs (``theirs``, ``weights``: one row of each per row), normalised."""
    at = np.arange(len(own))
    votes = np.zeros((len(own), clusters), dtype=np.float32)
    np.add.at(votes, (at, own), own_weights)
    for column, weight in zip(theirs.T, weights.T, strict=True):  # one neighbour of every row
        np.add.at(votes, (at, column), weight)
    total = votes.sum(axis=1, keepdims=True)
    return votes / np.where(total > 0, total, 1.0)


def _apply(assignment: np.ndarray, moves: Mapping[int, int]) -> np.ndarray:
    out = np.array(assignment, copy=True)
    for i, c in moves.items():
        out[i] = c
    return out
