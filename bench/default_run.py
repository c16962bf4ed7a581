"""What a new user gets: ``semclust run FOLDER --clusters K`` with every default, on the labelled sets.

For each set and seed this runs the pipeline with the plan the command line makes too
(:func:`semclust.core.plan.plan_run`: the default representation found here for these images, its
image size and feature layer), then clusters the same run's ``features.npy`` with K-means and Ward: the
baselines on exactly the features SCAN saw. Prints one Markdown row per run and writes them to
``<out>.json`` beside the run folders (default ``bench/out/default_runs.json``).

    python -m bench.default_run --datasets mnist5k,animals10k,gcompris4,food7 --seeds 3

With ``--auto`` the runs choose the number of clusters themselves (``--clusters auto``), and the rows
say which they chose against the number of classes. They run in ``<out>-auto``, which starts as a copy
of ``--out``'s runs, so that their features and neighbours are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_one(name: str, seed: int, out_root: Path, cache_dir: Path, auto: bool = False) -> dict:
    from sklearn.cluster import AgglomerativeClustering, KMeans

    from bench.datasets import write_dataset
    from semclust.core.choices import AUTO, RunChoices
    from semclust.core.metrics import evaluate
    from semclust.core.plan import plan_run
    from semclust.core.run import run_pipeline

    folder = write_dataset(name, cache_dir)
    classes = len([d for d in folder.iterdir() if d.is_dir()])
    out = out_root / f"{name}-seed{seed}"
    # what ``semclust run FOLDER --clusters K --seed S`` runs
    config = plan_run(folder, RunChoices(clusters=AUTO if auto else classes, seed=seed)).config
    start = time.perf_counter()
    run = run_pipeline(folder, out, config, cache_dir=cache_dir / "images")
    seconds = time.perf_counter() - start
    features = np.load(out / "features.npy")
    settled = json.loads((out / "config.json").read_text())
    clusters = settled["clusters"]  # the number chosen, with auto
    kmeans = KMeans(clusters, n_init=10, random_state=seed).fit_predict(features)
    ward = AgglomerativeClustering(clusters, linkage="ward").fit_predict(features)
    return {
        "set": name,
        "seed": seed,
        "classes": classes,
        "clusters": clusters,
        "backbone": settled["encoder"]["backbone"],
        "layer": settled["encoder"]["layer"],
        "image_size": config.ingest.image_size,
        "acc": run.metrics["acc"],
        "clusters_used": run.metrics["clusters_used"],
        "neighbour_purity": run.metrics["neighbour_purity"],
        "kmeans_acc": evaluate(run.true_labels, kmeans)["acc"],
        "ward_acc": evaluate(run.true_labels, ward)["acc"],
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.default_run", description=__doc__)
    p.add_argument("--datasets", default="mnist5k,animals10k,gcompris4,food7")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench/out/default_runs"))
    p.add_argument("--cache-dir", type=Path, default=Path("bench/out/data"))
    p.add_argument(
        "--auto", action="store_true", help="--clusters auto (in copies of --out's runs)"
    )
    args = p.parse_args(argv)
    out = args.out
    if args.auto:
        out = args.out.with_name(args.out.name + "-auto")
        for earlier in args.out.glob("*-seed*") if not out.exists() else ():
            shutil.copytree(earlier, out / earlier.name)  # its features and neighbours are reused
    rows = []
    print("| set | seed | backbone, layer, px | clusters (classes) | ours ACC | features + K-means | "
          "+ Ward | clusters used | s |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets.split(","):
        for seed in range(args.seeds):
            r = run_one(name, seed, out, args.cache_dir, args.auto)
            rows.append(r)
            print(f"| {r['set']} | {seed} | {r['backbone']}, {r['layer']}, {r['image_size']} | "
                  f"{r['clusters']} ({r['classes']}) | {r['acc']:.3f} | {r['kmeans_acc']:.3f} | "
                  f"{r['ward_acc']:.3f} | {r['clusters_used']} | {r['seconds']:.0f} |",
                  flush=True)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
