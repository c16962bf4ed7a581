"""Over-clustering, merged by neighbour links: a clustering that keeps a folder's small groups.

Asked for k clusters of a long-tailed folder, a Gaussian mixture of the UMAP map halves its largest
groups (digits written two ways, animals in two poses) and lumps its smallest ones together: more
clusters for the many images, none for the few. Fitted with :data:`OVER` times as many clusters, it
splits the large groups into parts and leaves the small ones whole; :func:`merge_by_links` then joins,
one pair at a time, the two clusters whose mined neighbour links cross most, over the smaller one's
links (:func:`semclust.core.metrics.link_scores`, the app's merge hint). The parts of one group send
each other many of their links and merge first; a small group whose neighbours stay in it stays apart.

On the benchmark's long-tailed digits (482 images, classes of 174 down to 3) this gives ACC 0.74-0.79
where the mixture at k gives 0.52-0.64; on balanced folders it is often worse than the mixture (the
digits 0.84 against 0.96), and ``auto``'s label-free choice keeps it only where its clusters keep
more neighbour links (BENCHMARKS.md, issue 19's twelfth round).
"""

from __future__ import annotations

import numpy as np

from semclust.core.metrics import link_scores, neighbour_links

#: The mixture is fitted with this many times the clusters asked for, then merged down.
OVER = 2
#: EM starts of that mixture (the best kept by modularity, as ``umap_gmm`` keeps the best of 10): with
#: 10 the choice's mean ACC over the benchmark's 11 sets and variants of 100 images or more was 0.777,
#: with 3 0.776, and the mixture took 3.7 s instead of 1.0 s on 10,000 images (2 cores).
RESTARTS = 3


def merge_by_links(assignment: np.ndarray, neighbours: np.ndarray, clusters: int) -> np.ndarray:
    """``assignment`` merged down to ``clusters`` clusters by its neighbour links: each step joins the
    pair with the highest :func:`~semclust.core.metrics.link_scores` (the first of equal scores).

    Args:
        assignment: (N,) cluster of every image, any number of clusters (empty ones are ignored).
        neighbours: (N, k) mined neighbours of every image.
        clusters: how many to keep.

    Returns:
        (N,) clusters 0 .. clusters - 1, numbered in the order of the original clusters' numbers
        (fewer when ``assignment`` had fewer).
    """
    parts, fine = np.unique(np.asarray(assignment), return_inverse=True)
    links = neighbour_links(fine, neighbours, len(parts)).astype(np.float64)
    group = np.arange(len(parts))  # each part's cluster: the lowest part number in it
    alive = list(range(len(parts)))
    while len(alive) > max(int(clusters), 1):
        scores = link_scores(links[np.ix_(alive, alive)])  # the merged ones' links are moved over
        np.fill_diagonal(scores, -np.inf)
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        keep, gone = alive[min(i, j)], alive[max(i, j)]
        links[keep] += links[gone]
        links[:, keep] += links[:, gone]
        links[gone] = 0.0
        links[:, gone] = 0.0
        group[group == gone] = keep
        alive.remove(gone)
    return np.unique(group, return_inverse=True)[1][fine]
