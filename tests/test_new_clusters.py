"""Clusters the user makes: a new cluster from a selection, and a cluster split by K-means again.

The effective number of clusters is the run's plus those made (``Corrections.added``); it is saved in
``corrections.json`` (older files without it still load) and every export follows it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from semclust.core.metrics import cluster_summary, evaluate
from semclust.core.runfolder.artefacts import RunFolderError, save_array, write_json
from semclust.core.runfolder.corrections import Corrections, split_members
from semclust.core.runfolder.export import export_cluster_folders, export_labels, read_labels
from semclust.core.runfolder.results import load_run
from tests.test_export import AWKWARD, make_run


def _with_embeddings(tmp_path):
    """The awkward run, with embeddings: two tight groups inside each predicted cluster."""
    run = make_run(tmp_path)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(AWKWARD), 8)) * 0.01
    emb[np.arange(len(AWKWARD)) % 2 == 0, 0] += 5.0  # even images far from odd ones
    save_array(run.paths.embeddings, emb.astype(np.float32))
    return load_run(run.paths.root)


def test_a_new_cluster_is_numbered_after_the_others_and_counted(tmp_path):
    run = make_run(tmp_path)
    assert run.n_clusters == run.predicted_clusters == 3
    made = run.corrections.new_cluster([0, 3], run.n_clusters)
    again = run.corrections.new_cluster([5], run.n_clusters)
    assert (made, again) == (3, 4)
    assert run.n_clusters == 5 and run.predicted_clusters == 3
    assert list(np.flatnonzero(run.assignment == 3)) == [0, 3]
    assert list(np.flatnonzero(run.assignment == 4)) == [5]
    assert run.cluster_name(3) == "cluster 3" and run.name_confidence(3) is None
    stats = cluster_summary(run.assignment, run.n_clusters, run.true_labels, run.model_confidence)
    assert [st.size for st in stats] == [2, 3, 2, 2, 1]
    # The model put none of a made cluster's images there: it has no mean confidence. The others
    # average the images the model placed, as before the edit.
    assert stats[3].mean_confidence is None and stats[4].mean_confidence is None
    kept = np.flatnonzero(run.assignment == 1)
    assert stats[1].mean_confidence == pytest.approx(float(np.mean(run.confidence[kept])))
    ev = evaluate(run.true_labels, run.assignment, run.n_clusters)
    assert len(ev["confusion"]) == 5


def test_corrections_with_new_clusters_survive_a_reload(tmp_path):
    run = make_run(tmp_path)
    made = run.corrections.new_cluster([1, 2], run.n_clusters)
    run.corrections.rename(made, "mine")
    run.save_corrections()
    assert json.loads(run.paths.corrections.read_text())["added"] == 1
    reloaded = load_run(run.paths.root)
    assert reloaded.corrections.added == 1 and reloaded.n_clusters == 4
    assert reloaded.cluster_name(3) == "mine"
    assert list(np.flatnonzero(reloaded.assignment == 3)) == [1, 2]


def test_an_old_corrections_file_without_added_still_loads(tmp_path):
    run = make_run(tmp_path)
    write_json(run.paths.corrections, {"names": {"0": "old"}, "moves": {"1": 0}})
    reloaded = load_run(run.paths.root)
    assert reloaded.corrections.added == 0 and reloaded.n_clusters == 3
    assert reloaded.cluster_name(0) == "old" and reloaded.assignment[1] == 0


@pytest.mark.parametrize(
    "data",
    [
        {"moves": {"1": 3}},  # a cluster that was never made
        {"names": {"4": "x"}, "added": 1},
        {"added": -1},
        {"added": 10_000},  # more clusters than images
        {"added": "2"},
        {"added": 1.5},
        {"added": True},
        {"apart": [[0, 3]]},  # pairs kept apart: clusters of the run, two different ones
        {"apart": [[0, 0]]},
        {"apart": [[0]]},
        {"apart": [["0", "1"]]},
        {"apart": [[0, True]]},
        {"apart": {"0": 1}},
    ],
)
def test_a_corrections_file_naming_clusters_never_made_is_refused(tmp_path, data):
    run = make_run(tmp_path)
    write_json(run.paths.corrections, data)
    with pytest.raises(RunFolderError, match="corrections.json"):
        load_run(run.paths.root)


def test_pairs_kept_apart_survive_a_reload_and_change_no_cluster(tmp_path):
    run = make_run(tmp_path)
    before = run.assignment.copy()
    run.corrections.keep_apart(2, 0)
    run.corrections.keep_apart(0, 2)  # one pair, either order
    run.save_corrections()
    assert json.loads(run.paths.corrections.read_text())["apart"] == [[0, 2]]
    again = load_run(run.paths.root)
    assert again.corrections.apart == {(0, 2)} and np.array_equal(again.assignment, before)


def test_labels_and_folders_export_the_new_clusters(tmp_path):
    run = make_run(tmp_path)
    made = run.corrections.new_cluster([0, 4], run.n_clusters)
    run.corrections.rename(made, "picked")
    run.save_corrections()
    run = load_run(run.paths.root)
    rows = read_labels(export_labels(run, tmp_path / "labels.csv"))
    assert [int(r["cluster"]) for r in rows] == list(run.assignment)
    assert {int(r["cluster"]) for r in rows} == {0, 1, 2, 3}
    assert rows[0]["cluster_name"] == rows[4]["cluster_name"] == "picked"
    assert rows[0]["confidence"] == "" and rows[0]["name_confidence"] == ""
    out = export_cluster_folders(run, tmp_path / "export")
    assert sorted(p.name for p in (out / "picked").iterdir()) == sorted([AWKWARD[0], AWKWARD[4]])


def test_split_members_gives_the_groups_largest_first():
    emb = np.zeros((10, 2))
    emb[[1, 2, 3], 0] = 10.0
    emb[[7], 1] = 10.0
    members = np.arange(10)
    groups = split_members(emb, members, 3, seed=0)
    assert [list(g) for g in groups] == [[0, 4, 5, 6, 8, 9], [1, 2, 3], [7]]
    assert [list(g) for g in split_members(emb, members, 3, seed=0)] == [list(g) for g in groups]
    with pytest.raises(ValueError, match="two parts"):
        split_members(emb, members, 1)
    with pytest.raises(ValueError, match="3 distinct images"):
        split_members(emb, members, 4)


def test_a_large_cluster_is_split_from_a_sample_and_every_image_gets_its_part(monkeypatch):
    from semclust.core import metrics
    from semclust.core.runfolder import corrections

    monkeypatch.setattr(corrections, "SPLIT_SAMPLE", 12)
    monkeypatch.setattr(metrics, "ROWS_PER_BLOCK", 7)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(100, 4)) * 0.1
    far = rng.choice(100, 30, replace=False)
    emb[far, 0] += 5.0
    members = np.arange(5, 100)  # the cluster's images, not the whole run
    groups = split_members(emb, members, 2, seed=1)
    assert [set(g.tolist()) for g in groups] == [
        set(members) - set(far.tolist()), set(far.tolist()) & set(members)
    ]  # fmt: skip


def test_a_split_keeps_the_number_for_the_largest_part_and_makes_new_clusters(tmp_path):
    run = _with_embeddings(tmp_path)
    members = np.flatnonzero(run.assignment == 0)  # 0, 3, 6, 9: two even, two odd
    groups = run.split_parts(0, 2)
    assert sorted(np.concatenate(groups).tolist()) == members.tolist()
    made = run.corrections.split(0, groups, run.n_clusters)
    assert made == [0, 3] and run.n_clusters == 4
    assert {int(i) % 2 for i in np.flatnonzero(run.assignment == 0)} == {int(groups[0][0]) % 2}
    assert set(np.flatnonzero(run.assignment == 3)) == set(groups[1].tolist())
    assert not any(int(i) in run.corrections.moves for i in groups[0])  # the kept part: not moved
    run.save_corrections()
    rows = read_labels(export_labels(load_run(run.paths.root), tmp_path / "labels.csv"))
    assert {int(r["cluster"]) for r in rows} == {0, 1, 2, 3}


def test_a_split_into_three_numbers_the_new_parts_in_turn(tmp_path):
    run = _with_embeddings(tmp_path)
    run.corrections.new_cluster([1], run.n_clusters)  # cluster 3
    made = run.corrections.split(2, [np.array([2]), np.array([5]), np.array([8])], run.n_clusters)
    assert made == [2, 4, 5] and run.corrections.added == 3 and run.n_clusters == 6
    assert [run.assignment[i] for i in (1, 2, 5, 8)] == [3, 2, 4, 5]


def test_a_run_without_embeddings_cannot_be_split(tmp_path):
    run = make_run(tmp_path)
    assert run.embeddings is None
    with pytest.raises(ValueError, match="no embeddings"):
        run.split_parts(0, 2)


def test_undoing_through_the_saved_dict_restores_the_count():
    c = Corrections()
    before = c.to_dict()
    c.new_cluster([0], 3)
    assert Corrections.from_dict(c.to_dict()).added == 1
    assert Corrections.from_dict(before).added == 0


def _nameable(tmp_path, monkeypatch):
    """The awkward run with embeddings, made by a backbone that names clusters (Lite2's head stood
    in: even images are tabby cats, odd ones espresso); cluster 0 (images 0, 3, 6, 9) is mixed."""
    from semclust.core.naming import suggest
    from tests.test_cluster_names import identity_head

    run = _with_embeddings(tmp_path)
    named = {"encoder.backbone": "efficientnet_lite2", "encoder.weights": "pretrained"}
    write_json(run.paths.config, run.config.replace(**named, **{"pretext.epochs": 0}).to_dict())
    classes = np.where(np.arange(len(AWKWARD)) % 2 == 0, 281, 967)
    save_array(run.paths.features, np.eye(1000, dtype=np.float32)[classes] * 20)
    write_json(run.paths.names, {
        "0": {"name": "mixed: tabby cat / espresso", "confidence": 0.5},
        "1": {"name": "tabby cat", "confidence": 0.6}, "2": {"name": "espresso", "confidence": 0.6},
    })  # fmt: skip
    monkeypatch.setattr(suggest, "_from_imagenet_head", identity_head)
    return load_run(run.paths.root)


def test_a_splits_parts_are_named_beside_the_other_clusters_and_the_names_kept(
    tmp_path, monkeypatch
):
    run = _nameable(tmp_path, monkeypatch)
    made = run.corrections.split(0, run.split_parts(0, 2), run.n_clusters)
    assert made == [0, 3]
    names, why = run.suggest_names_for(made)
    assert why == ""
    # the parts are cats (0, 6) and espresso (3, 9): numbered after clusters 1 and 2, named so
    assert {c: s.name for c, s in names.items()} == {0: "tabby cat (2)", 3: "espresso (2)"}
    assert all(s.confidence == 1.0 for s in names.values())
    run.corrections.suggested.update(names)
    run.save_corrections()
    again = load_run(run.paths.root)
    assert [again.cluster_name(c) for c in range(4)] == [
        "tabby cat (2)", "tabby cat", "espresso", "espresso (2)"
    ]  # fmt: skip
    assert again.name_confidence(3) == 1.0
    again.corrections.rename(3, "my cups")  # a user's name wins over the suggestion
    assert again.cluster_name(3) == "my cups" and again.name_confidence(3) is None
    rows = read_labels(export_labels(again, tmp_path / "labels.csv"))
    assert {r["cluster_name"] for r in rows if r["cluster"] == "0"} == {"tabby cat (2)"}


def test_a_made_cluster_of_a_run_that_cannot_name_gets_the_reason(tmp_path):
    run = _with_embeddings(tmp_path)  # resnet_small from scratch: no head
    made = run.corrections.new_cluster([0, 2], run.n_clusters)
    names, why = run.suggest_names_for([made])
    assert names == {} and "no classifier head" in why
    assert run.cluster_name(made) == f"cluster {made}"


def test_corrections_suggesting_a_name_for_a_cluster_never_made_are_refused(tmp_path):
    run = make_run(tmp_path)
    write_json(run.paths.corrections, {"suggested": {"7": {"name": "cat", "confidence": 0.5}}})
    with pytest.raises(RunFolderError, match="does not match the run"):
        load_run(run.paths.root)


def test_a_made_cluster_is_shown_by_its_members_nearest_its_centre(tmp_path):
    """``RunData.examples`` (the app's strip, the report's gallery): a run's cluster by its
    prototypes, then its most confident members; a made one, which has no prototypes, by the
    members nearest its mean embedding; without embeddings, by the most confident."""
    run = _with_embeddings(tmp_path)
    run.prototypes = {0: [3, 0], 1: [1], 2: [2]}
    made = run.corrections.new_cluster([0, 1, 2, 4], run.n_clusters)
    emb = np.asarray(run.embeddings, np.float64)[[0, 1, 2, 4]]
    nearest = np.array([0, 1, 2, 4])[np.argsort(-(emb @ emb.mean(axis=0)), kind="stable")]
    assert run.examples(made, 3) == (nearest[:3].tolist(), "nearest its centre")
    # Cluster 0 lost its prototype 0 to the made cluster: its other one, then the rest of it.
    assert run.examples(0, 3) == ([3, 6, 9], "most confident")
    run.corrections.move([7], 0)  # the user placed it: after the model's own members
    assert run.examples(0, 5) == ([3, 6, 9, 7], "most confident")
    run.embeddings = None
    assert run.examples(made, 2)[1] == "most confident"
