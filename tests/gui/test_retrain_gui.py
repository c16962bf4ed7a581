"""Edit > Retrain with my corrections: disabled until an image is moved; then it retrains in the
background, the views and the status bar follow, a reopen shows it, undoing a move sends its images
back, and restoring the model's clusters undoes the retrain."""

from __future__ import annotations

import re

import numpy as np
from PySide6.QtCore import Qt

from semclust.core.runfolder.results import load_run


def _sizes_shown(w) -> dict[int, int]:
    table = w.clusters.table
    return {
        int(table.item(r, 0).data(Qt.ItemDataRole.UserRole)): int(table.item(r, 1).text())
        for r in range(table.rowCount())
    }


def _wrongly_clustered(session, count: int) -> tuple[np.ndarray, int]:
    """``count`` images whose cluster's majority label is not theirs, and the cluster where their
    label is the majority (what a user would spot and fix)."""
    labels = np.asarray(session.run.true_labels)
    a = session.assignment
    majority = {
        c: max(set(labels[a == c]), key=list(labels[a == c]).count) for c in set(a.tolist())
    }
    for label in sorted(set(labels)):
        home = [c for c, m in majority.items() if m == label]
        wrong = np.flatnonzero((labels == label) & (np.array([majority[c] for c in a]) != label))
        if home and len(wrong) >= count:
            return wrong[:count], home[0]
    raise AssertionError("the synthetic run has no wrongly clustered images")


def test_retrain_is_enabled_by_a_move_updates_the_views_and_restores(
    qtbot, window_factory, finished_run
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert not w.retrain_action.isEnabled() and not w.restore_model_action.isEnabled()
    w.clusters.choose(0)
    w.clusters.rename("zero")  # a name is no constraint
    assert not w.retrain_action.isEnabled()

    images, target = _wrongly_clustered(w.session, 3)
    before_move = w.session.assignment.copy()
    w.session.move(images, target)  # what "Move selection to cluster…" does
    assert w.retrain_action.isEnabled()
    shown = w.session.assignment.copy()
    w.retrain_action.trigger()
    assert w.retraining and not w.retrain_action.isEnabled()
    assert w.statusBar().currentMessage() == "Retraining with 3 corrections…"
    qtbot.waitUntil(lambda: not w.retraining, timeout=30_000)

    found = re.fullmatch(
        r"Retrained with 3 corrections: (\d+) other images? changed cluster\.",
        w.statusBar().currentMessage(),
    )
    assert found, w.statusBar().currentMessage()
    now = w.session.assignment
    assert (now[images] == target).all()  # the user's cluster, exactly
    assert int((now != shown).sum()) == int(found.group(1))
    sizes = np.bincount(now, minlength=w.session.n_clusters)
    assert _sizes_shown(w) == {c: int(sizes[c]) for c in range(w.session.n_clusters)}
    assert w.session.run.cluster_name(0) == "zero"
    assert w.restore_model_action.isEnabled() and w.retrain_action.isEnabled()
    reopened = load_run(finished_run.paths.root)
    np.testing.assert_array_equal(reopened.assignment, now)

    w.undo_action.trigger()  # the move undone: its images go back to the run's cluster
    np.testing.assert_array_equal(w.session.assignment[images], before_move[images])
    assert not w.retrain_action.isEnabled() and w.restore_model_action.isEnabled()

    w.restore_model_action.trigger()
    np.testing.assert_array_equal(w.session.assignment, before_move)
    assert "model's own clusters" in w.statusBar().currentMessage()
    assert not w.restore_model_action.isEnabled()
    assert not finished_run.paths.retrained.exists()
    np.testing.assert_array_equal(load_run(finished_run.paths.root).assignment, before_move)


def test_a_failed_retrain_is_a_message(qtbot, window_factory, finished_run):
    from semclust.core.runfolder.ownership import run_folder_lock

    w = window_factory()
    w.open_path(finished_run.paths.root)
    w.session.move([0], 1)
    with run_folder_lock(finished_run.paths):  # another run writes into the folder
        w.retrain_action.trigger()
        qtbot.waitUntil(lambda: not w.retraining, timeout=30_000)
    assert "in use" in w.statusBar().currentMessage()
    assert w.retrain_action.isEnabled() and not w.restore_model_action.isEnabled()
    assert w.session.run.retrained is None
