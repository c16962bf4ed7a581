"""Corrections that teach the model: the user's moves retrain a classifier on the frozen embeddings.

Whatever method clustered the run (SCAN's heads, K-means, a Gaussian mixture, Ward), its result is
cluster probabilities over a frozen representation. :func:`refine` turns the user's corrections into
constraints on that representation and recomputes the clusters of the other images:

- targets: every image's cluster after the corrections (the model's arg-max, the user's cluster for an
  image moved, merged, put in a new cluster or split off);
- weights: a corrected image weighs :attr:`RefineSettings.corrected_weight` times the mean confidence
  (it must go with its new cluster and leave the old one), every other image its confidence, so that
  doubtful images give way first;
- model: a multinomial logistic regression (scikit-learn) on the l2-normalised embeddings, trained on
  every corrected image and up to :attr:`RefineSettings.train_sample` others, then applied to all.

The corrected images keep the user's cluster in any case: corrections are applied over the model's
probabilities (:meth:`semclust.core.runfolder.results.Corrections.apply`). Retraining always starts
from the run's own probabilities, so the same corrections give the same clusters however often it is
repeated.

Three options were measured by simulating a user on the 1,797 digits and MNIST-5k (``bench/corrections.py``,
BENCHMARKS.md "Issue 20"): this classifier, label spreading over the mined neighbour graph
(scikit-learn's ``LabelSpreading``) and a vote of the mined neighbours; the classifier gained the most.

Example:
    >>> refined = refine(embeddings, probabilities, {12: 3, 40: 3})  # doctest: +SKIP
    >>> refined.changed, refined.probabilities.shape  # doctest: +SKIP
    (17, (1797, 10))
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RefineSettings:
    """How corrections retrain the clusters.

    Attributes:
        corrected_weight: a corrected image's weight, in mean confidences of the others.
        inverse_regularisation: the logistic regression's ``C``: high, so that the classifier follows
            the clustering where nobody corrected it (``C=1`` undid more than the corrections fixed).
        max_iter: L-BFGS iterations.
        train_sample: at most this many uncorrected images train the classifier (a seeded sample;
            every image is then classified), so that a large folder retrains in seconds too.
        seed: the sample's seed.
    """

    corrected_weight: float = 10.0
    inverse_regularisation: float = 30.0
    max_iter: int = 100
    train_sample: int = 20_000
    seed: int = 0


@dataclass(frozen=True)
class Refined:
    """What :func:`refine` computed.

    Attributes:
        probabilities: (N, clusters) new model probabilities of every image.
        corrected: images the user placed (their cluster is the user's).
        changed: other images whose cluster differs from the one shown before.
        seconds: time taken.
        method: the model retrained (``"logistic"``).
    """

    probabilities: np.ndarray
    corrected: int
    changed: int
    seconds: float
    method: str = "logistic"

    def summary(self) -> dict:
        """JSON-able: everything but the probabilities."""
        return {
            "method": self.method,
            "corrected": self.corrected,
            "changed": self.changed,
            "seconds": round(self.seconds, 2),
            "clusters": int(self.probabilities.shape[1]),
        }


def refine(
    embeddings: np.ndarray,
    probabilities: np.ndarray,
    moves: Mapping[int, int],
    n_clusters: int | None = None,
    shown: np.ndarray | None = None,
    settings: RefineSettings = RefineSettings(),
) -> Refined:
    """New cluster probabilities of every image, from a classifier trained with the user's corrections.

    Args:
        embeddings: (N, D) l2-normalised embeddings of the run (frozen).
        probabilities: (N, K) the run's own cluster probabilities (not a previous retrain's).
        moves: image -> cluster the user put it in (merges, new clusters and splits included).
        n_clusters: the clusters now, the run's and the user's (default: ``K`` or the highest cluster
            moved to, plus one); the columns of the result.
        shown: the cluster of every image the user sees now, to count the images that changed
            (default: the arg-max of ``probabilities`` with the moves applied).
        settings: weights and model.

    Raises:
        ValueError: no corrections, shapes that disagree, or a move to a cluster that does not exist.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    n, k = probabilities.shape
    if len(embeddings) != n:
        raise ValueError(f"{len(embeddings)} embeddings for {n} rows of probabilities.")
    if not moves:
        raise ValueError("No corrections to retrain with: move some images first.")
    corrected = np.fromiter(moves, dtype=np.int64, count=len(moves))
    to = np.fromiter(moves.values(), dtype=np.int64, count=len(moves))
    clusters = int(n_clusters) if n_clusters is not None else max(k, int(to.max()) + 1)
    if corrected.min() < 0 or corrected.max() >= n or to.min() < 0 or to.max() >= clusters:
        raise ValueError("The corrections name images or clusters that do not exist.")
    targets = probabilities.argmax(axis=1)
    targets[corrected] = to
    weights = probabilities.max(axis=1).astype(np.float64)
    weights[corrected] = settings.corrected_weight * float(weights.mean())
    rows = _training_rows(n, corrected, settings)
    present = np.unique(targets[rows])
    out = np.zeros((n, clusters), dtype=np.float32)
    if len(present) == 1:  # one cluster left: nothing to learn
        out[:, present[0]] = 1.0
    else:
        model = LogisticRegression(C=settings.inverse_regularisation, max_iter=settings.max_iter)
        with warnings.catch_warnings():  # a few iterations short of the optimum changes no cluster
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(_rows(embeddings, rows), targets[rows], sample_weight=weights[rows])
        for s in range(0, n, 65_536):  # a block at a time: a memory-mapped array stays on disk
            out[s : s + 65_536, model.classes_] = model.predict_proba(
                _rows(embeddings, slice(s, s + 65_536))
            )
    before = np.asarray(shown) if shown is not None else _apply(probabilities.argmax(1), moves)
    after = out.argmax(axis=1)
    others = np.ones(n, dtype=bool)
    others[corrected] = False
    changed = int((after[others] != before[others]).sum())
    return Refined(out, len(corrected), changed, time.perf_counter() - start)


def _training_rows(n: int, corrected: np.ndarray, settings: RefineSettings) -> np.ndarray:
    """Every corrected image and up to ``train_sample`` others (all of them in a small run)."""
    others = np.setdiff1d(np.arange(n), corrected, assume_unique=False)
    if len(others) > settings.train_sample:
        rng = np.random.default_rng(settings.seed)
        others = np.sort(rng.choice(others, settings.train_sample, replace=False))
    return np.union1d(others, corrected)


def _rows(embeddings: np.ndarray, rows) -> np.ndarray:
    return np.asarray(embeddings[rows], dtype=np.float32)


def _apply(assignment: np.ndarray, moves: Mapping[int, int]) -> np.ndarray:
    out = np.array(assignment, copy=True)
    for i, c in moves.items():
        out[i] = c
    return out
