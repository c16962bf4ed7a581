"""The whole pipeline, stage by stage, over one run folder.

``run_pipeline`` runs ingest, pretext (SimCLR or a frozen pretrained backbone), neighbours, the UMAP
projection, a K-means preview, the clustering (SCAN's heads, another method, or the best of several),
self-labelling and the report. Each stage records a fingerprint of its inputs and
settings in ``stages.json``; a stage whose fingerprint and artefacts are already there is skipped, so an
interrupted run continues and changing a SCAN setting does not retrain the representation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from semclust.core.choices import default_image_size
from semclust.core.clustering.classic import kmeans_probabilities
from semclust.core.clustering.methods import (
    AUTO_CANDIDATES,
    CRITERION,
    Candidate,
    Inputs,
    Selection,
    cluster_candidates,
)
from semclust.core.clustering.scan import ClusterHeads, ScanResult, train_scan
from semclust.core.clustering.selflabel import train_selflabel
from semclust.core.config import RunConfig, fingerprint, trains_scan
from semclust.core.images import (
    FolderSurvey,
    IngestResult,
    InputError,
    ingest,
    require_folder,
    survey_folder,
    typical_side,
)
from semclust.core.metrics import cluster_summary, evaluate
from semclust.core.naming.names import names_to_json
from semclust.core.naming.suggest import suggest_names
from semclust.core.neighbours import mine_neighbours, neighbour_purity
from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from semclust.core.projection import umap_2d
from semclust.core.representation.augment import StrongAugment, ViewAugment
from semclust.core.representation.backbones import feature_layer, get_spec, resolve_backbone
from semclust.core.representation.encoders import build_encoder
from semclust.core.representation.pretrained import download_progress
from semclust.core.representation.simclr import (
    embed_frozen,
    feature_size,
    l2_normalise,
    train_simclr,
)
from semclust.core.runfolder import artefacts as io
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths, is_inside
from semclust.core.runfolder.export import export_labels
from semclust.core.runfolder.results import RunData, load_run
from semclust.core.runfolder.stages import (
    Stages,
    keep_own_checkpoint,
    set_aside_damaged_corrections,
    write_images,
)
from semclust.core.training import (
    predict_batches,
    quiet_backend,
    seed_everything,
    use_all_devices,
)

__all__ = ["InputError", "run_pipeline"]

PROTOTYPES_PER_CLUSTER = 25


def run_pipeline(
    folder: str | Path,
    out: str | Path,
    config: RunConfig = RunConfig(),
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    cache_dir: str | Path | None = None,
) -> RunData:
    """Clusters the images of ``folder`` into ``config.clusters`` clusters; every artefact goes to ``out``.

    Raises:
        InputError: a readable problem with the input (missing or empty folder, too few images, run
            folder inside the image folder, bad settings).
        Cancelled: the cancel token was set; finished stages are kept.
        FloatingPointError: a loss became NaN.
    """
    try:
        config.validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    folder, out = require_folder(folder), Path(out).expanduser()
    if is_inside(out, folder):
        raise InputError(
            "Choose a run folder outside the image folder: the images are never written to."
        )
    try:  # after the folder checks: a mistyped folder never fetches weights first
        config = _available_backbone(config, folder, progress, cache_dir)
    except ValueError as exc:  # WeightsUnavailable too: it says which file to provide
        raise InputError(str(exc)) from None
    paths = RunPaths(out)
    try:  # before anything is written: a folder of the user's files is refused
        claimed = io.claim_run_folder(paths)
    except RunFolderError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:  # /proc/x, a read-only disk, no permission
        raise InputError(_unwritable(out, exc)) from None
    with contextlib.ExitStack() as held:
        try:  # one run at a time in a run folder (the command line's or the app's)
            held.enter_context(io.run_folder_lock(paths))
        except (RunFolderError, OSError) as exc:  # OSError: made read-only since its last run
            io.release_run_folder(paths, claimed)
            message = str(exc) if isinstance(exc, RunFolderError) else _unwritable(out, exc)
            raise InputError(message) from None
        leftovers = io.remove_leftovers(paths)  # of a run killed while writing
        if leftovers:
            progress(Progress("ingest", "progress", 0, 0, message=(
                f"removed {len(leftovers)} unfinished file(s) of an interrupted run"
            )))  # fmt: skip
        quiet_backend()
        use_all_devices()
        stages = Stages(paths, progress, cancel)
        if stages.record.problem:
            progress(Progress("ingest", "progress", 0, 0, message=stages.record.problem))

        try:  # ingest writes to the image cache only; the run folder is written once it succeeded
            data = stages.run_always(
                "ingest",
                lambda: ingest(
                    folder, config.ingest, cache_dir=cache_dir, progress=progress, cancel=cancel
                ),
            )
            n = len(data.paths)
            if n < config.clusters:
                raise InputError(
                    f"Only {n} usable image{'s' if n != 1 else ''} for {config.clusters} clusters: "
                    "choose fewer clusters."
                )
            if n < 3:
                raise InputError(f"At least 3 images are needed; {data.root} has {n} usable.")
        except InputError:  # a run that cannot start leaves nothing behind, and an older run intact
            io.release_run_folder(paths, claimed)
            raise
        io.adopt_renamed_artefacts(paths)  # an older version's scan.json, scan_probabilities.npy

        if config.encoder.layer == "auto":  # settled once the images are read, and recorded
            config = _settle_feature_layer(config, data, progress)
        fp_ingest = fingerprint(config.ingest, data.paths, _digest(data.images))
        # From here the folder describes these images: an artefact whose stage record names other
        # images is stale (load_run refuses it) until its stage has run again.
        write_images(paths, data, fp_ingest)
        io.write_json(paths.config, {**config.to_dict(), "_meta": _meta(folder)})
        set_aside_damaged_corrections(paths, progress)
        stages.record.images = fp_ingest
        stages.record.mark_done("ingest", fp_ingest, stages.last_seconds)  # for stage_seconds
        fp_pretext = fingerprint(fp_ingest, config.encoder, config.pretext, config.seed)
        fp_neigh = fingerprint(fp_pretext, config.neighbours)
        ctx = _Context(config, data, paths, progress, cancel, cache_dir)
        keep_own_checkpoint(paths, fp_pretext)
        stages.run(
            "pretext",
            fp_pretext,
            [paths.encoder_weights, paths.embeddings, paths.features],
            ctx.pretext,
        )
        stages.run("neighbours", fp_neigh, [paths.neighbours], ctx.neighbours)
        if config.auto_clusters is not None:
            fp_choose = fingerprint(
                fp_neigh, config.auto_clusters, config.seed, "choose_k by modularity"
            )
            stages.run("choose_k", fp_choose, [paths.choose_k], ctx.choose_k)
            best = int(io.read_json(paths.choose_k)["best"])
            ctx.config = config = config.replace(clusters=config.picked_clusters or best)
            io.write_json(
                paths.config, {**config.to_dict(), "_meta": _meta(folder)}
            )  # the k chosen
        else:
            progress(
                Progress("choose_k", "skipped", 1, 1, message=f"{config.clusters} clusters asked")
            )

        fp_proj = fingerprint(fp_neigh, config.projection, config.seed)
        fp_preview = fingerprint(
            fp_pretext, config.clusters, config.seed, "kmeans of the embeddings"
        )
        method = (
            [] if config.method == "scan" else [config.method]
        )  # SCAN runs keep their old prints
        fp_clustering = fingerprint(fp_neigh, config.scan, config.clusters, config.seed, *method)
        fp_self = fingerprint(fp_clustering, config.selflabel)
        stages.run("projection", fp_proj, [paths.umap], ctx.projection)
        stages.run("preview", fp_preview, [paths.preview], ctx.preview)
        clustering_artefacts = [paths.clustering_probabilities, paths.clustering_summary]
        if trains_scan(config):
            clustering_artefacts.append(paths.scan_weights)
        stages.run("clustering", fp_clustering, clustering_artefacts, ctx.clustering)
        stages.run("selflabel", fp_self, [paths.probabilities], ctx.selflabel)
        stages.run_always("report", ctx.report)
        stages.record.mark_done("report", fp_self, stages.last_seconds)
        export_labels(load_run(out), paths.labels_csv)
        return load_run(out)


@dataclasses.dataclass
class _Context:
    """The state shared by the stages of one run; each method is one stage."""

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
            embed_frozen(encoder, images, self.cancel, out=features)
            if cfg.pretext.epochs == 0:
                with io.array_file(self.paths.embeddings, shape) as embeddings:
                    l2_normalise(features, out=embeddings)
        for stale in (
            self.paths.pretext_checkpoint,
            self.paths.pretext_checkpoint_state,
            self.paths.pretext_checkpoint_owner,
        ):
            stale.unlink(missing_ok=True)

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

    def choose_k(self) -> None:
        """The number of clusters, chosen without labels over ``config.auto_clusters``."""
        from semclust.core.clustering.choose_k import choose_clusters

        try:
            choice = choose_clusters(
                self.inputs, self.config.auto_clusters, self.config.seed, self.progress, self.cancel
            )
        except ValueError as exc:  # too few images for the range
            raise InputError(str(exc)) from None
        io.write_json(self.paths.choose_k, choice.to_dict())

    def preview(self) -> None:
        """K-means on the embeddings: seconds, shown while the clustering stage runs, and reused as
        that stage's ``kmeans``."""
        self.progress(Progress("preview", "progress", 0, 1, message="K-means on the embeddings"))
        probs = kmeans_probabilities(
            np.load(self.paths.embeddings, mmap_mode="r"), self.config.clusters, self.config.seed
        )
        io.save_array(self.paths.preview, probs)

    def clustering(self) -> None:
        """The clustering stage: SCAN, another method of the registry, or ``auto``: the registry's
        candidates (with SCAN's heads where :func:`trains_scan`), the best kept by a label-free
        criterion (:mod:`.clustering.methods`)."""
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
            selection = self._candidates(AUTO_CANDIDATES, given)
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
            self.progress(
                Progress("clustering", "progress", i, count, message=f"{name} on the features")
            )

        return cluster_candidates(
            self.inputs, self.config.clusters, self.config.seed, methods, report, given
        )

    @functools.cached_property
    def inputs(self) -> Inputs:
        """The clustering methods' inputs; the reduced map is computed once for the whole run."""
        return Inputs(
            np.load(self.paths.features, mmap_mode="r"),
            np.load(self.paths.embeddings, mmap_mode="r"),
            np.load(self.paths.neighbours),
            self.config.seed,
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
        self.progress(Progress("projection", "progress", 0, 1, message="computing UMAP"))
        io.save_array(
            self.paths.umap,
            umap_2d(
                np.load(self.paths.embeddings, mmap_mode="r"),
                self.config.projection,
                self.config.seed,
                neighbours=np.load(self.paths.neighbours),
            ),
        )

    def report(self) -> None:
        probs = np.load(self.paths.probabilities)
        k = probs.shape[1]
        assignment, confidence = probs.argmax(axis=1), probs.max(axis=1)
        labels = self.data.labels
        prototypes = {}
        for c in range(k):
            members = np.flatnonzero(assignment == c)
            prototypes[str(c)] = members[np.argsort(-confidence[members], kind="stable")][
                :PROTOTYPES_PER_CLUSTER
            ].tolist()
        io.write_json(self.paths.prototypes, prototypes)
        names, naming_note = suggest_names(
            self.config,
            np.load(self.paths.features, mmap_mode="r"),
            assignment,
            {int(c): members for c, members in prototypes.items()},
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
        metrics["method_kept"] = (summary.get("selection") or {}).get("chosen", self.config.method)
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
        cfg = self.config
        encoder = build_encoder(
            dataclasses.replace(cfg.encoder, weights=None), cfg.ingest.image_size, cfg.seed
        )
        io.load_weights(encoder, self.paths.encoder_weights)
        return encoder

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


class AugmentedEncoder(keras.Model):
    """Applies a random augmentation, then the frozen encoder (for precomputed augmented features)."""

    def __init__(self, augment, encoder, **kwargs):
        super().__init__(**kwargs)
        self.augment, self.encoder = augment, encoder

    def call(self, x, training=False):
        return self.encoder(self.augment(x, training=True), training=False)


def _unwritable(out: Path, exc: OSError) -> str:
    return (
        f"The run folder {out} cannot be written ({exc.strerror or exc}); choose another run folder "
        "(nothing was written)."
    )


def _settle_feature_layer(
    config: RunConfig, data: IngestResult, progress: ProgressCallback
) -> RunConfig:
    """``auto`` becomes ``mid`` or ``final`` (:func:`semclust.core.representation.backbones.feature_layer`)."""
    spec = get_spec(config.encoder.backbone)
    frozen = config.pretext.epochs == 0 and config.encoder.weights is not None
    side = typical_side(FolderSurvey(data.root, data.paths, []))
    layer = feature_layer(spec, frozen, data.is_grey, side)
    if layer == "mid":
        progress(Progress("pretext", "progress", 0, 0, message=(
            f"small grey images ({side} px): features from {spec.name}'s mid-level layer "
            f"{spec.mid_layer}, which describes strokes and shapes better than its last layer"
        )))  # fmt: skip
    return config.replace(**{"encoder.layer": layer})


def _available_backbone(
    config: RunConfig, folder: Path, progress: ProgressCallback, cache_dir: str | Path | None
) -> RunConfig:
    """The config with a backbone whose weights are here or downloadable; else a fallback, said why,
    at the image size a plan would give it for this folder's images."""
    spec, weights, note = resolve_backbone(
        config.encoder.backbone, config.encoder.weights, cache_dir, progress
    )
    if not note:
        return config
    changes = {"encoder.backbone": spec.name, "encoder.weights": weights}
    if spec.pretrained:
        side = typical_side(survey_folder(folder, config.ingest.labels_from_subfolders))
        changes["ingest.image_size"] = default_image_size(spec.name, True, side)
    else:  # from scratch: the representation must be learnt
        changes["ingest.image_size"] = default_image_size(spec.name, pretrained=False)
        changes["pretext.epochs"] = config.pretext.epochs or RunConfig().pretext.epochs
    progress(Progress("ingest", "progress", 0, 0, message=note))
    fallback = config.replace(**changes)
    fallback.validate()
    return fallback


def _digest(images: np.ndarray, chunk: int = 4096) -> str:
    """sha256 of the pixels, read a chunk of images at a time (they may be memory-mapped)."""
    h = hashlib.sha256()
    for start in range(0, len(images), chunk):
        h.update(np.ascontiguousarray(images[start : start + chunk]).tobytes())
    return h.hexdigest()


def _meta(root: Path) -> dict:
    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:  # another Keras backend
        tf_version = None
    return {
        "image_folder": str(root),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "numpy": np.__version__,
            "tensorflow": tf_version,
        },
        "machine": platform.platform(),
    }
