"""Choosing the number of clusters without labels (``--clusters auto``).

For every candidate k, Gaussian mixtures of the reduced map (:attr:`.methods.Inputs.reduced`: UMAP of
the embeddings to 10 dimensions, as ``umap_gmm`` clusters) are fitted and the k whose clusters keep the
most neighbour links, beyond what their sizes alone would keep, wins: the modularity of the mined
k-nearest-neighbour graph (:func:`.selection.knn_modularity`), the criterion that also picks the clustering
method. Too few clusters merge groups (links across them are expected anyway); too many cut groups
apart (their links leave the clusters). Unlike SCAN's heads, whose entropy term pulls every cluster
to the same size, nothing here prefers equal sizes.

The graph's scale sets the smallest group the criterion can see. With each image's 20 neighbours, a
group of fewer than about 20 images loses most of its links whatever k is, so on a folder of a few
dozen images the score preferred 2 clusters. The links counted are each image's first
:func:`graph_neighbours` neighbours: half the square root of the image count, at least
:data:`GRAPH_NEIGHBOURS_MIN`, at most the neighbours mined (20; so from 1,600 images on, all of
them). A sparse graph also lets a large group without inner structure score a little higher cut in
two, so among the ks whose scores are within 1% of the best the smallest wins
(:func:`near_best`). On the 15 labelled sets and variants of the clustering benchmark
(BENCHMARKS.md, "Third round"), k within +-2 of the classes in 35 of 39 runs, against 28 with each
image's 20 neighbours and the best score alone.

On a folder too small for the map (fewer than :data:`~.methods.MAP_MIN_IMAGES` images, where ``auto``
keeps K-means and Ward only), each k's clusters are Ward's on the features instead: the same for any
seed, and on the benchmark's four such folders nearer the classes (mean distance 1.25 against 2.0).

Example:
    >>> choice = choose_clusters(Inputs(features, embeddings, neighbours), (2, 30))  # doctest: +SKIP
    >>> choice.best, choice.extra["at_edge"]  # doctest: +SKIP
    (10, False)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from semclust.core.clustering.classic import ward_cut
from semclust.core.clustering.k_choice import KChoice
from semclust.core.clustering.methods import Inputs, gmm_probabilities, map_fits
from semclust.core.clustering.selection import scores_of
from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress

STAGE = "choose_k"
#: EM starts per k (the best kept by modularity, as ``umap_gmm`` keeps the best of 10).
RESTARTS = 3
#: Above this many images each k's mixtures are fitted on a seeded sample of the map, and every image
#: is assigned and scored. Over the benchmark's 33 runs and 66 class-subset runs of 100 images or more
#: (3 seeds; BENCHMARKS.md, "The k choice in a third of the time") it chose as the whole map did in
#: 30 and 59, as often within +-2 of the classes (28 and 34), as near on average (1.61 and 2.30 from
#: the classes, against 1.61 and 2.38), and on 10,000 images in 3.1-3.2 s instead of 9-11 s.
SAMPLE = 2_000
#: The fewest neighbour links per image the score counts (:func:`graph_neighbours`).
GRAPH_NEIGHBOURS_MIN = 5
#: Scores within this share of the best count as tied (:func:`near_best`). On the benchmark's
#: curves (39 runs) 1% gave 35 choices within +-2, 0.5% absolute 34, 2% 28 (real groups merged).
NEAR_BEST = 0.01
#: The rule above in words: part of the choice's fingerprint, so that a run folder's choice made by an
#: earlier rule is made again.
K_CRITERION = (
    "choose_k by modularity of sqrt(N)/2 neighbours (5 to mined), the fewest within 1%; "
    "Ward on the features below the map's fewest images"
)


def graph_neighbours(n_images: int, mined: int) -> int:
    """How many of each image's ``mined`` neighbours the k choice's modularity counts: half the
    square root of the image count, clipped to :data:`GRAPH_NEIGHBOURS_MIN` .. ``mined``. The factor
    is not sharp: with the best score alone, 0.4, 0.5 and 0.6 gave 34, 34 and 35 of 39 benchmark
    choices within +-2."""
    return int(np.clip(0.5 * np.sqrt(n_images), min(GRAPH_NEIGHBOURS_MIN, mined), mined))


def candidate_ks(k_range: tuple[int, int], n_images: int) -> tuple[int, ...]:
    """The candidates of ``k_range`` (inclusive) that the data allow: at least 2, at most a third of
    the images (a mixture needs a few images per component).

    Raises:
        ValueError: no candidate is left (fewer than six images, or an empty range).
    """
    low, high = int(k_range[0]), int(k_range[1])
    ks = tuple(k for k in range(max(2, low), high + 1) if k <= n_images // 3)
    if not ks:
        raise ValueError(
            f"No number of clusters in {low}..{high} can be tried on {n_images} images "
            "(k must be at least 2 and at most a third of the images)."
        )
    return ks


def near_best(ks: tuple[int, ...], score: list[float]) -> tuple[int, ...]:
    """The ks whose score is within :data:`NEAR_BEST` (relative) of the best one, ascending: the
    numbers the criterion cannot tell apart. The choice is the first, the fewest clusters (the sparse
    graph of a small folder otherwise cuts a large homogeneous group in two)."""
    values = np.asarray(score, dtype=np.float64)
    top = values.max()
    return tuple(k for k, v in zip(ks, values, strict=True) if v >= top - NEAR_BEST * abs(top))


def choose_clusters(
    inputs: Inputs,
    k_range: tuple[int, int] = (2, 30),
    seed: int = 0,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    known: Mapping[int, Mapping[str, float]] | None = None,
    on_k: Callable[[int, dict[str, float]], None] | None = None,
) -> KChoice:
    """The number of clusters in ``k_range`` whose mixture clusters (Ward's on a small folder:
    :func:`~.methods.map_fits`) have the highest modularity (the fewest among near ties:
    :func:`near_best`).

    Args:
        known: the scores of ks already tried (a choice cut short, resumed): not fitted again.
        on_k: called with each k and its scores once fitted (to keep them for a resume).

    Returns:
        a :class:`KChoice` with the curves ``modularity`` (the score), ``agreement`` (share of
        neighbour links inside clusters) and ``largest_share`` (the largest cluster's share of the
        images); ``extra["at_edge"]`` is true when the best k is the smallest or largest tried (the
        range may be too narrow: the run says so); ``extra["near_best"]`` lists the ks that score
        nearly as well (:func:`near_best`; the run names their range).

    Raises:
        ValueError: no k of the range fits the number of images.
        Cancelled: ``cancel`` was set.
    """
    start = time.perf_counter()
    ks = candidate_ks(k_range, len(inputs))
    on_map = map_fits(len(inputs))
    progress(Progress(STAGE, "progress", 0, len(ks) + 1, message=(
        "reducing the map (UMAP)" if on_map else "Ward's clustering of the features")))  # fmt: skip
    reduced = inputs.reduced if on_map else None
    graph = inputs.neighbours[:, : graph_neighbours(len(inputs), inputs.neighbours.shape[1])]
    curves: dict[str, list[float]] = {"modularity": [], "agreement": [], "largest_share": []}
    for i, k in enumerate(ks):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if known is not None and k in known and set(curves) <= set(known[k]):
            scores = {name: float(known[k][name]) for name in curves}
        else:
            if on_map:
                labels = gmm_probabilities(
                    reduced, inputs.neighbours, k, seed, RESTARTS, SAMPLE
                ).argmax(1)
            else:
                labels = ward_cut(inputs.ward_tree("features"), k)
            scores = scores_of(labels, graph, k)
            if on_k is not None:
                on_k(k, scores)
        for name, values in curves.items():
            values.append(scores[name])
        progress(Progress(STAGE, "progress", i + 1, len(ks) + 1, message=(
            f"k = {k}: modularity {scores['modularity']:.3f}"), partial={"k": k}))  # fmt: skip
    score = curves["modularity"]
    near = near_best(ks, score)
    best = near[0]  # the fewest clusters among those the score cannot tell apart
    choice = KChoice(
        ks=ks,
        curves={name: tuple(values) for name, values in curves.items()},
        score=tuple(score),
        best=best,
        seconds=time.perf_counter() - start,
        extra={
            "criterion": "modularity",
            "clusters": "mixtures of the map" if on_map else "Ward on the features",
            "graph_neighbours": int(graph.shape[1]),
            "at_edge": len(ks) > 1 and best in (ks[0], ks[-1]),
            "near_best": list(near),
        },
    )
    # A note (no count): the stage's runner says when it started and finished, and how long it took.
    progress(Progress(STAGE, "progress", message=choice.describe()))
    return choice
