"""``python -m bench``: runs the benchmarks and writes BENCHMARKS.md and bench/plots/*.png."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from bench.speed import PARTS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QUICK_SCRATCH = {
    "pretext.epochs": 1,
    "pretext.batch_size": 128,
    "scan.epochs": 2,
    "selflabel.epochs": 1,
}
QUICK_PRETRAINED = {"scan.epochs": 2, "selflabel.epochs": 1}
QUICK_RECIPE = {"batch_size": 128, "pretext_epochs": 1, "cluster_epochs": 2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and epochs: a smoke test, not numbers to quote",
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated: digits,mnist5k,animals10k,gcompris4,food7 (the last two are real "
        "colour photos fetched with apt-get / npm)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per method (default 3, quick 1)")
    p.add_argument(
        "--only",
        choices=("quality", "speed", "report"),
        default=None,
        help="run one part only; 'report' rewrites the report from the last saved results",
    )
    p.add_argument("--methods", default=None, help="comma-separated subset of the quality methods")
    p.add_argument(
        "--limit", type=int, default=None, help="stratified sample of N images per dataset"
    )
    p.add_argument(
        "--speed-parts",
        default=None,
        help="comma-separated subset of the speed measurements: "
        + ",".join(PARTS)
        + " (the others keep their last results)",
    )
    p.add_argument(
        "--keep-runs",
        action="store_true",
        help="reuse our run folders of the last benchmark: redo only the stages whose settings changed",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="MobileNet weights file or 'imagenet' (default: ../shared/weights/...)",
    )
    p.add_argument("--neighbour-sizes", default=None, help="comma-separated N for neighbour mining")
    p.add_argument("--umap-sizes", default=None, help="comma-separated N for UMAP")
    p.add_argument(
        "--throughput-steps", type=int, default=None, help="timed training batches per encoder"
    )
    p.add_argument(
        "--report",
        default=None,
        help="markdown report path (default BENCHMARKS.md at the repo root)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="RunConfig override for our runs, e.g. --set pretext.epochs=20 (JSON values)",
    )
    return p.parse_args(argv)


def _ints(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(x) for x in text.split(",")) if text else None


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.quality import METHODS, QualitySettings, merge_quality, run_quality
    from bench.report import where_it_runs, write_plots, write_report
    from bench.settings import BenchSettings
    from bench.speed import SpeedSettings, merge_speed, run_speed
    from semclust.core.runfolder.artefacts import read_json

    bench = BenchSettings(**({"weights": args.weights} if args.weights else {}))
    if args.report:
        bench = BenchSettings(weights=bench.weights, report_path=Path(args.report))
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    today = dt.datetime.now().isoformat(timespec="seconds")
    store = bench.work_dir.parent
    store.mkdir(parents=True, exist_ok=True)
    quality = speed = None

    if args.only in (None, "quality"):
        datasets = (
            tuple(args.datasets.split(","))
            if args.datasets
            else (("digits",) if args.quick else None)
        )
        seeds = args.seeds or (1 if args.quick else 3)
        user = _overrides(args.set)
        settings = QualitySettings(
            **({"datasets": datasets} if datasets else {}),
            seeds=tuple(range(seeds)),
            methods=tuple(args.methods.split(",")) if args.methods else METHODS,
            scratch_overrides={**(QUICK_SCRATCH if args.quick else {}), **user},
            pretrained_overrides={**(QUICK_PRETRAINED if args.quick else {}), **user},
            recipe_overrides=QUICK_RECIPE if args.quick else {},
            limit=args.limit or (400 if args.quick else None),
            keep_runs=args.keep_runs,
        )
        print(f"quality: {settings}")
        notes = []
        if args.quick:
            notes.append(
                "--quick: a smoke test with a few hundred images and 1-2 epochs; not numbers to quote."
            )
        if settings.keep_runs:
            notes.append(
                "--keep-runs: our runs continued from the run folders of the previous benchmark; stages "
                "whose settings had not changed were kept and show the seconds they took then."
            )
        if settings.scratch_overrides:
            notes.append(
                f"Our from-scratch runs use RunConfig defaults except {settings.scratch_overrides}."
            )
        if settings.pretrained_overrides:
            notes.append(
                f"Our MobileNet runs use RunConfig defaults except {settings.pretrained_overrides}."
            )
        notes.append(
            "The keras.io recipe gets our from-scratch run's seconds (ingest + pretext for representation "
            "learning, neighbours + the clustering stage for clustering); it stops after the batch that overruns its budget, and "
            "its first batch (graph tracing + one ResNet50V2 step on 2 x batch images) can alone outlast a "
            "short budget: see the seconds it used."
        )
        records = run_quality(settings, bench, records_path=store / "quality_records.json")
        run = {
            "command": command,
            "date": today,
            "datasets": list(settings.datasets),
            "methods": list(settings.methods),
            "machine": where_it_runs(),
        }
        quality = merge_quality(
            read_json(store / "last_quality.json", None), run, records, notes, settings.limit
        )
        (store / "last_quality.json").write_text(json.dumps(quality, indent=1))
    elif (store / "last_quality.json").is_file():
        quality = json.loads((store / "last_quality.json").read_text())

    if args.only in (None, "speed"):
        if args.quick:
            ss = SpeedSettings(
                throughput_images=96,
                throughput_steps=2,
                encoders=(
                    ("ours resnet_small 32px", "resnet_small", 32, 32),
                    ("ours resnet50v2 32px", "resnet50v2", 32, 32),
                    ("ours mobilenet 96px", "mobilenet", 96, 32),
                ),
                recipe_batch=32,
                neighbour_sizes=(2_000, 5_000),
                umap_sizes=(2_000,),
                ingest_dataset="digits",
                run_dataset="digits",
                run_overrides=tuple(QUICK_SCRATCH.items()),
            )
        else:
            ss = SpeedSettings()
        if args.neighbour_sizes:
            ss = SpeedSettings(**{**ss.__dict__, "neighbour_sizes": _ints(args.neighbour_sizes)})
        if args.umap_sizes:
            ss = SpeedSettings(**{**ss.__dict__, "umap_sizes": _ints(args.umap_sizes)})
        if args.speed_parts:
            ss = SpeedSettings(**{**ss.__dict__, "parts": tuple(args.speed_parts.split(","))})
        if args.throughput_steps:
            ss = SpeedSettings(**{**ss.__dict__, "throughput_steps": args.throughput_steps})
        print(f"speed: {ss}")
        results = run_speed(ss, bench)
        notes = [
            "Each measurement runs in a fresh process; peak RSS is that process's VmHWM (Python, "
            "TensorFlow and the data included); 'growth' is what the measured call added.",
            "Throughput: median seconds of the timed batches after one untimed warm-up batch, each "
            "encoder at its own default batch size; the CPU may be shared with other work.",
            "Neighbour mining and UMAP run on random unit vectors, which have no cluster structure: a "
            "pessimistic case for UMAP's nearest-neighbour descent.",
        ]
        speed = merge_speed(
            read_json(store / "last_speed.json", None), results, command, today, ss.dim, notes
        )
        (store / "last_speed.json").write_text(json.dumps(speed, indent=1, default=str))
    elif (store / "last_speed.json").is_file():
        speed = json.loads((store / "last_speed.json").read_text())

    plots = write_plots(bench.plots_dir, quality, speed)
    write_report(bench.report_path, quality, speed, plots)
    print(f"wrote {bench.report_path} and {len(plots)} plots in {bench.plots_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
