"""Clustering metrics: Hungarian accuracy, NMI and ARI.

Uses ``core.metrics.evaluate`` when the core package provides it, so that the benchmark and the app report
the same numbers; otherwise a small local implementation with the same definitions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def hungarian_accuracy(true_labels: np.ndarray, assignment: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (Kuhn-Munkres)."""
    true_labels = np.asarray(true_labels)
    assignment = np.asarray(assignment)
    _, t = np.unique(true_labels, return_inverse=True)
    _, a = np.unique(assignment, return_inverse=True)
    counts = np.zeros((a.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(counts, (a, t), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(true_labels))


def local_evaluate(true_labels: np.ndarray, assignment: np.ndarray) -> dict:
    """ACC, NMI, ARI and the number of non-empty clusters."""
    return {
        "acc": hungarian_accuracy(true_labels, assignment),
        "nmi": float(normalized_mutual_info_score(true_labels, assignment)),
        "ari": float(adjusted_rand_score(true_labels, assignment)),
        "clusters_used": int(len(np.unique(assignment))),
    }


def evaluate(true_labels: np.ndarray, assignment: np.ndarray) -> dict:
    """Like :func:`local_evaluate`, through ``core.metrics.evaluate`` when it exists."""
    try:
        from core.metrics import evaluate as core_evaluate
    except ImportError:
        return local_evaluate(true_labels, assignment)
    result = dict(core_evaluate(list(np.asarray(true_labels)), np.asarray(assignment)))
    result.setdefault("clusters_used", int(len(np.unique(assignment))))
    return {k: result[k] for k in ("acc", "nmi", "ari", "clusters_used")}
