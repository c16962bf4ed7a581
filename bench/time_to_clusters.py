"""Time to clusters: a default ``semclust run`` against the cost of its own features, stage by stage.

Each repeat runs the pipeline with the plan the command line makes (:func:`semclust.core.plan.plan_run`,
every default, the number of clusters given) in a fresh process, into a fresh run folder, so that every
stage is computed; only the decoded images and the machine's caches (weights, UMAP's compiled code)
carry over, as they do for a user's second folder. Prints one Markdown row per run and appends them to
``bench/out/time_to_clusters.jsonl``:

    python -m bench.time_to_clusters --datasets animals10k,food7 --repeats 3

``--first-run`` gives each repeat an empty numba cache (what a machine's first run waits for: UMAP's
compile); ``--no-background-warm-up`` compiles UMAP when the map needs it instead of while the
backbone works (the run before :func:`semclust.core.projection.start_umap_warm_up`), to compare;
``--auto`` runs ``--clusters auto`` instead of giving the number of classes.

Columns: the process's wall seconds from its first import to the run's end (what a user waits for at
the command line, less the interpreter's own start), the run's seconds, each stage's seconds from the
run folder's ``stages.json``, the run's seconds over the features' ("pretext": the backbone's forward
pass over every image) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from bench.timing import run_isolated

OUT = Path("bench/out/time_to_clusters.jsonl")
#: The stage that pushes every image through the backbone: the cost the run is compared with.
FEATURES_STAGE = "pretext"


def timed_run(
    name: str,
    out: str,
    cache_dir: str,
    seed: int,
    numba_cache: str = "",
    warm_up: bool = True,
    auto: bool = False,
) -> dict:
    """One default run in this (fresh) process: seconds of the imports, the run and each stage."""
    start = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if numba_cache:
        os.environ["NUMBA_CACHE_DIR"] = numba_cache  # before numba is imported
    from bench.datasets import write_dataset
    from semclust.core import run as run_module
    from semclust.core.choices import AUTO, RunChoices
    from semclust.core.plan import plan_run
    from semclust.core.run import run_pipeline

    if not warm_up:
        run_module.start_umap_warm_up = lambda: None

    folder = write_dataset(name, cache_dir)
    classes = len([d for d in folder.iterdir() if d.is_dir()])
    imported = time.perf_counter()
    config = plan_run(folder, RunChoices(clusters=AUTO if auto else classes, seed=seed)).config
    run_pipeline(folder, Path(out), config, cache_dir=Path(cache_dir) / "images")
    done = time.perf_counter()
    stages = json.loads((Path(out) / "stages.json").read_text())
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    return {
        "dataset": name,
        "images": len(json.loads((Path(out) / "images.json").read_text())["paths"]),
        "backbone": config.encoder.backbone,
        "method_kept": metrics.get("method_kept"),
        "clusters": metrics.get("clusters"),
        "acc": metrics.get("acc"),
        "imports_s": round(imported - start, 2),
        "run_s": round(done - imported, 2),
        "wall_s": round(done - start, 2),
        "stages_s": {s: v.get("seconds") for s, v in stages.items() if isinstance(v, dict)},
    }


def measure(
    names: list[str],
    repeats: int,
    cache_dir: Path,
    work: Path,
    first_run: bool = False,
    warm_up: bool = True,
    auto: bool = False,
) -> list[dict]:
    rows = []
    for name in names:
        for repeat in range(repeats):
            out = work / f"{name}-{repeat}"
            shutil.rmtree(out, ignore_errors=True)
            numba_cache = work / "numba-first-run"
            shutil.rmtree(numba_cache, ignore_errors=True)
            row, peak = run_isolated(
                timed_run, name, str(out), str(cache_dir), 0,
                str(numba_cache) if first_run else "", warm_up, auto,
            )  # fmt: skip
            features = row["stages_s"].get(FEATURES_STAGE) or float("nan")
            row.update(
                repeat=repeat,
                peak_rss_mb=round(peak),
                run_over_features=round(row["run_s"] / features, 2),
                machine=f"{platform.machine()}, {os.cpu_count()} cores",
                first_run=first_run,
                background_warm_up=warm_up,
                auto_clusters=auto,
                when=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            rows.append(row)
            print(markdown_row(row), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    return rows


HEADER = (
    "| set | images | repeat | wall s | run s | features s | run / features | seconds per stage "
    "| kept | clusters | ACC | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"
)


def markdown_row(row: dict) -> str:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in row["stages_s"].items() if v is not None)
    acc = "" if row.get("acc") is None else f"{row['acc']:.3f}"
    return (
        f"| {row['dataset']} | {row['images']:,} | {row['repeat']} | {row['wall_s']:.1f} "
        f"| {row['run_s']:.1f} | {row['stages_s'].get(FEATURES_STAGE, 0):.1f} "
        f"| {row['run_over_features']:.2f} | {stages} | {row['method_kept']} "
        f"| {row.get('clusters', '')} | {acc} "
        f"| {row['peak_rss_mb']:,} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="animals10k,food7")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("bench/out/data"))
    parser.add_argument("--work", type=Path, default=Path("bench/out/time_to_clusters"))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--first-run", action="store_true", help="an empty numba cache each repeat")
    parser.add_argument("--no-background-warm-up", dest="warm_up", action="store_false")
    parser.add_argument("--auto", action="store_true", help="--clusters auto, not the classes")
    args = parser.parse_args(argv)
    print(HEADER, flush=True)
    rows = measure(
        args.datasets.split(","), args.repeats, args.cache, args.work, args.first_run, args.warm_up,
        args.auto,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
