"""The main window: composes the panels, menus and toolbar, drag and drop, recent folders.

Its menus are built in :mod:`gui.menus`, its correction and export commands live in
:class:`gui.review.ReviewCommands`.

It owns no state: the explored run lives in :class:`~gui.session.Session`, the folders and what the run
folder holds in :class:`~gui.workspace.Workspace`, the work in :class:`~gui.worker.RunController`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QTabWidget,
)

from semclust.gui._core import (
    METHOD_TITLES,
    KChoice,
    RunChoices,
    close_said,
    plan_run,
    resource,
    stage_seconds,
)
from semclust.gui.additions import ImageAdder
from semclust.gui.dialogs import CacheDialog, SkippedDialog, show_message
from semclust.gui.layout import VerticalScroll, WindowLayout, default_size, make_dock
from semclust.gui.menus import build_menus
from semclust.gui.panels.accuracy import AccuracyPanel
from semclust.gui.panels.choose_k import ChooseKPlot
from semclust.gui.panels.clusters import ClustersPanel
from semclust.gui.panels.neighbours import NeighboursPanel, SelectionPanel
from semclust.gui.panels.parameters import ParametersPanel
from semclust.gui.panels.progress import ProgressPanel
from semclust.gui.panels.scatter import ScatterPanel
from semclust.gui.review import ReviewCommands
from semclust.gui.session import Session
from semclust.gui.tasks import run_in_background
from semclust.gui.thumbnails import ThumbnailLoader
from semclust.gui.worker import RunController
from semclust.gui.workspace import Workspace

MAX_RECENT = 8


class MainWindow(ReviewCommands, QMainWindow):
    """The semclust window.

    Args:
        pipeline: ``run_pipeline``-like callable (tests pass a fast dummy); default: ``core.run``.
        settings: where recent folders, the window's geometry and its docks are kept; default: the
            user's QSettings.
        find_default: returns the representation a new run starts from, given whether the images
            are small and grey; default: the core's (``plan_run``'s). A new run is planned in the
            background (``core.plan.plan_run``), again once a folder is surveyed.
    """

    TABS = ("Progress", "Map", "Clusters", "Accuracy", "Number of clusters")

    def __init__(self, pipeline: Callable | None = None, settings: QSettings | None = None,
                 find_default: Callable | None = None) -> None:  # fmt: skip
        super().__init__()
        self.setWindowTitle("semclust")
        icon = resource("semclust.svg")
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(default_size(self))
        self.setAcceptDrops(True)
        self.settings = settings or QSettings("semclust", "semclust")
        self.session = Session(self)
        self.workspace = Workspace(self)
        self.loader = ThumbnailLoader(size=80, parent=self)
        self.controller = RunController(pipeline, self)
        # Connected before any panel, so that the loader knows the new run's files first.
        self.session.runChanged.connect(
            lambda: self.loader.set_source(self.session.read_image if self.session.run else None)
        )
        self.last_message = None
        self._close_when_idle = False

        self.params = ParametersPanel()
        self.progress = ProgressPanel()
        self.scatter = ScatterPanel(self.session, self.loader)
        self.clusters = ClustersPanel(self.session, self.loader)
        self.accuracy = AccuracyPanel(self.session)
        self.k_plot = ChooseKPlot()
        self.neighbours = NeighboursPanel(self.session, self.loader)
        self.selection = SelectionPanel(self.session, self.loader)

        self.tabs = QTabWidget()
        for panel, title in zip(
            (self.progress, self.scatter, self.clusters, self.accuracy, self.k_plot),
            self.TABS,
            strict=True,
        ):
            self.tabs.addTab(panel, title)
        self.setCentralWidget(self.tabs)
        self.setDockOptions(QMainWindow.DockOption.AllowTabbedDocks
                            | QMainWindow.DockOption.AllowNestedDocks
                            | QMainWindow.DockOption.AnimatedDocks)  # fmt: skip
        scroll = VerticalScroll(self.params)
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.run_dock = make_dock(self, "Run", scroll, left)
        self.neighbours_dock = make_dock(self, "Neighbours", self.neighbours, right)
        self.selection_dock = make_dock(self, "Selection", self.selection, right)
        self.tabifyDockWidget(self.neighbours_dock, self.selection_dock)
        self.neighbours_dock.raise_()
        self.docks = (self.run_dock, self.neighbours_dock, self.selection_dock)
        self.layout_store = WindowLayout(self, self.settings)
        # Qt ignores dock sizes before the first show: see showEvent (unless a saved layout has them).
        self._docks_sized = self.layout_store.restore()
        self.adder = ImageAdder(self)  # File > Add images…: before the menus, which call it
        self.scatter.show_added(self.adder.added)
        build_menus(self)
        self._rebuild_recent()

        self.params.runRequested.connect(self.start_run)
        self.params.cancelRequested.connect(self.cancel_run)
        self.params.skippedRequested.connect(self.show_skipped)
        self.params.runDirChangeRequested.connect(self._choose_run_dir)
        self.k_plot.kPicked.connect(self.use_k)
        self.clusters.methodPicked.connect(self.use_method)
        self.selection.moveRequested.connect(self.move_selection)
        self.selection.newClusterRequested.connect(self.new_cluster_from_selection)
        self.selection.exportRequested.connect(self.export_selection)
        self.controller.progress.connect(self._on_progress)
        self.controller.preview.connect(self._on_preview)
        self.controller.finished.connect(self._on_finished)
        self.controller.failed.connect(self._on_failed)
        self.controller.cancelled.connect(self._on_cancelled)
        self.controller.runningChanged.connect(self._on_running)
        self.workspace.foldersChanged.connect(self._on_folders)
        self.workspace.surveyed.connect(self.params.set_survey)
        self.workspace.looked.connect(self._plan)
        self.workspace.looked.connect(lambda _look: self.controller.prepare())
        self.workspace.skippedChanged.connect(self.params.set_skipped)
        self.workspace.configFound.connect(self.params.set_config)
        self.workspace.runFound.connect(self._on_run_found)
        self.workspace.problem.connect(lambda title, text: self.message(title, text, error=True))
        self.session.runChanged.connect(self._show_k_choice)
        self.session.runChanged.connect(self._sync_actions)
        self.session.assignmentChanged.connect(self._sync_actions)
        self.session.currentChanged.connect(lambda i: i >= 0 and self._bring(self.neighbours_dock))
        self.session.selectionChanged.connect(
            lambda: len(self.session.selection) and self._bring(self.selection_dock)
        )
        self.session.selectionChanged.connect(self._sync_actions)
        self.adder.runningChanged.connect(self._sync_actions)
        self._sync_actions()
        self.statusBar().showMessage("Open a folder of images, or a previous run folder.")
        self._find_default = find_default
        self._plan()

    def _plan(self, look=None) -> None:
        """Plans a new run of the folder (its default representation for these images) in the
        background: looking for weights here takes a moment."""
        plan = functools.partial(plan_run, None, RunChoices(), look=look,
                                 find_default=self._find_default)  # fmt: skip
        run_in_background(plan, on_result=self._on_plan,
                          on_error=lambda e: self.params.representation_note.setText(str(e)))  # fmt: skip

    def _on_plan(self, plan) -> None:
        if plan.look.survey is None or self.workspace.shows(plan.look):  # else: a folder left since
            self.params.set_plan(plan)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            self._size_docks()

    def _size_docks(self) -> None:
        """The side docks' default widths: the form's, and three thumbnail columns (the panel's own
        margins on top), each at most about a quarter of the window."""
        cap = max(260, int(0.26 * self.width()))
        run = min(cap, self.params.sizeHint().width() + 24)
        images = min(cap, self.neighbours.grid.size_for(3, 1).width() + 40)
        self.resizeDocks([self.run_dock, self.neighbours_dock], [run, images],
                         Qt.Orientation.Horizontal)  # fmt: skip

    def _bring(self, dock) -> None:
        """Shows a docked panel's tab (a panel the user closed stays closed)."""
        if dock.isVisible():
            dock.raise_()

    def restore_layout(self) -> None:
        """Every panel shown and docked in its default place, at its default width."""
        self.layout_store.reset()
        self._size_docks()

    # -- opening ----------------------------------------------------------------------------------
    @property
    def image_folder(self) -> Path | None:
        return self.workspace.image_folder

    def open_path(self, path: str | Path) -> None:
        """A run folder (has config.json) opens for exploring; any other folder as images."""
        if Workspace.is_run_folder(path):
            self.open_run(Path(path))
        else:
            self.open_image_folder(Path(path))

    def open_image_folder(self, folder: Path, run_dir: Path | None = None) -> None:
        if self.workspace.open_image_folder(folder, run_dir):
            if self.params.found_label.text() == "–":
                self.params.found_label.setText("counting…")
            self._add_recent(self.workspace.image_folder)
            self.statusBar().showMessage(
                f"Opened {self.workspace.image_folder}. Set the parameters and press Run."
            )

    def open_run(self, run_dir: Path) -> None:
        """A run folder, to explore or continue; any other folder is refused with the reason."""
        if not Workspace.is_run_folder(run_dir):
            self.message(
                "Not a run folder",
                f"{run_dir} holds no semclust run: it has no config.json.\n\n"
                "A run folder is where a run keeps its results (by default beside the image folder, "
                "named after it with -semclust). To cluster the images of a folder, use "
                "File ▸ Open image folder…",
                error=True,
            )
            return
        finished = self.workspace.open_run(run_dir)
        self._add_recent(self.workspace.run_dir)
        if self.workspace.open_problem:  # the message box says which file and why
            self.statusBar().showMessage(
                f"Could not open the run in {self.workspace.run_dir}: "
                + self.workspace.open_problem.splitlines()[0]
            )  # fmt: skip
        elif finished and self.session.run is not None:
            self.tabs.setCurrentWidget(self.scatter)
            self.statusBar().showMessage(
                f"Opened run {self.workspace.run_dir}.{self._worth_a_look()}"
            )
        elif self.image_folder is not None:
            self.statusBar().showMessage(
                f"The run in {self.workspace.run_dir} has not finished; press Run to continue."
            )

    def _on_run_found(self, run) -> None:
        """A finished run read from its folder (or None): the window shows its results, and the
        progress view what its stages took."""
        self.session.set_run(run)
        if run is None or self.controller.is_running:
            return
        self.progress.show_finished(run.config, stage_seconds(run.paths), finished_text(run))
        if self.tabs.currentWidget() is self.progress:
            self.tabs.setCurrentWidget(self.scatter)

    def _on_folders(self) -> None:
        self.params.set_folder(self.workspace.image_folder)
        self.params.set_run_dir(self.workspace.run_dir)
        self.params.set_can_run(self.workspace.image_folder is not None)
        self._sync_actions()

    def choose_image_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open image folder")
        if folder:
            self.open_image_folder(Path(folder))

    def choose_run_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open run folder")
        if folder:
            self.open_run(Path(folder))

    def _choose_run_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run folder (outside the image folder)")
        if folder:
            self.params.set_run_dir(Path(folder))
            self.workspace.set_run_dir(Path(folder))

    # -- recent folders ---------------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        items = [str(path)] + [p for p in self.recent() if p != str(path)]
        self.settings.setValue("recent", items[:MAX_RECENT])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.recent():
            self.recent_menu.addAction(p).triggered.connect(lambda *_, p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent()))

    # -- drag and drop ----------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and Path(urls[0].toLocalFile()).is_dir():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        self.open_path(Path(event.mimeData().urls()[0].toLocalFile()))
        event.acceptProposedAction()

    # -- running ----------------------------------------------------------------------------------
    def start_run(self) -> None:
        if self.controller.is_running or self.image_folder is None:
            return
        if self.adder.is_running:  # it holds the run folder's lock
            self.message("Cannot run", "Images are being added to the run; wait, or cancel that.")
            return
        self.workspace.run_dir = self.params.run_dir()  # the user may have typed another one
        problem = self.workspace.run_dir_problem()
        if problem:
            self.message("Run folder", problem, error=True)
            return
        try:
            config = self.params.config()  # a representation with weights "none" is refused here
            config.validate()
            self.controller.start(self.image_folder, self.workspace.run_dir, config)
        except (ValueError, RuntimeError) as exc:
            self.message("Cannot run", str(exc), error=True)
            return
        self.session.set_run(None)
        self.progress.start_run(config)
        self.tabs.setCurrentWidget(self.progress)
        self.statusBar().showMessage("Running…")

    def use_k(self, k: int) -> None:
        """Re-clusters the open run with a number of clusters picked on its curve: the form's "Use k"
        is set and the run goes on from its kept features, neighbours and curve (seconds)."""
        run = self.session.run
        if self.controller.is_running or run is None or not run.config.auto_clusters:
            return
        self.params.controls["use_k"].set_value(None if k == run.k_choice.get("best") else k)
        self.start_run()

    def use_method(self, method: str) -> None:
        """Re-clusters the open run with another method (the Clusters tab's close call): the form's
        Method is set and the run goes on from its kept features, neighbours and map (seconds)."""
        if self.controller.is_running or self.session.run is None:
            return
        self.params.controls["method"].set_value(method)
        self.start_run()

    def cancel_run(self) -> None:
        if self.controller.is_running:
            self.controller.cancel()
            self.statusBar().showMessage("Stopping at the end of the current batch…")

    def _on_running(self, running: bool) -> None:
        self.params.set_running(running)
        self._sync_actions()
        if not running and self._close_when_idle:
            self.close()

    def _on_progress(self, event) -> None:
        self.progress.on_progress(event)
        if event.stage == "ingest" and event.kind in ("finished", "skipped"):
            self.workspace.reload_skipped()

    def _show_k_choice(self) -> None:
        """The curve of ``--clusters auto`` (its own tab), when the run chose its number of clusters."""
        run = self.session.run
        choice = run.k_choice if run is not None else None
        self.k_plot.set_choice(KChoice.from_dict(choice) if choice else None)
        self.k_plot.set_in_use(run.predicted_clusters if choice else None)

    def _on_preview(self, run) -> None:
        if self.session.run is None or self.session.run.preview:
            self.session.set_run(run)
            self.statusBar().showMessage(
                "Map: the images by similarity; the clusters follow once their number is chosen."
                if run.map_only
                else "Preview: K-means on the normalised embeddings, while the clustering trains (read-only)."
            )

    def _on_finished(self, run) -> None:
        self.progress.end_run(finished_text(run))
        self.session.set_run(run)
        self.workspace.reload_skipped()
        self.tabs.setCurrentWidget(self.scatter)
        self.statusBar().showMessage(
            f"Finished: {len(run.image_paths):,} images in {run.n_clusters} clusters."
            + self._worth_a_look()
        )

    def _worth_a_look(self) -> str:
        """What the status bar adds for the run just shown: two clusters that may be one group (the
        merge hint: right in 10 of 12 runs of the default, BENCHMARKS.md) and a close choice of
        method. Both are offered in the Clusters tab, and the window opens on the Map tab."""
        said = []
        if (look := self.clusters.look_alike) is not None:  # the Clusters tab's, already made
            said.append(f"clusters {look.merged} and {look.into} may be one group")
        if self.session.run is not None and self.session.run.close_alternative:
            said.append("the choice of method was close")
        if not said:
            return ""
        text = ", and ".join(said)
        return f" {text[0].upper()}{text[1:]}: see the Clusters tab."

    def _on_failed(self, text: str) -> None:
        self.progress.end_run(text, error=True)
        self.tabs.setCurrentWidget(self.progress)
        self.statusBar().showMessage("The run failed; see the message.")
        self.message("The run failed", text, error=True)

    def _on_cancelled(self) -> None:
        self.progress.end_run("Stopped. The finished stages are kept: press Run to continue.")
        self.statusBar().showMessage("Stopped. Press Run to continue from the last finished stage.")

    def show_skipped(self) -> None:
        SkippedDialog(self.workspace.skipped, self).open()

    def show_cache(self) -> None:
        self.cache_dialog = CacheDialog(self)
        self.cache_dialog.open()

    def message(self, title: str, text: str, error: bool = False) -> None:
        self.statusBar().showMessage(text.splitlines()[0] if text else title)
        self.last_message = show_message(self, title, text, error)

    def _sync_actions(self, *_) -> None:
        has_run = self.session.editable
        running = self.controller.is_running
        self.export_csv_action.setEnabled(has_run)
        self.export_folders_action.setEnabled(has_run)
        self.save_report_action.setEnabled(has_run)
        self.export_model_action.setEnabled(has_run)
        self.add_images_action.setEnabled(has_run and not self.adder.is_running)
        self.run_action.setEnabled(not running and self.image_folder is not None)
        self.cancel_action.setEnabled(running)
        self.undo_action.setEnabled(self.session.can_undo())
        self.redo_action.setEnabled(self.session.can_redo())
        self.move_action.setEnabled(has_run)
        self.new_cluster_action.setEnabled(has_run and bool(len(self.session.selection)))
        self.split_action.setEnabled(has_run)
        self.retrain_action.setEnabled(self.session.can_retrain and not running
                                       and not self.adder.is_running  # it holds the lock
                                       and not self.retraining)  # fmt: skip
        self.restore_model_action.setEnabled(self.session.retrained and not self.retraining)
        self.export_selection_action.setEnabled(has_run and bool(len(self.session.selection)))
        self.tabs.setTabEnabled(3, self.session.has_labels)
        self.tabs.setTabEnabled(4, self.k_plot.choice is not None)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.adder.stop_and_close():  # closes the window again once its thread has ended
            event.ignore()
            return
        if self.controller.is_running:
            # Never block the GUI thread: ask the run to stop and close when its thread has ended.
            self._close_when_idle = True
            self.controller.cancel()
            self.statusBar().showMessage("Stopping the run before closing…")
            event.ignore()
            return
        self.layout_store.save()
        self.loader.shutdown()
        super().closeEvent(event)


def finished_text(run) -> str:
    """What the progress view says of a finished run: its size, how its number of clusters was
    chosen when it was (``--clusters auto``, the default), which method made its clusters when the
    run chose among several (``--method auto``: ``metrics.json``'s ``method_kept``), and which other
    one scored nearly as well with other clusters (``close_alternative``)."""
    text = f"This run has finished: {len(run.image_paths):,} images in {run.n_clusters} clusters."
    if run.k_choice:
        choice = KChoice.from_dict(run.k_choice)
        picked = run.config.picked_clusters
        text += (
            f" You picked {picked} on the curve of the number of clusters ({choice.best} scored best)."
            if picked
            else f" Without labels, {choice.describe('the Range for auto')}."
        )
        text += " The Number of clusters tab shows the curve: click another number to try it."
    kept = run.metrics.get("method_kept")
    if run.config.method == "auto" and isinstance(kept, str) and kept in METHOD_TITLES:
        text += (
            f" They come from {METHOD_TITLES[kept]}: of the methods tried, the one whose clusters "
            "keep the most neighbour links inside them."
        )
        if close := run.close_alternative:
            text += (
                f" {close_said(*close, METHOD_TITLES)} To compare, press Show its clusters in the "
                "Clusters tab (the features are kept: only the clustering is made again)."
            )
    return text + " See the Map, Clusters and Accuracy tabs."
