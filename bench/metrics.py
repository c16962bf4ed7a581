"""Clustering metrics for the benchmark: the app's own (``core.metrics``), so both report the same numbers."""

from __future__ import annotations

import numpy as np

from semclust.core import metrics


def hungarian_accuracy(true_labels: np.ndarray, assignment: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (Kuhn-Munkres)."""
    return evaluate(true_labels, assignment)["acc"]


def evaluate(true_labels: np.ndarray, assignment: np.ndarray) -> dict:
    """ACC, NMI, ARI and the number of non-empty clusters, from ``core.metrics.evaluate``."""
    _, assignment = np.unique(np.asarray(assignment), return_inverse=True)  # any ids -> 0..K-1
    result = metrics.evaluate([str(t) for t in np.asarray(true_labels)], assignment)
    return {
        "acc": result["acc"],
        "nmi": result["nmi"],
        "ari": result["ari"],
        "clusters_used": int(len(np.unique(assignment))),
    }
