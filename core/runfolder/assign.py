"""New images assigned to a finished run, without retraining (``semclust assign RUN FOLDER``).

The images of a folder (searched recursively, read and decoded as a run reads its own:
:func:`semclust.core.images.ingest`) go through the run's own representation: the encoder restored from
``encoder.weights.h5`` (:func:`semclust.core.stage_work.restore_encoder`: the run's backbone, layer and
input size) gives their features (:func:`~semclust.core.representation.simclr.embed_frozen`), and
l2-normalising them gives their embeddings, as the run's frozen-backbone ``pretext`` stage does. Each
new image then gets:

- a cluster, by a vote of its ``k`` nearest neighbours among the run's images (``k`` of the run's
  neighbours stage), each neighbour voting for its cluster of now (:attr:`RunData.assignment`: the
  user's corrections included); a tie goes to the cluster whose voters are the more similar. A vote
  rather than the run's clustering heads, so that it works alike for every method a run may have kept
  (SCAN, K-means, a Gaussian mixture, Ward, DEC);
- a confidence: the winning cluster's share of the ``k`` votes;
- a place on the run's map: the mean of its neighbours' map coordinates, which approximates UMAP's
  ``transform`` (UMAP places a new point at the weighted mean of its neighbours' coordinates, then
  optimises it a few epochs).

A run whose representation was learnt here (SimCLR) keeps its encoder but not SimCLR's projection head,
whose outputs are its ``embeddings.npy``: its new images are compared with the run's l2-normalised
``features.npy`` instead (``space`` is ``"features"`` in the artefact; ``"embeddings"`` otherwise).

The result is an artefact of its own (``added.json`` and ``added_embeddings-<generation>.npy``, see
:mod:`semclust.core.runfolder.added`), written while the run folder's lock is held; nothing else of the
run folder and nothing of the user's folders is ever written. Assigning a folder again replaces its
earlier additions; ``labels.csv`` lists the added images after the run's own, with ``added`` = 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from semclust.core.runfolder.added import (
    AddedFolder,
    added_json,
    current_features,
    map_positions,
    vote,
    write_additions,
)
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths
from semclust.core.runfolder.ownership import run_folder_lock
from semclust.core.runfolder.results import RunData, load_run


@dataclass(frozen=True)
class AssignResult:
    """What :func:`assign_folder` did.

    Attributes:
        added: the folder's images as assigned (and stored).
        written: ``added.json``.
        space: see :attr:`semclust.core.runfolder.added.Additions.space`.
        notes: lines worth showing (earlier additions replaced or dropped, the space used).
    """

    added: AddedFolder
    written: Path
    space: str
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.added.skipped


def assign_folder(
    run_dir: str | Path,
    folder: str | Path,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    cache_dir: str | Path | None = None,
) -> AssignResult:
    """Assigns the images of ``folder`` to the finished run in ``run_dir``; see the module docstring.

    Progress comes as the events of the stages whose work it repeats: ``ingest`` (decoding),
    ``pretext`` (features) and ``neighbours``. The run folder's lock is held throughout, so a run
    writing into the folder and an assignment exclude each other.

    Args:
        run_dir: a finished run folder.
        folder: the new images (searched recursively; only ever read).
        progress: receives :class:`~semclust.core.progress.Progress` events.
        cancel: checked between batches; raises :class:`~semclust.core.progress.Cancelled`.
        cache_dir: semclust's cache root (decoded images), default ``~/.cache/semclust``.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run folder, or its run has not finished.
        InputError: ``folder`` is missing, not a folder, or holds no readable image.
        RunFolderError: a file of the run folder is damaged, or another run holds its lock.
        Cancelled: the cancel token was set; nothing was written.
    """
    from semclust.core.images import InputError, ingest, require_folder

    paths = RunPaths(Path(run_dir).expanduser())
    if not paths.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json).")
    root = require_folder(folder)
    if root == paths.root.resolve():
        raise InputError(f"{root} is the run folder itself; choose a folder of new images.")
    with run_folder_lock(paths):
        run = load_run(paths.root)
        space, base = _reference(run)
        config = run.config
        ingest_config = dataclasses.replace(
            config.ingest, labels_csv=None, labels_from_subfolders=False
        )
        data = ingest(root, ingest_config, cache_dir=cache_dir, progress=progress, cancel=cancel)
        queries = _embed(run, data.images, progress, cancel)
        if queries.shape[1] != base.shape[1]:
            raise RunFolderError(
                f"{paths.encoder_weights} gives {queries.shape[1]} features where the run's have "
                f"{base.shape[1]}; the run folder is inconsistent (run it again)."
            )
        neighbours, similarity = _search(queries, base, config.neighbours.k, progress, cancel)
        cluster, confidence = vote(neighbours, similarity, run.assignment, run.n_clusters)
        added = AddedFolder(
            root=data.root,
            paths=list(data.paths),
            cluster=cluster,
            confidence=confidence,
            map=map_positions(neighbours, run.umap),
            neighbours=neighbours,
            similarity=similarity,
            skipped=list(data.skipped),
            assigned=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if cancel is not None:
            cancel.raise_if_cancelled()  # the last moment before anything is written
        notes = write_additions(run, added, queries, space, config.neighbours.k)
    if space == "features":
        notes.append(
            "this run learnt its representation (SimCLR), whose projection head is not kept: "
            "neighbours were found among the run's features"
        )
    return AssignResult(added=added, written=added_json(paths), space=space, notes=notes)


def _reference(run: RunData) -> tuple[str, np.ndarray]:
    """The space the neighbours are searched in and the run's vectors there (memory-mapped)."""
    paths = run.paths
    features = current_features(run, "new images cannot go through its representation")
    if run.config.pretext.epochs == 0:
        if run.embeddings is None:
            raise FileNotFoundError(
                f"The run in {paths.root} keeps no current embeddings.npy; run it again."
            )
        return "embeddings", run.embeddings
    return "features", features


def _embed(
    run: RunData, images: np.ndarray, progress: ProgressCallback, cancel: CancelToken | None
) -> np.ndarray:
    """The new images' unit vectors: the run's encoder's features, l2-normalised (the frozen
    ``pretext`` stage's own steps)."""
    from semclust.core.representation.simclr import embed_frozen, l2_normalise
    from semclust.core.stage_work import restore_encoder

    progress(Progress("pretext", "started", 0, len(images), message="features of the new images"))
    encoder = restore_encoder(run.config, run.paths)

    def done(step: int, total: int) -> None:
        progress(Progress("pretext", "progress", step, total, message="features"))

    features = embed_frozen(encoder, images, cancel, on_batch=done)
    progress(Progress("pretext", "finished", len(images), len(images), message="features done"))
    return l2_normalise(features)


def _search(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[np.ndarray, np.ndarray]:
    from semclust.core.neighbours import query_neighbours

    progress(Progress("neighbours", "started", 0, 1, message="neighbours among the run's images"))
    found = query_neighbours(queries, base, k, cancel)
    progress(Progress("neighbours", "finished", 1, 1, message="neighbours found"))
    return found
