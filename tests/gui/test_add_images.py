"""File > Add images…: a folder of new images placed into the open finished run in the background,
shown on the map, counted in the status bar, listed in the export, and shown again on reopening.

The run is a real one (frozen ImageNet MobileNet, K-means, the 300 digits of the GUI tests), made once
for the module (``frozen_run`` of ``tests/conftest.py``); each test adds to a private copy of it.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QTableWidget

from semclust.core.runfolder.added import added_json
from semclust.core.runfolder.artefacts import RunPaths
from semclust.core.runfolder.export import read_labels
from semclust.core.runfolder.ownership import run_folder_lock
from semclust.gui import palette
from tests.test_assign import copy_some

BROKEN = b"\x89PNG\r\n\x1a\nnot really"


@pytest.fixture
def choose_folder(monkeypatch):
    """Patches the folder dialog to answer the folders given, in order."""
    answers = []
    monkeypatch.setattr(
        "semclust.gui.additions.QFileDialog.getExistingDirectory",
        lambda *args, **kwargs: str(answers.pop(0)),
    )
    return answers


def open_window(window_factory, run_dir, cache):
    w = window_factory()
    w.open_path(run_dir)
    w.adder.cache_dir = cache
    return w


def test_add_images_needs_a_finished_run(window_factory, finished_run):
    w = window_factory()
    assert not w.add_images_action.isEnabled()
    assert w.add_images_action in w.menuBar().actions()[0].menu().actions()
    assert not w.adder.add_images()  # nothing to add to: refused, no dialog
    w.open_path(finished_run.paths.root)
    assert w.add_images_action.isEnabled()


def test_added_images_are_shown_counted_exported_and_shown_again_on_reopening(
    qtbot, window_factory, run_copy, digits_folder, tmp_path, choose_folder
):
    run_dir, cache = run_copy
    new = tmp_path / "new"
    copied = copy_some(digits_folder, new, every=30)
    (new / "broken.png").write_bytes(BROKEN)
    w = open_window(window_factory, run_dir, cache)
    choose_folder.append(new)
    with qtbot.waitSignal(w.adder.finished, timeout=120_000):
        w.add_images_action.trigger()
        assert not w.add_images_action.isEnabled() and w.adder.progress.isVisible()
    qtbot.waitUntil(lambda: not w.adder.is_running, timeout=10_000)
    assert w.add_images_action.isEnabled() and not w.adder.progress.isVisible()

    m = len(copied)
    status = w.statusBar().currentMessage()
    assert status.startswith(f"Added {m} images of {new.resolve()}: 1 skipped."), status
    dialog = w.adder.skipped_dialog
    assert dialog is not None and dialog.isVisible()
    table = dialog.findChild(QTableWidget)
    assert table.rowCount() == 1 and table.item(0, 0).text() == str(new.resolve() / "broken.png")
    # The map: one triangle per added image, of its cluster's colour, near its original.
    added, scatter = w.adder.added, w.scatter
    assert len(scatter.added) == m and len(scatter.added.item.data) == m
    assert "+ 10 added" in scatter.info.text()
    run = w.session.run
    index = {rel: i for i, rel in enumerate(run.image_paths)}
    own = np.array([index[copied[p.name]] for p in added.paths])
    assert np.mean(added.cluster == w.session.assignment[own]) >= 0.8
    colours = [spot.brush().color().name() for spot in scatter.added.item.points()]
    assert colours == [palette.color(c, run.n_clusters).name() for c in added.cluster]
    # Hovering one shows its preview.
    scene = scatter.view.mapViewToScene(QPointF(*added.xy[0]))
    assert scatter.added_at(scene) >= 0
    scatter._on_mouse_moved((scene,))
    assert "(added)" in scatter.preview.text.text()
    # A correction moves the added images with their neighbours (the vote is taken again).
    c = int(added.cluster[0])
    other = (c + 1) % run.n_clusters
    w.session.merge(c, other)
    assert int(added.cluster[0]) == other
    # The export lists them, flagged.
    rows = read_labels(w.export_csv(tmp_path / "labels.csv"))
    assert sum(r["added"] == "1" for r in rows) == m

    again = open_window(window_factory, run_dir, cache)
    assert len(again.scatter.added) == m
    assert sorted(again.adder.added.paths) == sorted(added.paths)


def test_an_empty_folder_is_a_message_and_changes_nothing(
    qtbot, window_factory, run_copy, tmp_path, choose_folder
):
    run_dir, cache = run_copy
    (tmp_path / "empty").mkdir()
    w = open_window(window_factory, run_dir, cache)
    before = sorted(p.name for p in run_dir.iterdir())
    choose_folder.append(tmp_path / "empty")
    with qtbot.waitSignal(w.adder.failed, timeout=60_000):
        w.add_images_action.trigger()
    qtbot.waitUntil(lambda: not w.adder.is_running, timeout=10_000)
    assert w.last_message.windowTitle() == "Images not added"
    assert "image" in w.last_message.text()
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert len(w.scatter.added) == 0 and w.add_images_action.isEnabled()


def test_a_run_folder_in_use_is_a_message(qtbot, window_factory, run_copy, tmp_path):
    run_dir, cache = run_copy
    new = tmp_path / "new"
    new.mkdir()
    (new / "broken.png").write_bytes(BROKEN)
    w = open_window(window_factory, run_dir, cache)
    with run_folder_lock(RunPaths(run_dir)), qtbot.waitSignal(w.adder.failed, timeout=60_000):
        assert w.adder.add_images(new)
    qtbot.waitUntil(lambda: not w.adder.is_running, timeout=10_000)
    assert "in use" in w.last_message.text()
    assert not added_json(RunPaths(run_dir)).exists()


def test_cancelling_writes_nothing(qtbot, window_factory, run_copy, digits_folder, tmp_path):
    run_dir, cache = run_copy
    new = tmp_path / "new"
    copy_some(digits_folder, new, every=60)
    w = open_window(window_factory, run_dir, cache)
    with qtbot.waitSignal(w.adder.cancelled, timeout=60_000):
        assert w.adder.add_images(new)
        w.adder.progress.cancel_button.click()
    qtbot.waitUntil(lambda: not w.adder.is_running, timeout=10_000)
    assert "nothing was written" in w.statusBar().currentMessage()
    assert not added_json(RunPaths(run_dir)).exists()
    assert len(w.scatter.added) == 0


def test_closing_while_adding_stops_first_then_closes(
    qtbot, window_factory, run_copy, digits_folder, tmp_path
):
    run_dir, cache = run_copy
    new = tmp_path / "new"
    copy_some(digits_folder, new, every=60)
    w = open_window(window_factory, run_dir, cache)
    assert w.adder.add_images(new)
    w.close()  # refused for now: the thread is asked to stop
    assert w.isVisible() and w.adder.is_running
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=60_000)
    assert not w.adder.is_running and not added_json(RunPaths(run_dir)).exists()


def test_a_damaged_additions_file_is_a_message_and_the_run_still_opens(
    window_factory, finished_run
):
    added_json(finished_run.paths).write_text("{not json", encoding="utf-8")
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert w.session.run is not None and len(w.scatter.added) == 0
    assert w.last_message.windowTitle() == "Added images not shown"
    assert "added.json" in w.last_message.text()
