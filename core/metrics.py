"""Clustering quality against known labels: Hungarian accuracy, NMI, ARI, per-cluster purity; and what
needs no labels: each cluster's size and mean confidence, and its prototypes (its most confident images).

The functions take cluster indices; those that take true labels (any hashable values) ignore the images
whose label is unknown (``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

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


def _named(method: str, titles: dict[str, str] | None) -> str:
    return (titles or {}).get(method, method).split(" (")[0]  # a title's words before a bracket


def close_said(method: str, moved: float, kept: str, titles: dict[str, str] | None = None) -> str:
    """A close call in one sentence: ``method`` scored nearly as well as ``kept``, whose clusters were
    kept, and puts a share ``moved`` of the images in other clusters
    (:meth:`semclust.core.clustering.selection.Selection.close_alternative`); the methods named by
    ``titles`` where given (their words before a bracket)."""
    return (
        f"{_named(method, titles)} scores nearly as well as {_named(kept, titles)}, whose clusters "
        f"were kept, and puts {moved:.0%} of the images in other clusters: the choice between them "
        "was close."
    )


def close_shown_said(method: str, kept: str, titles: dict[str, str] | None = None) -> str:
    """The same close call once ``method``'s clusters are shown in place of ``kept``'s."""
    return (
        f"These are the clusters of {_named(method, titles)}, which scored nearly as well as "
        f"{_named(kept, titles)}, whose clusters the label-free choice kept."
    )


def moved_share(assignment: np.ndarray, other: np.ndarray, k: int) -> float:
    """The share of images that ``other`` places in another cluster than ``assignment`` does, once
    ``other``'s clusters are matched one to one to ``assignment``'s (0 for the same clustering
    numbered otherwise)."""
    table = np.bincount(np.asarray(assignment) * k + np.asarray(other), minlength=k * k)
    return 1.0 - hungarian_accuracy(table.reshape(k, k))


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


#: Rows read at once where a cluster may hold a million images: embeddings (:func:`central_members`,
#: a split's parts), mined neighbours (:func:`look_alike`).
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


def neighbour_counts(assignment: np.ndarray, neighbours: np.ndarray, n_clusters: int) -> np.ndarray:
    """(M, n_clusters) counts: how many of each row's neighbours (``neighbours``: (M, k) indices into
    ``assignment``) are in each cluster. The neighbours are read in blocks of rows (a million
    images: no (M, k) copy)."""
    assignment = np.asarray(assignment, dtype=np.int64)
    c = int(n_clusters)
    out = np.empty((len(neighbours), c), dtype=np.int32)  # at most k each
    for start in range(0, len(neighbours), ROWS_PER_BLOCK):
        nb = np.asarray(neighbours[start : start + ROWS_PER_BLOCK], dtype=np.int64)
        cells = np.arange(len(nb))[:, None] * c + assignment[nb]
        out[start : start + len(nb)] = np.bincount(cells.ravel(), minlength=len(nb) * c).reshape(
            -1, c
        )
    return out


def neighbour_links(assignment: np.ndarray, neighbours: np.ndarray, n_clusters: int) -> np.ndarray:
    """(n_clusters, n_clusters) counts: L[a, b] is the number of mined neighbour links from images of
    cluster a to images of cluster b. An image's link to itself does not count. The neighbours are
    read in blocks of rows (a million images: no (N, k) copy)."""
    assignment = np.asarray(assignment, dtype=np.int64)
    c = int(n_clusters)
    links = np.zeros(c * c, dtype=np.int64)
    for start in range(0, len(assignment), ROWS_PER_BLOCK):
        rows = np.arange(start, min(start + ROWS_PER_BLOCK, len(assignment)))
        nb = np.asarray(neighbours[rows], dtype=np.int64)
        other = nb != rows[:, None]
        pairs = assignment[rows][:, None] * c + assignment[nb]
        links += np.bincount(pairs[other], minlength=c * c)
    return links.reshape(c, c)


def link_scores(links: np.ndarray) -> np.ndarray:
    """How much each pair of clusters looks like one group, from their :func:`neighbour_links`:
    (L[a, b] + L[b, a]) / min(a's links, b's links), the links that cross between them, both ways,
    over the smaller cluster's. Clusters without links score 0 with every other."""
    links = np.asarray(links, dtype=np.float64)
    out = links.sum(axis=1)
    smaller = np.minimum.outer(out, out)
    return np.divide(links + links.T, smaller, out=np.zeros_like(links), where=smaller > 0)


#: Two clusters look like one group when the mined neighbour links that cross between them, both ways,
#: reach this share of the smaller cluster's links. On 117 runs of the benchmark's sets and class
#: subsets, the pair scoring highest, when at least 0.25, had one majority class in 46 of 50 runs at
#: the number ``--clusters auto`` chose, and in 75 of 83 at a fixed 10 (BENCHMARKS.md, "A merge hint").
LOOK_ALIKE = 0.25


class LookAlike(NamedTuple):
    """Two clusters that look like one group (:func:`look_alike`).

    Attributes:
        into: the larger cluster, to merge into.
        merged: the smaller one.
        score: links from ``merged`` into ``into`` plus those the other way, over the smaller
            cluster's links (so it may exceed 1 when the larger cluster's links lean on the smaller).
        merged_share: the share of ``merged``'s neighbour links that land in ``into``.
        into_share: the share of ``into``'s that land in ``merged``.
    """

    into: int
    merged: int
    score: float
    merged_share: float
    into_share: float

    def describe(self) -> str:
        """The hint in one sentence, as the app and the command line say it."""
        m, i = self.merged, self.into
        return (
            f"Clusters {m} and {i} may be one group: {self.merged_share:.0%} of {m}'s nearest "
            f"neighbours are in {i} ({self.into_share:.0%} the other way)."
        )


def look_alike(
    assignment: np.ndarray,
    neighbours: np.ndarray,
    n_clusters: int,
    ignore: Iterable[tuple[int, int]] = (),
) -> LookAlike | None:
    """The two clusters that most look like one group, by their images' mined neighbours: with
    L[a, b] the links from cluster a's images to neighbours in cluster b, the pair whose
    (L[a, b] + L[b, a]) / min(a's links, b's links) (:func:`link_scores`) is highest, when it
    reaches :data:`LOOK_ALIKE`.

    Args:
        ignore: pairs of clusters not to offer, in either order (say, those the user set apart).

    Returns:
        the pair, the smaller cluster to merge into the larger (ties in size: into the lower
        number); None when no pair reaches the threshold or fewer than two clusters have images.
    """
    assignment = np.asarray(assignment, dtype=np.int64)
    links = neighbour_links(assignment, neighbours, n_clusters)
    out = links.sum(axis=1)
    sizes = np.bincount(assignment, minlength=int(n_clusters))
    used = np.flatnonzero((sizes > 0) & (out > 0))
    if len(used) < 2:
        return None
    cross = link_scores(links)[np.ix_(used, used)]
    np.fill_diagonal(cross, -1.0)
    where = {int(c): k for k, c in enumerate(used)}
    for x, y in ignore:
        if int(x) in where and int(y) in where:
            cross[where[int(x)], where[int(y)]] = cross[where[int(y)], where[int(x)]] = -1.0
    i, j = np.unravel_index(int(np.argmax(cross)), cross.shape)  # the first of equal scores
    if cross[i, j] < LOOK_ALIKE:
        return None
    a, b = int(used[min(i, j)]), int(used[max(i, j)])
    into, merged = (b, a) if sizes[b] > sizes[a] else (a, b)
    return LookAlike(
        into, merged, float(cross[i, j]),
        float(links[merged, into] / out[merged]), float(links[into, merged] / out[into]),
    )  # fmt: skip
