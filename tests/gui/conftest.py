"""GUI test fixtures: offscreen Qt, real digit images, a synthetic finished run, isolated QSettings,
and a check that no thread is left running after each test."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import PySide6.QtCore  # noqa: E402,F401  (before pyqtgraph)
import pytest  # noqa: E402
from gui_fakes import make_run, write_digits  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory):
    """300 real handwritten digits (30 per class) as PNGs in class subfolders."""
    return write_digits(tmp_path_factory.mktemp("data") / "digits", per_class=30)


@pytest.fixture
def finished_run(digits_folder, tmp_path):
    """A finished run folder (synthetic artefacts computed from the real images)."""
    from semclust.core.config import RunConfig

    return make_run(digits_folder, tmp_path / "run", RunConfig(clusters=10))


@pytest.fixture
def save_as(monkeypatch):
    """Patches the window's save dialog to answer the paths appended to the returned list, in order."""
    answers: list = []

    def dialog(*args, **kwargs):
        return (str(answers.pop(0)), "")

    monkeypatch.setattr("semclust.gui.review.QFileDialog.getSaveFileName", dialog)
    return answers


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window_factory(qtbot, settings):
    """Makes MainWindows with a given pipeline; closes them and waits for their threads."""
    from semclust.gui.main_window import MainWindow

    windows = []

    from semclust.core.representation.backbones import Representation

    def scratch(small_grey_images=False):
        return Representation(
            "resnet_small", None, False, f"From scratch: (test; small grey: {small_grey_images})"
        )

    def make(pipeline=None):
        w = MainWindow(
            pipeline=pipeline,
            settings=settings,
            find_default=scratch,
        )
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.controller.shutdown(20_000)
        w.loader.shutdown()


@pytest.fixture(autouse=True)
def no_thread_left_running(request):
    """Fails a test that leaves a pipeline thread or a thumbnail/background pool busy."""
    yield
    from semclust.gui.thumbnails import busy_pools, live_pools
    from semclust.gui.worker import running_threads

    for pool in live_pools():
        pool.waitForDone(5000)
    assert not running_threads(), f"{request.node.name} left a pipeline thread running"
    assert not busy_pools(), f"{request.node.name} left a thread pool busy"
