"""The whole pipeline, stage by stage, over one run folder.

``run_pipeline`` runs ingest, pretext (SimCLR or a frozen pretrained backbone), neighbours, the UMAP
projection, a K-means preview, the clustering (SCAN's heads, another method, or the best of several),
self-labelling and the report. Each stage records a fingerprint of its inputs and
settings in ``stages.json``; a stage whose fingerprint and artefacts are already there is skipped, so an
interrupted run continues and changing a SCAN setting does not retrain the representation. What each
stage computes is in :mod:`semclust.core.stage_work`; this module orders the stages and guards the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from semclust.core.choices import default_image_size
from semclust.core.clustering.choose_k import K_CRITERION, candidate_ks
from semclust.core.clustering.methods import map_fits, uses_map
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
from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from semclust.core.projection import start_umap_warm_up
from semclust.core.representation.backbones import feature_layer, get_spec, resolve_backbone
from semclust.core.runfolder import artefacts as io
from semclust.core.runfolder import ownership
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths, is_inside
from semclust.core.runfolder.export import export_labels
from semclust.core.runfolder.results import RunData, load_run
from semclust.core.runfolder.stages import (
    Stages,
    keep_own_checkpoint,
    set_aside_damaged_corrections,
    write_images,
)
from semclust.core.stage_work import StageWork
from semclust.core.training import (
    quiet_backend,
    use_all_devices,
)

__all__ = ["InputError", "run_pipeline"]


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
        claimed = ownership.claim_run_folder(paths)
    except RunFolderError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:  # /proc/x, a read-only disk, no permission
        raise InputError(_unwritable(out, exc)) from None
    with contextlib.ExitStack() as held:
        try:  # one run at a time in a run folder (the command line's or the app's)
            held.enter_context(ownership.run_folder_lock(paths))
        except (RunFolderError, OSError) as exc:  # OSError: made read-only since its last run
            # Given back only when no run holds its lock (a run that does owns the folder now).
            if not (paths.root / ownership.LOCK).exists():
                ownership.release_run_folder(paths, claimed)
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
            if config.auto_clusters is not None:  # said now, not once the features are made
                try:
                    candidate_ks(config.auto_clusters, n)
                except ValueError as exc:
                    raise InputError(f"{exc} Choose a number of clusters instead.") from None
        except InputError:  # a run that cannot start leaves nothing behind, and an older run intact
            ownership.release_run_folder(paths, claimed)
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
        ctx = StageWork(config, data, paths, progress, cancel, cache_dir)
        keep_own_checkpoint(paths, fp_pretext)
        if not stages.record.is_done("pretext", fp_pretext):  # the map will be made again too
            start_umap_warm_up()  # UMAP compiles while the backbone works
        stages.run(
            "pretext",
            fp_pretext,
            [paths.encoder_weights, paths.embeddings, paths.features],
            ctx.pretext,
        )
        stages.run("neighbours", fp_neigh, [paths.neighbours], ctx.neighbours)
        fp_proj = fingerprint(fp_neigh, config.projection, config.seed)
        fp_choose = (
            None
            if config.auto_clusters is None
            else fingerprint(fp_neigh, config.auto_clusters, config.seed, K_CRITERION)
        )
        fp_preview, fp_clustering = _clustering_prints(config, fp_pretext, fp_neigh)
        clustering_artefacts = [paths.clustering_probabilities, paths.clustering_summary]
        if trains_scan(config):
            clustering_artefacts.append(paths.scan_weights)
        # The k choice and the clustering's UMAP candidates cluster a 10-d map of the embeddings: it
        # is begun now on a core of its own, while the 2-D map, the preview and Ward are made.
        if fp_choose is not None:
            map_needed = map_fits(n) and stages.will_run("choose_k", fp_choose, [paths.choose_k])
        else:
            map_needed = uses_map(config.method, n) and (
                stages.will_run("preview", fp_preview, [paths.preview])
                or stages.will_run("clustering", fp_clustering, clustering_artefacts)
            )
        if map_needed and ctx.inputs.reduce_beside():
            held.callback(ctx.inputs.release)  # every core back when the run ends, however it ends
        # The map needs no number of clusters: it comes before the k choice (17 s on 10,000 images).
        stages.run("projection", fp_proj, [paths.umap], ctx.projection)
        if fp_choose is not None:
            stages.run("choose_k", fp_choose, [paths.choose_k], lambda: ctx.choose_k(fp_choose))
            best = int(io.read_json(paths.choose_k)["best"])
            ctx.config = config = config.replace(clusters=config.picked_clusters or best)
            io.write_json(
                paths.config, {**config.to_dict(), "_meta": _meta(folder)}
            )  # the k chosen
            fp_preview, fp_clustering = _clustering_prints(config, fp_pretext, fp_neigh)
        else:
            progress(
                Progress("choose_k", "skipped", 1, 1, message=f"{config.clusters} clusters asked")
            )
        fp_self = fingerprint(fp_clustering, config.selflabel)
        stages.run("preview", fp_preview, [paths.preview], ctx.preview)
        stages.run("clustering", fp_clustering, clustering_artefacts, ctx.clustering)
        stages.run("selflabel", fp_self, [paths.probabilities], ctx.selflabel)
        stages.run_always(
            "report",
            ctx.report,
            lambda seconds: stages.record.mark_done("report", fp_self, seconds),
        )
        run = load_run(out)
        try:
            export_labels(run, paths.labels_csv)
        except RunFolderError as exc:  # a damaged added.json (semclust assign): the run is fine
            said = f"{exc} labels.csv lists the run's own images; assign that folder again."
            progress(Progress("report", "progress", 1, 1, message=said))
            export_labels(run, paths.labels_csv, with_added=False)
        return load_run(out)


def _clustering_prints(config: RunConfig, fp_pretext: str, fp_neigh: str) -> tuple[str, str]:
    """The preview's and the clustering's fingerprints, for the number of clusters in ``config``."""
    fp_preview = fingerprint(
        fp_pretext, config.clusters, config.seed, "kmeans of the embeddings", "half its cluster"
    )  # unchanged since its confidence reads the neighbours too: a run folder made before keeps its
    # preview, and so its clusters and corrections (made again when the neighbours are: LATER_STAGES)
    method = [] if config.method == "scan" else [config.method]  # SCAN runs keep their old prints
    return fp_preview, fingerprint(fp_neigh, config.scan, config.clusters, config.seed, *method)


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
