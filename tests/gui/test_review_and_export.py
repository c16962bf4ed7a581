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
