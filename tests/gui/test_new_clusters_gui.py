"""A new cluster from a selection (Selection panel, Edit menu) and a cluster split by K-means again:
the map, the table, the accuracy and the exports count the new clusters; undo takes them back."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog

from semclust.core.runfolder.export import read_labels
from semclust.core.runfolder.results import load_run


def _clusters_shown(w) -> set[int]:
    table = w.clusters.table
    return {int(table.item(r, 0).data(Qt.ItemDataRole.UserRole)) for r in range(table.rowCount())}


def test_a_selection_becomes_a_new_cluster_everywhere(
    qtbot, window_factory, finished_run, tmp_path
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert not w.new_cluster_action.isEnabled() and not w.selection.new_button.isEnabled()
    chosen = [5, 42, 250]
    w.session.set_selection(chosen)  # what a lasso in the map does
    assert w.new_cluster_action.isEnabled() and w.selection.new_button.isEnabled()
    qtbot.mouseClick(w.selection.new_button, Qt.MouseButton.LeftButton)

    assert w.session.n_clusters == 11
    assert list(np.flatnonzero(w.session.assignment == 10)) == chosen
    assert _clusters_shown(w) == set(range(11)) and w.clusters.chosen() == 10
    codes, names = w.scatter._codes()  # the map colours 11 clusters, the new one in the legend
    assert len(names) == 11 and names[10] == "cluster 10"
    assert any("cluster 10 (3)" in label.text for _, label in w.scatter.legend.items)
    assert len(w.session.evaluation()["confusion"]) == 11
    assert json.loads(finished_run.paths.corrections.read_text())["added"] == 1

    w.clusters.rename("picked by hand")
    rows = read_labels(w.export_csv(tmp_path / "labels.csv"))
    assert [i for i, r in enumerate(rows) if r["cluster"] == "10"] == chosen
    assert {rows[i]["cluster_name"] for i in chosen} == {"picked by hand"}
    out = tmp_path / "folders"
    w.export_folders(out)
    qtbot.waitUntil(lambda: "Copied" in w.statusBar().currentMessage(), timeout=20_000)
    assert len(list((out / "picked by hand").iterdir())) == 3

    reopened = load_run(finished_run.paths.root)  # saved with the run
    assert reopened.n_clusters == 11 and reopened.cluster_name(10) == "picked by hand"


def test_undo_takes_a_new_cluster_back(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    before = w.session.assignment.copy()
    w.session.set_selection([1, 2])
    assert w.new_cluster_from_selection() == 10
    w.session.set_selection([3])
    w.new_cluster_action.trigger()
    assert w.session.n_clusters == 12 and w.session.assignment[3] == 11
    w.undo_action.trigger()
    assert w.session.n_clusters == 11 and w.clusters.table.rowCount() == 11
    w.undo_action.trigger()
    assert w.session.n_clusters == 10 and _clusters_shown(w) == set(range(10))
    assert np.array_equal(w.session.assignment, before)
    assert len(w.scatter._codes()[1]) == 10
    assert load_run(finished_run.paths.root).n_clusters == 10


def test_a_cluster_splits_into_the_parts_asked_and_undo_restores_it(
    qtbot, window_factory, finished_run, monkeypatch
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    before = w.session.assignment.copy()
    c = int(np.bincount(before).argmax())
    members = set(np.flatnonzero(before == c).tolist())
    w.clusters.choose(c)
    assert w.clusters.split_button.isEnabled()
    asked = {}

    def get_int(parent, title, label, value, low, high):
        asked.update(value=value, low=low)
        return 3, True

    monkeypatch.setattr(QInputDialog, "getInt", get_int)
    made = w.split_cluster()
    assert asked == {"value": 2, "low": 2}  # two parts unless the user says otherwise
    assert made == [c, 10, 11] and w.session.n_clusters == 12
    assert _clusters_shown(w) == set(range(12)) and len(w.scatter._codes()[1]) == 12
    parts = [set(np.flatnonzero(w.session.assignment == p).tolist()) for p in made]
    assert all(parts) and set().union(*parts) == members
    assert len(parts[0]) >= max(len(parts[1]), len(parts[2]))  # the largest keeps the number
    others = np.flatnonzero(before != c)
    assert np.array_equal(w.session.assignment[others], before[others])

    w.undo_action.trigger()  # one step
    assert np.array_equal(w.session.assignment, before) and w.session.n_clusters == 10
    assert not w.session.can_undo() and w.clusters.table.rowCount() == 10
    assert load_run(finished_run.paths.root).corrections.added == 0


def test_a_split_is_the_same_twice_and_refused_without_embeddings(
    qtbot, window_factory, finished_run, monkeypatch
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    c = int(np.bincount(w.session.assignment).argmax())
    w.clusters.choose(c)
    w.clusters.split_cluster(2)
    first = w.session.assignment.copy()
    w.session.undo()
    w.clusters.split_cluster(2)
    assert np.array_equal(w.session.assignment, first)  # the run's seed: the same parts

    w.session.undo()
    w.session.run.embeddings = None
    shown = []
    monkeypatch.setattr(
        "semclust.gui.panels.clusters.show_message",
        lambda parent, title, text, error=False: shown.append(text),
    )
    assert w.clusters.split_cluster(2) == [] and w.session.n_clusters == 10
    assert "no embeddings" in shown[0] and not w.session.can_undo()


def test_the_table_sorts_cluster_numbers_as_numbers(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    w.session.set_selection([1, 2])
    w.new_cluster_from_selection()
    table = w.clusters.table
    rows = [int(table.item(r, 0).data(Qt.ItemDataRole.UserRole)) for r in range(table.rowCount())]
    assert rows == list(range(11))  # 10 after 9, not after 0
    table.sortByColumn(3, Qt.SortOrder.AscendingOrder)  # purity: 50% before 100%
    purity = [table.item(r, 3).data(Qt.ItemDataRole.UserRole) for r in range(table.rowCount())]
    assert purity == sorted(purity)


def _naming_run(w, finished_run, monkeypatch):
    """The window's run as if made by a backbone that names clusters, whose head (stood in) names
    every cluster after the file of its first voter: the members nearest its mean embedding."""
    from semclust.core.naming import suggest
    from semclust.core.naming.names import SuggestedName
    from semclust.core.runfolder.artefacts import save_array

    def head(config, features, assignment, prototypes, cache_dir=None):
        return {c: SuggestedName(f"like {voters[0]}", 0.75) for c, voters in prototypes.items()}

    monkeypatch.setattr(suggest, "_from_imagenet_head", head)
    save_array(finished_run.paths.features, np.load(finished_run.paths.embeddings))
    w.open_path(finished_run.paths.root)
    run = w.session.run
    run.config = run.config.replace(
        **{"encoder.backbone": "efficientnet_lite2", "encoder.weights": "pretrained",
           "pretext.epochs": 0}
    )  # fmt: skip
    return run


def test_a_splits_parts_and_a_made_cluster_get_names_and_undo_takes_them_back(
    qtbot, window_factory, finished_run, monkeypatch
):
    w = window_factory()
    run = _naming_run(w, finished_run, monkeypatch)
    c = int(np.bincount(w.session.assignment).argmax())
    old = w.session.cluster_name(c)
    with qtbot.waitSignal(w.session.namingDone, timeout=20_000):
        made = w.clusters.split_cluster(2, c)
    assert made == [c, 10]
    for part in made:  # named after a member of the part, kept with the corrections
        name = w.session.cluster_name(part)
        assert name.startswith("like ") and w.session.name_confidence(part) == 0.75
        assert int(name[5:]) in np.flatnonzero(w.session.assignment == part)
    assert w.session.cluster_name(c) != old
    assert load_run(finished_run.paths.root).corrections.suggested[10].name.startswith("like ")
    table = w.clusters.table
    shown = " ".join(table.item(r, 0).text() for r in range(table.rowCount()))
    assert w.session.cluster_name(10) in shown  # the table follows

    w.session.undo()  # the split and its names go together
    assert w.session.cluster_name(c) == old and not run.corrections.suggested
    w.session.redo()  # and come back together
    assert w.session.n_clusters == 11 and w.session.cluster_name(10).startswith("like ")
    w.session.undo()
    assert w.session.n_clusters == 10 and not run.corrections.suggested

    w.session.set_selection([1, 2])
    with qtbot.waitSignal(w.session.namingDone, timeout=20_000):
        made = w.new_cluster_from_selection()
        w.session.rename(c, "renamed before the names came")  # another edit first: dropped
    assert made == 10 and w.session.cluster_name(10) == "cluster 10"


def test_a_merges_target_is_named_again_from_its_members(
    qtbot, window_factory, finished_run, monkeypatch
):
    """After a merge the target's name describes what it holds now (the backbone votes again);
    an emptied cluster's old name is free for it; a name the user gave still wins; undo and redo
    take the name with the merge."""
    w = window_factory()
    run = _naming_run(w, finished_run, monkeypatch)
    s = w.session
    sizes = np.bincount(s.assignment)
    target, source = (int(c) for c in np.argsort(-sizes)[:2])
    old = s.cluster_name(target)
    with qtbot.waitSignal(s.namingDone, timeout=20_000):
        s.merge(source, target)
    name = s.cluster_name(target)
    assert name != old and name.startswith("like ") and s.name_confidence(target) == 0.75
    assert int(name[5:]) in np.flatnonzero(s.assignment == target)
    s.undo()
    assert s.cluster_name(target) == old and target not in run.corrections.suggested
    s.redo()
    assert s.cluster_name(target) == name
    s.rename(target, "mine")
    assert s.cluster_name(target) == "mine"


def test_a_run_that_cannot_name_leaves_new_clusters_numbered(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)  # resnet_small from scratch: nothing is asked
    w.session.set_selection([1, 2])
    assert w.new_cluster_from_selection() == 10 and not w.session.naming
    assert w.session.cluster_name(10) == "cluster 10"


def test_a_made_cluster_shows_the_members_nearest_its_centre(qtbot, window_factory, finished_run):
    """A cluster the model did not make has no prototypes of its own: the strip shows the members
    nearest its mean embedding (those that name it), and says so; the run's clusters keep theirs."""
    w = window_factory()
    w.open_path(finished_run.paths.root)
    run = w.session.run
    chosen = [1, 2, 3, 5, 8, 13]
    w.session.set_selection(chosen)
    made = w.new_cluster_from_selection()
    emb = np.asarray(run.embeddings, np.float64)[chosen]
    nearest = np.asarray(chosen)[np.argsort(-(emb @ emb.mean(axis=0)), kind="stable")]
    protos, how = w.session.prototypes(made, n=4)
    assert how == "nearest its centre" and protos.tolist() == nearest[:4].tolist()
    assert nearest.tolist() != sorted(chosen)  # (so the order below is not the images' own)
    for review in (False, True):  # every image was placed by the user: the most typical first
        assert w.session.members(made, least_confident_first=review).tolist() == nearest.tolist()
    w.clusters.choose(made)
    assert "(nearest its centre)" in w.clusters.proto_title.text()
    shown = list(w.clusters.prototypes.items())
    assert shown == nearest[: len(shown)].tolist() and len(shown) > 1
    other = int(np.bincount(w.session.assignment).argmax())
    w.clusters.choose(other)
    assert "(most confident)" in w.clusters.proto_title.text()


def test_double_clicking_a_clusters_row_renames_it(
    qtbot, window_factory, finished_run, monkeypatch
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    asked = []

    def get_text(parent, title, label, text=""):
        asked.append(text)
        return "my cats", True

    monkeypatch.setattr(QInputDialog, "getText", get_text)
    table = w.clusters.table
    row = next(
        r for r in range(table.rowCount()) if table.item(r, 0).data(Qt.ItemDataRole.UserRole) == 4
    )
    table.selectRow(row)
    table.itemDoubleClicked.emit(table.item(row, 2))
    assert asked == ["cluster 4"] and w.session.cluster_name(4) == "my cats"
