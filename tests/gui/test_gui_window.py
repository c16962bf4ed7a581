"""The window: start a run, errors shown, explore a finished run, corrections and exports."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
from gui_fakes import fake_pipeline
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QStyle

from semclust.core.images import load_image
from semclust.core.runfolder.export import read_labels
from semclust.core.runfolder.results import load_run


def test_run_from_the_window_then_explore(qtbot, window_factory, digits_folder, tmp_path):
    w = window_factory(fake_pipeline)
    w.open_image_folder(digits_folder, run_dir=tmp_path / "run")
    qtbot.waitUntil(lambda: "300" in w.params.found_label.text(), timeout=10_000)
    assert "10 classes" in w.params.labels_label.text()
    w.params.clusters.setValue(10)
    with qtbot.waitSignal(w.controller.finished, timeout=30_000):
        w.params.run_button.click()
    assert w.session.run is not None and w.session.n_images == 300
    assert w.tabs.currentWidget() is w.scatter
    assert all(r.state in ("done", "off") for r in w.progress.rows.values())
    assert w.params.skipped_label.text().startswith("0")
    qtbot.waitUntil(lambda: not w.controller.is_running)
    assert w.params.run_button.isEnabled() and not w.params.cancel_button.isEnabled()


def test_run_folder_is_never_the_image_folder(qtbot, window_factory, digits_folder):
    w = window_factory(fake_pipeline)
    w.open_image_folder(digits_folder)
    assert w.params.run_dir().parent == digits_folder.parent  # a sibling by default
    w.params.set_run_dir(digits_folder / "run")
    w.start_run()
    assert not w.controller.is_running
    assert "outside the image folder" in w.last_message.text()


def test_error_in_worker_is_shown_and_window_lives(qtbot, window_factory, digits_folder, tmp_path):
    failing = functools.partial(
        fake_pipeline, fail=("clustering", FloatingPointError("loss is NaN"))
    )
    w = window_factory(failing)
    w.open_image_folder(digits_folder, run_dir=tmp_path / "run")
    with qtbot.waitSignal(w.controller.failed, timeout=30_000):
        w.start_run()
    qtbot.waitUntil(lambda: not w.controller.is_running)
    assert w.isVisible()
    assert w.progress.banner.isVisible() and "diverged" in w.progress.banner.text()
    assert w.last_message is not None and "NaN" in w.last_message.text()
    assert w.progress.rows["clustering"].time.text() == "failed"
    assert w.params.run_button.isEnabled()


def test_files_the_survey_leaves_out_are_shown_before_a_run(
    qtbot, window_factory, digits_folder, tmp_path, monkeypatch
):
    """A phone's HEIC photos with no decoder here: the folder's panel says how many files are left
    out, and why, as soon as the folder is opened, not only after a run."""
    import shutil

    import semclust.core.images as images

    monkeypatch.setattr(images, "readable_extensions", lambda: images.IMAGE_EXTENSIONS)
    folder = tmp_path / "phone"
    shutil.copytree(digits_folder, folder)
    (folder / "0" / "IMG_0001.HEIC").write_bytes(b"a HEIC photo")
    w = window_factory()
    w.open_image_folder(folder, run_dir=tmp_path / "run")
    qtbot.waitUntil(lambda: w.params.skipped_label.text() == "1 file", timeout=10_000)
    assert w.params.skipped_button.isEnabled()
    ((path, reason),) = w.workspace.skipped
    assert path == "0/IMG_0001.HEIC" and "pip install pillow-heif" in reason


def test_the_skipped_files_say_which_setting_lets_in_those_too_large(qtbot, window_factory):
    """The list of skipped files names the form's control that lets in files left out for their
    size, and says nothing of it when none was."""
    from PySide6.QtWidgets import QLabel

    from semclust.gui.dialogs import SkippedDialog

    w = window_factory()
    big = ("scan.png", "too large (300,000,000 pixels, limit 89,478,485)")
    dialog = SkippedDialog([("a.png", "truncated file"), big], w)
    qtbot.addWidget(dialog)
    assert "1 of them are over the pixel limit" in dialog.hint.text()
    (named,) = re.findall("\u201c(.+)\u201d", dialog.hint.text())
    assert f"{named}:" in [label.text() for label in w.params.findChildren(QLabel)]
    assert not hasattr(SkippedDialog([("a.png", "truncated file")], w), "hint")


def test_the_cache_dialog_lists_the_stores_and_removes_the_stale_and_selected_ones(
    qtbot, window_factory, tmp_path, monkeypatch
):
    """File > Cache of decoded images: one row per store with its folder; "Remove stale" takes the
    store of a folder that is gone, "Remove selected" the chosen one; the images stay."""
    from PIL import Image

    from semclust.core.config import IngestConfig
    from semclust.core.images import ingest

    monkeypatch.setenv("SEMCLUST_CACHE", str(tmp_path / "cache"))
    for name in ("kept", "chosen", "gone"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 40), (60 * i, 0, 0)).save(tmp_path / name / f"{i}.png")
        ingest(tmp_path / name, IngestConfig(image_size=32))
    (tmp_path / "gone").rename(tmp_path / "renamed")
    w = window_factory()
    w.cache_action.trigger()
    dialog = w.cache_dialog
    qtbot.addWidget(dialog)

    def folders(order=sorted):
        return order(dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount()))

    assert folders() == sorted(str(tmp_path / n) for n in ("kept", "chosen", "gone"))
    assert dialog.remove_stale.text().startswith("Remove stale (1, ")
    assert not dialog.remove_selected.isEnabled()
    dialog.remove_stale.click()
    assert folders() == sorted(str(tmp_path / n) for n in ("kept", "chosen"))
    assert dialog.summary.text().startswith("Removed 1, ") and not dialog.remove_stale.isEnabled()
    dialog.table.selectRow(folders(list).index(str(tmp_path / "chosen")))
    dialog.remove_selected.click()
    assert folders() == [str(tmp_path / "kept")]
    assert (tmp_path / "chosen" / "0.png").is_file() and (tmp_path / "renamed" / "0.png").is_file()


def test_empty_folder_gives_a_readable_message(qtbot, window_factory, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    w = window_factory(fake_pipeline)
    w.open_image_folder(empty, run_dir=tmp_path / "run")
    with qtbot.waitSignal(w.controller.failed, timeout=30_000) as blocker:
        w.start_run()
    assert "No images" in blocker.args[0]
    assert "No images" in w.progress.banner.text()


def test_open_finished_run_shows_every_view(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert w.session.run is not None
    assert w.scatter.n_points() == 300
    assert w.scatter.color_by.count() == 2  # cluster and true label
    assert w.clusters.table.rowCount() == 10
    assert w.accuracy.stack.currentIndex() == 1
    assert float(w.accuracy.values["acc"].text()) > 0.3
    assert str(finished_run.paths.root) in w.recent()
    w.scatter.color_by.setCurrentIndex(1)  # by true label: colours change, positions stay
    assert len(w.scatter.legend.items) == 10
    legend = w.scatter.legend_action  # View > Map legend: the legend can cover points
    assert legend in w.menuBar().actions()[3].menu().actions() and legend.isChecked()
    legend.trigger()
    assert not w.scatter.legend.isVisible()
    legend.trigger()
    assert w.scatter.legend.isVisible()


def test_a_finished_run_says_which_method_made_its_clusters(window_factory, finished_run):
    from semclust.core.runfolder.artefacts import write_json

    metrics = json.loads(finished_run.paths.metrics.read_text())
    write_json(finished_run.paths.metrics, metrics | {"method_kept": "ward_umap"})
    w = window_factory()
    w.open_path(finished_run.paths.root)
    said = w.progress.message.text()
    assert "in 10 clusters. They come from Ward on the same UMAP map" in said
    assert "scores nearly as well" not in said
    close = {"method": "umap_gmm", "moved": 0.3}  # a close call between two clusterings is said
    write_json(
        finished_run.paths.metrics,
        metrics | {"method_kept": "ward_umap", "close_alternative": close},
    )
    w.open_path(finished_run.paths.root)
    said = w.progress.message.text()
    assert "UMAP + Gaussian mixture scores nearly as well as Ward on the same UMAP map" in said
    assert "30% of the images in other clusters" in said and "press Show its clusters" in said
    write_json(finished_run.paths.metrics, metrics | {"method_kept": ["ward"]})  # not a name
    w.open_path(finished_run.paths.root)
    assert w.session.run is not None and "They come from" not in w.progress.message.text()
    write_json(finished_run.paths.metrics, metrics)  # a run from before method_kept was kept
    w.open_path(finished_run.paths.root)
    assert "They come from" not in w.progress.message.text()
    assert "in 10 clusters." in w.progress.message.text()


def test_selection_updates_the_neighbour_grid(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s = w.session
    # A real click on a point of the map.
    i = 17
    view = w.scatter.plot
    scene_pos = w.scatter.view.mapViewToScene(QPointF(*finished_run.umap[i]))
    widget_pos = view.mapFromScene(scene_pos)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert s.current >= 0
    clicked = s.current
    assert np.allclose(finished_run.umap[clicked], finished_run.umap[i], atol=0.05)
    expected = [j for j in finished_run.neighbours[clicked] if j != clicked]
    assert list(w.neighbours.grid.items()) == expected
    assert finished_run.image_paths[clicked] in w.neighbours.details.text()
    # Clicking a neighbour makes it the current image.
    grid = w.neighbours.grid
    rect = grid.visualRect(grid.model().index(2, 0))
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert s.current == expected[2]
    assert list(grid.items()) == [
        j for j in finished_run.neighbours[expected[2]] if j != expected[2]
    ]


def test_box_selection_fills_the_selection_grid(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    xy = finished_run.umap
    lo, hi = np.percentile(xy, 20, axis=0), np.percentile(xy, 60, axis=0)
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    w.scatter.view.sigPolygonSelected.emit(box)
    inside = np.flatnonzero(np.all((xy >= lo) & (xy <= hi), axis=1))
    assert np.array_equal(w.session.selection, inside)
    assert list(w.selection.grid.items()) == list(inside)
    qtbot.waitUntil(lambda: not w.selection.visibleRegion().isEmpty())  # its dock's tab is shown
    assert w.neighbours.visibleRegion().isEmpty()


def test_rename_merge_move_reach_the_csv_and_persist(qtbot, window_factory, finished_run, tmp_path):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s, panel = w.session, w.clusters
    panel.choose(3)
    panel.rename("=threes")  # a formula-like name: exported inert, read back intact
    panel.choose(5)
    panel.merge(target=3)
    moved = np.flatnonzero(s.assignment == 0)[:4]
    s.set_selection(moved)
    panel.choose(7)
    panel.move_selection()
    rows = read_labels(w.export_csv(tmp_path / "labels.csv"))
    by_path = {r["path"]: r for r in rows}
    before = finished_run.predicted
    for i in np.flatnonzero(before == 5):
        assert by_path[finished_run.image_paths[i]]["cluster"] == "3"
        assert by_path[finished_run.image_paths[i]]["cluster_name"] == "=threes"
    for i in moved:
        assert by_path[finished_run.image_paths[i]]["cluster"] == "7"
        assert by_path[finished_run.image_paths[i]]["confidence"] == ""
    sizes = {int(panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole)): int(panel.table.item(r, 1).text())
             for r in range(panel.table.rowCount())}  # fmt: skip
    assert sizes[5] == 0 and sum(sizes.values()) == 300
    # Saved with the run: a fresh load sees the corrections.
    again = load_run(finished_run.paths.root)
    assert again.cluster_name(3) == "=threes"
    assert np.array_equal(again.assignment, s.assignment)
    # Undo goes back one step, redo forward again (saved each time), a new edit forgets the redo.
    assert not s.can_redo() and not w.redo_action.isEnabled()
    keys = {k.toString() for k in w.redo_action.shortcuts()}
    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= keys  # every binding of the platform's Redo
    after = s.assignment.copy()
    s.undo()
    assert (s.assignment[moved] == 0).all() and w.redo_action.isEnabled()
    w.redo_action.trigger()
    assert np.array_equal(s.assignment, after) and not s.can_redo()
    assert np.array_equal(load_run(finished_run.paths.root).assignment, after)
    s.undo()
    s.undo()  # the merge too
    assert s.can_redo() and (s.assignment[before == 5] == 5).all()
    s.rename(3, "new")
    assert not s.can_redo() and not w.redo_action.isEnabled()
    s.redo()  # nothing to redo: nothing changes
    assert (s.assignment[before == 5] == 5).all() and s.cluster_name(3) == "new"


def test_cluster_members_are_paged_most_confident_first(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    panel = w.clusters
    big = int(np.bincount(w.session.assignment).argmax())
    panel.choose(big)
    items = panel.members.items()
    conf = finished_run.confidence[items]
    assert np.all(np.diff(conf) <= 1e-7)
    assert len(panel.prototypes.items()) > 0
    assert (w.session.assignment[items] == big).all()


def test_images_moved_into_a_cluster_come_last_in_either_order(qtbot, window_factory, finished_run):
    """The user placed them: the model's confidence of another cluster neither puts them first nor
    among the doubtful ones to review."""
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s = w.session
    big = int(np.bincount(s.assignment).argmax())
    others = np.flatnonzero(s.assignment != big)
    moved = others[np.argsort(-finished_run.confidence[others])][:3]  # the most confident elsewhere
    s.move(moved, big)
    for review in (False, True):
        order = s.members(big, least_confident_first=review)
        assert sorted(order[-3:].tolist()) == sorted(moved.tolist())
        own = finished_run.confidence[order[:-3]]
        assert np.all(np.diff(own) >= -1e-7 if review else np.diff(own) <= 1e-7)
    s.set_current(int(moved[0]))  # the image's details say who placed it
    assert "confidence: placed by you" in w.neighbours.details.text()
    s.set_current(int(order[0]))
    assert f"confidence: {finished_run.confidence[order[0]]:.2f}" in w.neighbours.details.text()


def test_a_clusters_thumbnails_say_what_its_title_does_not(window_factory, finished_run):
    """In a cluster's grids every caption would repeat the cluster's name (the title says it, and a
    long one left no room for the true label): they show the true label, or the file's name where
    there are no labels. The grids of images from many clusters still name each one's cluster."""
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s = w.session
    w.clusters.choose(0)
    for grid in (w.clusters.members, w.clusters.prototypes):
        model = grid.model()
        for row in range(min(model.rowCount(), 5)):
            i = int(grid.items()[row])
            assert model.data(model.index(row, 0)) == s.true_label(i)
            tip = model.data(model.index(row, 0), Qt.ItemDataRole.ToolTipRole)
            assert s.cluster_name(0) in tip and s.file_name(i) in tip
    # Elsewhere a long name takes one line, elided, and the true label the next.
    for c in range(s.n_clusters):
        s.rename(c, f"mixed: hen-of-the-woods / Granny Smith apple {c}")
    s.set_current(int(w.clusters.members.items()[0]))
    grid = w.neighbours.grid
    i = int(grid.items()[0])
    name, label = grid.model().data(grid.model().index(0, 0)).split("\n")
    assert name.startswith("mixed: hen") and name.endswith("…")
    assert grid.fontMetrics().horizontalAdvance(name) < grid.gridSize().width()
    assert label == f"({s.true_label(i)})"
    s.run.true_labels = None  # a folder without labels: the file's name
    w.clusters.choose(1)
    model = w.clusters.members.model()
    i = int(w.clusters.members.items()[0])
    assert model.data(model.index(0, 0)) == s.file_name(i).split("/")[-1]


def test_thumbnails_fit_their_views(qtbot, window_factory, finished_run):
    w = window_factory()
    w.resize(1500, 950)
    w.open_path(finished_run.paths.root)
    w.clusters.choose(0)
    qtbot.wait(50)
    # The prototype strip has room for a whole two-line caption above its scroll bar.
    strip = w.clusters.prototypes
    bar = strip.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
    assert strip.height() >= strip.gridSize().height() + bar + 2 * strip.frameWidth()
    # The side panel shows three columns of neighbours.
    grid = w.neighbours.grid
    assert grid.viewport().width() >= 3 * grid.gridSize().width()


def test_export_folders_copies_and_never_touches_originals(
    qtbot, window_factory, finished_run, tmp_path
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    before = sorted(p.name for p in finished_run.image_root.rglob("*.png"))
    out = tmp_path / "export"
    w.export_folders(out)
    qtbot.waitUntil(lambda: "Copied" in w.statusBar().currentMessage(), timeout=20_000)
    assert len(list(out.rglob("*.png"))) == 300
    assert sorted(p.name for p in finished_run.image_root.rglob("*.png")) == before


def test_thumbnails_load_off_the_gui_thread(qtbot, window_factory, finished_run, tmp_path):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    loader = w.loader
    assert loader.cached(5) is None
    with qtbot.waitSignal(loader.loaded, timeout=10_000, check_params_cb=lambda i: i == 5):
        assert loader.pixmap(5) is loader.placeholder
    assert loader.cached(5).width() == loader.size
    # A broken file gets a visible 'broken' tile and a reason, never an exception.
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    loader.set_source(lambda i, size: load_image(broken, size))
    with qtbot.waitSignal(loader.loaded, timeout=10_000):
        loader.pixmap(0)
    assert loader.pixmap(0) is loader.broken and loader.error(0)


def test_close_during_a_run_stops_it_without_blocking(
    qtbot, window_factory, digits_folder, tmp_path
):
    slow = functools.partial(fake_pipeline, slow_stage="pretext", delay=0.02)
    w = window_factory(slow)
    w.open_image_folder(digits_folder, run_dir=tmp_path / "run")
    w.start_run()
    assert w.controller.is_running
    w.close()
    assert w.isVisible()  # not yet: waits for the worker to stop
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    assert not w.controller.is_running


def test_pretrained_representation_picks_a_backbone_that_has_weights(qtbot, window_factory):
    from semclust.core.choices import FROZEN

    params = window_factory().params
    assert params.backbone.currentText() == "resnet_small"
    params.representation.setCurrentIndex(params.representation.findData(FROZEN))
    assert params.backbone.currentText() == "mobilenet"
    cfg = params.config()
    cfg.validate()  # resnet_small with weights would be refused
    assert (cfg.encoder.weights, cfg.pretext.epochs) == ("pretrained", 0)


def test_a_first_use_download_shows_its_megabytes(qtbot, window_factory):
    from semclust.core.progress import Progress

    panel = window_factory().progress
    panel.start_run()
    panel.on_progress(Progress("pretext", "started"))
    message = (
        "downloading the weights of dinov2_small (first use, then cached): 45.0 of about 90 MB"
    )
    panel.on_progress(Progress("pretext", "progress", 45, 90, message=message))
    assert panel.rows["pretext"].bar.value() == 500
    assert panel.message.text().endswith(message)
    panel.on_progress(Progress("pretext", "progress", message="features from layer conv_pw_10"))
    assert panel.rows["pretext"].bar.value() == 500  # a note, no count: the bar stays
    assert panel.message.text().endswith("conv_pw_10")


def test_a_csv_export_into_the_image_folder_is_refused_with_a_message(
    qtbot, window_factory, finished_run
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    before = sorted(p.name for p in finished_run.image_root.rglob("*"))
    assert w.export_csv(finished_run.image_root / "labels.csv") is None
    assert "Export failed" in w.statusBar().currentMessage() or w.last_message is not None
    assert sorted(p.name for p in finished_run.image_root.rglob("*")) == before


def test_an_opened_image_folder_starts_the_pipelines_imports(
    qtbot, window_factory, digits_folder, finished_run, tmp_path, monkeypatch
):
    """Opening images to cluster begins importing TensorFlow in the background (a run soon after
    does not wait for it); exploring a finished run, or a window on another pipeline, does not."""
    from semclust.gui import _core

    calls = []
    monkeypatch.setattr(_core, "prepare_pipeline", lambda: calls.append(1))
    explore = window_factory()  # the real pipeline
    explore.open_path(finished_run.paths.root)
    fake = window_factory(fake_pipeline)
    fake.open_image_folder(digits_folder, run_dir=tmp_path / "fake")
    qtbot.waitUntil(lambda: "300" in fake.params.found_label.text(), timeout=10_000)
    assert calls == []
    real = window_factory()
    real.open_image_folder(digits_folder, run_dir=tmp_path / "real")
    qtbot.waitUntil(lambda: calls == [1], timeout=10_000)


def test_prepare_pipeline_imports_core_run_once_on_its_own_thread():
    import subprocess
    import sys

    code = """
import sys, threading
from semclust.gui import _core
assert "semclust.core.run" not in sys.modules
thread = _core.prepare_pipeline()
assert thread is not threading.current_thread() and _core.prepare_pipeline() is thread
thread.join()
assert "semclust.core.run" in sys.modules and "tensorflow" in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
