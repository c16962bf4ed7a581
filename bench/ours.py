"""Runs semclust itself (``core.run.run_pipeline``) on a folder, the way a user does.

Kept apart from the quality loop so that the rest of the benchmarks work while ``core.run`` is missing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import evaluate


def pipeline_available() -> bool:
    """True when ``core.run.run_pipeline`` can be imported."""
    try:
        from semclust.core.run import run_pipeline  # noqa: F401
    except ImportError:
        return False
    return True


def scratch_config(clusters: int, seed: int, **overrides: Any):
    """Our from-scratch setup: resnet_small, SimCLR pretext, 32x32, config defaults otherwise."""
    from semclust.core.config import RunConfig

    changes = {"ingest.image_size": 32, "selflabel.enabled": False}
    changes.update(overrides)
    return RunConfig(clusters=clusters, seed=seed).replace(**changes)


def pretrained_config(clusters: int, seed: int, weights: str, **overrides: Any):
    """Our setup on a frozen ImageNet MobileNet (no pretext training), 96x96."""
    from semclust.core.config import RunConfig

    changes = {
        "encoder.backbone": "mobilenet",
        "encoder.weights": weights,
        "pretext.epochs": 0,
        "ingest.image_size": 96,
        "selflabel.enabled": False,
    }
    changes.update(overrides)
    return RunConfig(clusters=clusters, seed=seed).replace(**changes)


def config_summary(config) -> dict[str, Any]:
    """The settings that decide a run's cost and quality, as dotted keys."""
    return {
        "encoder.backbone": config.encoder.backbone,
        "ingest.image_size": config.ingest.image_size,
        "pretext.epochs": config.pretext.epochs,
        "pretext.batch_size": config.pretext.batch_size,
        "neighbours.k": config.neighbours.k,
        "scan.epochs": config.scan.epochs,
        "scan.batch_size": config.scan.batch_size,
        "scan.heads": config.scan.heads,
        "scan.hidden": config.scan.hidden,
        "selflabel.enabled": config.selflabel.enabled,
        "selflabel.epochs": config.selflabel.epochs,
    }


@dataclass
class OursResult:
    """Scores and timings of one pipeline run."""

    metrics: dict
    seconds: dict[str, float]
    skipped: list[str] = field(default_factory=list)
    reported: dict = field(default_factory=dict)


def run_ours(
    folder: Path,
    out: Path,
    config,
    previous: OursResult | None = None,
    cache_dir: Path | None = None,
) -> OursResult:
    """Runs the pipeline into ``out`` and scores it against the folder's class subfolders.

    Stage seconds are timed here from the progress events (``started`` to ``finished``), which covers
    every stage including ingest and report. Stages the pipeline skips (their artefacts exist from
    ``previous``, a run in the same folder) and ingest (then a cache read) are charged with
    ``previous``'s seconds, so that "+ self-labelling" costs the whole chain from an empty cache.
    """
    from semclust.core.progress import STAGES
    from semclust.core.run import run_pipeline

    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    skipped: list[str] = []

    def progress(event) -> None:
        if event.kind == "started":
            started[event.stage] = time.perf_counter()
        elif event.kind == "finished" and event.stage in started:
            seconds[event.stage] = time.perf_counter() - started.pop(event.stage)
        elif event.kind == "skipped":
            skipped.append(event.stage)

    data = run_pipeline(folder, out, config, progress=progress, cache_dir=cache_dir)
    reported = json.loads((Path(out) / "metrics.json").read_text())
    if previous is not None:  # ingest re-reads the warm cache: charge the first run's decode too
        for stage in [*skipped, "ingest"]:
            if stage in previous.seconds:
                seconds[stage] = previous.seconds[stage]
    # Stages kept from an earlier run in this folder (--keep-runs): the seconds they took then.
    done = json.loads((Path(out) / "stages.json").read_text())
    for stage in skipped:
        if stage not in seconds and "seconds" in done.get(stage, {}):
            seconds[stage] = done[stage]["seconds"]
    if data.true_labels is None:
        raise ValueError(f"{folder} has no class subfolders to score against.")
    metrics = evaluate(np.asarray(data.true_labels), np.asarray(data.predicted))
    order = {s: i for i, s in enumerate(STAGES)}
    seconds = dict(sorted(seconds.items(), key=lambda kv: order.get(kv[0], len(order))))
    return OursResult(metrics=metrics, seconds=seconds, skipped=sorted(skipped), reported=reported)
