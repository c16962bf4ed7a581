"""Reviewing the doubtful images first, and exporting just a selection (say, a lasso in the map)."""

from __future__ import annotations

import numpy as np

from semclust.core.runfolder.export import read_labels


def test_members_can_be_listed_least_confident_first(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    c = int(np.bincount(w.session.assignment).argmax())
    w.clusters.choose(c)
    most = list(w.clusters.members.items())
    w.clusters.order.setCurrentIndex(1)
    least = list(w.clusters.members.items())
    conf = finished_run.confidence
    assert np.all(np.diff(conf[least]) >= 0) and np.all(np.diff(conf[most]) <= 0)
    members = np.flatnonzero(w.session.assignment == c)
    assert least[0] == members[np.argmin(conf[members])]
    assert "least confident first" in w.clusters.members_title.text()


def test_a_selection_is_exported_on_its_own(qtbot, window_factory, finished_run, tmp_path):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert not w.export_selection_action.isEnabled()
    chosen = [42, 3, 250]
    w.session.set_selection(chosen)  # what a lasso in the map does
    assert w.export_selection_action.isEnabled() and w.selection.export_button.isEnabled()
    out = w.export_selection(tmp_path / "lasso.csv")
    rows = read_labels(out)
    assert [r["path"] for r in rows] == [finished_run.image_paths[i] for i in sorted(chosen)]
    assert [int(r["cluster"]) for r in rows] == [
        int(w.session.assignment[i]) for i in sorted(chosen)
    ]


def test_a_run_without_names_says_why_and_which_backbone_can(
    qtbot, window_factory, digits_folder, tmp_path
):
    from gui_fakes import make_run

    from semclust.core.config import RunConfig

    config = RunConfig(clusters=10).replace(
        **{"encoder.backbone": "mobilenet", "encoder.weights": "pretrained", "pretext.epochs": 0}
    )
    run = make_run(digits_folder, tmp_path / "run", config)
    w = window_factory()
    w.open_path(run.paths.root)
    note = w.clusters.naming_note
    assert note.isVisibleTo(w.clusters)
    assert "mobilenet has no classifier head or text tower" in note.text()
    assert "efficientnet_lite2" in note.text() and "clip_vit_b16" in note.text()
    assert all("%" not in w.clusters.table.item(r, 0).text() for r in range(10))


def test_suggested_names_show_their_confidence_and_a_rename_has_none(
    qtbot, window_factory, finished_run
):
    from semclust.core.runfolder.artefacts import write_json

    write_json(
        finished_run.paths.names,
        {
            "0": {"name": "zero", "confidence": 0.84},
            "1": {"name": "mixed: a / b", "confidence": 0.4},
        },
    )
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert not w.clusters.naming_note.isVisibleTo(w.clusters)

    def row(cluster):
        w.clusters.choose(cluster)
        return w.clusters.table.item(w.clusters.table.currentRow(), 0).text()

    assert row(0) == "0: zero · 84%" and row(1) == "1: mixed: a / b · 40%"
    assert row(2) == "2: cluster 2"
    w.clusters.choose(0)
    w.clusters.rename("my zeros")
    assert row(0) == "0: my zeros"  # a name you give has no confidence


def test_a_damaged_names_json_opens_the_run_and_says_so(qtbot, window_factory, finished_run):
    finished_run.paths.names.write_text('{"0": {"name": 7}}', encoding="utf-8")
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert w.session.run is not None and w.clusters.table.rowCount() == 10
    assert "names.json is damaged" in w.clusters.naming_note.text()
    assert "ignored" in w.clusters.naming_note.text()
