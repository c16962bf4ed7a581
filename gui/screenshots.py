"""Saves a PNG of each view of the app opened on a finished run.

Usage::

    QT_QPA_PLATFORM=offscreen python -m semclust.gui.screenshots RUN_FOLDER OUT_FOLDER [--size 1366x768]

The window is shown at ``--size`` (a laptop's 1366x768 by default), so each picture is what a laptop
user sees.

The progress view is filled by replaying a few progress events (a finished run has none to show).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import semclust.gui  # noqa: F401


def _settle(app, msecs: int = 400) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(msecs, loop.quit)
    loop.exec()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1366x768", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    import numpy as np
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from semclust.gui._core import STAGES, Progress
    from semclust.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["semclust-screenshots"])
    args.out.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(args.out / "settings.ini"), QSettings.Format.IniFormat)
    settings.clear()  # the default layout, not the one saved by the last call
    w = MainWindow(settings=settings)
    width, height = (int(v) for v in args.size.lower().split("x"))
    w.resize(width, height)
    w.show()
    w.open_path(args.run)
    s = w.session
    if s.run is None:
        print(f"{args.run} is not a finished run", file=sys.stderr)
        return 1
    # As the run opens (its results), and its finished stages.
    _settle(app, 1500)
    w.grab().save(str(args.out / "0_opened.png"))
    w.tabs.setCurrentWidget(w.progress)
    _settle(app)
    w.grab().save(str(args.out / "1_progress_finished.png"))
    # Progress: replay a run stopped in the middle of SCAN, with a collapsing clustering.
    w.progress.start_run(s.run.config)
    for stage in STAGES[:3]:
        w.progress.on_progress(Progress(stage, "skipped"))
    w.progress.on_progress(Progress("clustering", "started", total=100))
    k = s.n_clusters
    for step in range(1, 61):
        sizes = np.full(k, 1.0)
        sizes[0] = 40 + step * 6
        w.progress.on_progress(Progress("clustering", "progress", step=step, total=100, message=f"epoch {step // 10 + 1}",
                                        losses={"total": 3.0 - step / 40, "consistency": 2.5 - step / 50,
                                                "entropy": -2.0 + step / 200},
                                        partial={"cluster_sizes": sizes.astype(int).tolist()}))  # fmt: skip
    w.progress._clock.stop()
    w.tabs.setCurrentWidget(w.progress)
    _settle(app)
    w.grab().save(str(args.out / "1_progress_replayed.png"))

    # Map, with one image current (neighbours on the right).
    s.set_current(int(np.argmax(s.run.confidence)))
    w.tabs.setCurrentWidget(w.scatter)
    _settle(app, 1500)
    w.grab().save(str(args.out / "2_map_neighbours.png"))

    # Map coloured by true label, with a box selection (selection grid on the right).
    if s.has_labels:
        w.scatter.color_by.setCurrentIndex(1)
    xy = s.run.umap
    lo, hi = np.percentile(xy, 35, axis=0), np.percentile(xy, 65, axis=0)
    w.scatter.view.sigPolygonSelected.emit(
        np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    )
    _settle(app, 1500)
    w.grab().save(str(args.out / "3_map_selection.png"))
    w.scatter.color_by.setCurrentIndex(0)

    # Clusters, with the largest chosen.
    w.tabs.setCurrentWidget(w.clusters)
    w.clusters.choose(int(np.bincount(s.assignment, minlength=k).argmax()))
    _settle(app, 1500)
    w.grab().save(str(args.out / "4_clusters.png"))

    w.tabs.setCurrentWidget(w.accuracy)
    _settle(app)
    w.grab().save(str(args.out / "5_accuracy.png"))
    if w.k_plot.choice is not None:  # a run that chose its number of clusters
        w.tabs.setCurrentWidget(w.k_plot)
        _settle(app)
        w.grab().save(str(args.out / "6_number_of_clusters.png"))
    w.close()
    w.loader.shutdown()
    print("\n".join(str(p) for p in sorted(args.out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
