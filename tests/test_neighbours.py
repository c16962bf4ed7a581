"""Neighbour mining against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.neighbours import mine_neighbours, neighbour_purity


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_matches_brute_force(batch_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype("float32")
    got = mine_neighbours(x, k=5, batch_size=batch_size)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1)[:, :5]
    np.testing.assert_array_equal(got, expected)
    assert not np.any(got == np.arange(50)[:, None])


def test_k_is_capped_and_purity():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype="float32")
    nb = mine_neighbours(x, k=20)
    assert nb.shape == (4, 3)
    assert neighbour_purity(nb[:, :1], ["a", "a", "b", "b"]) == 1.0


def test_cancel_stops_mining():
    from semclust.core.progress import Cancelled, CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        mine_neighbours(np.ones((10, 2)), k=2, cancel=token)
