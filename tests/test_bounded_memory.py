"""What keeps a million-image run within memory: results computed a block of rows at a time equal the
whole-array ones, and arrays filled in place through a memory-mapped file appear only when complete."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.clustering import classic
from semclust.core.representation.simclr import l2_normalise
from semclust.core.runfolder import artefacts
from semclust.core.training import predict_batches

X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)


def test_chunked_student_t_and_normalisation_equal_the_whole_array():
    mu = X[:4] + 1
    np.testing.assert_allclose(
        classic.student_t(X, mu, chunk=7), classic.student_t(X, mu), rtol=1e-6
    )
    unit = l2_normalise(X, chunk=7)
    np.testing.assert_allclose(unit, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-6)


def test_predict_batches_fills_the_given_array():
    out = np.zeros((50, 6), np.float32)
    got = predict_batches(lambda b: b * 2, X, batch_size=8, out=out)
    assert got is out
    np.testing.assert_array_equal(out, X * 2)
    np.testing.assert_array_equal(predict_batches(lambda b: b[:, :2], X, batch_size=8), X[:, :2])


@pytest.mark.parametrize("batch_size", [8, 16, 50, 64])
def test_every_batch_has_one_shape(batch_size):
    """A backend compiles once per batch shape: the data are cut into equal batches, the short last
    one padded and its padding's results dropped."""
    seen = []

    def double(b):
        seen.append(len(b))
        return b * 2

    np.testing.assert_array_equal(predict_batches(double, X, batch_size=batch_size), X * 2)
    assert len(set(seen)) == 1 and seen[0] <= batch_size
    assert len(seen) == -(-len(X) // batch_size)  # no more batches than batch_size allows
    assert len(seen) * seen[0] - len(X) < len(seen)  # padding: fewer rows than batches


def test_array_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "features.npy"
    with artefacts.array_file(path, (50, 6)) as arr:
        predict_batches(lambda b: b + 1, X, batch_size=16, out=arr)
        assert not path.exists()
    np.testing.assert_array_equal(np.load(path), X + 1)
    with pytest.raises(RuntimeError), artefacts.array_file(path, (50, 6)) as arr:
        arr[:] = 0
        raise RuntimeError("stopped half-way")
    np.testing.assert_array_equal(np.load(path), X + 1)  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["features.npy"]  # no temporary left


def test_predict_batches_reports_each_batch():
    seen = []
    predict_batches(
        lambda b: b, X, batch_size=16, on_batch=lambda done, total: seen.append((done, total))
    )
    assert seen == [(13, 50), (26, 50), (39, 50), (50, 50)]  # 4 equal batches
