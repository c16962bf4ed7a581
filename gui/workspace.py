"""The window's working state beside :class:`~semclust.gui.session.Session`: which image folder and which
run folder, and what the run folder already holds.

The window composes panels and forwards the user's actions here; :class:`Workspace` reads run folders
(through the core's checked readers) and says what it found through signals, so that the window holds no
state of its own and a damaged or tampered run folder becomes a message, never a crash.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from semclust.gui._core import (
    RunFolderError,
    RunFolderInfo,
    RunPaths,
    inspect_run_folder,
    is_inside,
    load_run,
    look_at,
    read_skipped,
)
from semclust.gui.tasks import run_in_background


def default_run_dir(folder: Path) -> Path:
    """A sibling of the image folder: never write inside the user's images."""
    folder = Path(folder).resolve()
    return folder.parent / f"{folder.name}-semclust"


class Workspace(QObject):
    """The image folder and the run folder the window works on.

    Signals:
        foldersChanged(): the image folder or the run folder changed.
        surveyed(object, object): images found (int or None) and class names (list, or None: unknown).
        looked(object): what a sample of the images' headers says (a FolderLook: their typical
            side, whether they are grey), from which a new run is planned.
        skippedChanged(object): the files left out with reasons, or None before ingest (before it,
            those the folder's survey already leaves out, when there are any).
        configFound(object): the run folder holds an earlier run's RunConfig, or None: it holds none.
        runFound(object): the run folder holds a finished run (RunData), or None (cleared).
        problem(str, str): a title and text to show the user.
    """

    foldersChanged = Signal()
    surveyed = Signal(object, object)
    looked = Signal(object)
    skippedChanged = Signal(object)
    configFound = Signal(object)
    runFound = Signal(object)
    problem = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.image_folder: Path | None = None
        self.run_dir: Path | None = None
        self.skipped: list[tuple[str, str]] = []
        self.open_problem: str | None = None

    # -- opening ----------------------------------------------------------------------------------
    @staticmethod
    def is_run_folder(path: str | Path) -> bool:
        return RunPaths(Path(path).expanduser()).exists()

    def open_image_folder(self, folder: str | Path, run_dir: str | Path | None = None) -> bool:
        """A folder of images to cluster; its run folder is a sibling unless given."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            self.problem.emit("Cannot open", f"{folder} is not a folder.")
            return False
        self.image_folder = folder
        self.run_dir = Path(run_dir) if run_dir else default_run_dir(folder)
        self.foldersChanged.emit()
        self.surveyed.emit(None, None)
        self.runFound.emit(None)
        self._read_run_folder()
        run_in_background(  # on a pool thread: it reads file headers
            look_at, folder, on_result=self._on_survey,
            on_error=lambda e: self.problem.emit("Cannot read the folder", str(e)),
        )  # fmt: skip
        return True

    def open_run(self, run_dir: str | Path) -> bool:
        """A run folder, to explore (finished) or to continue (unfinished)."""
        run_dir = Path(run_dir).expanduser().resolve()
        self.run_dir = run_dir
        self.runFound.emit(None)
        info = self._read_run_folder()
        self.image_folder = info.image_folder if info is not None else None
        self.foldersChanged.emit()
        if info is not None:
            self.surveyed.emit(info.n_images, info.class_names)
        return info is not None and info.finished

    def set_run_dir(self, run_dir: str | Path | None) -> None:
        """Another run folder for the same images; what it holds is read."""
        self.run_dir = Path(run_dir).expanduser() if run_dir else None
        self.runFound.emit(None)
        self._read_run_folder()

    def reload_skipped(self) -> None:
        """After ingest: the files left out this time."""
        if self.run_dir is None:
            return
        try:
            self.skipped = read_skipped(RunPaths(self.run_dir))
        except RunFolderError as exc:
            self.problem.emit("Damaged run folder", str(exc))
            return
        self.skippedChanged.emit(self.skipped)

    # -- checks -----------------------------------------------------------------------------------
    def run_dir_problem(self) -> str | None:
        """Why a run cannot start with these folders, or None."""
        if self.image_folder is None:
            return "Open a folder of images first."
        if self.run_dir is None:
            return "Choose where the run keeps its files."
        if is_inside(self.run_dir, self.image_folder):
            return "Choose a run folder outside the image folder."
        return None

    # -- internals --------------------------------------------------------------------------------
    def _on_survey(self, look) -> None:
        survey = look.survey
        if not self.shows(look):
            return  # a survey of a folder the user has since left
        self.surveyed.emit(len(survey.files), list(survey.class_names) if survey.has_labels else [])
        # No ingest yet: the files the survey already leaves out (HEIC photos with no decoder...).
        if not self.skipped and survey.skipped:
            self.skipped = list(survey.skipped)
            self.skippedChanged.emit(self.skipped)
        self.looked.emit(look)

    def shows(self, look) -> bool:
        """Whether ``look`` is of the image folder open now."""
        root = look.survey.root if look.survey is not None else None
        return root is not None and Path(root).resolve() == self.image_folder

    def _read_run_folder(self) -> RunFolderInfo | None:
        """Emits what the run folder holds: settings, skipped files, a finished run. A folder that
        cannot be read leaves its reason in :attr:`open_problem` (None when it opened)."""
        self.skipped = []
        self.open_problem = None
        if self.run_dir is None:
            self.skippedChanged.emit(None)
            self.configFound.emit(None)
            return None
        try:
            info = inspect_run_folder(self.run_dir)
        except RunFolderError as exc:
            self.skippedChanged.emit(None)
            self.configFound.emit(None)
            self.open_problem = str(exc)
            self.problem.emit("Cannot open run", str(exc))
            return None
        self.skipped = info.skipped or []
        self.skippedChanged.emit(info.skipped)
        self.configFound.emit(info.config)
        if info.finished:
            try:
                self.runFound.emit(load_run(self.run_dir))
            except (OSError, ValueError) as exc:
                self.open_problem = str(exc)
                self.problem.emit("Cannot open run", f"{self.run_dir}: {exc}")
        return info
