"""The classic alternatives on a run's features: K-means and Ward's agglomerative clustering.

They take seconds where SCAN takes minutes, so the app shows K-means first as a preview while SCAN
trains, and offers both as methods of their own (``--method kmeans|ward``). Both give soft cluster
probabilities so that confidence means the same everywhere (:func:`kernel_probabilities`): half the
image's cluster, a quarter a Student-t kernel on the distances to the cluster centres (the soft
assignment of DEC, Xie et al. 2016, with alpha = 1), a quarter the share of its mined neighbours in each
cluster (:func:`semclust.core.metrics.neighbour_counts`).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import cut_tree, linkage
from sklearn.cluster import KMeans, MiniBatchKMeans

from semclust.core.clustering import losses
from semclust.core.metrics import neighbour_counts

#: Above this many images K-means runs in mini-batches (memory and time stay bounded).
MINIBATCH_ABOVE = 50_000
#: Ward keeps a dense distance structure that grows as the square of the image count.
WARD_MAX_IMAGES = 20_000


def student_t(
    features: np.ndarray, centres: np.ndarray, alpha: float = 1.0, chunk: int = 65_536
) -> np.ndarray:
    """q_ij proportional to (1 + |x_i - mu_j|^2 / alpha)^-(alpha + 1) / 2, rows summing to 1."""
    mu = centres.astype(np.float32)
    q = np.empty((len(features), len(mu)), dtype=np.float32)
    for start in range(0, len(features), chunk):  # a block of rows at a time: bounded memory
        x = np.asarray(features[start : start + chunk], dtype=np.float32)
        d2 = (x * x).sum(1)[:, None] - 2.0 * x @ mu.T + (mu * mu).sum(1)[None, :]
        q[start : start + len(x)] = losses.student_t(np.maximum(d2, 0.0), alpha, np)
    return q


def kmeans_probabilities(
    features: np.ndarray, clusters: int, neighbours: np.ndarray, seed: int = 0
) -> np.ndarray:
    """K-means (k-means++, 10 starts; mini-batches above :data:`MINIBATCH_ABOVE` images).

    Returns:
        (N, clusters) probabilities whose arg-max is the K-means cluster of every image, as Ward's
        (:func:`kernel_probabilities` with the mined ``neighbours``): the kernel alone on unit-length
        embeddings gave every image about 1 / clusters (food7: 0.15 to 0.20), a confidence that read
        as doubt; with half its cluster it has the scale of the others.
    """
    if len(features) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(clusters, n_init=3, random_state=seed, batch_size=4096)
    else:
        model = KMeans(clusters, n_init=10, random_state=seed)
    return labels_probabilities(features, model.fit_predict(features), clusters, neighbours)


def ward_probabilities(
    features: np.ndarray, clusters: int, neighbours: np.ndarray, tree: np.ndarray | None = None
) -> np.ndarray:
    """Ward's agglomerative clustering; deterministic. ``tree``: :func:`ward_tree` of ``features``
    when it was made before (every number of clusters is a cut of the same tree).

    Returns:
        (N, clusters) probabilities whose arg-max is Ward's cluster (:func:`kernel_probabilities`
        with the mined ``neighbours``).

    Raises:
        ValueError: more than :data:`WARD_MAX_IMAGES` images (memory grows as their square).
    """
    labels = ward_cut(ward_tree(features) if tree is None else tree, clusters)
    return labels_probabilities(features, labels, clusters, neighbours)


def kernel_probabilities(x: np.ndarray, weights: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(N, K) probabilities of a clustering of ``x`` given as each image's cluster weights (one-hot
    for a hard clustering, a mixture's posteriors): half its arg-max cluster, a quarter the Student-t
    kernel to the clusters' weighted means, a quarter the share of its mined ``neighbours`` in each
    cluster (:func:`~semclust.core.metrics.neighbour_counts`). The arg-max stays the clustering's,
    and the confidence (0.5 to 1) says how near its cluster's centre an image lies and how many of
    its neighbours share its cluster, where a mixture's posteriors are 1.00 for nearly every image
    (BENCHMARKS.md, "The mixture's confidence, and the prototypes it picks"). With the neighbours it finds the misplaced
    images better than the kernel alone: on ``auto``'s clusters of 21 sets, variants and folders the
    AUROC rose from 0.658 to 0.734, on 17 of them, and fell on 2 (BENCHMARKS.md, "Sixteenth round")."""
    weights = np.asarray(weights, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    share = weights / np.maximum(weights.sum(axis=0, keepdims=True), 1e-12)  # columns sum to 1
    centres = share.T @ x
    assignment = weights.argmax(axis=1)
    hard = np.eye(weights.shape[1], dtype=np.float32)[assignment]
    shares = neighbour_counts(assignment, neighbours, len(centres)).astype(np.float32)
    shares /= np.shape(neighbours)[1]
    return 0.5 * hard + 0.25 * student_t(x, centres) + 0.25 * shares


def labels_probabilities(
    x: np.ndarray, labels: np.ndarray, clusters: int, neighbours: np.ndarray
) -> np.ndarray:
    """:func:`kernel_probabilities` of a hard clustering of ``x`` given as one label per image."""
    return kernel_probabilities(x, np.eye(clusters, dtype=np.float32)[labels], neighbours)


def ward_tree(features: np.ndarray) -> np.ndarray:
    """Ward's merge tree of the rows of ``features`` (SciPy's linkage matrix), the same for every
    number of clusters: :func:`ward_cut` gives the clusters of any, the same as scikit-learn's
    ``AgglomerativeClustering(linkage="ward")``, about 5x faster: the pairwise distances come from one
    matrix product a block of rows at a time (BLAS, every core) where SciPy's ``pdist`` under
    scikit-learn loops on one core (10,000 x 720 features: 4.5 s against 26 s, the same clusters).
    Memory is the same: the condensed distances, 8 bytes a pair.

    Raises:
        ValueError: more than :data:`WARD_MAX_IMAGES` images (memory grows as their square).
    """
    if len(features) > WARD_MAX_IMAGES:
        raise ValueError(
            f"Ward clustering needs memory growing with the square of the image count; "
            f"{len(features):,} images is more than {WARD_MAX_IMAGES:,}: use K-means or SCAN."
        )
    return linkage(condensed_distances(features), method="ward")


def ward_cut(tree: np.ndarray, clusters: int) -> np.ndarray:
    """The ``clusters`` clusters of a :func:`ward_tree`, as labels 0..clusters-1."""
    return cut_tree(tree, n_clusters=clusters).ravel().astype(np.int64)


def condensed_distances(x: np.ndarray, block: int = 1024) -> np.ndarray:
    """Euclidean distances of every pair of rows, in SciPy's condensed order (``pdist``'s), float64.

    A block of rows at a time, each against the rows from its own first one on (the upper triangle
    only), with the arithmetic in place: 1.4 s for 10,000 x 720 features on 2 cores, where the whole
    square with temporaries took 5.6 s.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    squares = np.einsum("ij,ij->i", x, x)
    out = np.empty(n * (n - 1) // 2)
    pos = 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        d2 = x[start:stop] @ x[start:].T  # (rows, n - start): column j is row start + j
        d2 *= -2.0
        d2 += squares[start:stop, None]
        d2 += squares[None, start:]
        d = np.sqrt(np.maximum(d2, 0.0, out=d2), out=d2)
        for i, row in enumerate(d):  # the part right of the diagonal
            right = row[i + 1 :]
            out[pos : pos + len(right)] = right
            pos += len(right)
    return out
