"""Clustering methods on a run's frozen representation, as one registry, and the run of several of them.

Each method turns the features (N, F), their l2-normalised embeddings (N, D) and the mined neighbours
(N, k) into (N, K) cluster probabilities:

- ``kmeans``: K-means on the normalised embeddings (spherical K-means: the neighbours' geometry, and
  the preview); ``kmeans_features`` on the raw backbone features;
- ``ward``: Ward's agglomerative clustering of the raw features; ``ward_embeddings`` of the embeddings;
- ``umap_gmm``: N2D's recipe (McConville et al. 2020): UMAP of the embeddings to a few dimensions with
  ``min_dist=0``, then a Gaussian mixture, whose mixing weights let clusters differ in size (the best
  of :data:`GMM_RESTARTS` starts; its confidences, as Ward's, from the Student-t kernel to the
  clusters' centres and the neighbours' clusters: :func:`~semclust.core.clustering.classic.kernel_probabilities`);
  ``ward_umap``: Ward's clustering of that same map; ``umap_gmm_merged``: the mixture of that map
  with twice the clusters, merged by neighbour links down to the number asked for
  (:mod:`semclust.core.clustering.merge`: it keeps a long-tailed folder's small groups);
- ``scan``: SCAN's clustering heads (:mod:`semclust.core.clustering.scan`), trained on the features;
- ``temi``: TEMI's student and EMA-teacher heads (:mod:`semclust.core.clustering.temi`), on the features.

:func:`cluster_candidates` runs several and keeps the best by the label-free choice of
:mod:`semclust.core.clustering.selection`.

Example:
    >>> result = cluster_candidates(Inputs(features, embeddings, neighbours), 5)  # doctest: +SKIP
    >>> result.chosen, result.candidates[result.chosen].probabilities.shape  # doctest: +SKIP
    ('umap_gmm', (257, 5))
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from semclust.core.clustering.classic import (
    WARD_MAX_IMAGES,
    kernel_probabilities,
    kmeans_probabilities,
    labels_probabilities,
    ward_probabilities,
    ward_tree,
)
from semclust.core.clustering.selection import (
    Candidate,
    Selection,
    knn_modularity,
    scores_of,
    select,
)

#: UMAP for clustering (N2D): this many dimensions, neighbours and minimum distance; UMAP's own number
#: of epochs (500 up to 10,000 points): 200, as the 2-D map runs, took half the time and cost the kept
#: clustering 0.015 mean ACC over the benchmark's 15 sets and variants (digits 0.956 to 0.896).
UMAP_DIMS = 10
UMAP_NEIGHBOURS = 20
UMAP_MIN_DIST = 0.0
#: Gaussian mixtures fitted from different starts; the one whose clusters keep the most neighbour
#: links (:func:`knn_modularity`) is kept. On the 1,797 digits (3 seeds) one start gave ACC 0.75-0.87,
#: the best of 10 by likelihood or by modularity 0.86-0.93; long-tailed (ratio 10), by likelihood
#: 0.74-0.80, by modularity 0.80 every time.
GMM_RESTARTS = 10
#: Above this many images the Gaussian mixtures are fitted on a seeded sample (then every image is
#: assigned): EM's cost grows with the images times the components.
GMM_SAMPLE = 50_000
#: Up to this many images :meth:`Inputs.reduce_beside` makes the clustering map on a thread of its own.
BESIDE_MAX = 50_000


@dataclass
class Inputs:
    """What every method reads: a run's features (N, F), their l2-normalised embeddings (N, D) and the
    mined neighbours (N, k), rows aligned; ``reduced`` is the UMAP of the embeddings to
    :data:`UMAP_DIMS` dimensions, computed once on first use (or begun early by :meth:`reduce_beside`)
    and shared by the methods and the k choice.
    """

    features: np.ndarray
    embeddings: np.ndarray
    neighbours: np.ndarray
    seed: int = 0
    #: Called between the map's epochs; what it raises stops the map (a run's cancel token).
    check: Callable[[], None] | None = None
    _reduced: np.ndarray | None = None
    _beside: threading.Thread | None = field(default=None, repr=False)
    _failed: BaseException | None = field(default=None, repr=False)
    _limits: threadpool_limits | None = field(default=None, repr=False)
    _abandon: threading.Event = field(default_factory=threading.Event, repr=False)
    _trees: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def reduced(self) -> np.ndarray:
        from semclust.core import projection

        if self._beside is not None:  # begun by reduce_beside: wait for what is left of it
            self._beside.join()
            self._beside = None
            self.release()
            failed, self._failed = self._failed, None
            if failed is not None and not isinstance(failed, projection.LayoutStopped):
                raise failed
        if self._reduced is None:  # not begun, or abandoned (release) and read after all
            self._abandon.clear()
            self._reduced = self._reduce()
        return self._reduced

    def _reduce(self) -> np.ndarray:
        from semclust.core.projection import checked_by, umap_embed

        with checked_by(self._check):
            return umap_embed(
                self.embeddings, UMAP_DIMS, UMAP_NEIGHBOURS, UMAP_MIN_DIST, self.seed,
                neighbours=self.neighbours,
            )  # fmt: skip

    def ward_tree(self, of: str) -> np.ndarray:
        """Ward's merge tree of ``features``, ``embeddings`` or ``reduced``, made once: Ward's
        clusters for any number are cuts of it (:func:`~.classic.ward_cut`), for the k choice and the
        clustering alike."""
        if of not in self._trees:
            self._trees[of] = ward_tree(getattr(self, of))
        return self._trees[of]

    def _check(self) -> None:
        from semclust.core.projection import LayoutStopped

        if self._abandon.is_set():
            raise LayoutStopped("the map was no longer wanted")
        if self.check is not None:
            self.check()

    def reduce_beside(self) -> bool:
        """Begins :attr:`reduced` on a thread of its own and returns at once, so that the map (UMAP's
        500 epochs: 9 s of 10,000 images) is made on one core while the caller works on the others
        (the 2-D map, the K-means preview, Ward on the features); the caller's BLAS and OpenMP
        threads are held to the other cores until :attr:`reduced` is read or :meth:`release` is
        called, else K-means' threads wait on a busy core (1.9 s became 5.4 s). The map is the same.

        Does nothing, and returns False, on one core, above :data:`BESIDE_MAX` images (a large map
        takes minutes, and what comes before its layout cannot be stopped) or where UMAP's epochs
        hold the interpreter's lock (:func:`semclust.core.projection.keep_umap_compiled`).
        """
        from semclust.core import projection

        cores = _cores()
        if self._reduced is not None or self._beside is not None:
            return self._beside is not None
        if cores < 2 or len(self) > BESIDE_MAX:
            return False
        projection.keep_umap_compiled()
        if not projection.layout_releases_lock:
            return False

        def work() -> None:
            try:
                self._reduced = self._reduce()
            except BaseException as exc:  # noqa: BLE001 - raised where the map is read
                self._failed = exc

        self._limits = threadpool_limits(limits=cores - 1)
        self._beside = threading.Thread(target=work, name="semclust-clustering-map", daemon=True)
        self._beside.start()
        return True

    def release(self) -> None:
        """Gives the caller's BLAS and OpenMP threads back every core (:meth:`reduce_beside`); call it
        from the thread that began the map. A map still being made is abandoned: its layout stops
        at its next epoch (a cancelled run no longer leaves a core busy with it)."""
        if self._beside is not None:
            self._abandon.set()
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None

    def __len__(self) -> int:
        return len(self.neighbours)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


Method = Callable[[Inputs, int, int], np.ndarray]


def _kmeans(x: Inputs, k, seed):
    return kmeans_probabilities(x.embeddings, k, x.neighbours, seed)


def _kmeans_features(x: Inputs, k, seed):
    return kmeans_probabilities(x.features, k, x.neighbours, seed)


def _ward(x: Inputs, k, seed):
    return ward_probabilities(x.features, k, x.neighbours, x.ward_tree("features"))


def _ward_embeddings(x: Inputs, k, seed):
    return ward_probabilities(x.embeddings, k, x.neighbours, x.ward_tree("embeddings"))


def _umap_gmm(x: Inputs, k, seed):
    posteriors = gmm_probabilities(x.reduced, x.neighbours, k, seed, GMM_RESTARTS)
    # the posteriors are 1.00 for nearly every image: a confidence that says something instead
    return kernel_probabilities(x.reduced, posteriors, x.neighbours)


def _ward_umap(x: Inputs, k, seed):
    return ward_probabilities(x.reduced, k, x.neighbours, x.ward_tree("reduced"))


def _umap_gmm_merged(x: Inputs, k, seed):
    from semclust.core.clustering.merge import OVER, RESTARTS, merge_by_links

    fine = gmm_probabilities(x.reduced, x.neighbours, min(OVER * k, len(x)), seed, RESTARTS)
    merged = merge_by_links(fine.argmax(axis=1), x.neighbours, k)
    return labels_probabilities(x.reduced, merged, k, x.neighbours)


def _scan(x: Inputs, k, seed):
    from semclust.core.clustering.scan import scan_probabilities

    return scan_probabilities(x.features, x.neighbours, k, seed)


def _temi(x: Inputs, k, seed):
    from semclust.core.clustering.temi import temi_probabilities

    return temi_probabilities(x.features, x.neighbours, k, seed)


def gmm_probabilities(
    reduced: np.ndarray,
    neighbours: np.ndarray,
    k: int,
    seed: int,
    restarts: int,
    sample: int = GMM_SAMPLE,
) -> np.ndarray:
    """(N, k) probabilities of the Gaussian mixture (full covariances) of ``reduced`` whose hard
    clusters have the highest :func:`knn_modularity`, among ``restarts`` EM starts; above ``sample``
    images the mixtures are fitted on a seeded sample of that many, and every image is assigned.

    The fits run on one BLAS and OpenMP thread: EM on a 10-d map is thousands of tiny solves and
    K-means starts, which more threads only slow down (2 cores: the k choice's 87 fits on 285 photos
    2.5 s against 1.0 s, on 10,000 images 19-21 s against 9-11 s; 22 s against 1.9 s beside another
    busy process)."""
    from sklearn.mixture import GaussianMixture

    fit_on = reduced
    if len(reduced) > sample:
        rows = np.random.default_rng(seed).choice(len(reduced), sample, replace=False)
        fit_on = reduced[np.sort(rows)]
    best, best_score = None, -np.inf
    with threadpool_limits(limits=1):
        for restart in range(restarts):  # EM's local optima: keep the best by the criterion
            gmm = GaussianMixture(
                k, covariance_type="full", random_state=seed * restarts + restart, reg_covar=1e-4
            ).fit(fit_on)
            probs = gmm.predict_proba(reduced).astype(np.float32)
            score = knn_modularity(neighbours, probs.argmax(axis=1))
            if score > best_score:
                best, best_score = probs, score
    return best


#: name -> method; ``CANDIDATES`` are those :func:`cluster_candidates` tries by default.
METHODS: dict[str, Method] = {
    "kmeans": _kmeans,
    "kmeans_features": _kmeans_features,
    "ward": _ward,
    "ward_embeddings": _ward_embeddings,
    "umap_gmm": _umap_gmm,
    "ward_umap": _ward_umap,
    "umap_gmm_merged": _umap_gmm_merged,
    "scan": _scan,
    "temi": _temi,
}
CANDIDATES: tuple[str, ...] = tuple(METHODS)
#: What ``--method auto`` compares (with SCAN's heads when a run trains them). K-means and Ward each on
#: the input that measured better in the clustering benchmark (45 runs: 5 sets, balanced and
#: long-tailed, 3 seeds): K-means on the embeddings (mean ACC 0.593 against 0.579 on the features, NMI
#: higher in 36 runs), Ward on the features (0.645 against 0.627, NMI level). Ward on the same UMAP map
#: as the mixture (``ward_umap``) joined them after a second round (15 sets and variants, 3 seeds):
#: the kept clustering's mean ACC rose on 4 (digits long-tailed 50: 0.548 to 0.638; GCompris
#: long-tailed 10: 0.609 to 0.652; food7 long-tailed 50: 0.607 to 0.631), fell on 4 (animals
#: long-tailed 10: 0.693 to 0.682; the others by 0.004 at most), +0.009 on average (BENCHMARKS.md).
#: ``umap_gmm_merged`` joined after the twelfth round (the 11 sets and variants of 100 images or more,
#: 22 class subsets and 2 held-out photo folders, 3 seeds): the choice kept it in 8 of 105 runs, each
#: better than what it replaced in ACC and NMI (the long-tailed digits: 0.564 to 0.715); in 2 of 12
#: whole default runs, food7 +0.017 and MNIST-5k -0.005.
AUTO_CANDIDATES: tuple[str, ...] = ("kmeans", "ward", "umap_gmm", "ward_umap", "umap_gmm_merged")
#: The methods that cluster :attr:`Inputs.reduced`.
MAP_METHODS: tuple[str, ...] = ("umap_gmm", "ward_umap", "umap_gmm_merged")
#: Below this many images ``auto`` leaves :data:`MAP_METHODS` out: each image's 20 UMAP neighbours
#: span a fifth of the folder or more, and the mixture's full covariances in 10 dimensions have a few
#: images each, so the map's clusters are chance (food7's 39 photos: 0.71 or 0.63 as the same features
#: are rounded to float16 or not; K-means and Ward did not move). On the benchmark's four folders under
#: 100 photos (3 seeds) K-means and Ward alone lifted the mean ACC over its 15 sets and variants by
#: 0.019 and 0.013 (the two roundings; GCompris long-tailed 10: 0.652 to 0.913); the folders from 100
#: images up keep every candidate (BENCHMARKS.md, issue 19's sixth round).
MAP_MIN_IMAGES = 5 * UMAP_NEIGHBOURS


def map_fits(images: int) -> bool:
    """Whether a folder of ``images`` is large enough for ``auto`` and the k choice to cluster the
    reduced map (:data:`MAP_MIN_IMAGES`)."""
    return images >= MAP_MIN_IMAGES


def auto_candidates(images: int) -> tuple[str, ...]:
    """What ``auto`` compares on a folder of ``images`` (with SCAN's heads when a run trains them)."""
    if map_fits(images):
        return AUTO_CANDIDATES
    return tuple(m for m in AUTO_CANDIDATES if m not in MAP_METHODS)


def uses_map(method: str, images: int) -> bool:
    """Whether ``method`` (a registry name or ``auto``) clusters the reduced map of ``images``."""
    chosen = auto_candidates(images) if method == "auto" else (method,)
    return bool(set(MAP_METHODS) & set(chosen))


def cluster_candidates(
    inputs: Inputs,
    k: int,
    seed: int = 0,
    methods: Sequence[str] = CANDIDATES,
    on_candidate: Callable[[str, int, int], None] | None = None,
    given: dict[str, Candidate] | None = None,
) -> Selection:
    """Runs each method of ``methods`` and keeps the best by :func:`select`.

    Args:
        inputs: the run's representation.
        k: number of clusters.
        on_candidate: called as ``(name, index, count)`` before each method (progress).
        given: candidates computed elsewhere (a run's SCAN heads), compared with the others.

    Raises:
        ValueError: an unknown method name.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown clustering methods {unknown}; choose among {list(METHODS)}.")
    found = dict(given or {})
    for i, name in enumerate(methods):
        if on_candidate is not None:
            on_candidate(name, i, len(methods))
        if name.startswith("ward") and len(inputs) > WARD_MAX_IMAGES and len(methods) > 1:
            continue  # Ward's memory grows as N^2: left out of a choice (alone, it says why)
        start = time.perf_counter()
        probs = METHODS[name](inputs, k, seed)
        found[name] = Candidate(probs, time.perf_counter() - start)
    for candidate in found.values():
        candidate.scores = scores_of(candidate.assignment, inputs.neighbours, k)
    return Selection(found, select(found, k))
