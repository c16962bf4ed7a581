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
    stats = cluster_summary(run.assignment, run.n_clusters, run.true_labels, run.confidence)
    assert [st.size for st in stats] == [2, 3, 2, 2, 1]
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
    ],
)
def test_a_corrections_file_naming_clusters_never_made_is_refused(tmp_path, data):
    run = make_run(tmp_path)
    write_json(run.paths.corrections, data)
    with pytest.raises(RunFolderError, match="corrections.json"):
        load_run(run.paths.root)


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
