"""Losses against plain NumPy references."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from semclust.core.clustering.losses import scan_loss, student_t
from semclust.core.clustering.scan import head_losses
from semclust.core.clustering.selflabel import selflabel_loss
from semclust.core.representation.simclr import nt_xent_loss


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def nt_xent_reference(z1, z2, tau):
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = np.array([z[i] @ z[m] / tau for m in range(2 * n)])
        denom = sum(np.exp(sims[m]) for m in range(2 * n) if m != i)
        losses.append(-np.log(np.exp(sims[j]) / denom))
    return np.mean(losses)


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.1), (5, 8, 0.5), (16, 4, 1.0)])
def test_nt_xent_matches_reference(n, d, tau):
    rng = np.random.default_rng(n)
    z1, z2 = rng.normal(size=(n, d)).astype("float32"), rng.normal(size=(n, d)).astype("float32")
    got = float(keras.ops.convert_to_numpy(nt_xent_loss(z1, z2, tau)))
    assert got == pytest.approx(nt_xent_reference(z1, z2, tau), rel=1e-4)


def test_nt_xent_is_low_for_matching_views():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(8, 16)).astype("float32")
    same = float(keras.ops.convert_to_numpy(nt_xent_loss(z, z, 0.1)))
    other = float(
        keras.ops.convert_to_numpy(nt_xent_loss(z, rng.normal(size=(8, 16)).astype("float32"), 0.1))
    )
    assert same < other


def scan_reference(pa, pn, lam):
    consistency = -np.mean([np.log(pa[i] @ pn[i]) for i in range(len(pa))])
    mean = pa.mean(axis=0)
    entropy = -np.sum(mean * np.log(mean))
    return consistency - lam * entropy, consistency, entropy


@pytest.mark.parametrize("lam", [0.0, 2.0, 5.0])
def test_scan_loss_matches_reference(lam):
    rng = np.random.default_rng(1)
    pa = softmax(rng.normal(size=(12, 5))).astype("float32")
    pn = softmax(rng.normal(size=(12, 5))).astype("float32")
    got = [float(keras.ops.convert_to_numpy(v)) for v in scan_loss(pa, pn, lam)]
    assert got == pytest.approx(list(scan_reference(pa, pn, lam)), rel=1e-4)


@pytest.mark.parametrize("lam", [0.0, 5.0])
def test_scan_loss_numpy_and_keras_forms_agree_per_head(lam):
    """One formula, two namespaces: (B, H, K) gives one loss per head, NumPy's equal to Keras's."""
    rng = np.random.default_rng(3)
    pa = softmax(rng.normal(size=(10, 3, 6))).astype("float32")
    pn = softmax(rng.normal(size=(10, 3, 6))).astype("float32")
    with_np = scan_loss(pa, pn, lam, xp=np)
    with_keras = [keras.ops.convert_to_numpy(v) for v in scan_loss(pa, pn, lam)]
    for h in range(3):
        expected = scan_reference(pa[:, h], pn[:, h], lam)
        assert [v[h] for v in with_np] == pytest.approx(list(expected), rel=1e-5)
        assert [v[h] for v in with_keras] == pytest.approx(list(expected), rel=1e-4)


def test_student_t_matches_reference():
    rng = np.random.default_rng(4)
    x, mu = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    d2 = ((x[:, None] - mu[None]) ** 2).sum(-1)
    for alpha in (1.0, 2.5):
        ref = np.array(
            [[(1 + d2[i, j] / alpha) ** (-(alpha + 1) / 2) for j in range(4)] for i in range(7)]
        )
        ref /= ref.sum(axis=1, keepdims=True)
        assert student_t(d2, alpha, np) == pytest.approx(ref, rel=1e-12)
        got = keras.ops.convert_to_numpy(student_t(d2.astype("float32"), alpha))
        assert got == pytest.approx(ref, rel=1e-5)


def test_scan_loss_prefers_spread_clusters_to_collapse():
    """The failure of the keras.io example: one cluster for everything must cost more than a spread."""
    k, n = 4, 40
    collapsed = np.tile(np.eye(k)[0], (n, 1)) * 0.97 + 0.01
    spread = np.eye(k)[np.arange(n) % k] * 0.96 + 0.01
    loss_collapsed = float(keras.ops.convert_to_numpy(scan_loss(collapsed, collapsed, 5.0)[0]))
    loss_spread = float(keras.ops.convert_to_numpy(scan_loss(spread, spread, 5.0)[0]))
    assert loss_spread < loss_collapsed


@pytest.mark.parametrize("chunk", [20_000, 7])  # 7: rows summed a block at a time
def test_head_losses_match_per_head_reference(chunk):
    rng = np.random.default_rng(2)
    probs = softmax(rng.normal(size=(30, 3, 4)))
    neighbours = rng.integers(0, 30, size=(30, 5))
    got = head_losses(probs, neighbours, 5.0, chunk=chunk)
    for h in range(3):
        pairs = [np.log(probs[i, h] @ probs[j, h]) for i in range(30) for j in neighbours[i]]
        mean = probs[:, h].mean(axis=0)
        entropy = -np.sum(mean * np.log(mean))
        assert got["total"][h] == pytest.approx(-np.mean(pairs) - 5.0 * entropy, rel=1e-6)


def selflabel_reference(weak, strong, thr):
    conf = weak.max(axis=1) > thr
    if not conf.any():
        return 0.0
    target = weak.argmax(axis=1)[conf]
    counts = np.bincount(target, minlength=weak.shape[1])
    weight = np.where(counts > 0, conf.sum() / np.maximum(counts, 1), 0.0)
    ce = -np.log(strong[conf, target])
    w = weight[target]
    return float(np.sum(w * ce) / np.sum(w))


@pytest.mark.parametrize("thr", [0.5, 0.9, 0.999])
def test_selflabel_loss_matches_reference(thr):
    rng = np.random.default_rng(3)
    weak = softmax(rng.normal(size=(64, 5)) * 4).astype("float32")
    strong = softmax(rng.normal(size=(64, 5))).astype("float32")
    got = float(keras.ops.convert_to_numpy(selflabel_loss(weak, strong, thr)))
    assert got == pytest.approx(selflabel_reference(weak, strong, thr), rel=1e-4, abs=1e-6)
