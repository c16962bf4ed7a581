"""Neighbour mining: exact against brute force, approximate against exact."""

from __future__ import annotations

import types

import numpy as np
import pytest

from semclust.core import neighbours as nbm
from semclust.core.neighbours import (
    HnswSettings,
    approximate_neighbours,
    exact_neighbours,
    mine_neighbours,
    neighbour_purity,
)
from semclust.core.progress import Cancelled, CancelToken

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed")


def _brute(x: np.ndarray, k: int) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def _recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, truth)]))


def _clustered(n: int, dim: int = 64, clusters: int = 20, seed: int = 0) -> np.ndarray:
    """Points around cluster centres in a 16-d subspace, with noise in every dimension."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, 16)))[0].T
    centres = rng.standard_normal((clusters, 16))
    z = centres[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, 16))
    return (z @ basis + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_matches_brute_force(batch_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype("float32")
    got = mine_neighbours(x, k=5, batch_size=batch_size)
    np.testing.assert_array_equal(got, _brute(x, 5))
    assert not np.any(got == np.arange(50)[:, None])


def test_k_is_capped_and_purity():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype="float32")
    nb = mine_neighbours(x, k=20)
    assert nb.shape == (4, 3)
    assert neighbour_purity(nb[:, :1], ["a", "a", "b", "b"]) == 1.0


def test_cancel_stops_mining():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        mine_neighbours(np.ones((10, 2)), k=2, cancel=token)


@pytest.mark.parametrize("pca_min_dim", [64, 16])  # 64: the graph on every dimension; 16: on a PCA
@pytest.mark.parametrize("data", ["clustered", "digits"])
def test_approximate_agrees_with_exact(data, pca_min_dim):
    if data == "digits":
        from sklearn.datasets import load_digits

        x = load_digits().data.astype(np.float32) + 0.01  # 1,797 real 8x8 digits
    else:
        x = _clustered(3000)
    k = 20
    events = []
    settings = HnswSettings(pca_min_dim=pca_min_dim, pca_sample=1000)
    got = mine_neighbours(x, k, progress=events.append, exact_threshold=500, hnsw=settings)
    assert got.shape == (len(x), k) and got.dtype == np.int32
    assert not np.any(got == np.arange(len(x))[:, None])
    assert all(len(set(row)) == k for row in got)
    assert _recall(got, exact_neighbours(x, k)) >= 0.95
    # Progress: one stage, counting up to its total.
    assert {e.stage for e in events} == {"neighbours"}
    assert events[-1].step == events[-1].total and [e.step for e in events] == sorted(
        e.step for e in events
    )


def test_approximate_rows_are_most_similar_first():
    x = _clustered(2000, seed=1)
    got = approximate_neighbours(x, 10, HnswSettings(add_chunk=700, search_chunk=300))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = np.einsum("nd,nkd->nk", xn, xn[got])
    assert np.all(np.diff(sims, axis=1) <= 2e-3)  # ranked on a float16 copy: to its precision


def test_pca_keeps_the_components_that_hold_the_variance():
    x = _clustered(2000, dim=128, seed=9)  # a 16-d subspace plus a little noise
    assert nbm.pca_components(x, 0.9, min_dim=16) == 16
    assert nbm.pca_components(x, 0.9, min_dim=48) == 48
    # Vectors without structure need every dimension: no PCA then.
    noise = np.random.default_rng(8).standard_normal((2000, 128))
    assert nbm.pca_components(noise, 0.9, min_dim=16) == 128


def test_below_threshold_is_exact():
    x = _clustered(400, seed=2)
    np.testing.assert_array_equal(mine_neighbours(x, 5, exact_threshold=400), _brute(x, 5))


def test_approximate_search_can_be_cancelled():
    token = CancelToken()

    def cancel_after_first(event):
        token.cancel()

    with pytest.raises(Cancelled):
        mine_neighbours(
            _clustered(1500),
            5,
            progress=cancel_after_first,
            cancel=token,
            exact_threshold=100,
            hnsw=HnswSettings(add_chunk=500),
        )


def test_duplicates_never_list_themselves():
    x = np.repeat(_clustered(300, seed=3), 4, axis=0)  # every vector four times
    got = mine_neighbours(x, 8, exact_threshold=100)
    assert not np.any(got == np.arange(len(x))[:, None])
    # The three copies of a vector are among its nearest.
    copies = np.arange(len(x))[:, None] // 4
    assert np.mean((got[:, :3] // 4) == copies) > 0.95


def test_missing_entries_are_searched_exactly():
    x = _clustered(500, seed=4)
    out = _brute(x, 6).astype(np.int32)
    truth = out.copy()
    out[[3, 77, 499], 2:] = -1
    nbm._repair(out, x, chunk=128)
    np.testing.assert_array_equal(out, truth)


def test_without_faiss_the_search_stays_exact(monkeypatch, caplog):
    monkeypatch.setattr(nbm, "_faiss", lambda: None)
    x = _clustered(300, seed=5)
    with caplog.at_level("WARNING"):
        got = mine_neighbours(x, 5, exact_threshold=100)
    np.testing.assert_array_equal(got, _brute(x, 5))
    assert "faiss is not installed" in caplog.text


def test_gpu_path_is_exact(monkeypatch):
    """The faiss-gpu path, with a CPU index standing in for the GPU one."""
    fake = types.SimpleNamespace(
        get_num_gpus=lambda: 1,
        index_cpu_to_all_gpus=lambda index: index,
        IndexFlatIP=faiss.IndexFlatIP,
    )
    monkeypatch.setattr(nbm, "_faiss", lambda: fake)
    x = _clustered(700, seed=6)
    got = mine_neighbours(x, 7, hnsw=HnswSettings(search_chunk=256))
    assert _recall(got, _brute(x, 7)) == 1.0
    assert not np.any(got == np.arange(len(x))[:, None])


def test_sampled_recall_measures_agreement():
    x = _clustered(800, seed=7)
    truth = _brute(x, 10)
    assert nbm.sampled_recall(truth, x, sample=100) == 1.0
    half = truth.copy()
    half[:, 5:] = truth[np.roll(np.arange(len(x)), 1), :5]  # another row's neighbours
    r = nbm.sampled_recall(half, x, sample=800)
    assert 0.5 <= r < 0.75, r
