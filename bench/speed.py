"""Speed and memory of each stage: representation training throughput, neighbour mining, UMAP, ingest,
and a whole run.

Every measurement runs in a fresh spawned process (:func:`bench.timing.run_isolated`), so that its peak
resident memory is its own and one measurement's TensorFlow state cannot slow the next.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.timing import peak_rss_mb, run_isolated

#: The speed benchmark's measurements, each a key of :func:`run_speed`'s results.
PARTS = ("throughput", "neighbours", "umap", "ingest", "run")


@dataclass(frozen=True)
class SpeedSettings:
    """Sizes of the speed benchmark.

    Attributes:
        throughput_images: images fed to each representation learner (real images, upscaled).
        throughput_steps: timed training batches per encoder (after one untimed warm-up batch).
        encoders: (name, backbone, image size, batch size) of our encoders to time.
        neighbour_sizes: numbers of embeddings for neighbour mining (exact below
            ``core.neighbours.EXACT_THRESHOLD``, approximate above).
        neighbour_data: the embeddings mined: "uniform" random unit vectors, "clustered" ones or both.
        umap_sizes: numbers of random embeddings for UMAP.
        dim: embedding dimension.
        k: neighbours per image.
        ingest_dataset: dataset whose folder is ingested (10,000 files for animals10k).
        run_dataset: dataset of the whole-run memory measurement.
        run_overrides: dotted RunConfig changes for that run (short epochs: memory, not quality).
        parts: which measurements to run (a subset of :data:`PARTS`).
    """

    throughput_images: int = 2048
    throughput_steps: int = 4
    encoders: tuple[tuple[str, str, int, int], ...] = (
        ("ours resnet_small 32px", "resnet_small", 32, 256),
        ("ours resnet50v2 32px", "resnet50v2", 32, 256),
        ("ours mobilenet 96px", "mobilenet", 96, 256),
    )
    recipe_batch: int = 512
    neighbour_sizes: tuple[int, ...] = (10_000, 30_000, 50_000, 100_000, 1_000_000)
    neighbour_data: tuple[str, ...] = ("clustered", "uniform")
    umap_sizes: tuple[int, ...] = (10_000, 50_000, 100_000)
    dim: int = 512
    k: int = 20
    ingest_dataset: str = "animals10k"
    ingest_size: int = 32
    run_dataset: str = "animals10k"
    run_overrides: tuple[tuple[str, Any], ...] = (
        ("pretext.epochs", 1),
        ("scan.epochs", 2),
        ("selflabel.epochs", 1),
    )
    parts: tuple[str, ...] = PARTS


class _BatchClock:
    """A Keras callback timing training batches after the first ``warmup`` ones."""

    def __new__(cls, warmup: int = 1):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times: list[float] = []

            def on_train_batch_begin(self, batch, logs=None):
                self._t = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self._t)

            @property
            def steady(self) -> list[float]:
                return self.times[warmup:]

        return Clock()


def _real_images(dataset: str, n: int, cache_dir: str) -> np.ndarray:
    from bench.datasets import load_folder, write_dataset

    images, _, _ = load_folder(write_dataset(dataset, cache_dir))
    reps = -(-n // len(images))
    images = np.concatenate([images] * reps)[:n]
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def throughput_ours(
    backbone: str, size: int, batch: int, n: int, steps: int, weights: str | None, cache_dir: str
) -> dict:
    """Steady-state SimCLR training images/s of one of our encoders (two views per image)."""
    import keras

    from bench.baselines import to_rgb_batch
    from semclust.core.config import AugmentConfig, EncoderConfig
    from semclust.core.representation.augment import ViewAugment
    from semclust.core.representation.encoders import build_encoder
    from semclust.core.representation.simclr import SimCLRModel
    from semclust.core.training import seed_everything

    seed_everything(0)
    x = to_rgb_batch(_real_images("animals10k", n, cache_dir), size)
    enc = build_encoder(
        EncoderConfig(backbone=backbone, weights=weights if backbone == "mobilenet" else None), size
    )
    model = SimCLRModel(enc, ViewAugment(AugmentConfig(), grey=True, seed=0), 128, 0.1)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4))
    model(x[:2], training=False)
    clock = _BatchClock()
    m = min(len(x), batch * (steps + 1))
    model.fit(x[:m], batch_size=batch, epochs=1, verbose=0, callbacks=[clock])
    return _rate(clock.steady, batch, enc.count_params())


def throughput_recipe(batch: int, n: int, steps: int, cache_dir: str) -> dict:
    """Steady-state training images/s of the keras.io recipe's representation learner."""
    import keras

    from bench.kerasio import (
        RecipeConfig,
        RepresentationLearner,
        make_augmentation,
        make_encoder,
        make_preprocessing,
        to_recipe_input,
    )

    keras.utils.set_random_seed(0)
    cfg = RecipeConfig()
    x = to_recipe_input(_real_images("animals10k", n, cache_dir)[..., :1])
    enc = make_encoder(cfg.target_size, cfg.representation_dim)
    learner = RepresentationLearner(
        enc, make_preprocessing(x, cfg.target_size), make_augmentation(0), cfg
    )
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, cfg.decay_steps, alpha=cfg.decay_alpha
    )
    learner.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay))
    clock = _BatchClock()
    m = min(len(x), batch * (steps + 1))
    learner.fit(x[:m], batch_size=batch, epochs=1, verbose=0, callbacks=[clock])
    return _rate(clock.steady, batch, enc.count_params())


def _rate(times: list[float], batch: int, params: int) -> dict:
    if not times:
        return {
            "images_per_second": float("nan"),
            "seconds_per_batch": float("nan"),
            "params": params,
        }
    per_batch = float(np.median(times))
    return {
        "images_per_second": batch / per_batch,
        "seconds_per_batch": per_batch,
        "batches": len(times),
        "params": params,
    }


def _random_embeddings(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered_embeddings(
    n: int, dim: int, clusters: int = 100, latent: int = 64, spread: float = 1.5, seed: int = 0
) -> np.ndarray:
    """Unit vectors with cluster structure, like a network's embeddings of a photo collection.

    Cluster centres (unequal sizes) in a ``latent``-dimensional subspace, points spread around them in
    it, plus a little noise in every dimension. With the defaults 82% (20k points) to 89% (100k) of each point's 20 exact
    neighbours share its cluster (as SCAN's neighbours on real images), where uniform random vectors,
    the other benchmark set, have no structure at all: the hardest case for an approximate search.
    """
    rng = np.random.default_rng(seed)
    labels = rng.choice(clusters, size=n, p=rng.dirichlet(np.full(clusters, 2.0)))
    centres = rng.standard_normal((clusters, latent), dtype=np.float32)
    basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0].T.astype(np.float32)
    noise = np.float32(0.3 * np.sqrt(latent / dim))
    x = np.empty((n, dim), np.float32)
    for start in range(0, n, 65_536):
        lab = labels[start : start + 65_536]
        z = centres[lab] + np.float32(spread) * rng.standard_normal((len(lab), latent), np.float32)
        x[start : start + len(lab)] = z @ basis
        x[start : start + len(lab)] += noise * rng.standard_normal((len(lab), dim), np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _recall(found: np.ndarray, x: np.ndarray, k: int, sample: int = 1000) -> float:
    """Mean fraction of the exact k neighbours found, over ``sample`` random rows."""

    rows = np.random.default_rng(1).choice(len(x), size=min(sample, len(x)), replace=False)
    hits = []
    for start in range(0, len(rows), 100):  # 100 rows at a time: bounded memory at 1M
        part = rows[start : start + 100]
        sims = x[part] @ x.T
        sims[np.arange(len(part)), part] = -np.inf
        exact = np.argpartition(sims, -k, axis=1)[:, -k:]
        hits += [len(set(a) & set(b)) / k for a, b in zip(found[part], exact)]
    return float(np.mean(hits))


def neighbours_job(
    n: int, dim: int, k: int, data: str = "uniform", exact_threshold: int | None = None
) -> dict:
    """Times top-k mining on ``n`` unit vectors (``data``: "uniform" or "clustered"), the way a run
    mines them (exact below the threshold, approximate above), with its recall against exact search on
    1,000 random rows; memory growth measured around the call only."""
    import tracemalloc

    from semclust.core.neighbours import EXACT_THRESHOLD, HnswSettings, mine_neighbours

    h = HnswSettings()
    threshold = EXACT_THRESHOLD if exact_threshold is None else exact_threshold
    impl = (
        "exact (blocked)"
        if n <= threshold
        else f"faiss PCA({h.pca_variance:.0%} var),HNSW{h.m},Refine(SQfp16) efC={h.ef_construction} "
        f"efS={h.ef_search} x{h.refine_factor}"
    )
    x = _random_embeddings(n, dim) if data == "uniform" else _clustered_embeddings(n, dim)
    rss0 = peak_rss_mb()
    tracemalloc.start()
    cpu, t = time.process_time(), time.perf_counter()
    idx = mine_neighbours(x, k, batch_size=512, exact_threshold=threshold)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    growth = max(0.0, peak_rss_mb() - rss0)  # before the recall check's own memory
    assert np.asarray(idx).shape == (n, k)
    return {
        "impl": impl,
        "data": data,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "recall": _recall(idx, x, k),
        "traced_peak_mb": traced_peak / 2**20,
        "rss_growth_mb": growth,
        "input_mb": x.nbytes / 2**20,
    }


def umap_job(n: int, dim: int, mined: bool = True) -> dict:
    """Times ``core.projection.umap_2d`` on ``n`` clustered unit vectors (seeded, as a run is).

    Args:
        mined: give UMAP the neighbours the run has already mined (what a run does), instead of letting
            UMAP search its own (what it did before). Mining is timed apart: a run needs it for SCAN anyway.

    A seeded UMAP runs single-threaded; numba's compilation (a tiny fit first) is reported apart.
    """
    from semclust.core.config import ProjectionConfig
    from semclust.core.neighbours import mine_neighbours
    from semclust.core.projection import umap_2d

    cfg = ProjectionConfig()

    def knn(x):
        return mine_neighbours(x, k=20) if mined else None

    t = time.perf_counter()
    small = _clustered_embeddings(300, dim, seed=1)
    umap_2d(small, cfg, neighbours=knn(small))
    warmup = time.perf_counter() - t
    x = _clustered_embeddings(n, dim)
    t = time.perf_counter()
    nb = knn(x)
    mining = time.perf_counter() - t
    rss0 = peak_rss_mb()
    t = time.perf_counter()
    y = umap_2d(x, cfg, neighbours=nb)
    seconds = time.perf_counter() - t
    assert y.shape == (n, 2)
    return {
        "knn": "mined by the run" if mined else "UMAP's own search",
        "seconds": seconds,
        "mining_seconds": mining if mined else None,
        "warmup_seconds": warmup,
        "rss_growth_mb": max(0.0, peak_rss_mb() - rss0),
    }


def ingest_job(folder: str, size: int, cache_dir: str) -> dict:
    """Ingests ``folder`` twice with an empty cache: decoding, then cache reading."""
    from semclust.core.config import IngestConfig
    from semclust.core.images import ingest

    out = {}
    for name in ("first", "second"):
        t = time.perf_counter()
        res = ingest(folder, IngestConfig(image_size=size), cache_dir=cache_dir)
        out[name] = time.perf_counter() - t
    out["images"] = len(res.paths)
    out["cached_second"] = int(res.cached)
    return out


def whole_run_job(folder: str, out: str, overrides: dict, weights: str) -> dict:
    """One pipeline run (short epochs); returns stage seconds and peak RSS."""
    import json

    from bench.ours import scratch_config
    from semclust.core.run import run_pipeline

    config = scratch_config(10, 0, **{"selflabel.enabled": True, **overrides})
    t = time.perf_counter()
    run_pipeline(folder, out, config, cache_dir=Path(out).parent / "cache")
    seconds = time.perf_counter() - t
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    return {
        "seconds": seconds,
        "stage_seconds": metrics.get("stage_seconds", {}),
        "acc": metrics.get("acc"),
    }


def run_speed(settings: SpeedSettings, bench=None, log: Callable[[str], None] = print) -> dict:
    """Runs the measurements named in ``settings.parts``; returns their results only.

    A measurement whose core function is missing or fails is recorded with its error.
    """
    from bench.datasets import write_dataset
    from bench.settings import BenchSettings

    bench = bench or BenchSettings()
    cache = str(bench.cache_dir)
    write_dataset("animals10k", cache)
    results: dict[str, Any] = {
        "throughput": [],
        "neighbours": [],
        "umap": [],
        "ingest": None,
        "run": None,
    }

    def attempt(label: str, fn, *args):
        try:
            value, peak = run_isolated(fn, *args)
            return value, peak, None
        except RuntimeError as exc:
            log(f"  {label}: not measured ({exc})")
            return None, None, str(exc)

    if "throughput" in settings.parts:
        for label, backbone, size, batch in settings.encoders:
            v, peak, err = attempt(
                label,
                throughput_ours,
                backbone,
                size,
                batch,
                settings.throughput_images,
                settings.throughput_steps,
                bench.weights,
                cache,
            )
            results["throughput"].append(
                {"encoder": label, "batch": batch, "peak_rss_mb": peak, "error": err, **(v or {})}
            )
            if v:
                log(
                    f"  {label}: {v['images_per_second']:.1f} images/s (batch {batch}, peak RSS {peak:.0f} MiB)"
                )
        label = "keras.io recipe ResNet50V2 32px"
        v, peak, err = attempt(
            label,
            throughput_recipe,
            settings.recipe_batch,
            settings.throughput_images,
            settings.throughput_steps,
            cache,
        )
        results["throughput"].append(
            {
                "encoder": label,
                "batch": settings.recipe_batch,
                "peak_rss_mb": peak,
                "error": err,
                **(v or {}),
            }
        )
        if v:
            log(
                f"  {label}: {v['images_per_second']:.1f} images/s (batch {settings.recipe_batch}, peak RSS {peak:.0f} MiB)"
            )

    if "neighbours" in settings.parts:
        for n in settings.neighbour_sizes:
            for data in settings.neighbour_data:
                v, peak, err = attempt(
                    f"neighbours {n} {data}", neighbours_job, n, settings.dim, settings.k, data
                )
                results["neighbours"].append(
                    {"n": n, "data": data, "peak_rss_mb": peak, "error": err, **(v or {})}
                )
                if v:
                    log(
                        f"  neighbours n={n} {data}: {v['seconds']:.2f} s, recall {v['recall']:.3f}, "
                        f"peak RSS {peak:.0f} MiB ({v['impl']})"
                    )
    if "umap" in settings.parts:
        for n in settings.umap_sizes:
            for mined in (False, True):
                v, peak, err = attempt(f"UMAP {n}", umap_job, n, settings.dim, mined)
                results["umap"].append(
                    {"n": n, "mined": mined, "peak_rss_mb": peak, "error": err, **(v or {})}
                )
                if v:
                    log(
                        f"  UMAP n={n} ({v['knn']}): {v['seconds']:.1f} s, +{v['rss_growth_mb']:.0f} MiB RSS"
                    )

    if "ingest" in settings.parts:
        folder = str(write_dataset(settings.ingest_dataset, cache))
        with tempfile.TemporaryDirectory() as tmp:
            v, peak, err = attempt("ingest", ingest_job, folder, settings.ingest_size, tmp)
        results["ingest"] = {
            "dataset": settings.ingest_dataset,
            "peak_rss_mb": peak,
            "error": err,
            **(v or {}),
        }
        if v:
            log(
                f"  ingest {v['images']} files: first {v['first']:.2f} s, second {v['second']:.2f} s"
            )

    if "run" in settings.parts:
        folder = str(write_dataset(settings.run_dataset, cache))
        with tempfile.TemporaryDirectory() as tmp:
            v, peak, err = attempt(
                "whole run",
                whole_run_job,
                folder,
                str(Path(tmp) / "run"),
                dict(settings.run_overrides),
                bench.weights,
            )
        results["run"] = {
            "dataset": settings.run_dataset,
            "overrides": dict(settings.run_overrides),
            "peak_rss_mb": peak,
            "error": err,
            **(v or {}),
        }
        if v:
            log(
                f"  whole run on {settings.run_dataset}: {v['seconds']:.1f} s, peak RSS {peak:.0f} MiB"
            )
    return {k: v for k, v in results.items() if k in settings.parts}


def merge_speed(
    previous: dict | None, results: dict, command: str, date: str, dim: int, notes: list[str]
) -> dict:
    """The saved speed results after a run of some :data:`PARTS`: those parts replace their old results,
    and each part remembers the command and date that measured it."""
    previous = previous or {}
    runs = previous.get("part_runs") or {
        part: {"command": previous.get("command", "?"), "date": previous.get("date", "?")}
        for part in previous.get("results", {})
    }
    runs.update({part: {"command": command, "date": date} for part in results})
    return {
        "results": {**previous.get("results", {}), **results},
        "part_runs": runs,
        "dim": dim,
        "notes": notes,
    }
