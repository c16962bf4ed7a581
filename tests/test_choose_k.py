"""Choosing the number of clusters without labels (``--clusters auto``)."""

import json

import numpy as np
import pytest

from semclust.core.clustering.choose_k import ChooseKConfig, KChoice, candidate_ks, choose_clusters
from semclust.core.neighbours import mine_neighbours
from semclust.core.progress import Cancelled, CancelToken

FAST = ChooseKConfig(steps=150, dims=0, silhouette_points=500)


def _blobs(groups: int, n_per: int = 40, dim: int = 16, seed: int = 0):
    """Well separated Gaussian blobs on random directions (cosine structure, like image features)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, dim)) * 4
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(groups), n_per)


@pytest.mark.parametrize("groups", [3, 6])
def test_finds_the_number_of_well_separated_groups(groups):
    x, _ = _blobs(groups)
    choice = choose_clusters(x, mine_neighbours(x, 10), (2, 10), FAST, seed=0)
    assert choice.ks == tuple(range(2, 11))
    assert choice.best == groups
    assert set(choice.curves) >= {"consistency", "agreement", "stability", "silhouette", "empty"}
    assert all(len(v) == len(choice.ks) for v in choice.curves.values())
    assert len(choice.score) == len(choice.ks)
    assert choice.score[choice.ks.index(choice.best)] == max(choice.score)


def test_range_is_clipped_to_the_number_of_images():
    assert candidate_ks((2, 30), 6) == (2, 3, 4, 5)
    assert candidate_ks((1, 4), 100) == (2, 3, 4)
    with pytest.raises(ValueError, match="below the number of images"):
        candidate_ks((2, 30), 2)
    x, _ = _blobs(2, n_per=4)
    choice = choose_clusters(x, mine_neighbours(x, 3), (2, 30), ChooseKConfig(steps=20, dims=0))
    assert choice.ks == tuple(range(2, 8))
    assert choice.best in choice.ks


def test_round_trip_through_json():
    choice = KChoice(
        ks=(2, 3, 4),
        curves={"agreement": (0.9, 0.8, 0.4), "empty": (0.0, 0.0, 1.0)},
        score=(0.1, 0.7, -0.2),
        best=3,
        seconds=1.5,
        extra={"steps": 400},
    )
    again = KChoice.from_dict(json.loads(json.dumps(choice.to_dict())))
    assert again == choice
    assert again.curves == choice.curves and again.extra == choice.extra
    assert isinstance(again.ks, tuple) and isinstance(again.curves["agreement"], tuple)


def test_progress_and_cancellation():
    x, _ = _blobs(3)
    nb = mine_neighbours(x, 10)
    events = []
    choose_clusters(x, nb, (2, 5), ChooseKConfig(steps=50, dims=0), progress=events.append)
    assert {e.stage for e in events} == {"choose_k"}
    assert events[0].kind == "started" and events[-1].kind == "finished"
    assert all(0 <= e.step <= e.total for e in events)
    assert [e.partial["k"] for e in events if e.partial and "k" in e.partial] == [2, 3, 4, 5]

    token = CancelToken()
    seen = []

    def cancel_soon(event):
        seen.append(event)
        if event.kind == "progress":
            token.cancel()

    with pytest.raises(Cancelled):
        choose_clusters(
            x, nb, (2, 5), ChooseKConfig(steps=400, dims=0), progress=cancel_soon, cancel=token
        )
    assert not any(e.kind == "finished" for e in seen)
    assert max(e.step for e in seen) < seen[0].total // 2
