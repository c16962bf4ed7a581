"""Choosing the number of clusters without labels (``--clusters auto``)."""

import json

import numpy as np
import pytest

from semclust.core.clustering.choose_k import (
    NEAR_BEST,
    KChoice,
    candidate_ks,
    choose_clusters,
    graph_neighbours,
    near_best,
)
from semclust.core.clustering.methods import Inputs
from semclust.core.neighbours import mine_neighbours
from semclust.core.progress import Cancelled, CancelToken


def _blobs(sizes, dim: int = 16, seed: int = 0) -> Inputs:
    """Well separated Gaussian blobs of the given sizes on random directions (like image features)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim)) * 4
    x = np.concatenate([c + rng.standard_normal((n, dim)) for c, n in zip(centres, sizes)])
    x = x.astype(np.float32)
    emb = x / np.linalg.norm(x, axis=1, keepdims=True)
    return Inputs(x, emb, mine_neighbours(emb, 10))


@pytest.mark.parametrize(
    "sizes, tolerance, seed",
    [([40] * 3, 0, 0), ([40] * 6, 0, 0), ([150, 60, 25, 12], 2, 0)]
    + [([30, 12, 6, 4], 1, seed) for seed in range(3)],
)
def test_finds_the_number_of_groups_balanced_or_not(sizes, tolerance, seed):
    """Exact on balanced blobs; within one on 52 images in groups of 30 to 4, where each image's 20
    neighbours and the best score alone chose 2, 3 and 4; within two on blobs of 150 to 12, where the
    7-neighbour graph of 247 images scores the 150 (a Gaussian blob without inner structure) a little
    higher cut: the best score alone chose 7 for 4."""
    choice = choose_clusters(_blobs(sizes, seed=seed), (2, 10), seed=0)
    assert choice.ks == tuple(range(2, 11))
    assert abs(choice.best - len(sizes)) <= tolerance, choice.best
    assert set(choice.curves) == {"modularity", "agreement", "largest_share"}
    assert all(len(v) == len(choice.ks) for v in choice.curves.values())
    assert choice.score == choice.curves["modularity"]
    at = choice.ks.index(choice.best)  # the fewest clusters whose score is within 1% of the best
    assert choice.score[at] >= max(choice.score) * (1 - NEAR_BEST)
    assert all(s < max(choice.score) * (1 - NEAR_BEST) for s in choice.score[:at])
    assert choice.extra["at_edge"] is False


def test_a_large_folder_is_fitted_on_a_sample_and_every_image_scored(monkeypatch):
    """Above ``SAMPLE`` images each k's mixtures are fitted on a sample (a third of the time on
    10,000 images); every image is still assigned, so the score counts every neighbour link."""
    from sklearn.mixture import GaussianMixture

    from semclust.core.clustering import choose_k

    inputs = _blobs([300, 150, 50])
    inputs._reduced = inputs.embeddings  # the blobs are their own map: no UMAP needed here
    fitted = []
    fit = GaussianMixture.fit
    monkeypatch.setattr(
        GaussianMixture, "fit", lambda gmm, x, y=None: fitted.append(len(x)) or fit(gmm, x)
    )
    monkeypatch.setattr(choose_k, "SAMPLE", 200)
    choice = choose_clusters(inputs, (2, 6), seed=0)
    assert set(fitted) == {200}
    assert choice.best == 3
    assert choice.curves["agreement"][choice.ks.index(3)] > 0.95  # every image's links, in place


def test_the_graph_grows_with_the_images_up_to_the_neighbours_mined():
    assert graph_neighbours(40, 20) == 5  # the floor
    assert graph_neighbours(400, 20) == 10  # half the square root
    assert graph_neighbours(10_000, 20) == 20  # at most what was mined
    assert graph_neighbours(40, 3) == 3
    choice = choose_clusters(_blobs([30, 12, 6, 4]), (2, 10), seed=0)
    assert choice.extra["graph_neighbours"] == 5


def test_ties_go_to_fewer_clusters():
    assert near_best((2, 3, 4, 5), [0.50, 0.700, 0.705, 0.699])[0] == 3  # 0.700 >= 0.99 * 0.705
    assert near_best((2, 3, 4, 5), [0.50, 0.60, 0.705, 0.70])[0] == 4
    assert near_best((2, 3), [-0.2, -0.201])[0] == 2  # a negative best keeps its meaning


def test_the_numbers_that_score_nearly_as_well_are_named():
    assert near_best((2, 3, 4, 5, 6), [0.5, 0.700, 0.705, 0.60, 0.699]) == (3, 4, 6)
    line = KChoice(ks=(2, 3, 4, 5, 6), curves={}, score=(0, 1, 1, 0, 1), best=3,
                   extra={"near_best": [3, 4, 6]}).describe()  # fmt: skip
    assert line == "3 clusters chosen from 2..6 (3..4, 6 score nearly as well; the fewest is kept)"
    alone = KChoice(ks=(2, 3), curves={}, score=(0, 1), best=3, extra={"near_best": [3]})
    assert alone.describe() == "3 clusters chosen from 2..3"
    older = KChoice(ks=(2, 3), curves={}, score=(0, 1), best=3)  # a choose_k.json from before
    assert older.describe() == "3 clusters chosen from 2..3"
    choice = choose_clusters(_blobs([40] * 6), (2, 4), seed=0)
    assert choice.extra["near_best"][0] == choice.best
    assert choice.extra["near_best"] == list(near_best(choice.ks, list(choice.score)))


def test_a_choice_at_the_edge_of_the_range_is_said():
    events = []
    choice = choose_clusters(_blobs([40] * 6), (2, 4), seed=0, progress=events.append)
    assert choice.best == 4 and choice.extra["at_edge"] is True
    assert "largest number tried" in events[-1].message and "--clusters-range" in events[-1].message


def test_range_is_clipped_to_the_number_of_images():
    assert candidate_ks((2, 30), 12) == (2, 3, 4)
    assert candidate_ks((1, 4), 100) == (2, 3, 4)
    with pytest.raises(ValueError, match="at most a third of the images"):
        candidate_ks((2, 30), 5)
    choice = choose_clusters(_blobs([6, 6]), (2, 30))
    assert choice.ks == (2, 3, 4) and choice.best in choice.ks


def test_round_trip_through_json():
    choice = KChoice(
        ks=(2, 3, 4),
        curves={"modularity": (0.3, 0.5, 0.4), "largest_share": (0.5, 0.4, 0.4)},
        score=(0.3, 0.5, 0.4),
        best=3,
        seconds=1.5,
        extra={"at_edge": False},
    )
    again = KChoice.from_dict(json.loads(json.dumps(choice.to_dict())))
    assert again == choice
    assert again.curves == choice.curves and again.extra == choice.extra
    assert isinstance(again.ks, tuple) and isinstance(again.curves["modularity"], tuple)


def test_progress_and_cancellation():
    inputs = _blobs([40] * 3)
    events = []
    choose_clusters(inputs, (2, 5), progress=events.append)
    assert {e.stage for e in events} == {"choose_k"}
    # Only progress: the stage's runner says when the stage starts and finishes (once each).
    assert {e.kind for e in events} == {"progress"}
    assert "clusters" in events[-1].message and events[-1].total == 0  # the choice, as a note
    assert all(0 <= e.step <= e.total for e in events)
    assert [e.partial["k"] for e in events if e.partial and "k" in e.partial] == [2, 3, 4, 5]

    token = CancelToken()
    seen = []

    def cancel_soon(event):
        seen.append(event)
        if event.kind == "progress":
            token.cancel()

    with pytest.raises(Cancelled):
        choose_clusters(inputs, (2, 5), progress=cancel_soon, cancel=token)
    assert not any(e.kind == "finished" for e in seen)
    assert max(e.step for e in seen) < seen[0].total


@pytest.mark.parametrize(
    "content",
    [
        "{ cut short",
        json.dumps({"fingerprint": "other", "scores": {"3": {"modularity": 0.5}}}),
        json.dumps({"fingerprint": "fp", "scores": [0.5, 0.6]}),
        json.dumps({"fingerprint": "fp", "scores": {"3": {"modularity": "0.5"}}}),
        json.dumps({"fingerprint": "fp", "scores": {"three": {"modularity": 0.5}}}),
        json.dumps([1, 2]),
    ],
)
def test_a_damaged_or_foreign_partial_choice_is_ignored(tmp_path, content):
    from semclust.core.stage_work import _tried_ks

    partial = tmp_path / "choose_k.partial.json"
    partial.write_text(content)
    assert _tried_ks(partial, "fp") == {}


def test_a_partial_choice_of_this_stage_is_read(tmp_path):
    from semclust.core.stage_work import _tried_ks

    assert _tried_ks(tmp_path / "absent.json", "fp") == {}
    partial = tmp_path / "choose_k.partial.json"
    partial.write_text(json.dumps({"fingerprint": "fp", "scores": {"3": {"modularity": 0.5}}}))
    assert _tried_ks(partial, "fp") == {3: {"modularity": 0.5}}


def test_a_folder_too_small_for_the_map_is_scored_on_wards_clusters():
    """Below the map's fewest images (where ``auto`` keeps K-means and Ward) each k's clusters are
    Ward's: no map is made, and the seed changes nothing."""
    from semclust.core.clustering.methods import MAP_MIN_IMAGES

    small = _blobs([30, 12, 6, 4])
    assert len(small) < MAP_MIN_IMAGES
    choices = [choose_clusters(small, (2, 10), seed=seed) for seed in (0, 1, 2)]
    assert small._reduced is None
    assert {c.extra["clusters"] for c in choices} == {"Ward on the features"}
    assert len({(c.best, c.score) for c in choices}) == 1 and abs(choices[0].best - 4) <= 1
    large = _blobs([40] * 3)
    assert len(large) >= MAP_MIN_IMAGES
    assert choose_clusters(large, (2, 6)).extra["clusters"] == "mixtures of the map"
    assert large._reduced is not None
