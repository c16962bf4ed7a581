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


def confidence_quality(true_labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """How much a clustering's confidence (its largest probability) says, against the labels.

    - ``confidence_auroc``: the AUROC of the confidence for "this image is in its class's cluster"
      (clusters matched one-to-one to classes, as ACC matches them). 0.5 is a confidence that says
      nothing; NaN when every image is right, or every one wrong.
    - ``prototype_purity``: the share of the prototypes (each cluster's most confident images, as a
      run keeps them for the app and for naming) that are in their cluster's class.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import roc_auc_score

    labels = [str(t) for t in np.asarray(true_labels)]
    assignment, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    k = probabilities.shape[1]
    table, classes = metrics.confusion(assignment, labels, k)  # as ACC matches them
    rows, cols = linear_sum_assignment(-table)
    matched = np.full(k, -1)
    matched[rows] = cols
    right = matched[assignment] == np.searchsorted(classes, labels)
    typical = np.concatenate(
        [np.asarray(m, dtype=int) for m in metrics.prototypes(assignment, confidence, k).values()]
    )
    auroc = roc_auc_score(right, confidence) if 0 < right.mean() < 1 else float("nan")
    return {"confidence_auroc": float(auroc), "prototype_purity": float(right[typical].mean())}
