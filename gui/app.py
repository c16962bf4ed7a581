"""Entry point: ``semclust gui [FOLDER | RUN_FOLDER]`` and ``python -m semclust.gui``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import semclust.gui  # noqa: F401  (pins pyqtgraph to PySide6)


def main(argv: Sequence[str] | None = None) -> int:
    """Opens the window; a folder with config.json is explored as a run, any other as images.

    Returns:
        The application's exit status.
    """
    parser = argparse.ArgumentParser(prog="semclust gui", description=__doc__)
    parser.add_argument("folder", nargs="?", help="a folder of images, or a run folder to explore")
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtWidgets import QApplication

    from semclust.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "semclust"])
    app.setApplicationName("semclust")
    app.setOrganizationName("semclust")
    window = MainWindow()
    window.show()
    if args.folder:
        window.open_path(args.folder)
    code = app.exec()
    window.controller.shutdown()
    return int(code)
