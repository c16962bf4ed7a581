"""The pipeline on a background thread: one worker object on a QThread that only talks through signals.

:class:`PipelineWorker` runs ``run_pipeline`` and turns its progress callback into Qt signals;
:class:`RunController` owns the thread, starts one run at a time and cancels it through the core's
:class:`~core.progress.CancelToken`. Widgets never see the worker, only the controller's signals, which
are delivered on the GUI thread.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from semclust.gui import _core
from semclust.gui._core import Cancelled, CancelToken, InputError, Progress, RunConfig

log = logging.getLogger(__name__)

#: Every QThread this module started; tests assert none is left running.
_THREADS: weakref.WeakSet[QThread] = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """Threads started here that are still running."""
    return [t for t in list(_THREADS) if t.isRunning()]


def describe_error(exc: BaseException) -> str:
    """A readable one-paragraph message for an exception raised by the pipeline."""
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or "ResourceExhausted" in name or "OutOfMemory" in name:
        return (
            "The run ran out of memory. Try a smaller image size or batch size, or fewer images."
            f"\n\n({name}: {exc})"
        )
    if isinstance(exc, FloatingPointError):
        return (
            "Training diverged: the loss became NaN or infinite. Try a lower learning rate, "
            f"another seed, or fewer clusters.\n\n({exc})"
        )
    if isinstance(exc, (InputError, ValueError, FileNotFoundError)):
        return str(exc)
    return f"The run failed: {name}: {exc}"


class PipelineWorker(QObject):
    """Runs one pipeline call; lives on a worker thread and only emits signals.

    Signals:
        progress(Progress): a progress event (``progress`` kinds coalesced to ~20 per second).
        finished(RunData): the run completed.
        failed(str): the run stopped on an error; a readable message.
        preview(RunData): the K-means preview, read once its stage is done, while the run goes on;
            with ``--clusters auto``, first the map alone (``map_only``), before the k choice.
        cancelled(): the user stopped the run; finished stages are kept.
        done(): emitted last, whatever happened.
    """

    progress = Signal(object)
    preview = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()

    MIN_INTERVAL = 0.05

    def __init__(self, pipeline: Callable, folder: Path, out: Path, config: RunConfig,
                 token: CancelToken) -> None:  # fmt: skip
        super().__init__()
        self._pipeline = pipeline
        self._args = (Path(folder), Path(out), config)
        self._token = token
        self._last_emit = 0.0
        self._partial: dict | None = None
        self._pending: Progress | None = None

    def _report(self, event: Progress) -> None:
        # Called on the worker thread by the pipeline. Only emits; never touches a widget.
        # 'progress' events are coalesced to one per MIN_INTERVAL so that a fast pipeline cannot
        # flood the GUI thread; the latest partial result always rides on the next event emitted,
        # and the last dropped event is flushed before the stage's next 'finished' event.
        if event.kind in ("finished", "skipped"):
            if event.stage == "preview":
                self._emit_preview()
            elif event.stage == "projection" and self._args[2].auto_clusters is not None:
                self._emit_preview(map_only=True)  # the k choice and the preview take a while
        now = time.monotonic()
        if event.kind == "progress":
            if event.partial:
                self._partial = dict(event.partial)
            elif self._partial is not None:
                event = dataclasses.replace(event, partial=self._partial)
            if now - self._last_emit < self.MIN_INTERVAL:
                self._pending = event
                return
        elif self._pending is not None:
            self.progress.emit(self._pending)
        self._pending = self._partial = None
        self._last_emit = now
        self.progress.emit(event)

    def _emit_preview(self, map_only: bool = False) -> None:
        try:  # read here, on the worker thread: the window only receives the loaded run
            self.preview.emit(_core.load_run(self._args[1], preview=True, map_only=map_only))
        except (OSError, ValueError) as exc:
            log.warning("no preview: %s", exc)

    @Slot()
    def run(self) -> None:
        folder, out, config = self._args
        try:
            result = self._pipeline(folder, out, config, progress=self._report, cancel=self._token)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
            log.error("pipeline failed:\n%s", traceback.format_exc())
            self.failed.emit(describe_error(exc))
        else:
            self.finished.emit(result)
        finally:
            self.done.emit()


class RunController(QObject):
    """Starts and cancels pipeline runs, one at a time, each on its own QThread.

    Args:
        pipeline: a function with the signature of ``core.run.run_pipeline``; tests pass a fast dummy.
    """

    progress = Signal(object)
    preview = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    runningChanged = Signal(bool)

    def __init__(self, pipeline: Callable | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pipeline = pipeline
        self._thread: QThread | None = None
        self._worker: PipelineWorker | None = None
        self._token: CancelToken | None = None

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def prepare(self) -> None:
        """A run is likely soon (an image folder was opened): the real pipeline's imports begin in the
        background (:func:`~semclust.gui._core.prepare_pipeline`). Nothing to do for another pipeline."""
        if self._pipeline is None:
            _core.prepare_pipeline()

    @property
    def cancelling(self) -> bool:
        return self._token is not None and self._token.cancelled

    def start(self, folder: Path, out: Path, config: RunConfig) -> None:
        """Starts a run in the background.

        Raises:
            RuntimeError: if a run is already going or no pipeline is available.
        """
        if self.is_running:
            raise RuntimeError("A run is already in progress.")
        pipeline = self._pipeline or _core.run_pipeline
        self._token = CancelToken()
        thread = QThread()
        thread.setObjectName("semclust-pipeline")
        worker = PipelineWorker(pipeline, folder, out, config, self._token)
        worker.moveToThread(thread)
        # Worker -> controller connections are queued: they arrive on the GUI thread.
        worker.progress.connect(self.progress)
        worker.preview.connect(self.preview)
        worker.finished.connect(self.finished)
        worker.failed.connect(self.failed)
        worker.cancelled.connect(self.cancelled)
        # Direct: QThread.quit is thread-safe, and the GUI thread may be blocked in wait().
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        _THREADS.add(thread)
        thread.start()
        self.runningChanged.emit(True)

    def cancel(self) -> None:
        """Asks the run to stop at the next batch; ``cancelled`` follows."""
        if self._token is not None:
            self._token.cancel()

    def wait(self, msecs: int = 60_000) -> bool:
        """Blocks until the thread ends (for shutdown and tests). Returns False on timeout."""
        thread = self._thread
        return thread is None or thread.wait(msecs)

    def shutdown(self, msecs: int = 60_000) -> bool:
        """Cancels and waits for the thread: call before the application quits."""
        self.cancel()
        ok = self.wait(msecs)
        if ok and self._thread is not None:
            self._on_thread_finished()
        return ok

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if thread is None:
            return
        # QThread.finished is emitted from the thread just before it returns, so this queued slot can
        # run while the thread is still ending. Python owns the QThread and the worker: dropping the
        # last reference destroys them at once, and destroying a running QThread crashes the process
        # (seen once in CI). Wait for the real end first; it is a matter of microseconds.
        thread.wait()
        self._thread = self._worker = None
        self.runningChanged.emit(False)
