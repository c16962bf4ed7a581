"""Mining each image's k nearest neighbours by cosine similarity (SCAN step 1).

Up to :data:`EXACT_THRESHOLD` images the search is exact (blocked matrix products, quadratic); above it
faiss (Douze et al. 2024, ``pip install faiss-cpu``) finds them approximately, in about linear time:
an HNSW graph (Malkov & Yashunin 2018) over the vectors' principal components proposes candidates and
their similarities over all dimensions rank them (:class:`HnswSettings`). With faiss-gpu installed and
a GPU visible to it, the search is exact on the GPU(s) at any size instead.

Measured on 2 idle cores, 512-d unit vectors, k = 20, recall against exact search (``bench/speed.py``):

- clustered vectors, 64-d latent clusters (82-89% of exact neighbours share a cluster), 100k: 18.8 s,
  recall 0.956 (the HNSW graph on all 512 dimensions: 29.6 s, recall 0.945). 1M: see HnswSettings.
- uniform random vectors (no structure at all), 100k: no PCA keeps their variance, so the graph is
  built on all dimensions: 165 CPU s and recall only 0.19, where exact search takes 97 s. The sampled
  recall check below warns in such a case.
- pynndescent (what UMAP uses) on the clustered 100k: 114 CPU s with its compilation, recall
  0.936 (30 neighbours), 3.3 GB peak; faiss IVF-Flat (1,024 lists, 16 probed): 69 CPU s, recall 0.896.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress

log = logging.getLogger(__name__)

#: Above this many images the search is approximate (when faiss is installed). Exact mining of 512-d
#: vectors took 23 s for 50k and 97 s for 100k on 2 idle cores; at 30k HNSW and exact search cost
#: about the same (16 and 21 CPU s), and below that exact search is both complete and cheaper.
EXACT_THRESHOLD = 30_000

#: Below this recall (measured on a sample after every approximate search) a warning is logged.
RECALL_WARNING = 0.9


@dataclass(frozen=True)
class HnswSettings:
    """The approximate search: candidates from a faiss HNSW graph over PCA-reduced vectors, ranked by
    their cosine similarity on a float16 copy of the vectors (faiss ``IndexRefine`` of
    ``IndexPreTransform(PCAMatrix, IndexHNSWFlat)`` and an fp16 ``IndexScalarQuantizer``; the factory
    string ``"PCA64,HNSW32,Refine(SQfp16)"``).

    Measured on 2 idle cores, k = 20, through :func:`mine_neighbours` (``bench/speed.py``), on clustered
    512-d vectors (64-d latent, so 64 components keep 97% of the variance): 100k in 18.8 s, recall
    0.956 (the graph on all 512 dimensions: 29.6 s, 0.945); 1M in 334 s, recall 0.915 with float32
    ranking and 5 candidates per neighbour (all dimensions: 2,036 s, 0.870). On MobileNet features
    (1,024-d, 320 components for 90%) of 100k jittered animal shapes, recall 0.935 with 5 candidates
    per neighbour, 0.952 with 6, 0.973 with 8 (11% slower); on 1M of them, 260 s in a run. Alternatives at 100k clustered, float32 re-ranking: without it
    0.893; 3 candidates 0.957 in 14.4 s; efSearch 160 0.963 in 17.0 s; PCA to 96 dimensions 0.958 in
    15.2 s; efConstruction 80 0.965 in 18.3 s. On real 64-pixel digits (1,797 images; 32 components
    keep 97%), 3 candidates per neighbour found 0.925 of them and 5 found 0.976. Memory: the float16
    copy (1 GB at 1M x 512, 2 GB at 1M x 1024; float32 took twice that and the 1M x 1024 run 8.5 GB),
    and the graph, 4 bytes per component and about 300 bytes of links per vector.

    Attributes:
        pca_variance: the graph is built on the fewest principal components (a multiple of 16, at
            least ``pca_min_dim``) that keep this fraction of the variance; on all dimensions when that
            would take more than half of them (slower, but blind to nothing).
        pca_min_dim: see ``pca_variance``.
        pca_sample: vectors the PCA is fitted on (a seeded random sample).
        m: graph links per node and layer (faiss's ``M``; the layer-0 graph has ``2 m``).
        ef_construction: candidate list while the graph is built.
        ef_search: candidate list while searching; at least ``refine_factor * (k + 1)`` is used.
        refine_factor: candidates per wanted neighbour that are ranked on the full vectors.
        add_chunk: vectors added per call (progress and cancellation are checked between calls).
        search_chunk: queries per call.
    """

    pca_variance: float = 0.9
    pca_min_dim: int = 64
    pca_sample: int = 50_000
    m: int = 32
    ef_construction: int = 40
    ef_search: int = 128
    refine_factor: int = 6
    add_chunk: int = 50_000
    search_chunk: int = 20_000


def mine_neighbours(
    embeddings: np.ndarray,
    k: int = 20,
    batch_size: int = 512,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    max_batch_bytes: int = 256 * 2**20,
    *,
    exact_threshold: int = EXACT_THRESHOLD,
    hnsw: HnswSettings = HnswSettings(),
) -> np.ndarray:
    """Indices of the ``k`` most cosine-similar other images of every image, most similar first.

    Up to ``exact_threshold`` images the result is exact (:func:`exact_neighbours`); above it, an HNSW
    index of faiss finds them approximately (:func:`approximate_neighbours`; recall against the exact
    search is measured in ``bench/speed.py``). Without faiss the search stays exact at every size, with
    a warning.

    On a GPU: install ``faiss-gpu`` (for example ``faiss-gpu-cu12``) next to ``jax[cuda12]`` and run
    with ``KERAS_BACKEND=jax``; when faiss sees a GPU the search is exact on every visible GPU
    (``faiss.index_cpu_to_all_gpus`` of an ``IndexFlatIP``) at any size, in blocks of
    ``hnsw.search_chunk`` queries. That path is not tested here (no GPU).

    Args:
        embeddings: (N, D) vectors (normalised here; the caller's array is not changed). A read-only
            memory map works and keeps memory down: the approximate path reads it a chunk at a time.
        k: neighbours per image; capped at N - 1.
        batch_size: rows per block of the exact search (fewer when a block would exceed
            ``max_batch_bytes``).
        progress: receives ``Progress("neighbours", "progress", step, total)`` events.
        cancel: checked between blocks; raises :class:`~semclust.core.progress.Cancelled`.
        exact_threshold: the largest N searched exactly on a CPU.
        hnsw: settings of the approximate search.

    Returns:
        (N, k) int32 array; an image is never its own neighbour.
    """
    n = len(embeddings)
    k = min(k, n - 1)
    if k < 1:
        raise ValueError("At least two images are needed to mine neighbours.")
    faiss = _faiss()
    if faiss is not None and _gpus(faiss) > 0:
        return _gpu_exact(faiss, embeddings, k, hnsw.search_chunk, progress, cancel)
    if n <= exact_threshold:
        return exact_neighbours(embeddings, k, batch_size, progress, cancel, max_batch_bytes)
    if faiss is None:
        log.warning("faiss is not installed: exact neighbour search of %d images (slow).", n)
        return exact_neighbours(embeddings, k, batch_size, progress, cancel, max_batch_bytes)
    return approximate_neighbours(embeddings, k, hnsw, progress, cancel)


def exact_neighbours(
    embeddings: np.ndarray,
    k: int = 20,
    batch_size: int = 512,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    max_batch_bytes: int = 256 * 2**20,
) -> np.ndarray:
    """Exact top-k cosine neighbours, a block of rows at a time.

    Similarities are computed ``batch_size`` rows at a time, fewer when a block's similarities and
    partition indices (12 bytes per pair) would exceed ``max_batch_bytes``. Extra memory therefore stays
    near 256 MB however many images there are; time grows with N squared.
    """
    x = _unit(np.asarray(embeddings, dtype=np.float32))
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        raise ValueError("At least two images are needed to mine neighbours.")
    out = np.empty((n, k), dtype=np.int32)
    batch_size = max(1, min(batch_size, max_batch_bytes // (12 * n)))
    total = -(-n // batch_size)
    for b, start in enumerate(range(0, n, batch_size)):
        if cancel is not None:
            cancel.raise_if_cancelled()
        stop = min(start + batch_size, n)
        out[start:stop] = _exact_rows(x, start, stop, k)
        progress(Progress("neighbours", "progress", b + 1, total, message="mining neighbours"))
    return out


def query_neighbours(
    queries: np.ndarray,
    base: np.ndarray,
    k: int = 20,
    cancel: CancelToken | None = None,
    query_chunk: int = 1024,
    base_chunk: int = 50_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k cosine neighbours of new vectors among a run's vectors (new images, say).

    Both are normalised here; ``base`` is read ``base_chunk`` rows at a time (a read-only memory map
    keeps memory down), so extra memory stays near ``query_chunk x base_chunk`` similarities.

    Args:
        queries: (M, D) vectors to find neighbours for.
        base: (N, D) vectors searched.
        k: neighbours per query; capped at N.
        cancel: checked between blocks.

    Returns:
        (M, k) int32 indices into ``base``, most similar first, and their (M, k) float32 cosine
        similarities.
    """
    n = len(base)
    k = min(k, n)
    if k < 1:
        raise ValueError("There are no vectors to search.")
    out_idx = np.empty((len(queries), k), dtype=np.int32)
    out_sim = np.empty((len(queries), k), dtype=np.float32)
    for q0 in range(0, len(queries), query_chunk):
        q = _unit(np.asarray(queries[q0 : q0 + query_chunk], dtype=np.float32))
        best_sims = np.empty((len(q), 0), dtype=np.float32)
        best_idx = np.empty((len(q), 0), dtype=np.int64)
        for start in range(0, n, base_chunk):
            _check(cancel)
            block = _unit(np.asarray(base[start : start + base_chunk], dtype=np.float32))
            sims = np.concatenate([best_sims, q @ block.T], axis=1)
            idx = np.concatenate(
                [
                    best_idx,
                    np.broadcast_to(np.arange(start, start + len(block)), (len(q), len(block))),
                ],
                axis=1,
            )
            top = _top(sims, min(k, sims.shape[1]))
            best_sims = np.take_along_axis(sims, top, axis=1)
            best_idx = np.take_along_axis(idx, top, axis=1)
        out_idx[q0 : q0 + len(q)] = best_idx
        out_sim[q0 : q0 + len(q)] = best_sims
    return out_idx, out_sim


def approximate_neighbours(
    embeddings: np.ndarray,
    k: int = 20,
    settings: HnswSettings = HnswSettings(),
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Approximate top-k cosine neighbours from a faiss index (needs ``faiss-cpu``; see
    :class:`HnswSettings`), most similar first.

    The index holds a float16 copy of the unit vectors (2 D bytes each) and its graph; the input is read
    a chunk at a time. Every core is used (OpenMP), so the graph, and rarely a neighbour, can differ
    between runs: faiss inserts in parallel. Rows the search could not fill are searched exactly.
    """
    import faiss

    n, dim = embeddings.shape
    k = min(k, n - 1)
    index, graph = _build_index(faiss, embeddings, settings)
    index.k_factor = settings.refine_factor
    graph.hnsw.efConstruction = settings.ef_construction
    graph.hnsw.efSearch = max(settings.ef_search, settings.refine_factor * (k + 1))
    adds = range(0, n, settings.add_chunk)
    searches = range(0, n, settings.search_chunk)
    total = len(adds) + len(searches)
    step = 0
    for start in adds:
        _check(cancel)
        index.add(_unit(np.asarray(embeddings[start : start + settings.add_chunk], np.float32)))
        step += 1
        progress(Progress("neighbours", "progress", step, total, message="building the index"))
    out = np.empty((n, k), dtype=np.int32)
    for start in searches:
        _check(cancel)
        stop = min(start + settings.search_chunk, n)
        _, found = index.search(_unit(np.asarray(embeddings[start:stop], np.float32)), k + 1)
        out[start:stop] = _drop_self(found, start, k)
        step += 1
        progress(Progress("neighbours", "progress", step, total, message="searching the index"))
    _repair(out, embeddings)
    recall = sampled_recall(out, embeddings)
    message = f"recall {recall:.3f} against exact search on a sample"
    progress(Progress("neighbours", "progress", total, total, message=message))
    if recall < RECALL_WARNING:
        log.warning(
            "Approximate neighbours found only %.0f%% of the exact ones (measured on a sample): "
            "a larger HnswSettings.ef_search finds more; exact search (a higher exact_threshold) "
            "is slower but complete.",
            100 * recall,
        )
    return out


def _build_index(faiss, embeddings: np.ndarray, settings: HnswSettings):
    """An empty faiss index for :func:`approximate_neighbours` (its PCA fitted) and its HNSW graph."""
    n, dim = embeddings.shape
    rows = np.random.default_rng(0).choice(n, size=min(n, settings.pca_sample), replace=False)
    sample = _unit(np.asarray(embeddings[np.sort(rows)], np.float32))
    graph_dim = pca_components(sample, settings.pca_variance, settings.pca_min_dim)
    graph = faiss.IndexHNSWFlat(graph_dim, settings.m, faiss.METRIC_INNER_PRODUCT)
    if graph_dim == dim:
        log.info("Neighbour graph on all %d dimensions (a PCA would not keep enough).", dim)
        base = graph
    else:
        log.info("Neighbour graph on %d of %d PCA components.", graph_dim, dim)
        pca = faiss.PCAMatrix(dim, graph_dim)
        pca.train(sample)
        base = faiss.IndexPreTransform(pca, graph)
    # The candidates are ranked on a float16 copy of the vectors: half the memory of float32.
    exact = faiss.IndexScalarQuantizer(
        dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index = faiss.IndexRefine(base, exact)
    index.referenced_objects = [base, exact]  # kept alive as long as the index
    return index, graph


def pca_components(x: np.ndarray, variance: float, min_dim: int, step: int = 16) -> int:
    """The fewest principal components of ``x`` (a multiple of ``step``, at least ``min_dim``) that keep
    ``variance`` of its variance; all of its dimensions when that would be more than half of them."""
    dim = x.shape[1]
    centred = x - x.mean(axis=0)
    eig = np.sort(np.linalg.eigvalsh(centred.T @ centred))[::-1]
    kept = np.cumsum(eig) / max(float(eig.sum()), 1e-12)
    for d in range(max(min_dim, step), dim // 2 + 1, step):
        if kept[d - 1] >= variance:
            return d
    return dim


def sampled_recall(
    found: np.ndarray, embeddings: np.ndarray, sample: int = 200, seed: int = 0
) -> float:
    """Mean fraction of the exact neighbours that ``found`` lists, over ``sample`` random rows.

    Costs a (sample, N) product: about a second at 1M x 512.
    """
    n, k = found.shape
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    exact = np.empty((len(rows), k), dtype=np.int64)
    sims_best = np.full((len(rows), k), -np.inf, dtype=np.float32)
    queries = _unit(np.asarray(embeddings[rows], dtype=np.float32))
    for start in range(0, n, 50_000):
        block = _unit(np.asarray(embeddings[start : start + 50_000], dtype=np.float32))
        sims = queries @ block.T
        own = (rows >= start) & (rows < start + len(block))
        sims[np.flatnonzero(own), rows[own] - start] = -np.inf
        sims = np.concatenate([sims_best, sims], axis=1)
        idx = np.concatenate(
            [exact, np.broadcast_to(np.arange(start, start + len(block)), (len(rows), len(block)))],
            axis=1,
        )
        top = np.argpartition(sims, -k, axis=1)[:, -k:]
        sims_best = np.take_along_axis(sims, top, axis=1)
        exact = np.take_along_axis(idx, top, axis=1)
    hits = [len(np.intersect1d(a, b)) for a, b in zip(found[rows], exact)]
    return float(np.sum(hits) / exact.size)


def _drop_self(found: np.ndarray, start: int, k: int) -> np.ndarray:
    """(rows, k) of a (rows, k + 1) search result: each row without its own index (or its last hit)."""
    rows = np.arange(start, start + len(found))
    is_self = found == rows[:, None]
    # Drop the row's own index where it was found, else the last (least similar) hit.
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones(found.shape, dtype=bool)
    keep[np.arange(len(found)), drop] = False
    return found[keep].reshape(len(found), k)


def _repair(out: np.ndarray, embeddings: np.ndarray, chunk: int = 50_000) -> None:
    """Searches exactly the rows an approximate search left with missing (-1) entries (rare)."""
    bad = np.flatnonzero((out < 0).any(axis=1))
    if len(bad) == 0:
        return
    log.info("%d rows searched exactly after the approximate search.", len(bad))
    k = out.shape[1]
    queries = _unit(np.asarray(embeddings[bad], dtype=np.float32))
    best_sims = np.full((len(bad), 0), -np.inf, dtype=np.float32)
    best_idx = np.empty((len(bad), 0), dtype=np.int64)
    for start in range(0, len(embeddings), chunk):  # the database a chunk at a time
        block = _unit(np.asarray(embeddings[start : start + chunk], dtype=np.float32))
        sims = queries @ block.T
        own = (bad >= start) & (bad < start + len(block))
        sims[np.flatnonzero(own), bad[own] - start] = -np.inf
        sims = np.concatenate([best_sims, sims], axis=1)
        idx = np.concatenate(
            [
                best_idx,
                np.broadcast_to(
                    np.arange(start, start + len(block)), sims[:, best_idx.shape[1] :].shape
                ),
            ],
            axis=1,
        )
        top = _top(sims, min(k, sims.shape[1]))
        best_sims = np.take_along_axis(sims, top, axis=1)
        best_idx = np.take_along_axis(idx, top, axis=1)
    out[bad] = best_idx


def _gpu_exact(faiss, embeddings, k, chunk, progress, cancel) -> np.ndarray:
    """Exact search on every GPU faiss sees (faiss-gpu). Not exercised by the tests (no GPU here)."""
    n, dim = embeddings.shape
    index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
    for start in range(0, n, chunk):
        index.add(_unit(np.asarray(embeddings[start : start + chunk], np.float32)))
    out = np.empty((n, k), dtype=np.int32)
    searches = range(0, n, chunk)
    for b, start in enumerate(searches):
        _check(cancel)
        stop = min(start + chunk, n)
        _, found = index.search(_unit(np.asarray(embeddings[start:stop], np.float32)), k + 1)
        out[start:stop] = _drop_self(found, start, k)
        progress(Progress("neighbours", "progress", b + 1, len(searches), message="GPU search"))
    return out


def _exact_rows(x: np.ndarray, start: int, stop: int, k: int) -> np.ndarray:
    sims = x[start:stop] @ x.T
    sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
    return _top(sims, k)


def _top(sims: np.ndarray, k: int) -> np.ndarray:
    # The k largest without negating the block first: that copy cost a third of the selection time.
    top = np.argpartition(sims, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _gpus(faiss) -> int:
    try:
        return int(faiss.get_num_gpus())
    except AttributeError:  # a CPU-only build
        return 0


def neighbour_purity(neighbours: np.ndarray, labels) -> float:
    """Fraction of neighbours that share the anchor's true label (SCAN table 1's "accuracy of kNN")."""
    lab = np.asarray(labels)
    return float(np.mean(lab[neighbours] == lab[:, None]))
