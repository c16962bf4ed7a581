"""SCAN's clustering heads on frozen features: linear, or with a shared hidden layer."""

import numpy as np
import pytest

from semclust.core.clustering.scan import ClusterHeads, train_scan
from semclust.core.config import ScanConfig
from semclust.core.neighbours import mine_neighbours
from semclust.core.training import seed_everything


def _blobs(n_per: int = 60, k: int = 4, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 3
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("hidden", [0, 32])
def test_heads_give_distributions_and_reload_identically(hidden, tmp_path):
    x, _ = _blobs()
    heads = ClusterHeads(4, n_heads=3, seed=0, hidden=hidden)
    heads.adapt(x)
    p = heads.probabilities(x)
    assert p.shape == (len(x), 3, 4) and np.allclose(p.sum(axis=2), 1.0, atol=1e-5)
    assert (heads.hidden is None) == (hidden == 0)
    heads.save_weights(tmp_path / "h.weights.h5")
    again = ClusterHeads(4, n_heads=3, seed=7, hidden=hidden)
    again.adapt(x)
    again(x[:2])
    again.load_weights(tmp_path / "h.weights.h5")
    np.testing.assert_allclose(again.probabilities(x), p, atol=1e-6)


def test_hidden_layer_heads_learn_separable_clusters():
    x, labels = _blobs()
    seed_everything(0)
    heads = ClusterHeads(4, n_heads=2, seed=0, hidden=32)
    heads.adapt(x)
    heads(x[:2])
    result = train_scan(x, mine_neighbours(x, 5), heads, ScanConfig(epochs=30, batch_size=64), 0)
    pred = result.probabilities.argmax(axis=1)
    # Every blob goes to one cluster of its own.
    majority = [np.bincount(pred[labels == c], minlength=4).argmax() for c in range(4)]
    assert len(set(majority)) == 4
    assert np.mean(pred == np.array(majority)[labels]) > 0.95


def test_large_sets_train_at_most_max_steps():
    x, _ = _blobs()
    heads = ClusterHeads(4, n_heads=1, seed=0)
    heads.adapt(x)
    heads(x[:2])
    events = []
    per_epoch = -(-len(x) // 64)
    config = ScanConfig(epochs=30, batch_size=64, max_steps=3 * per_epoch + 1)
    train_scan(x, mine_neighbours(x, 5), heads, config, 0, progress=events.append)
    assert events[-1].message == "epoch 3 done" and events[-1].total == 3 * per_epoch
