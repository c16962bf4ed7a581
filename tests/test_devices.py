"""Several devices under JAX (``keras.distribution.DataParallel``): two CPU devices stand in for GPUs.

Each run is a fresh interpreter, as the backend and XLA's device count are fixed at import.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (pip install 'jax[cpu]')")

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from semclust.core.config import ScanConfig
    from semclust.core.neighbours import mine_neighbours
    from semclust.core.clustering.scan import ClusterHeads, train_scan
    from semclust.core.training import predict_batches, seed_everything, use_all_devices

    devices = use_all_devices()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 16))[np.arange(202) % 3] * 3).astype(np.float32)
    x += rng.standard_normal(x.shape).astype(np.float32)
    neighbours = mine_neighbours(x, 5)

    def train(batch_size):
        seed_everything(0)
        heads = ClusterHeads(3, n_heads=2, seed=0)
        heads.adapt(x)
        heads(x[:2])
        config = ScanConfig(epochs=5, batch_size=batch_size)
        return heads, train_scan(x, neighbours, heads, config, 0).probabilities

    heads, probs = train(64)  # 202 rows: batches of 64 and 10, split evenly
    _, uneven = train(63)  # batches of 63 and 13: padded to 64 and 14
    # Prediction batches of 7 rows, padded to 8.
    np.savez(sys.argv[1], devices=devices, probs=probs, uneven=uneven,
             predicted=predict_batches(heads.predict_on_batch, x, 7))
    """
)


def _run(devices: int, out) -> dict:
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(out))


def test_two_devices_train_and_predict_as_one(tmp_path):
    one, two = _run(1, tmp_path / "one.npz"), _run(2, tmp_path / "two.npz")
    assert one["devices"] == 1 and two["devices"] == 2
    # The same heads when every batch is split in two; every row predicted, the padding dropped.
    np.testing.assert_allclose(two["probs"], one["probs"], atol=1e-5)
    assert two["predicted"].shape == one["predicted"].shape == (202, 2, 3)
    np.testing.assert_allclose(two["predicted"], one["predicted"], atol=1e-5)
    # Odd batches train too (padded with repeated rows, so not identically).
    assert np.isfinite(two["uneven"]).all() and np.abs(two["uneven"] - one["uneven"]).max() < 0.05
