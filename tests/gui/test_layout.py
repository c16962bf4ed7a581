"""The window on a laptop: it fits 1280x720 with every panel shown, its panels are docks the View menu
restores, its layout is kept between sessions, and what each view shows as a run opens."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from semclust.core.config import RunConfig, SelfLabelConfig
from semclust.core.progress import Progress

LAPTOP = (1280, 720)


def _open(window_factory, run, size=(1366, 768)):
    w = window_factory()
    w.resize(*size)
    w.open_path(run.paths.root)
    return w


def test_the_window_fits_a_small_laptop_with_every_view_shown(qtbot, window_factory, finished_run):
    w = _open(window_factory, finished_run)
    w.clusters.choose(0)
    w.session.set_current(0)
    w.session.set_selection(np.arange(40))
    for i in range(w.tabs.count()):
        w.tabs.setCurrentIndex(i)
        qtbot.wait(10)
        hint = w.minimumSizeHint()
        assert hint.width() <= LAPTOP[0] and hint.height() <= LAPTOP[1], (w.TABS[i], hint)
    assert all(not dock.isHidden() for dock in w.docks)
    w.resize(*LAPTOP)
    qtbot.waitUntil(lambda: w.width() == LAPTOP[0])


def test_the_accuracy_plots_and_the_clusters_table_fit_their_width(
    qtbot, window_factory, finished_run
):
    w = _open(window_factory, finished_run, LAPTOP)
    w.tabs.setCurrentWidget(w.accuracy)
    qtbot.wait(50)
    for plot in (w.accuracy.purity_plot, w.accuracy.confusion_plot):
        # A pyqtgraph title used to set the scene's width: the right part was cut off.
        assert plot.plotItem.geometry().width() <= plot.width() + 1
    # The true labels under the confusion matrix fit their columns: none hides another (long
    # names, as a photo folder's: "condiments_spices" hid its neighbours at 8 characters).
    evaluation = w.session.evaluation()
    long = [f"condiments_spices_{name}" for name in evaluation["class_names"]]
    w.session.evaluation = lambda: {**evaluation, "class_names": long}
    w.accuracy.refresh()
    qtbot.wait(50)
    plot = w.accuracy.confusion_plot
    ticks = plot.getAxis("bottom")._tickLevels[0]
    assert len(ticks) == len(w.session.evaluation()["class_names"])
    column = plot.getViewBox().width() / len(ticks)
    metrics = w.accuracy.fontMetrics()
    assert all(metrics.horizontalAdvance(text) <= column for _, text in ticks), (column, ticks)
    w.tabs.setCurrentWidget(w.clusters)
    w.clusters.choose(0)
    qtbot.wait(50)
    table = w.clusters.table
    assert sum(table.columnWidth(c) for c in range(table.columnCount())) <= (
        table.viewport().width()
    )
    name = w.session.cluster_name(0)
    assert name in table.item(table.currentRow(), 0).toolTip()


def _columns(grid) -> int:
    """How many thumbnails the grid shows side by side."""
    model = grid.model()
    tops = [grid.visualRect(model.index(i, 0)).top() for i in range(model.rowCount())]
    return tops.count(tops[0])


@pytest.mark.parametrize("size", [LAPTOP, (1920, 1080)])
def test_a_clusters_members_get_several_columns_of_thumbnails(
    qtbot, window_factory, finished_run, size
):
    """On a laptop with both side panels open the images go below the table (beside it they got one
    column); on a wide screen they stay beside it."""
    from PySide6.QtCore import Qt

    from semclust.gui.panels.clusters import MIN_COLUMNS

    w = _open(window_factory, finished_run, size)
    w.tabs.setCurrentWidget(w.clusters)
    w.clusters.choose(0)
    qtbot.waitUntil(lambda: w.clusters.members.model().rowCount() > MIN_COLUMNS)
    qtbot.wait(50)
    panel = w.clusters
    wide = size[0] > 1600
    assert panel.split.orientation() == (
        Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
    )
    assert _columns(panel.members) >= MIN_COLUMNS
    if not wide:  # the table above keeps several rows in sight (this run has 10 clusters)
        table = panel.table
        assert table.viewport().height() // table.rowHeight(0) >= min(table.rowCount(), 6)


def test_the_finished_runs_message_is_shown_whole_on_a_laptop(qtbot, window_factory, finished_run):
    """The message under the stages wraps to as many lines as it needs: in the stages' grid it got
    two at 1280x720, and the end of a finished ``auto`` run's three was cut off."""
    from semclust.core.runfolder.artefacts import write_json

    metrics = json.loads(finished_run.paths.metrics.read_text())
    write_json(finished_run.paths.metrics, metrics | {"method_kept": "umap_gmm"})
    finished_run.paths.config.write_text(
        json.dumps(json.loads(finished_run.paths.config.read_text()) | {"method": "auto"})
    )
    w = _open(window_factory, finished_run, LAPTOP)
    w.show()
    w.tabs.setCurrentWidget(w.progress)
    message = w.progress.message
    qtbot.waitUntil(lambda: message.isVisible())
    assert "See the Map" in message.text() and "Gaussian mixture" in message.text()
    lines = message.heightForWidth(message.width()) // message.fontMetrics().lineSpacing()
    assert lines >= 3  # the case that was cut off
    qtbot.waitUntil(lambda: message.height() >= message.heightForWidth(message.width()))


def test_panels_close_float_and_come_back_from_the_view_menu(qtbot, window_factory, finished_run):
    w = _open(window_factory, finished_run)
    toggles = {a.text(): a for a in w.menuBar().actions()[3].menu().actions()}
    toggles["Run panel"].trigger()
    assert w.run_dock.isHidden()
    w.selection_dock.setFloating(True)
    w.restore_layout()
    assert not w.run_dock.isHidden() and not w.selection_dock.isFloating()
    assert w.tabifiedDockWidgets(w.neighbours_dock) == [w.selection_dock]


def test_the_layout_is_kept_between_sessions(qtbot, window_factory, settings, tmp_path):
    assert str(tmp_path) in settings.fileName()  # never the user's own settings
    w = window_factory()
    for dock in w.docks:  # small enough for the offscreen screen (800x600), which Qt keeps it in
        dock.close()
    w.resize(700, 560)
    assert w.height() == 560
    w.close()
    again = window_factory()
    assert all(dock.isHidden() for dock in again.docks)
    assert again.height() == 560  # its width: within the offscreen screen's 800
    again.restore_layout()
    assert not any(dock.isHidden() for dock in again.docks)


def test_a_damaged_saved_layout_is_ignored(qtbot, window_factory, settings):
    settings.setValue("window/state", b"not a state")
    settings.setValue("window/geometry", "nonsense")
    w = window_factory()
    assert all(not dock.isHidden() for dock in w.docks)


def test_a_finished_run_opens_on_its_results(qtbot, window_factory, finished_run, digits_folder):
    w = window_factory()
    w.open_image_folder(digits_folder, run_dir=finished_run.paths.root)  # its run has finished
    assert w.session.run is not None
    assert w.tabs.currentWidget() is w.scatter
    states = {stage: row.state for stage, row in w.progress.rows.items()}
    assert "waiting" not in states.values()
    assert states["selflabel"] == "off" and states["clustering"] == "done"
    assert "finished" in w.progress.message.text()


def test_a_run_folder_of_the_version_before_the_rename_opens(
    qtbot, window_factory, finished_run, digits_folder
):
    """Its record names the clustering stage ``scan``: the progress view shows it as the clustering."""
    paths = finished_run.paths
    paths.stages.write_text(json.dumps({"scan": {"fingerprint": "f", "seconds": 12.0}}))
    (paths.root / "scan.json").write_text(json.dumps({"method": "kmeans"}))
    w = window_factory()
    w.open_image_folder(digits_folder, run_dir=paths.root)
    assert w.session.run is not None
    assert w.progress.rows["clustering"].state == "done"
    assert w.progress.rows["clustering"].time.text() == "done in 12 s"
    assert w.progress.rows["clustering"].title.text() == "Clustering"


def test_open_run_on_a_folder_that_is_not_a_run_says_why(qtbot, window_factory, digits_folder):
    w = window_factory()
    w.open_run(digits_folder)
    assert w.last_message is not None and w.last_message.windowTitle() == "Not a run folder"
    assert "Open image folder" in w.last_message.text()
    assert w.params.run_dir_edit.text() == ""
    assert w.image_folder is None


def test_auto_can_be_typed_in_the_clusters_box(qtbot, window_factory):
    w = window_factory()
    box = w.params.clusters
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "auto")
    box.interpretText()
    assert w.params.controls["clusters"].value() == "auto"
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "7")
    box.interpretText()
    assert w.params.controls["clusters"].value() == 7
    assert any(f"{tab} tab" in box.toolTip() for tab in w.TABS)


def test_a_new_folder_without_a_run_drops_the_earlier_runs_note(
    qtbot, window_factory, finished_run, digits_folder, tmp_path
):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    note = w.params.representation_note
    qtbot.waitUntil(lambda: "Showing the settings" in note.text(), timeout=30_000)
    w.open_image_folder(digits_folder, run_dir=tmp_path / "new-run")
    qtbot.waitUntil(lambda: note.text() != "", timeout=30_000)
    assert "Showing the settings" not in note.text()
    assert w.params._base == RunConfig()  # the next run does not carry the earlier run's settings


@pytest.mark.parametrize("enabled", [False, True])
def test_self_labelling_off_reads_off(qtbot, enabled):
    from semclust.gui.panels.progress import ProgressPanel

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.start_run(RunConfig(selflabel=SelfLabelConfig(enabled=enabled)))
    panel.on_progress(Progress("selflabel", "started"))
    panel.on_progress(Progress("selflabel", "finished"))
    text = panel.rows["selflabel"].time.text()
    assert (text == "off") != enabled
    assert ("done in" in text) == enabled
    panel.end_run("Finished.")


def test_the_loss_plot_starts_each_run_with_fresh_axes(qtbot):
    from semclust.gui.panels.progress import ProgressPanel

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.start_run()
    for step in range(1, 2001, 100):
        panel.on_progress(
            Progress("clustering", "progress", step=step, total=2000, losses={"loss": 50.0})
        )
    panel.on_progress(Progress("report", "started"))  # a stage without losses keeps the plot
    assert panel.loss_title.text().endswith("Clustering")
    panel.start_run()
    for step in range(1, 6):
        panel.on_progress(
            Progress("clustering", "progress", step=step, total=5, losses={"loss": 0.5})
        )
    (x0, x1), (y0, y1) = panel.loss_plot.viewRange()
    assert x1 < 50 and y1 < 5
    panel.end_run("Finished.")


def test_the_training_plots_show_only_for_a_run_that_trains(qtbot):
    """A frozen backbone's run (the default) trains nothing: its progress view shows no empty Loss
    and Cluster sizes plots; they show from a run's first loss or sizes, and go for a finished run."""
    from semclust.gui.panels.progress import ProgressPanel

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.start_run(RunConfig())
    for stage in ("ingest", "pretext", "neighbours", "projection", "clustering"):
        panel.on_progress(Progress(stage, "progress", step=1, total=2, message="working"))
    assert not panel.plots.isVisible()
    panel.on_progress(Progress("pretext", "progress", step=1, total=9, losses={"nt_xent": 5.0}))
    assert panel.plots.isVisible()
    panel.show_finished(RunConfig(), {}, "This run has finished.")
    assert not panel.plots.isVisible()
    panel.start_run(RunConfig())
    sizes = Progress("clustering", "progress", step=1, total=9, partial={"cluster_sizes": [5, 5]})
    panel.on_progress(sizes)
    assert panel.plots.isVisible() and len(panel.size_bars.opts["height"]) == 2


def test_settings_fixture_is_isolated(settings):
    assert isinstance(settings, QSettings) and settings.format() == QSettings.Format.IniFormat


def test_the_hover_preview_follows_the_mouse_and_goes_when_it_leaves(
    qtbot, window_factory, finished_run
):
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtWidgets import QApplication

    w = _open(window_factory, finished_run)
    w.tabs.setCurrentWidget(w.scatter)
    qtbot.wait(50)
    panel, xy = w.scatter, finished_run.umap
    places = []
    for i in (int(np.argmin(xy[:, 0])), int(np.argmax(xy[:, 0]))):  # the left and right ends
        scene = panel.view.mapViewToScene(QPointF(*map(float, xy[i])))
        panel._on_mouse_moved((scene,))
        assert panel.preview.isVisible() and panel._hovered == i
        mouse = panel.plot.mapFromScene(scene)
        box = panel.preview.geometry()
        assert abs(box.center().x() - mouse.x()) < box.width() and (
            abs(box.center().y() - mouse.y()) < box.height()
        )  # beside the mouse, not in a corner
        assert panel.plot.rect().contains(box)
        places.append(box.topLeft())
    assert places[0] != places[1]
    QApplication.sendEvent(panel.plot.viewport(), QEvent(QEvent.Type.Leave))
    assert not panel.preview.isVisible()
