"""Real images (sklearn digits) written as a folder, a synthetic finished run built from them quickly,
and a fast stand-in for ``core.run.run_pipeline`` with the same signature and protocol."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
from PIL import Image

from semclust.core.config import RunConfig
from semclust.core.progress import STAGES, CancelToken, Progress, ignore_progress
from semclust.core.runfolder.artefacts import (
    RunPaths,
    StageRecord,
    save_array,
    write_csv,
    write_json,
)
from semclust.core.runfolder.results import RunData, load_run
from semclust.gui._core import InputError, evaluate, survey_folder


class EventLoopProbe:
    """A 10 ms QTimer that records the gaps between its ticks: how long the event loop was held up."""

    INTERVAL_MS = 10

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def latency_ms(self, percentile: float = 100) -> float:
        """The given percentile of the gaps, less the timer interval, in milliseconds."""
        return (np.percentile(self.gaps, percentile) - self.INTERVAL_MS / 1e3) * 1e3


def write_digits(root: Path, per_class: int | None = 30, size: int = 32) -> Path:
    """Writes sklearn's real handwritten digits as PNGs in class subfolders ``root/<digit>/``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255 / 16)).astype(np.uint8)
    counts: dict[int, int] = {}
    for img, y in zip(images, digits.target, strict=True):
        n = counts.get(int(y), 0)
        if per_class is not None and n >= per_class:
            continue
        counts[int(y)] = n + 1
        folder = root / str(y)
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(img).resize((size, size), Image.NEAREST)
        pil.save(folder / f"{n:04d}.png")
    return root


def _read_gray(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((8, 8)), dtype=np.float32).ravel() / 255.0


@functools.lru_cache(maxsize=8)
def _synthetic(folder: str, k: int, seed: int, n_neighbours: int):
    """The arrays of a synthetic run (cached: tests and the fake pipeline reuse them)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    survey = survey_folder(folder)
    files, skipped, feats = [], [], []
    for rel in survey.files:
        try:
            feats.append(_read_gray(Path(folder) / rel))
            files.append(rel)
        except OSError as exc:
            skipped.append((rel, f"cannot read: {exc}"))
    x = np.stack(feats)
    emb = PCA(n_components=min(16, x.shape[1]), random_state=0).fit_transform(x)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9
    km = KMeans(k, n_init=1, random_state=seed).fit(emb)
    logits = -8.0 * km.transform(emb)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    kn = min(n_neighbours, len(files) - 1)
    nn = NearestNeighbors(n_neighbors=kn + 1).fit(emb).kneighbors(emb, return_distance=False)
    umap = PCA(n_components=2, random_state=0).fit_transform(emb)
    labels = [f.split("/")[0] for f in files] if survey.has_labels else None
    return files, skipped, labels, emb, prob, nn, umap


def make_run(folder: Path, out: Path, config: RunConfig | None = None) -> RunData:
    """A finished run folder with the core's layout, computed in about a second from the real images."""
    config = config or RunConfig()
    paths = RunPaths(out)
    k = config.clusters
    files, skipped, labels, emb, prob, nn, umap = _synthetic(
        str(Path(folder).resolve()), k, config.seed, config.neighbours.k
    )
    pred, conf = prob.argmax(1), prob.max(1)
    protos = {c: [int(i) for i in np.flatnonzero(pred == c)[np.argsort(-conf[pred == c])][:8]]
              for c in range(k)}  # fmt: skip
    metrics = {"n_images": len(files), "clusters_used": int(len(set(pred.tolist())))}
    if labels:
        metrics.update(evaluate(labels, pred, k))
    write_json(paths.config, config.to_dict())
    write_json(
        paths.images, {"root": str(Path(folder).resolve()), "paths": files, "labels": labels}
    )
    write_csv(paths.skipped, ("path", "reason"), skipped)
    save_array(paths.embeddings, emb.astype(np.float32))
    save_array(paths.neighbours, nn)
    save_array(paths.probabilities, prob.astype(np.float32))
    save_array(paths.umap, umap.astype(np.float32))
    write_json(paths.prototypes, {str(c): v for c, v in protos.items()})
    write_json(paths.metrics, metrics)
    return load_run(out)


def fake_pipeline(folder, out, config: RunConfig, progress=ignore_progress,
                  cancel: CancelToken | None = None, *, steps: int = 4, delay: float = 0.005,
                  slow_stage: str | None = None, fail: tuple[str, BaseException] | None = None) -> RunData:  # fmt: skip
    """``run_pipeline``'s signature and protocol, without training: a few events per stage, then
    :func:`make_run`. Stages already done in ``out`` are skipped; cancel raises between steps."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise InputError(f"The folder {folder} does not exist.")
    survey = survey_folder(folder)
    if not survey.files:
        raise InputError(f"No images found in {folder}.")
    if len(survey.files) < config.clusters:
        raise InputError(f"Only {len(survey.files)} images for {config.clusters} clusters.")
    out.mkdir(parents=True, exist_ok=True)
    record = StageRecord(RunPaths(out))
    result = None
    for stage in STAGES:
        if record.is_done(stage, "fake"):
            progress(Progress(stage, "skipped", message="already done"))
            continue
        n = steps * 50 if stage == slow_stage else steps
        progress(Progress(stage, "started", total=n))
        t0 = time.monotonic()
        for step in range(1, n + 1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if fail and fail[0] == stage and step == 2:
                raise fail[1]
            time.sleep(delay)
            partial = None
            if stage == "clustering":
                rng = np.random.default_rng(step)
                partial = {
                    "cluster_sizes": rng.multinomial(
                        len(survey.files), [1 / config.clusters] * config.clusters
                    ).tolist()
                }
            progress(Progress(stage, "progress", step=step, total=n,
                              losses={"loss": 2.0 / step, "entropy": 1.0 + 0.1 * step} if stage in ("pretext", "clustering", "selflabel") else {},
                              partial=partial))  # fmt: skip
        paths = RunPaths(out)
        if stage == "projection":  # the real pipeline's map (and images.json), no clusters yet
            make_run(folder, out, config)
            paths.probabilities.unlink()
        if (
            stage == "preview"
        ):  # the real pipeline's K-means preview: probabilities of a run to come
            save_array(paths.preview, make_run(folder, out, config).probabilities)
            paths.probabilities.unlink()
        if stage == "report":
            result = make_run(folder, out, config)
        record.mark_done(stage, "fake", time.monotonic() - t0)
        progress(Progress(stage, "finished", step=n, total=n))
    return result if result is not None else load_run(out)
