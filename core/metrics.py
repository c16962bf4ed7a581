"""Clustering quality against known labels: Hungarian accuracy, NMI, ARI, per-cluster purity; and what
needs no labels: each cluster's size and mean confidence, and its prototypes (its most confident images).

The functions take cluster indices; those that take true labels (any hashable values) ignore the images
whose label is unknown (``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


@dataclass(frozen=True)
class ClusterStats:
    """One row of the cluster table."""

    cluster: int
    size: int
    majority_label: str | None
    purity: float | None
    mean_confidence: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def confusion(
    assignment: np.ndarray, labels: Sequence, n_clusters: int
) -> tuple[np.ndarray, list[str]]:
    """(n_clusters, n_classes) counts and the sorted class names."""
    classes = sorted({str(lab) for lab in labels})
    col = {c: j for j, c in enumerate(classes)}
    table = np.zeros((n_clusters, len(classes)), dtype=np.int64)
    for a, lab in zip(assignment, labels, strict=True):
        table[int(a), col[str(lab)]] += 1
    return table, classes


def hungarian_accuracy(table: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (unmatched count as wrong)."""
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / max(1, table.sum()))


def many_to_one_accuracy(table: np.ndarray) -> float:
    """Accuracy when every cluster is named after its majority class (for more clusters than classes)."""
    return float(table.max(axis=1).sum() / max(1, table.sum()))


def evaluate(true_labels: Sequence, assignment: np.ndarray, n_clusters: int | None = None) -> dict:
    """ACC (Hungarian), NMI, ARI, many-to-one accuracy and the confusion matrix (rows clusters)."""
    assignment = np.asarray(assignment, dtype=int)
    known = np.array([lab is not None for lab in true_labels], dtype=bool)
    labels = [str(lab) for lab, k in zip(true_labels, known, strict=True) if k]
    assigned = assignment[known]
    k = int(n_clusters if n_clusters is not None else assignment.max() + 1)
    table, classes = confusion(assigned, labels, k)
    return {
        "acc": hungarian_accuracy(table),
        "nmi": float(normalized_mutual_info_score(labels, assigned)),
        "ari": float(adjusted_rand_score(labels, assigned)),
        "many_to_one_acc": many_to_one_accuracy(table),
        "class_names": classes,
        "confusion": table.tolist(),
        "n_labelled": int(known.sum()),
    }


#: Most confident images per cluster kept as its prototypes (``prototypes.json``): what the app shows
#: first of a cluster, and what names it.
PROTOTYPES_PER_CLUSTER = 25


def prototypes(
    assignment: np.ndarray,
    confidence: np.ndarray,
    n_clusters: int,
    per_cluster: int = PROTOTYPES_PER_CLUSTER,
) -> dict[int, list[int]]:
    """Each of the ``n_clusters`` clusters' ``per_cluster`` most confident images, most confident
    first (equal confidences keep the images' order; an empty cluster has none)."""
    assignment = np.asarray(assignment, dtype=int)
    confidence = np.asarray(confidence)
    found = {}
    for c in range(n_clusters):
        members = np.flatnonzero(assignment == c)
        order = np.argsort(-confidence[members], kind="stable")
        found[c] = members[order][:per_cluster].tolist()
    return found


#: Rows of embeddings read at once by :func:`central_members`.
ROWS_PER_BLOCK = 65536


def central_members(
    embeddings: np.ndarray,
    assignment: np.ndarray,
    clusters: Iterable[int],
    per_cluster: int = PROTOTYPES_PER_CLUSTER,
) -> dict[int, list[int]]:
    """The prototypes of clusters the model did not make (a split's parts, a cluster the user made),
    which have no confidences of their own: each cluster's ``per_cluster`` members whose embeddings
    are nearest (by dot product) its mean embedding, nearest first (ties keep the images' order).
    The embeddings are read in blocks of rows (a cluster of a million images: no copy of them all)."""
    assignment = np.asarray(assignment, dtype=int)
    found = {}
    for c in clusters:
        members = np.flatnonzero(assignment == c)
        blocks = [members[i : i + ROWS_PER_BLOCK] for i in range(0, len(members), ROWS_PER_BLOCK)]
        mean = np.zeros(embeddings.shape[1])
        for b in blocks:
            mean += np.asarray(embeddings[b], np.float64).sum(axis=0)
        mean /= max(len(members), 1)
        closeness = [np.asarray(embeddings[b], np.float64) @ mean for b in blocks]
        closeness = np.concatenate([np.zeros(0), *closeness])
        found[int(c)] = members[np.argsort(-closeness, kind="stable")][:per_cluster].tolist()
    return found


def cluster_summary(
    assignment: np.ndarray,
    n_clusters: int,
    true_labels: Sequence | None = None,
    confidence: np.ndarray | None = None,
) -> list[ClusterStats]:
    """Size, majority label, purity and mean confidence of every cluster (empty ones included).

    ``confidence`` may hold NaN for images whose confidence does not apply (moved by the user); the
    mean leaves them out, and is None for a cluster with none."""
    assignment = np.asarray(assignment, dtype=int)
    rows = []
    for c in range(n_clusters):
        members = np.flatnonzero(assignment == c)
        majority, purity = None, None
        if true_labels is not None and len(members):
            labs = [true_labels[i] for i in members if true_labels[i] is not None]
            if labs:
                values, counts = np.unique(np.asarray(labs, dtype=str), return_counts=True)
                majority = str(values[np.argmax(counts)])
                purity = float(counts.max() / len(labs))
        known = np.zeros(0) if confidence is None else confidence[members]
        known = known[np.isfinite(known)]
        conf = float(np.mean(known)) if len(known) else None
        rows.append(ClusterStats(c, int(len(members)), majority, purity, conf))
    return rows
