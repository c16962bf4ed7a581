"""Time to clusters in the window: a fresh app, an image folder opened, Run pressed, the run shown.

Each repeat is a fresh process with the real pipeline and every default the window plans for the
folder (offscreen Qt); the user "looks at the settings" for ``--wait`` seconds between opening the
folder and pressing Run, while the window imports the pipeline in the background
(``gui._core.prepare_pipeline``). Prints the seconds from Run to the K-means preview and to the
finished run shown:

    python -m bench.time_in_window --dataset food7 --repeats 3 --wait 4

The user sets the number of classes; with ``--auto`` they leave the window's default (``auto``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from bench.timing import run_isolated


def timed_window_run(name: str, cache_dir: str, out: str, wait: float, auto: bool = False) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from PySide6.QtCore import QEventLoop, QSettings
    from PySide6.QtWidgets import QApplication

    from bench.datasets import write_dataset
    from semclust.gui.main_window import MainWindow

    folder = write_dataset(name, cache_dir)
    classes = len([d for d in folder.iterdir() if d.is_dir()])
    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(Path(out).with_suffix(".ini")), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.show()

    def wait_until(condition, timeout: float) -> bool:
        end = time.perf_counter() + timeout
        while not condition() and time.perf_counter() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        return condition()

    window.open_image_folder(folder, run_dir=out)
    params = window.params
    planned = wait_until(
        lambda: params.plan is not None and params.plan.look.survey is not None, 60
    )
    end_of_wait = time.perf_counter() + wait
    wait_until(lambda: time.perf_counter() >= end_of_wait, wait + 1)
    if not auto:
        params.clusters.setValue(classes)
    seen: dict[str, float] = {}
    window.controller.preview.connect(lambda _run: seen.setdefault("preview", time.perf_counter()))
    window.controller.finished.connect(lambda _run: seen.setdefault("done", time.perf_counter()))
    start = time.perf_counter()
    window.start_run()
    wait_until(lambda: "done" in seen and not window.controller.is_running, 600)
    wait_until(lambda: window.session.run is not None and not window.session.run.preview, 30)
    shown = time.perf_counter()
    row = {
        "dataset": name,
        "images": window.session.n_images,
        "planned": planned,
        "wait_s": wait,
        "clusters": window.session.run.n_clusters if window.session.run else None,
        "to_preview_s": round(seen.get("preview", float("nan")) - start, 2),
        "to_clusters_s": round(shown - start, 2),
    }
    window.controller.shutdown()
    window.close()
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="food7")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait", type=float, default=4.0)
    parser.add_argument("--cache", type=Path, default=Path("bench/out/data"))
    parser.add_argument("--work", type=Path, default=Path("bench/out/time_in_window"))
    parser.add_argument("--auto", action="store_true", help="the number of clusters left to auto")
    args = parser.parse_args(argv)
    print(
        "| set | images | wait s | clusters | Run to preview s | Run to clusters shown s | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for repeat in range(args.repeats):
        out = args.work / f"{args.dataset}-{repeat}"
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        row, peak = run_isolated(
            timed_window_run, args.dataset, str(args.cache), str(out), args.wait, args.auto
        )
        print(f"| {row['dataset']} | {row['images']:,} | {row['wait_s']:.0f} | {row['clusters']} "
              f"| {row['to_preview_s']:.1f} "
              f"| {row['to_clusters_s']:.1f} | {peak:,.0f} |", flush=True)  # fmt: skip
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
