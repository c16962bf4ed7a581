"""The work of each stage of a run: features, neighbours, the choice of k, the map, the preview, the
clustering, self-labelling and the report (:class:`StageWork`, one method a stage).

:func:`semclust.core.run.run_pipeline` orders the stages, fingerprints their inputs and skips the done
ones; this module computes what a stage writes into the run folder.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from datetime import datetime
from pathlib import Path

import keras
import numpy as np

from semclust.core.clustering.classic import kmeans_probabilities
from semclust.core.clustering.methods import Inputs, auto_candidates, cluster_candidates
from semclust.core.clustering.scan import ClusterHeads, ScanResult, train_scan
from semclust.core.clustering.selection import CRITERION, Candidate, Selection
from semclust.core.clustering.selflabel import train_selflabel
from semclust.core.config import RunConfig, trains_scan
from semclust.core.images import IngestResult, InputError
from semclust.core.metrics import cluster_summary, evaluate, prototypes
from semclust.core.naming.names import names_to_json
from semclust.core.naming.suggest import suggest_names
from semclust.core.neighbours import mine_neighbours, neighbour_purity
from semclust.core.progress import CancelToken, Progress, ProgressCallback
from semclust.core.projection import checked_by, umap_2d, warm_up_umap
from semclust.core.representation.augment import StrongAugment, ViewAugment
from semclust.core.representation.backbones import get_spec
from semclust.core.representation.encoders import build_encoder
from semclust.core.representation.pretrained import download_progress
from semclust.core.representation.simclr import (
    embed_frozen,
    feature_size,
    l2_normalise,
    train_simclr,
)
from semclust.core.runfolder import artefacts as io
from semclust.core.runfolder.artefacts import RunPaths
from semclust.core.training import predict_batches, seed_everything


@dataclasses.dataclass
class StageWork:
    """What each stage of one run computes (one method a stage), from the state they share: the
    settled configuration, the images, the run folder's paths and the progress and cancel protocol.
    :func:`semclust.core.run.run_pipeline` decides which stages run; this class does their work."""

    config: RunConfig
    data: IngestResult
    paths: RunPaths
    progress: ProgressCallback
    cancel: CancelToken | None
    cache_dir: str | Path | None = None

    # --- stages -----------------------------------------------------------------------------
    def pretext(self) -> None:
        cfg, images = self.config, self.data.images
        seed_everything(cfg.seed)
        spec = get_spec(cfg.encoder.backbone)
        with download_progress(spec, cfg.encoder.weights, self.progress, "pretext", self.cache_dir):
            encoder = build_encoder(cfg.encoder, cfg.ingest.image_size, cfg.seed, self.cache_dir)
        if cfg.pretext.epochs > 0:
            result = train_simclr(
                images,
                encoder,
                cfg.pretext,
                self.data.is_grey,
                cfg.seed,
                checkpoint=self.paths.pretext_checkpoint,
                checkpoint_state=self.paths.pretext_checkpoint_state,
                progress=self.progress,
                cancel=self.cancel,
            )
            io.save_array(self.paths.embeddings, result.embeddings)
        io.save_weights(self.paths.encoder_weights, encoder)
        # Features (and a frozen backbone's embeddings) go straight to files: 4 GB each at 1M x 1024.
        shape = (len(images), feature_size(encoder, images))
        with io.array_file(self.paths.features, shape) as features:
            embed_frozen(encoder, images, self.cancel, out=features, on_batch=self._features_done)
            if cfg.pretext.epochs == 0:
                with io.array_file(self.paths.embeddings, shape) as embeddings:
                    l2_normalise(features, out=embeddings)
        for stale in (
            self.paths.pretext_checkpoint,
            self.paths.pretext_checkpoint_state,
            self.paths.pretext_checkpoint_owner,
        ):
            stale.unlink(missing_ok=True)

    def _features_done(self, done: int, total: int) -> None:
        self.progress(Progress("pretext", "progress", done, total, message="features"))

    def neighbours(self) -> None:
        embeddings = np.load(self.paths.embeddings, mmap_mode="r")
        nb = mine_neighbours(
            embeddings,
            self.config.neighbours.k,
            self.config.neighbours.batch_size,
            self.progress,
            self.cancel,
        )
        io.save_array(self.paths.neighbours, nb)

    def choose_k(self, fingerprint: str) -> None:
        """The number of clusters, chosen without labels over ``config.auto_clusters``. Each k's
        scores are kept in ``choose_k.partial.json`` (with the stage's ``fingerprint``) as they come,
        so that a choice cut short resumes where it stopped."""
        from semclust.core.clustering.choose_k import choose_clusters

        partial = self.paths.choose_k_partial
        known = _tried_ks(partial, fingerprint)
        if known:
            self.progress(Progress("choose_k", "progress", 0, 0, message=(
                f"resuming: {len(known)} numbers of clusters already tried")))  # fmt: skip

        def keep(k: int, scores: dict[str, float]) -> None:
            known[k] = scores
            io.write_json(partial, {"fingerprint": fingerprint, "scores": known})

        # A folder too small for the range was refused before its features (run_pipeline).
        choice = choose_clusters(
            self.inputs, self.config.auto_clusters, self.config.seed, self.progress,
            self.cancel, known, keep,
        )  # fmt: skip
        io.write_json(self.paths.choose_k, choice.to_dict())
        partial.unlink(missing_ok=True)

    def preview(self) -> None:
        """K-means on the embeddings: seconds, shown while the clustering stage runs, and reused as
        that stage's ``kmeans``."""
        self.progress(Progress("preview", "progress", 0, 1, message="K-means on the embeddings"))
        probs = kmeans_probabilities(
            self.inputs.embeddings, self.config.clusters, self.inputs.neighbours, self.config.seed
        )
        io.save_array(self.paths.preview, probs)

    def clustering(self) -> None:
        """The clustering stage: SCAN, another method of the registry, or ``auto``: the registry's
        candidates (with SCAN's heads where :func:`trains_scan`), the best kept by a label-free
        criterion (:mod:`.clustering.methods`, :mod:`.clustering.selection`)."""
        method = self.config.method
        if method not in ("scan", "auto"):
            self._other_method()
            return
        summary, given = {}, {}
        if trains_scan(self.config):
            start = time.perf_counter()
            result = self._train_scan()
            summary = {"best_head": result.best_head, "head_losses": result.losses}
            given["scan"] = Candidate(result.probabilities, time.perf_counter() - start)
        else:
            self.paths.scan_weights.unlink(missing_ok=True)  # no SCAN heads in this run
        if method == "scan":
            probabilities = given["scan"].probabilities
        else:
            selection = self._candidates(auto_candidates(len(self.data.paths)), given)
            probabilities = selection.best.probabilities
            summary["selection"] = selection.summary()
            self.progress(Progress("clustering", "progress", 1, 1, message=(
                f"kept {selection.chosen} ({CRITERION} {selection.best.scores[CRITERION]:.3f}; "
                + ", ".join(f"{n} {c.scores[CRITERION]:.3f}" for n, c in selection.candidates.items()
                            if n != selection.chosen) + ")"
            )))  # fmt: skip
        io.save_array(self.paths.clustering_probabilities, probabilities)
        io.write_json(self.paths.clustering_summary, summary)

    def _train_scan(self) -> ScanResult:
        """SCAN's heads on this run's representation; their weights are saved in the run folder."""
        cfg = self.config
        seed_everything(cfg.seed + 1)
        heads, data = self._heads(load=False)
        augment = (
            ViewAugment(cfg.pretext.augment, self.data.is_grey, seed=cfg.seed + 1)
            if heads.backbone is not None
            else None
        )
        views = None
        # Views only help an encoder trained to be invariant to them (SimCLR); an ImageNet backbone's
        # features of SimCLR crops drift from the clean ones (digits, frozen MobileNet: ACC fell).
        if heads.backbone is None and cfg.scan.views > 0 and cfg.pretext.epochs > 0:
            aug = ViewAugment(cfg.pretext.augment, self.data.is_grey, seed=cfg.seed + 1)
            views = np.concatenate(
                [
                    data[None].astype(np.float16),
                    self._augmented_features(aug, cfg.scan.views, "clustering"),
                ]
            )
        result = train_scan(
            data,
            np.load(self.paths.neighbours),
            heads,
            cfg.scan,
            cfg.seed,
            augment,
            self.progress,
            self.cancel,
            views,
        )
        io.save_weights(self.paths.scan_weights, heads)
        return result

    def _candidates(self, methods, given=None) -> Selection:
        """The registry's ``methods`` on this run's features, embeddings and neighbours (``kmeans``
        is the preview's)."""
        given = dict(given or {})
        if "kmeans" in methods:
            given["kmeans"] = Candidate(np.load(self.paths.preview), 0.0)
            methods = [m for m in methods if m != "kmeans"]

        def report(name: str, i: int, count: int) -> None:
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
            self.progress(Progress("clustering", "progress", i, count, message=f"trying {name}"))

        return cluster_candidates(
            self.inputs, self.config.clusters, self.config.seed, methods, report, given
        )

    @property
    def _cancel_check(self):
        """What the maps call between their epochs: raises Cancelled once the run is cancelled."""
        return self.cancel.raise_if_cancelled if self.cancel is not None else None

    @functools.cached_property
    def inputs(self) -> Inputs:
        """The clustering methods' inputs; the reduced map is computed once for the whole run."""
        return Inputs(
            np.load(self.paths.features, mmap_mode="r"),
            np.load(self.paths.embeddings, mmap_mode="r"),
            np.load(self.paths.neighbours),
            self.config.seed,
            check=self._cancel_check,
        )

    def selflabel(self) -> None:
        cfg = self.config
        self._set_aside_corrections()
        clustered = np.load(self.paths.clustering_probabilities)
        summary = io.read_json(self.paths.clustering_summary)
        chosen = (summary.get("selection") or {}).get("chosen", "scan")
        if cfg.selflabel.enabled and chosen != "scan":
            self.progress(Progress("selflabel", "progress", 0, 0, message=(
                f"self-labelling refines SCAN's heads; this run kept {chosen}'s clusters: skipped"
            )))  # fmt: skip
        if not cfg.selflabel.enabled or chosen != "scan":
            io.save_array(self.paths.probabilities, clustered)
            self.paths.classifier_weights.unlink(missing_ok=True)
            return
        seed_everything(cfg.seed + 2)
        heads, data = self._heads(load=True)
        best = summary["best_head"]
        strong = StrongAugment(cfg.selflabel.augment, self.data.is_grey, seed=cfg.seed + 2)
        views = None
        if heads.backbone is None:  # frozen backbone: train on features of strongly augmented views
            views = self._augmented_features(strong, cfg.selflabel.views, "selflabel")
            strong = None
        probs = train_selflabel(
            data, heads, best, cfg.selflabel, cfg.seed, views, strong, self.progress, self.cancel
        )
        io.save_weights(self.paths.classifier_weights, heads)
        io.save_array(self.paths.probabilities, probs)

    def projection(self) -> None:
        self.progress(Progress("projection", "progress", 0, 2, message=(
            "preparing UMAP (compiled on this machine's first run, then kept)")))  # fmt: skip
        warm_up_umap()
        self.progress(Progress("projection", "progress", 1, 2, message="computing UMAP"))
        with checked_by(self._cancel_check):
            embedded = umap_2d(  # stops within an epoch when the run is cancelled
                np.load(self.paths.embeddings, mmap_mode="r"),
                self.config.projection,
                self.config.seed,
                neighbours=np.load(self.paths.neighbours),
            )
        io.save_array(self.paths.umap, embedded)

    def report(self) -> None:
        probs = np.load(self.paths.probabilities)
        k = probs.shape[1]
        assignment, confidence = probs.argmax(axis=1), probs.max(axis=1)
        labels = self.data.labels
        typical = prototypes(assignment, confidence, k)
        io.write_json(self.paths.prototypes, {str(c): members for c, members in typical.items()})
        names, naming_note = suggest_names(
            self.config,
            np.load(self.paths.features, mmap_mode="r"),
            assignment,
            typical,
            self.cache_dir,
        )
        io.write_json(self.paths.names, names_to_json(names))
        if naming_note:  # said, never silent: which backbone can name clusters
            self.progress(Progress("report", "progress", message=naming_note))
        stage_record = io.read_json(self.paths.stages, {}) or {}
        stage_record.pop("report", None)  # an earlier report's
        metrics = {
            "n_images": len(assignment),
            "n_skipped": len(self.data.skipped),
            "clusters": k,
            "clusters_used": int(len(np.unique(assignment))),
            "stage_seconds": {s: v.get("seconds") for s, v in stage_record.items()},
            "per_cluster": [
                s.to_dict() for s in cluster_summary(assignment, k, labels, confidence)
            ],
        }
        summary = io.read_json(self.paths.clustering_summary, {}) or {}
        metrics["scan_best_head"] = summary.get("best_head")
        metrics["method"] = self.config.method
        selection = summary.get("selection") or {}
        metrics["method_kept"] = selection.get("chosen", self.config.method)
        if close := selection.get("close"):
            metrics["close_alternative"] = close
        if self.config.auto_clusters is not None:
            metrics["auto_clusters"] = {
                "range": list(self.config.auto_clusters), "chosen": k,
                "picked": self.config.picked_clusters is not None,
            }  # fmt: skip
        if labels is not None:
            metrics["neighbour_purity"] = neighbour_purity(np.load(self.paths.neighbours), labels)
            metrics.update(evaluate(labels, assignment, k))
            if self.config.selflabel.enabled:
                before = evaluate(
                    labels, np.load(self.paths.clustering_probabilities).argmax(axis=1), k
                )
                metrics["before_selflabel"] = {m: before[m] for m in ("acc", "nmi", "ari")}
        io.write_json(self.paths.metrics, metrics)

    # --- helpers ------------------------------------------------------------------------------
    def _other_method(self) -> None:
        """The clustering stage with one method of the registry, or DEC, instead of SCAN."""
        cfg = self.config
        if cfg.method == "dec":
            probs = self._dec()
        else:
            try:
                probs = self._candidates([cfg.method]).best.probabilities
            except ValueError as exc:  # Ward on too many images
                raise InputError(str(exc)) from None
        self.paths.scan_weights.unlink(missing_ok=True)  # no SCAN heads in this run
        io.save_array(self.paths.clustering_probabilities, probs)
        io.write_json(self.paths.clustering_summary, {"method": cfg.method})

    def _dec(self) -> np.ndarray:
        from semclust.core.clustering.dec import DECConfig, train_dec

        def as_clustering(event: Progress) -> None:  # DEC's events shown as the clustering stage's
            self.progress(dataclasses.replace(event, stage="clustering"))

        # Standardised features: with the paper's single scale DEC put all 600 digits into one
        # cluster on from-scratch SimCLR features (standardised: ACC 0.663, 10 clusters).
        dec = DECConfig(normalise="standardise")
        features = np.load(self.paths.features, mmap_mode="r")
        return train_dec(
            features, self.config.clusters, dec, self.config.seed, progress=as_clustering,
            cancel=self.cancel,
        ).probabilities  # fmt: skip

    def _set_aside_corrections(self) -> None:
        """New clusters make the user's edits of the old ones meaningless; keep them, but apart."""
        if self.paths.corrections.exists():
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            self.paths.corrections.replace(self.paths.root / f"corrections.before-{stamp}.json")

    def _encoder(self) -> keras.Model:
        """The representation stage's encoder, restored from the run folder (no download)."""
        return restore_encoder(self.config, self.paths)

    def _heads(self, load: bool) -> tuple[ClusterHeads, np.ndarray]:
        """Clustering heads on the frozen features or on the images (when the encoder is updated)."""
        cfg = self.config
        features = np.load(self.paths.features, mmap_mode="r")
        if cfg.scan.update_encoder:
            heads = ClusterHeads(
                cfg.clusters,
                cfg.scan.heads,
                backbone=self._encoder(),
                seed=cfg.seed,
                hidden=cfg.scan.hidden,
            )
            data = self.data.images
        else:
            heads = ClusterHeads(
                cfg.clusters, cfg.scan.heads, seed=cfg.seed, hidden=cfg.scan.hidden
            )
            data = features
        heads.adapt(features)
        heads(data[:2])  # build
        if load:
            io.load_weights(heads, self.paths.scan_weights)
        return heads, data

    def _augmented_features(
        self, augment: keras.layers.Layer, n_views: int, stage: str
    ) -> np.ndarray:
        """(n_views, N, F) float16 features of randomly augmented images, from the frozen encoder."""
        encoder = self._encoder()
        model = AugmentedEncoder(augment, encoder)
        views = []
        for v in range(n_views):
            self.progress(
                Progress(stage, "progress", v, n_views, message="features of augmented views")
            )
            feats = predict_batches(model.predict_on_batch, self.data.images, 256, self.cancel)
            views.append(feats.astype(np.float16))
        return np.stack(views)


def _tried_ks(partial: Path, fingerprint: str) -> dict[int, dict[str, float]]:
    """The scores of the ks a k choice cut short had tried (``choose_k.partial.json``), if that
    file is intact and was written for this stage's ``fingerprint``; anything else: none."""
    try:
        kept = io.read_json(partial) or {}
    except io.RunFolderError:  # cut short as it was written: start over
        return {}
    if not isinstance(kept, dict) or kept.get("fingerprint") != fingerprint:
        return {}
    scores = kept.get("scores")
    known = {}
    for k, values in scores.items() if isinstance(scores, dict) else ():
        if str(k).isdigit() and isinstance(values, dict) and all(map(_is_number, values.values())):
            known[int(k)] = {name: float(v) for name, v in values.items()}
    return known


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def restore_encoder(config: RunConfig, paths: RunPaths) -> keras.Model:
    """The encoder that computed a run's ``features.npy``: the run's backbone, layer and input size,
    its weights read from ``encoder.weights.h5`` (no download).

    Raises:
        RunFolderError: the weights file is damaged or does not fit the configuration.
    """
    encoder = build_encoder(
        dataclasses.replace(config.encoder, weights=None), config.ingest.image_size, config.seed
    )
    io.load_weights(encoder, paths.encoder_weights)
    return encoder


class AugmentedEncoder(keras.Model):
    """Applies a random augmentation, then the frozen encoder (for precomputed augmented features)."""

    def __init__(self, augment, encoder, **kwargs):
        super().__init__(**kwargs)
        self.augment, self.encoder = augment, encoder

    def call(self, x, training=False):
        return self.encoder(self.augment(x, training=True), training=False)
