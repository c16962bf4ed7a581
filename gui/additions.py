"""File > Add images…: the images of another folder placed into the open finished run, without
retraining (what ``semclust assign RUN FOLDER`` does on the command line).

:class:`AddedImages` is the model of the images added to the session's run (``RUN/added.json``, read with
the core's checked reader whenever a run is shown): their files, their places on the map, and their
clusters, voted again from their stored neighbours after every correction, as ``labels.csv`` does.
They are shown, not edited: a correction moves the run's own images only.

:class:`ImageAdder` runs ``assign_folder`` on a thread of its own, through a
:class:`~gui.worker.RunController` (the window's pattern: one worker object on a QThread, which reaches
the window only through signals), shows its progress with a Cancel button in the status bar, then the
counts, the skipped files, or the reason nothing was added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from semclust.gui._core import (
    InputError,
    Progress,
    RunData,
    RunFolderError,
    assign_folder,
    read_additions,
    vote,
)
from semclust.gui.dialogs import SkippedDialog
from semclust.gui.session import Session
from semclust.gui.worker import RunController

#: Each stage's share of the bar and the words the status bar says for it.
_STAGES = {
    "ingest": (0.0, 0.35, "reading the images"),
    "pretext": (0.35, 0.9, "computing their features"),
    "neighbours": (0.9, 1.0, "finding their nearest images in the run"),
}


class AddedImages(QObject):
    """The images added to the session's run, as the window shows them.

    Attributes:
        run: the run they were read for (``None``: none shown).
        paths: every added image's absolute path.
        xy: (M, 2) their places on the run's map, or ``None`` when the run has no map.
        cluster: (M,) their clusters, voted from their neighbours' clusters of now.
        confidence: (M,) the winning cluster's share of the votes.
        note: why earlier additions are not shown (the run was redone on other images), else ``""``.

    Signals:
        changed: the added images or their clusters changed.
        problem(str, str): a title and text to show (``added.json`` is damaged).
    """

    changed = Signal()
    problem = Signal(str, str)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.run: RunData | None = None
        self._folders: list = []
        self.paths: list[Path] = []
        self.xy: np.ndarray | None = None
        self.cluster = np.zeros(0, dtype=int)
        self.confidence = np.zeros(0, dtype=np.float32)
        self.note = ""
        session.runChanged.connect(self.reload)
        session.assignmentChanged.connect(self.revote)

    def __len__(self) -> int:
        return len(self.paths)

    def reload(self) -> None:
        """Reads the additions of the session's run (none for a preview or no run)."""
        run = self.session.run
        self.run, self._folders, self.note = run, [], ""
        if run is not None and not run.preview:
            try:
                additions = read_additions(run)
            except RunFolderError as exc:
                self.problem.emit("Added images not shown", str(exc))
            else:
                if additions is not None:
                    self._folders, self.note = list(additions.folders), additions.problem
        self.paths = [p for f in self._folders for p in f.absolute_paths()]
        maps = [f.map for f in self._folders]
        if maps and all(m is not None for m in maps):
            self.xy = np.concatenate(maps).astype(float)
        else:
            self.xy = None if maps else np.zeros((0, 2))
        self.revote()

    def revote(self) -> None:
        """Each added image's cluster from its neighbours' clusters of now (corrections count)."""
        assignment = self.session.assignment
        clusters, confidences = [np.zeros(0, dtype=int)], [np.zeros(0, dtype=np.float32)]
        if self._folders and len(assignment):
            n = max(self.session.n_clusters, int(assignment.max()) + 1)
            for f in self._folders:
                cluster, confidence = vote(f.neighbours, f.similarity, assignment, n)
                clusters.append(cluster)
                confidences.append(confidence)
        self.cluster = np.concatenate(clusters).astype(int)
        self.confidence = np.concatenate(confidences)
        self.changed.emit()


def _assign(folder: Path, run_dir: Path, cache_dir: Path | None, progress, cancel):
    """``assign_folder`` in the shape of ``run_pipeline`` (what :class:`RunController` calls), on
    the worker thread. A folder the app cannot write becomes a readable message."""
    try:
        return assign_folder(run_dir, folder, progress, cancel, cache_dir)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a read-only run folder, a full disk
        raise InputError(f"Cannot write in {run_dir}: {exc.strerror or exc}") from exc


class AddProgress(QWidget):
    """The status bar's progress of images being added: what is done, a bar, and Cancel."""

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(160)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop adding; nothing is written.")
        self.cancel_button.setMaximumWidth(self.cancel_button.sizeHint().width())
        self.cancel_button.clicked.connect(self.cancelRequested)
        for widget in (self.label, self.bar, self.cancel_button):
            layout.addWidget(widget)
        self.hide()

    def start(self, folder: Path) -> None:
        self.folder = folder
        self.bar.setValue(0)
        self.label.setText(f"Adding {folder.name}: starting…")
        self.cancel_button.setEnabled(True)
        self.show()

    def on_progress(self, event: Progress) -> None:
        start, stop, words = _STAGES.get(event.stage, (0.0, 0.0, event.stage))
        done = event.step / event.total if event.total else 0.0
        if event.kind == "finished":
            done = 1.0
        self.bar.setValue(int(1000 * (start + (stop - start) * min(max(done, 0.0), 1.0))))
        counted = event.stage == "ingest" and event.total
        counts = f" {event.step:,}/{event.total:,}" if counted else ""
        self.label.setText(f"Adding {self.folder.name}: {words}{counts}…")

    def stopping(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText(f"Adding {self.folder.name}: stopping…")


class ImageAdder(QObject):
    """Adds a folder of images to the window's open run, in the background (File > Add images…).

    Args:
        window: the :class:`~gui.main_window.MainWindow`: its session, status bar and messages.

    Attributes:
        added: the images added to the run shown (:class:`AddedImages`), for the map.
        cache_dir: semclust's cache root for decoded images (default: the user's; tests set one).
        skipped_dialog: the list of the files of the last folder that could not be read, if any.

    Signals:
        runningChanged(bool): adding started or ended (then ``finished``, ``failed`` or
            ``cancelled`` came first).
        finished(object): the core's ``AssignResult``.
        failed(str): the reason nothing was added.
        cancelled(): the user stopped it; nothing was written.
    """

    runningChanged = Signal(bool)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session: Session = window.session
        self.added = AddedImages(self.session, self)
        self.cache_dir: Path | None = None
        self.skipped_dialog: SkippedDialog | None = None
        self.progress = AddProgress()
        window.statusBar().addPermanentWidget(self.progress)
        self._folder: Path | None = None
        self._run_dir: Path | None = None
        self._close_window = False
        self._controller = RunController(_assign, self)
        self._controller.progress.connect(self.progress.on_progress)
        self._controller.finished.connect(self._on_finished)
        self._controller.failed.connect(self._on_failed)
        self._controller.cancelled.connect(self._on_cancelled)
        self._controller.runningChanged.connect(self._on_running)
        self.progress.cancelRequested.connect(self.cancel)
        self.added.problem.connect(lambda title, text: window.message(title, text, error=True))

    @property
    def is_running(self) -> bool:
        return self._controller.is_running

    def add_images(self, folder: str | Path | None = None) -> bool:
        """Asks for a folder (unless given) and adds its images to the open finished run in the
        background; returns whether it started."""
        run = self.session.run
        if run is None or not self.session.editable or self.is_running:
            return False
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self.window, "Add the images of a folder")
            if not chosen:
                return False
            folder = chosen
        self._folder, self._run_dir = Path(folder).expanduser(), run.paths.root
        self._controller.start(self._folder, self._run_dir, self.cache_dir)
        self.progress.start(self._folder)
        self.window.statusBar().showMessage(f"Adding the images of {self._folder}…")
        return True

    def cancel(self) -> None:
        if self.is_running:
            self._controller.cancel()
            self.progress.stopping()

    def stop_and_close(self) -> bool:
        """When images are being added: stops, closes the window once the thread has ended, and
        returns True (the window does not close now); else False."""
        if not self.is_running:
            return False
        self._close_window = True
        self.cancel()
        self.window.statusBar().showMessage("Stopping the adding of images before closing…")
        return True

    # -- results, on the GUI thread -----------------------------------------------------------------
    def _shows_target(self) -> bool:
        run = self.session.run
        return run is not None and run.paths.root == self._run_dir

    def _on_finished(self, result) -> None:
        if self._shows_target():
            self.added.reload()
        added, skipped = result.added, result.skipped
        text = f"Added {len(added.paths):,} images of {added.root}: {len(skipped):,} skipped."
        if result.notes:
            text += " (" + "; ".join(result.notes) + ")"
        self.window.statusBar().showMessage(text)
        if skipped:
            shown = [(str(added.root / rel), reason) for rel, reason in skipped]
            self.skipped_dialog = SkippedDialog(shown, self.window)
            self.skipped_dialog.setWindowTitle(f"Skipped files of {added.root}")
            self.skipped_dialog.open()
        self.finished.emit(result)

    def _on_failed(self, text: str) -> None:
        self.window.message("Images not added", text, error=True)
        self.failed.emit(text)

    def _on_cancelled(self) -> None:
        self.window.statusBar().showMessage("Adding images stopped; nothing was written.")
        self.cancelled.emit()

    def _on_running(self, running: bool) -> None:
        if not running:
            self.progress.hide()
        self.runningChanged.emit(running)
        if not running and self._close_window:
            self._close_window = False
            self.window.close()
