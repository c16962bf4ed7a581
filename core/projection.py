"""2-D projection of the embeddings for the scatter plot (UMAP, McInnes et al. 2018)."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable

import numpy as np

from semclust.core.config import ProjectionConfig
from semclust.core.paths import default_cache_dir

#: UMAP's modules whose numba-compiled functions are kept on disk (:func:`keep_umap_compiled`).
UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.spectral")
_umap_compiled_kept = False
#: Whether UMAP's layout epochs release the interpreter's lock (:func:`keep_umap_compiled` makes them).
layout_releases_lock = False
_umap_warm = False
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def umap_2d(
    embeddings: np.ndarray,
    config: ProjectionConfig = ProjectionConfig(),
    seed: int = 0,
    neighbours: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 2) float32 UMAP of ``embeddings`` (cosine metric), seeded; PCA for tiny sets UMAP cannot embed.

    Args:
        neighbours: the run's mined neighbours of ``embeddings`` (N, k), most similar first. With at least
            ``n_neighbors - 1`` columns UMAP uses them instead of its own approximate search, which
            took most of its time: 41 s against 9 s for 10k random 512-d vectors (BENCHMARKS.md).
    """
    return umap_embed(
        embeddings, 2, config.n_neighbors, config.min_dist, seed, neighbours, config.large,
        config.large_epochs, config.epochs,
    )  # fmt: skip


def umap_embed(
    embeddings: np.ndarray,
    dims: int,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    neighbours: np.ndarray | None = None,
    large: int = 50_000,
    large_epochs: int = 100,
    epochs: int | None = None,
) -> np.ndarray:
    """(N, dims) float32 UMAP of ``embeddings`` (cosine metric): :func:`umap_2d` for any dimension
    (``dims`` of about 10 for clustering, as N2D does); PCA for tiny sets UMAP cannot embed.

    Args:
        epochs: optimisation epochs up to ``large`` points (``None``: UMAP's own, 500 up to 10,000
            points and 200 above).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) <= n_neighbors + 1:
        return _pca(x, dims)
    keep_umap_compiled()
    import umap  # slow to import (numba): only when needed

    extra = {} if epochs is None else {"n_epochs": epochs}
    if len(x) > large:
        extra.update(init=pca_start(x, seed, dims=dims), n_epochs=large_epochs)
    if neighbours is not None and neighbours.shape[1] >= n_neighbors - 1:
        extra["precomputed_knn"] = _knn_graph(x, neighbours[:, : n_neighbors - 1])
    # UMAP's notes on the choices made here (no parallel epochs with a seed; no search index with
    # given neighbours). A filter, not catch_warnings, which is not safe while another thread maps.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"umap\.")
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_components=dims,
        **extra,
    )
    return reducer.fit_transform(x).astype(np.float32)


def warm_up_umap() -> None:
    """Fits UMAP once on 100 seeded random points, as :func:`umap_2d` fits a run (cosine, the run's
    neighbours given), so that numba compiles UMAP's functions now, or loads them from its cache, and
    the run's map can say so as a step of its own: on a machine's first run the compile is most of the
    map's time (49 s of a map of 257 photos). Once per process; fractions of a second once compiled.
    Waits for the warm-up :func:`start_umap_warm_up` began, if one runs."""
    global _umap_warm
    with _warm_lock:
        if _umap_warm:
            return
        from semclust.core.neighbours import exact_neighbours

        x = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        umap_2d(x, ProjectionConfig(), 0, exact_neighbours(x, ProjectionConfig().n_neighbors))
        _umap_warm = True


def start_umap_warm_up() -> None:
    """:func:`warm_up_umap` in a background thread, so that UMAP compiles while the run extracts
    its features (the backbone's work releases the interpreter). Returns at once; the map's stage
    then waits for what is left. A failure there is left for the map's own UMAP to meet and say."""
    global _warm_thread
    if _umap_warm or (_warm_thread is not None and _warm_thread.is_alive()):
        return

    def warm() -> None:
        with contextlib.suppress(Exception):
            warm_up_umap()

    _warm_thread = threading.Thread(target=warm, name="semclust-umap-warm-up", daemon=True)
    _warm_thread.start()


def keep_umap_compiled() -> None:
    """Keeps UMAP's numba-compiled functions in numba's on-disk cache, under semclust's cache
    (``<cache>/numba``, unless ``NUMBA_CACHE_DIR`` names another place), so that a run pays UMAP's
    compile once per machine instead of once per process: the first 2-D map of 10,000 images took
    13.8 s in a fresh process, 8.9 s once the cache held it. UMAP does not ask numba to cache these
    functions itself; pynndescent, which it uses, does. A function numba cannot cache compiles as before.
    """
    global _umap_compiled_kept
    if _umap_compiled_kept:
        return
    _umap_compiled_kept = True
    import importlib

    import numba
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    if not os.environ.get("NUMBA_CACHE_DIR"):
        numba.config.CACHE_DIR = str(default_cache_dir() / "numba")
    _layout_epoch_without_lock()
    for name in UMAP_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache):
                try:
                    obj.enable_caching()
                except Exception:  # noqa: BLE001 - numba refuses to cache some functions
                    pass


def _layout_epoch_without_lock() -> None:
    """Compiles UMAP's layout epoch, nearly all of a map's time, to release the interpreter's lock
    (numba's ``nogil``), so that a map made on a thread of its own leaves the run's other work a core
    (:meth:`semclust.core.clustering.methods.Inputs.reduce_beside`). The same code, so the same maps;
    compiled under a name of its own, because numba's on-disk cache keys a function by its name and
    line, not by its options, and would hand back the compile that holds the lock. Each epoch is
    called through a check that lets a cancelled run or an abandoned map stop
    (:func:`checked_by`). Sets :data:`layout_releases_lock`; an UMAP without this function keeps
    its own."""
    global layout_releases_lock
    import types

    import numba
    from umap import layouts

    step = getattr(layouts, "_optimize_layout_euclidean_single_epoch", None)
    if step is None or not hasattr(layouts, "_nb_optimize_layout_euclidean_single_epoch"):
        return
    copy = types.FunctionType(
        step.__code__,
        step.__globals__,
        step.__name__ + "_nogil",
        step.__defaults__,
        step.__closure__,
    )
    copy.__qualname__ = copy.__name__
    compiled = numba.njit(copy, fastmath=True, parallel=False, nogil=True, cache=True)

    def epoch(*args, **kwargs):
        check = getattr(_layout_check, "check", None)
        if check is not None:
            check()  # what it raises stops the layout
        return compiled(*args, **kwargs)

    epoch.compiled = compiled  # the numba dispatcher itself
    layouts._nb_optimize_layout_euclidean_single_epoch = epoch
    layout_releases_lock = True


class LayoutStopped(Exception):
    """A map's layout stopped between two epochs because the map was abandoned."""


_layout_check = threading.local()


@contextlib.contextmanager
def checked_by(check: Callable[[], None] | None):
    """Within the block, the UMAP layouts made on this thread call ``check`` before each epoch, and
    stop with whatever it raises (a run's ``CancelToken.raise_if_cancelled``; :class:`LayoutStopped`
    for a map no longer wanted): a map stops within an epoch (18 ms of 10,000 images), not after
    the whole map. Only where :func:`keep_umap_compiled` could install its layout epoch; elsewhere
    the layouts run to their end."""
    _layout_check.check = check
    try:
        yield
    finally:
        _layout_check.check = None


def pca_start(x: np.ndarray, seed: int = 0, sample: int = 100_000, dims: int = 2) -> np.ndarray:
    """(N, dims) starting layout: the data on its first ``dims`` principal components, as UMAP's ``init="pca"``
    but fitted on a seeded sample of ``sample`` rows and projected a block at a time (UMAP's own
    would copy and centre all of ``x``: 4 GB more at 1M x 1024)."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(x))[:sample])
    s = np.asarray(x[rows], dtype=np.float64)
    mean = s.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(s - mean, rowvar=False))
    axes = vectors[:, ::-1][:, :dims]  # eigh sorts ascending
    out = np.empty((len(x), dims), dtype=np.float32)
    for start in range(0, len(x), 65_536):
        out[start : start + 65_536] = (
            np.asarray(x[start : start + 65_536], np.float64) - mean
        ) @ axes
    return out


def _knn_graph(x: np.ndarray, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray, None]:
    """UMAP's ``precomputed_knn``: each point first (distance 0), then its neighbours by cosine distance."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = np.concatenate([np.arange(len(x))[:, None], neighbours], axis=1).astype(np.int32)
    dist = np.empty(index.shape, dtype=np.float32)
    # (rows, k, dim) gathers, a block at a time: blocks of 512 rows stay in cache (10,000 x 20 x 720:
    # 0.9 s, against 1.4 s in blocks of 4,096; the same values)
    for start in range(0, len(x), 512):
        rows = slice(start, start + 512)
        dist[rows] = 1.0 - np.einsum("nd,nkd->nk", unit[rows], unit[index[rows]])
    dist[:, 0] = 0.0
    return index, np.maximum(dist, 0.0), None


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:dims].T
    if out.shape[1] < dims:
        out = np.pad(out, ((0, 0), (0, dims - out.shape[1])))
    return out.astype(np.float32)
