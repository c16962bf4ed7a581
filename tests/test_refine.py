"""Corrections that teach the model: retraining pulls the corrected images' group along, keeps the
user's clusters, writes only its own artefacts, survives a reopen, and restoring brings the run's
clusters back."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.clustering.refine import refine
from semclust.core.config import RunConfig
from semclust.core.metrics import evaluate
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths, save_array, write_json
from semclust.core.runfolder.ownership import run_folder_lock
from semclust.core.runfolder.results import load_run
from semclust.core.runfolder.retrain import restore, retrain, retrain_folder


def wrongly_merged(seed: int = 0, per: int = 60, dim: int = 16):
    """Three blobs of l2-normalised points; the "model" put the 30 images of blob 1 nearest blob 0 into
    cluster 0, with a low confidence (a wrongly merged group). Returns embeddings, true labels, the
    model's probabilities and the misplaced images (nearest blob 0 first)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(3), per)
    x = centres[labels] + 0.25 * rng.normal(size=(len(labels), dim)) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ones = np.flatnonzero(labels == 1)
    misplaced = ones[np.argsort(-(x[ones] @ centres[0]))][:30]
    predicted = labels.copy()
    predicted[misplaced] = 0
    probs = np.full((len(x), 3), 0.05, dtype=np.float32)
    probs[np.arange(len(x)), predicted] = 0.9
    probs[misplaced] = [0.55, 0.4, 0.05]
    return x.astype(np.float32), labels, probs, misplaced


def nearest(x: np.ndarray, k: int = 10) -> np.ndarray:
    """The ``k`` most cosine-similar other points of every point (what a run mines)."""
    return np.argsort(-(x @ x.T), axis=1, kind="stable")[:, 1 : k + 1].astype(np.int32)


def test_corrections_pull_their_group_along():
    x, labels, probs, misplaced = wrongly_merged()
    moves = {int(i): 1 for i in misplaced[:3]}
    alone = probs.argmax(1)
    alone[misplaced[:3]] = 1
    refined = refine(nearest(x), probs, moves)
    after = refined.probabilities.argmax(1)
    after[misplaced[:3]] = 1  # corrections apply over any model's probabilities
    acc_before = evaluate(labels, probs.argmax(1), 3)["acc"]
    acc_alone, acc_after = evaluate(labels, alone, 3)["acc"], evaluate(labels, after, 3)["acc"]
    assert acc_alone - acc_before == pytest.approx(3 / len(x))
    assert acc_after - acc_before > 3 * (acc_alone - acc_before)  # at least 6 more images fixed
    assert refined.corrected == 3 and refined.changed >= 6
    assert refined.probabilities.shape == probs.shape
    np.testing.assert_allclose(refined.probabilities.sum(1), 1, atol=1e-5)
    # the clustering stands where nobody corrected it: blobs 0 and 2 stay put
    assert (after[labels == 2] == 2).all() and (after[labels == 0] == 0).all()


def test_a_new_cluster_is_learnt_and_bad_input_refused():
    x, labels, probs, misplaced = wrongly_merged()
    moves = {int(i): 3 for i in misplaced[:5]}  # the user made cluster 3 of five of them
    refined = refine(nearest(x), probs, moves, n_clusters=4)
    assert refined.probabilities.shape == (len(x), 4)
    pulled = refined.probabilities.argmax(1)[misplaced[5:]]
    assert (pulled == 3).sum() >= 5  # the new cluster draws its members' neighbours
    # a corrected image's own row stays the run's: undoing its correction sends it back
    np.testing.assert_array_equal(refined.probabilities[misplaced[:5], :3], probs[misplaced[:5]])
    with pytest.raises(ValueError, match="No corrections"):
        refine(nearest(x), probs, {})
    with pytest.raises(ValueError, match="do not exist"):
        refine(nearest(x), probs, {0: 7}, n_clusters=4)
    with pytest.raises(ValueError, match="Neighbours of shape"):
        refine(nearest(x)[:10], probs, {0: 1})


def write_run(out, seed: int = 0):
    """A finished run folder of the wrongly merged blobs (image files need not exist to load it)."""
    x, labels, probs, misplaced = wrongly_merged(seed)
    paths = RunPaths(out)
    files = [f"{c}/{i:04d}.png" for i, c in enumerate(labels)]
    write_json(paths.config, RunConfig(clusters=3).to_dict())
    write_json(paths.images, {"root": str(out.parent / "images"), "paths": files,
                              "labels": [str(c) for c in labels]})  # fmt: skip
    save_array(paths.embeddings, x)
    save_array(paths.probabilities, probs)
    save_array(paths.neighbours, nearest(x))
    write_json(paths.metrics, {"clusters": 3})
    return paths, labels, misplaced


def _files(paths: RunPaths) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(paths.root.iterdir()) if p.is_file()}


def test_retrain_writes_its_own_artefact_and_survives_a_reopen(tmp_path):
    paths, labels, misplaced = write_run(tmp_path / "run")
    run = load_run(paths.root)
    run.corrections.move(misplaced[:3], 1)
    run.save_corrections()
    before = _files(paths)
    shown = run.assignment.copy()

    result = retrain(run)

    after = _files(paths)
    assert set(after) - set(before) == {"retrained_probabilities.npy", "retrained.json"}
    assert all(after[name] == data for name, data in before.items())  # nothing else changed
    assert not (paths.root / ".semclust-run.lock").exists()
    assert run.retrained is None  # the caller applies the result (the app: on its own thread)
    assert result.corrected == 3 and result.changed >= 6
    assert result.message().startswith("Retrained with 3 corrections: ")
    reopened = load_run(paths.root)
    assert reopened.retrained_info["changed"] == result.changed
    np.testing.assert_array_equal(reopened.retrained, result.probabilities)
    moved = reopened.assignment
    assert (moved[misplaced[:3]] == 1).all()  # the user's cluster, exactly
    assert int((moved != shown).sum()) == result.changed
    assert evaluate(labels, moved, 3)["acc"] > evaluate(labels, shown, 3)["acc"] + 6 / len(labels)

    assert restore(paths) is True
    assert _files(paths) == before  # the run's own clusters again
    np.testing.assert_array_equal(load_run(paths.root).assignment, shown)
    assert restore(paths) is False


def test_retrained_clusters_of_an_earlier_clustering_or_damaged_are_ignored(tmp_path):
    paths, _, misplaced = write_run(tmp_path / "run")
    run = load_run(paths.root)
    run.corrections.move(misplaced[:3], 1)
    run.save_corrections()
    retrain_folder(paths.root)
    assert load_run(paths.root).retrained is not None
    # a rerun (or a k picked on the curve) writes new probabilities: the retrain no longer applies
    probs = np.load(paths.probabilities)
    save_array(paths.probabilities, np.roll(probs, 1, axis=0))
    assert load_run(paths.root).retrained is None
    save_array(paths.probabilities, probs)
    assert load_run(paths.root).retrained is not None
    # an array that is not the one its record names: the run's own clusters, and the run opens
    save_array(paths.retrained_probabilities, np.load(paths.retrained_probabilities)[::-1])
    assert load_run(paths.root).retrained is None
    paths.retrained.write_text("{not json", encoding="utf-8")
    assert load_run(paths.root).retrained is None


def test_retrain_needs_moves_and_the_folders_lock(tmp_path):
    paths, _, misplaced = write_run(tmp_path / "run")
    with pytest.raises(ValueError, match="No corrections"):
        retrain_folder(paths.root)
    run = load_run(paths.root)
    run.corrections.move(misplaced[:3], 1)
    with run_folder_lock(paths), pytest.raises(RunFolderError, match="in use"):
        retrain(run)
    assert not paths.retrained.exists() and not paths.retrained_probabilities.exists()


def test_user_clusters_beyond_the_retrained_ones_and_undone_ones(tmp_path):
    """A cluster made after the retrain has no column (no image goes there but the user's); one made
    before and undone since is left out of the clusters shown."""
    paths, _, misplaced = write_run(tmp_path / "run")
    run = load_run(paths.root)
    made = run.corrections.new_cluster(misplaced[:4], run.n_clusters)
    result = retrain(run)
    assert result.probabilities.shape[1] == 4
    run.retrained = result.probabilities
    assert (run.assignment[misplaced[:4]] == made).all()
    run.corrections = type(run.corrections)()  # every correction undone
    assert run.model_probabilities.shape[1] == 3 and run.assignment.max() < 3


def test_the_benchmarks_simulated_user_moves_wrong_images_home():
    from bench.corrections import pick, simulate, vote

    x, labels, probs, misplaced = wrongly_merged()
    shown = probs.argmax(1)
    picked = pick(labels, shown, {}, 10, np.random.default_rng(0))
    assert len(picked) == 10 and set(picked) <= set(misplaced.tolist())
    assert set(picked.values()) == {1}  # the cluster where label 1 is the majority
    assert pick(labels, shown, dict.fromkeys(misplaced.tolist(), 1), 10, None) == {}
    start = {"labels": labels, "probabilities": probs, "neighbours": nearest(x)}
    alone, _ = simulate(start, 0, None)
    retrained, seconds = simulate(start, 0, vote)
    assert alone[10] == pytest.approx(alone[0] + 10 / len(x))
    assert alone[30] == retrained[30] == 1.0 and retrained[10] > alone[10]
    assert seconds < 1.0


def test_the_simulated_user_with_nothing_to_move_leaves_the_clusters_as_they_are():
    from bench.corrections import simulate, vote

    x, labels, probs, _ = wrongly_merged()
    right = np.eye(3, dtype=np.float32)[labels]  # every image in its class's cluster
    start = {"labels": labels, "probabilities": right, "neighbours": nearest(x)}
    retrained, seconds = simulate(start, 0, vote)  # no image to move: nothing to retrain with
    assert set(retrained.values()) == {1.0} and seconds == 0.0


def test_a_correction_sways_only_the_images_it_is_a_mutual_neighbour_of():
    probs = np.eye(2, dtype=np.float32)[[1, 0, 1, 1]] * 0.8 + 0.1  # clusters 1, 0, 1, 1
    neighbours = np.array([[1, 2], [0, 2], [3, 1], [2, 1]])  # 2 is 0's neighbour, not 0 of 2's
    refined = refine(neighbours, probs, {2: 0})  # the user moves image 2 into cluster 0
    assert np.array_equal(refined.probabilities[0], probs[0])  # not a mutual neighbour: untouched
    assert refined.probabilities[3].argmax() == 0  # a mutual one, tipped by the correction
    assert refined.changed == 1
