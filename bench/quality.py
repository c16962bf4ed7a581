"""Clustering quality of semclust against baselines, over datasets and seeds.

For each dataset (a folder of PNG files in class subfolders) and seed, every method clusters the images
into as many clusters as there are classes; Hungarian ACC, NMI, ARI, the number of clusters used and the
wall seconds per stage are recorded. :func:`summarise` gives mean and spread over seeds and
:func:`check_targets` compares methods as the issue asks.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import baselines, ours
from bench.datasets import load_folder, write_dataset
from bench.metrics import evaluate
from bench.settings import BenchSettings

METHODS = (
    "kmeans-pixels",
    "mobilenet+kmeans",
    "mobilenet+agglomerative",
    "mobilenet+dec",
    "kerasio-recipe",
    "ours-scratch",
    "ours-scratch+selflabel",
    "ours-mobilenet",
    "ours-mobilenet+selflabel",
)
OURS = tuple(m for m in METHODS if m.startswith("ours"))


@dataclass(frozen=True)
class QualitySettings:
    """What the quality benchmark runs.

    Attributes:
        datasets: dataset names (see :data:`bench.datasets.DATASETS`).
        seeds: one run per seed for every method.
        methods: subset of :data:`METHODS`.
        scratch_overrides: dotted RunConfig changes for our from-scratch runs (e.g. fewer epochs).
        pretrained_overrides: dotted RunConfig changes for our MobileNet runs.
        recipe_overrides: RecipeConfig field changes for the keras.io recipe.
        recipe_seconds: (representation, clustering) budget of the recipe when our from-scratch run
            is not part of the benchmark; otherwise the recipe gets our run's own times.
        limit: use a stratified sample of this many images of each dataset (smoke tests).
        keep_runs: start our runs from the run folders an earlier benchmark left, so that only stages
            whose settings changed are redone (their records then show the kept stages' earlier seconds).
    """

    datasets: tuple[str, ...] = ("digits", "mnist5k", "animals10k")
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = METHODS
    scratch_overrides: dict[str, Any] = field(default_factory=dict)
    pretrained_overrides: dict[str, Any] = field(default_factory=dict)
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    recipe_seconds: tuple[float, float] = (600.0, 120.0)
    limit: int | None = None
    keep_runs: bool = False


def _record(
    dataset: str, method: str, seed: int, metrics: dict, seconds: dict, **extra: Any
) -> dict:
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        **{k: metrics[k] for k in ("acc", "nmi", "ari", "clusters_used")},
        "seconds": {k: round(float(v), 3) for k, v in seconds.items()},
        **extra,
    }


def run_quality(
    settings: QualitySettings,
    bench: BenchSettings | None = None,
    log: Callable[[str], None] = print,
    records_path: Path | None = None,
) -> list[dict]:
    """Runs every method on every dataset and seed; returns one record per (dataset, method, seed).

    Records are appended to ``records_path`` (JSON) as they come, so a long benchmark that is stopped
    keeps what it measured. Methods that cannot run (``core.run`` missing) are logged and left out.
    """
    from bench.kerasio import RecipeConfig, run_recipe

    bench = bench or BenchSettings()
    records: list[dict] = []

    def add(rec: dict) -> None:
        records.append(rec)
        log(
            f"  {rec['dataset']:<11} {rec['method']:<25} seed {rec['seed']}: ACC {rec['acc']:.3f} "
            f"NMI {rec['nmi']:.3f} ARI {rec['ari']:.3f} clusters {rec['clusters_used']} "
            f"({sum(rec['seconds'].values()):.1f} s)"
        )
        if records_path is not None:
            records_path.parent.mkdir(parents=True, exist_ok=True)
            records_path.write_text(json.dumps(records, indent=1))

    have_pipeline = ours.pipeline_available()
    if not have_pipeline and any(m in OURS for m in settings.methods):
        log(
            "  core.run.run_pipeline is not available: our methods (and the recipe's budget) are skipped."
        )
    for name in settings.datasets:
        folder = write_dataset(name, bench.cache_dir, settings.limit)
        dataset = folder.name
        images, labels, classes = load_folder(folder)
        k = len(classes)
        log(f"{dataset}: {len(images)} images, {k} classes, from {folder}")
        feats = feat_seconds = None
        for seed in settings.seeds:
            if "kmeans-pixels" in settings.methods:
                r = baselines.kmeans_pixels(images, k, seed)
                add(
                    _record(
                        dataset, "kmeans-pixels", seed, evaluate(labels, r.assignment), r.seconds
                    )
                )
            mobilenet_rows = {"mobilenet+kmeans", "mobilenet+agglomerative"} & set(settings.methods)
            if mobilenet_rows or "mobilenet+dec" in settings.methods:
                if feats is None:  # deterministic: computed once, its time charged to every seed
                    import time

                    t = time.perf_counter()
                    feats = baselines.mobilenet_features(images, bench.weights)
                    feat_seconds = time.perf_counter() - t
            if mobilenet_rows:
                res = baselines.mobilenet_baselines(
                    images, k, bench.weights, seed, features=feats, feature_seconds=feat_seconds
                )
                for name, r in res.items():
                    if name in settings.methods:
                        add(_record(dataset, name, seed, evaluate(labels, r.assignment), r.seconds))
            if "mobilenet+dec" in settings.methods:
                r, dec = baselines.mobilenet_dec(feats, k, seed, feat_seconds)
                add(
                    _record(
                        dataset,
                        "mobilenet+dec",
                        seed,
                        evaluate(labels, r.assignment),
                        r.seconds,
                        dec={"iterations": dec.iterations, "changed": round(dec.changed, 5)},
                        config=baselines.dec_summary(),
                    )
                )

            scratch_seconds = None
            if have_pipeline:
                for base, config in (
                    ("ours-scratch", ours.scratch_config(k, seed, **settings.scratch_overrides)),
                    (
                        "ours-mobilenet",
                        ours.pretrained_config(
                            k, seed, bench.weights, **settings.pretrained_overrides
                        ),
                    ),
                ):
                    wanted = [m for m in (base, base + "+selflabel") if m in settings.methods]
                    if not wanted:
                        continue
                    out = bench.work_dir / "runs" / dataset / f"{base}-seed{seed}"
                    if not settings.keep_runs:
                        shutil.rmtree(out, ignore_errors=True)
                    plain = ours.run_ours(folder, out, config, cache_dir=bench.work_dir / "cache")
                    if base in settings.methods:
                        add(
                            _record(
                                dataset,
                                base,
                                seed,
                                plain.metrics,
                                plain.seconds,
                                config=ours.config_summary(config),
                            )
                        )
                    if base == "ours-scratch":
                        scratch_seconds = plain.seconds
                    if base + "+selflabel" in settings.methods:
                        sl = ours.run_ours(
                            folder,
                            out,
                            config.replace(**{"selflabel.enabled": True}),
                            previous=plain,
                            cache_dir=bench.work_dir / "cache",
                        )
                        add(
                            _record(
                                dataset,
                                base + "+selflabel",
                                seed,
                                sl.metrics,
                                sl.seconds,
                                reused_stages=sl.skipped,
                                config=ours.config_summary(
                                    config.replace(**{"selflabel.enabled": True})
                                ),
                            )
                        )

            if "kerasio-recipe" in settings.methods:
                if scratch_seconds is not None:
                    rep = scratch_seconds.get("ingest", 0.0) + scratch_seconds.get("pretext", 0.0)
                    clu = scratch_seconds.get("neighbours", 0.0) + scratch_seconds.get(
                        "clustering", 0.0
                    )
                    budget_from = "ours-scratch"
                else:
                    rep, clu = settings.recipe_seconds
                    budget_from = "fixed"
                r = run_recipe(
                    images,
                    k,
                    seed,
                    pretext_seconds=rep,
                    cluster_seconds=clu,
                    config=RecipeConfig(**settings.recipe_overrides),
                )
                add(
                    _record(
                        dataset,
                        "kerasio-recipe",
                        seed,
                        evaluate(labels, r.assignment),
                        r.seconds,
                        budget_seconds=[round(rep, 2), round(clu, 2)],
                        budget_from=budget_from,
                        epochs=[round(r.pretext_epochs, 3), round(r.cluster_epochs, 3)],
                    )
                )
    return records


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), (float(statistics.stdev(values)) if len(values) > 1 else 0.0)


def summarise(records: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per (dataset, method), in :data:`METHODS` order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["dataset"], rec["method"]), []).append(rec)
    order = {m: i for i, m in enumerate(METHODS)}
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    rows = []
    for (dataset, method), recs in sorted(
        groups.items(), key=lambda kv: (datasets.index(kv[0][0]), order.get(kv[0][1], 99))
    ):
        row = {"dataset": dataset, "method": method, "seeds": len(recs)}
        for key in ("acc", "nmi", "ari", "clusters_used"):
            row[key], row[key + "_std"] = _mean_std([r[key] for r in recs])
        stages: dict[str, list[float]] = {}
        for r in recs:
            for stage, s in r["seconds"].items():
                stages.setdefault(stage, []).append(s)
        row["seconds"] = {stage: float(np.mean(v)) for stage, v in stages.items()}
        row["total_seconds"] = float(np.mean([sum(r["seconds"].values()) for r in recs]))
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Target:
    """One acceptance check: ``method`` against ``other`` (a method) or a fixed value, on one metric."""

    name: str
    method: str
    metric: str = "acc"
    other: str | None = None
    value: float | None = None
    margin: float = 0.0  # method must reach other + margin (or value + margin)


#: Acceptance targets of the benchmark issue (#4), plus two informative checks (last four).
TARGETS: tuple[Target, ...] = (
    Target(
        "issue #4: pretrained SCAN beats pretrained features + K-means by >= 5 ACC points",
        "ours-mobilenet",
        other="mobilenet+kmeans",
        margin=0.05,
    ),
    Target(
        "issue #4: from scratch beats the keras.io recipe at equal time by >= 20 ACC points",
        "ours-scratch",
        other="kerasio-recipe",
        margin=0.20,
    ),
    Target("issue #4: no empty cluster (from scratch)", "ours-scratch", metric="clusters_used"),
    Target("issue #4: no empty cluster (pretrained)", "ours-mobilenet", metric="clusters_used"),
    Target(
        "no empty cluster (from scratch + self-labelling)",
        "ours-scratch+selflabel",
        metric="clusters_used",
    ),
    Target(
        "no empty cluster (pretrained + self-labelling)",
        "ours-mobilenet+selflabel",
        metric="clusters_used",
    ),
    Target(
        "informative: from scratch beats K-means on raw pixels",
        "ours-scratch",
        other="kmeans-pixels",
    ),
    Target(
        "informative: pretrained SCAN beats pretrained features + Ward",
        "ours-mobilenet",
        other="mobilenet+agglomerative",
    ),
)


def check_targets(rows: list[dict], targets: tuple[Target, ...] = TARGETS) -> list[dict]:
    """PASS / FAIL per target and dataset; a target whose methods were not run is ``n/a``.

    A ``clusters_used`` target with no value means "as many clusters as classes" (the ``k`` of the run,
    taken from the largest count any method reached on that dataset).
    """
    by = {(r["dataset"], r["method"]): r for r in rows}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    out = []
    for t in targets:
        for d in datasets:
            mine = by.get((d, t.method))
            if t.other is not None:
                ref = by.get((d, t.other))
                need = None if ref is None else ref[t.metric] + t.margin
                against = None if ref is None else f"{t.other} {ref[t.metric]:.3f}"
            elif t.value is not None:
                need, against = t.value + t.margin, f"{t.value:.3f}"
            else:  # all clusters used
                need = max((r["clusters_used"] for r in rows if r["dataset"] == d), default=None)
                against = f"k = {need}"
            if mine is None or need is None:
                status, detail = "n/a", "not run"
            else:
                ok = mine[t.metric] >= need - 1e-9
                status = "PASS" if ok else "FAIL"
                detail = f"{t.method} {mine[t.metric]:.3f} vs {against}"
                if t.margin:
                    detail += f" (margin {t.margin:+.2f})"
            out.append({"target": t.name, "dataset": d, "status": status, "detail": detail})
    return out


def merge_quality(
    previous: dict | None, run: dict, records: list[dict], notes: list[str], limit: int | None
) -> dict:
    """The saved quality results after one run: its records replace those of the methods it ran.

    Records of other datasets and methods, and the commands that produced them, are kept, so the
    benchmark can be run a dataset (or a few methods) at a time: a 3-seed dataset is hours on 2 cores.

    Args:
        previous: the saved results (``{"runs": [...], "records": [...]}``, or the older single-run
            ``{"command", "date", "notes", "records"}`` form), or None.
        run: ``{"command", "date", "datasets", "methods"}`` of this run, as asked for on the command line;
            its date identifies it (each record is tagged with the date of the run that made it).
        records: this run's records.
        notes: this run's notes.
        limit: the run's per-dataset sample size (its datasets are then named ``NAME-LIMIT``).
    """
    previous = previous or {}
    runs = list(previous.get("runs", []))
    old_records = previous.get("records", [])
    if not runs and old_records:
        runs = [
            {
                "command": previous.get("command", "?"),
                "date": previous.get("date", "?"),
                "datasets": sorted({r["dataset"] for r in old_records}),
                "methods": sorted({r["method"] for r in old_records}),
                "notes": previous.get("notes", []),
            }
        ]
    # Records saved before they carried their run's date belong to the last run of their dataset.
    old_records = [
        r
        if "run" in r
        else {
            **r,
            "run": next((x["date"] for x in reversed(runs) if r["dataset"] in x["datasets"]), None),
        }
        for r in old_records
    ]
    datasets = sorted(
        {r["dataset"] for r in records} | {f"{d}-{limit}" if limit else d for d in run["datasets"]}
    )
    methods = sorted(set(run["methods"]) | {r["method"] for r in records})
    replaced = {(d, m) for d in datasets for m in methods}
    kept = [r for r in old_records if (r["dataset"], r["method"]) not in replaced]
    runs = [r for r in runs if any(k.get("run") == r["date"] for k in kept)]
    runs.append({**run, "datasets": datasets, "methods": methods, "notes": notes})
    return {"runs": runs, "records": kept + [{**r, "run": run["date"]} for r in records]}
