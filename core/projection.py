"""2-D projection of the embeddings for the scatter plot (UMAP, McInnes et al. 2018)."""

from __future__ import annotations

import warnings

import numpy as np

from core.config import ProjectionConfig


def umap_2d(
    embeddings: np.ndarray, config: ProjectionConfig = ProjectionConfig(), seed: int = 0
) -> np.ndarray:
    """(N, 2) float32 UMAP of ``embeddings`` (cosine metric), seeded; PCA for tiny sets UMAP cannot embed."""
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) <= config.n_neighbors + 1:
        return _pca_2d(x)
    import umap  # slow to import (numba): only when needed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_neighbors=config.n_neighbors,
            min_dist=config.min_dist,
            metric="cosine",
            random_state=seed,
            n_components=2,
        )
        return reducer.fit_transform(x).astype(np.float32)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out.astype(np.float32)
