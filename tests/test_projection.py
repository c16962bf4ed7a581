"""The 2-D projection: UMAP on the run's own mined neighbours keeps the clusters apart."""

import subprocess
import sys

import numpy as np
import pytest

from semclust.core.config import ProjectionConfig
from semclust.core.neighbours import mine_neighbours
from semclust.core.projection import _knn_graph, umap_2d


def _blobs(n_per: int = 120, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, dim)) * 4
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per)


def test_knn_graph_starts_with_each_point_and_sorts_by_cosine_distance():
    x, _ = _blobs(20)
    nb = mine_neighbours(x, k=5)
    index, dist, search = _knn_graph(x, nb)
    assert search is None
    assert (index[:, 0] == np.arange(len(x))).all() and (index[:, 1:] == nb).all()
    assert (dist[:, 0] == 0).all() and (np.diff(dist, axis=1) >= -1e-6).all()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert np.isclose(dist[7, 3], 1 - unit[7] @ unit[nb[7, 2]], atol=1e-5)


@pytest.mark.parametrize("large", [50_000, 100])  # 100: the settings of a large collection
def test_umap_on_mined_neighbours_separates_blobs(large):
    x, labels = _blobs()
    y = umap_2d(x, ProjectionConfig(large=large), seed=0, neighbours=mine_neighbours(x, k=20))
    assert y.shape == (len(x), 2) and y.dtype == np.float32 and np.isfinite(y).all()
    # Each point's nearest 2-D neighbours come from its own blob.
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :10]
    assert (labels[nearest] == labels[:, None]).mean() > 0.95


def test_pca_start_matches_principal_components_from_a_sample():
    from sklearn.decomposition import PCA

    from semclust.core.projection import pca_start

    x, _ = _blobs(300)
    ref = PCA(2).fit_transform(x)
    got = pca_start(x, sample=600)  # a sample of two thirds of the 900 points
    assert got.shape == (900, 2) and got.dtype == np.float32
    for c in range(2):  # the same axes, up to sign
        assert abs(np.corrcoef(got[:, c], ref[:, c])[0, 1]) > 0.99


def test_umaps_compiled_functions_are_reused_from_disk_by_the_next_process(tmp_path):
    """The compile is paid once per machine: a second process finds UMAP's layout in numba's cache."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from semclust.core.projection import umap_embed\n"
        "import umap.layouts as L\n"
        "x = np.random.default_rng(0).normal(size=(80, 8)).astype(np.float32)\n"
        "umap_embed(x, 2, 10, 0.1, 0)\n"
        "print(sum(L._nb_optimize_layout_euclidean_single_epoch.compiled.stats.cache_hits.values()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["SEMCLUST_CACHE"] = str(tmp_path)
    hits = [
        int(
            subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )  # fmt: skip
        for _ in range(2)
    ]
    assert hits == [0, 1]
    assert any((tmp_path / "numba").rglob("*.nbi"))


def test_umap_warms_up_in_the_background_and_the_map_waits_for_it():
    """In a fresh interpreter: the warm-up starts at once, runs beside the caller, and the map's own
    warm-up call waits for it instead of compiling a second time."""
    code = """
import time
from semclust.core import projection as p
t = time.perf_counter()
p.start_umap_warm_up()
started = time.perf_counter() - t
assert started < 0.5, started
assert p._warm_thread.is_alive() and not p._umap_warm
p.start_umap_warm_up()  # a second call while the first runs starts nothing
p.warm_up_umap()
assert p._umap_warm and not p._warm_thread.is_alive()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_umaps_layout_epochs_release_the_lock_and_make_the_same_map(monkeypatch):
    """keep_umap_compiled compiles UMAP's layout epoch to release the interpreter's lock (so that the
    clustering map can be made beside the run's other work) without changing a map."""
    import numba
    import umap.layouts as layouts

    from semclust.core import projection
    from semclust.core.projection import umap_embed

    projection.keep_umap_compiled()
    step = layouts._nb_optimize_layout_euclidean_single_epoch.compiled  # behind the stop's check
    assert projection.layout_releases_lock and step.targetoptions.get("nogil") is True
    x, _ = _blobs(60)
    nb = mine_neighbours(x, k=20)
    ours = umap_embed(x, 10, 20, 0.0, seed=0, neighbours=nb)
    holding = numba.njit(layouts._optimize_layout_euclidean_single_epoch, fastmath=True)
    monkeypatch.setattr(layouts, "_nb_optimize_layout_euclidean_single_epoch", holding)
    np.testing.assert_array_equal(umap_embed(x, 10, 20, 0.0, seed=0, neighbours=nb), ours)
