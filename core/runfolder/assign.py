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

The result is an artefact of its own, written atomically while the run folder's lock is held; nothing
else of the run folder and nothing of the user's folders is ever written:

- ``added.json``: ``{"format": 1, "run_images": <images.json's fingerprint>, "space", "k",
  "embeddings_file", "folders": [{"root", "assigned", "paths", "cluster", "confidence", "map",
  "neighbours", "similarity", "skipped"}]}``. ``root`` is the folder's absolute path and ``paths`` are
  relative to it (POSIX), as ``images.json`` holds the run's own; ``map`` is ``null`` for a run without
  a map; ``neighbours`` are indices into the run's images; ``skipped`` lists ``[path, reason]``.
- ``added_embeddings-<generation>.npy``: (M, D) float32 unit vectors of every added image, the
  folders' rows one after the other in the order of ``folders``. A new generation is written beside
  the old one and ``added.json``, which names it, replaced last, so the two always agree.

Assigning a folder again replaces its earlier additions (the same absolute folder), never duplicates
them. ``labels.csv`` (:func:`semclust.core.runfolder.export.export_labels`) lists the added images after
the run's own, with their absolute paths and ``added`` = 1; their clusters are voted again there from
the stored neighbours and the run's assignment of that moment, so corrections made since count. When the
run is redone on other images, the additions no longer match it and are left out (said in the log).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from semclust.core.runfolder.artefacts import (
    RunFolderError,
    RunPaths,
    atomic_path,
    load_array,
    read_json,
    run_folder_lock,
    write_json,
)
from semclust.core.runfolder.results import RunData, load_run, stale_artefacts, unsafe_image_path

log = logging.getLogger(__name__)

#: The version of ``added.json``'s layout.
ADDED_FORMAT = 1
_EMBEDDINGS_FILE = re.compile(r"added_embeddings-[0-9a-f]{12}\.npy")


@dataclass(frozen=True)
class AddedFolder:
    """The images of one folder assigned to a run.

    Attributes:
        root: the folder, absolute.
        paths: image paths relative to ``root`` (POSIX style), in the order of every array.
        cluster: (M,) cluster of each image when it was assigned.
        confidence: (M,) the winning cluster's share of the neighbours' votes then.
        map: (M, 2) place on the run's map, or ``None`` when the run has no map.
        neighbours: (M, k) indices of the nearest run images, most similar first.
        similarity: (M, k) their cosine similarities.
        skipped: (relative path, reason) of the files that could not be read.
        assigned: when (ISO 8601, UTC).
    """

    root: Path
    paths: list[str]
    cluster: np.ndarray
    confidence: np.ndarray
    map: np.ndarray | None
    neighbours: np.ndarray
    similarity: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    assigned: str = ""

    def absolute_paths(self) -> list[Path]:
        return [self.root / rel for rel in self.paths]

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "assigned": self.assigned,
            "paths": list(self.paths),
            "cluster": [int(c) for c in self.cluster],
            "confidence": [round(float(c), 4) for c in self.confidence],
            "map": None if self.map is None else np.round(self.map, 5).tolist(),
            "neighbours": self.neighbours.tolist(),
            "similarity": np.round(self.similarity, 5).tolist(),
            "skipped": [list(s) for s in self.skipped],
        }


@dataclass
class Additions:
    """Everything ``added.json`` holds, checked against its run.

    Attributes:
        folders: the folders assigned, in the order of the embeddings' rows.
        space: ``"embeddings"`` (the run's ``embeddings.npy``) or ``"features"`` (its l2-normalised
            ``features.npy``, for a run that learnt its representation): what the neighbours were
            searched in.
        k: neighbours per image.
        embeddings_file: the name of the embeddings' file in the run folder, or ``None``.
        run_images: the fingerprint of the run's image list the additions were made against.
        problem: why the additions do not apply to the run any more (it was redone on other images),
            else ``""``; ``folders`` is then empty.
    """

    folders: list[AddedFolder] = field(default_factory=list)
    space: str = "embeddings"
    k: int = 0
    embeddings_file: str | None = None
    run_images: str | None = None
    problem: str = ""

    def __len__(self) -> int:
        return sum(len(f.paths) for f in self.folders)

    def embeddings(self, paths: RunPaths) -> np.ndarray:
        """(M, D) unit vectors of every added image, rows in the order of ``folders``.

        Raises:
            RunFolderError: the file is missing, damaged, or does not match ``added.json``.
        """
        where = paths.root / (self.embeddings_file or "added_embeddings.npy")
        array = load_array(where) if self.embeddings_file else None
        if array is None or array.ndim != 2 or len(array) != len(self):
            raise RunFolderError(f"{where} is missing or does not match {added_json(paths)}.")
        return array


@dataclass(frozen=True)
class AssignResult:
    """What :func:`assign_folder` did.

    Attributes:
        added: the folder's images as assigned (and stored).
        written: ``added.json``.
        space: see :attr:`Additions.space`.
        notes: lines worth showing (earlier additions replaced or dropped, the space used).
    """

    added: AddedFolder
    written: Path
    space: str
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.added.skipped


def added_json(paths: RunPaths) -> Path:
    """Where a run folder keeps its added images."""
    return paths.root / "added.json"


def vote(
    neighbours: np.ndarray, similarity: np.ndarray, assignment: np.ndarray, n_clusters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's cluster by a vote of its neighbours, and the winner's share of the votes.

    Args:
        neighbours: (M, k) indices into ``assignment``.
        similarity: (M, k) cosine similarities of those neighbours (break ties: the cluster whose
            voters are the more similar in sum wins).
        assignment: (N,) cluster of every run image.
        n_clusters: the number of clusters (``assignment``'s values lie below it).

    Returns:
        (M,) clusters and (M,) confidences in (0, 1].
    """
    m, k = neighbours.shape
    if m == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32)
    voted = np.asarray(assignment)[neighbours]
    rows = np.repeat(np.arange(m), k)
    counts = np.zeros((m, n_clusters), dtype=np.float64)
    sims = np.zeros((m, n_clusters), dtype=np.float64)
    np.add.at(counts, (rows, voted.ravel()), 1.0)
    np.add.at(sims, (rows, voted.ravel()), np.asarray(similarity, np.float64).ravel())
    # Counts first; the voters' summed similarity (in [-k, k]) mapped into [0, 1) breaks ties.
    score = counts + (np.clip(sims, -k, k) + k) / (2 * k + 1)
    score[counts == 0] = -1.0
    cluster = score.argmax(axis=1)
    return cluster, (counts[np.arange(m), cluster] / k).astype(np.float32)


def map_positions(neighbours: np.ndarray, umap: np.ndarray | None) -> np.ndarray | None:
    """The mean of each row's neighbours' map coordinates: an approximation of UMAP's ``transform``
    (which starts a new point there, then optimises it). ``None`` for a run without a map."""
    if umap is None:
        return None
    return np.asarray(umap, np.float64)[neighbours].mean(axis=1).astype(np.float32)


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
        notes = _store(run, added, queries, space, config.neighbours.k)
    if space == "features":
        notes.append(
            "this run learnt its representation (SimCLR), whose projection head is not kept: "
            "neighbours were found among the run's features"
        )
    return AssignResult(added=added, written=added_json(paths), space=space, notes=notes)


def _reference(run: RunData) -> tuple[str, np.ndarray]:
    """The space the neighbours are searched in and the run's vectors there (memory-mapped)."""
    paths = run.paths
    images_fp = (read_json(paths.images, {}) or {}).get("fingerprint")
    stale = stale_artefacts(paths, images_fp if isinstance(images_fp, str) else None)
    missing = [
        p.name
        for p in (paths.features, paths.encoder_weights)
        if not p.is_file() or p.name in stale
    ]
    if missing:
        raise FileNotFoundError(
            f"The run in {paths.root} keeps no current {' or '.join(missing)}: new images cannot go "
            "through its representation; run it again to compute them."
        )
    features = np.load(paths.features, mmap_mode="r", allow_pickle=False)
    if features.ndim != 2 or len(features) != len(run.image_paths):
        raise RunFolderError(f"{paths.features} does not match the run's images.")
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


def _store(run: RunData, added: AddedFolder, vectors: np.ndarray, space: str, k: int) -> list[str]:
    """Writes ``added.json`` and a new embeddings generation, replacing ``added``'s folder's earlier
    additions; call it holding the run folder's lock. Returns notes for the user."""
    paths, notes = run.paths, []
    try:
        earlier = read_additions(run)
    except RunFolderError as exc:
        raise RunFolderError(
            f"{exc} Delete {added_json(paths).name} to start the additions afresh."
        ) from None
    kept: list[AddedFolder] = []
    rows: list[np.ndarray] = []
    if earlier is not None and earlier.problem:
        notes.append(f"earlier additions dropped: {earlier.problem}")
    elif earlier is not None and earlier.folders and earlier.space != space:
        notes.append("earlier additions dropped: they were made in another space")
    elif earlier is not None and earlier.folders:
        old = earlier.embeddings(paths)
        start = 0
        for f in earlier.folders:
            stop = start + len(f.paths)
            if f.root == added.root:
                notes.append(f"replaced the {len(f.paths)} images added from {f.root} before")
            else:
                kept.append(f)
                rows.append(np.asarray(old[start:stop], np.float32))
            start = stop
    folders = [*kept, added]
    generation = uuid.uuid4().hex[:12]
    embeddings_file = f"added_embeddings-{generation}.npy"
    with atomic_path(paths.root / embeddings_file, suffix=".npy") as tmp:
        np.save(tmp, np.concatenate([*rows, np.asarray(vectors, np.float32)]))
    write_json(
        added_json(paths),
        {
            "format": ADDED_FORMAT,
            "run_images": _images_fingerprint(paths),
            "space": space,
            "k": int(k),
            "embeddings_file": embeddings_file,
            "folders": [f.to_dict() for f in folders],
        },
    )
    for entry in paths.root.glob("added_embeddings-*.npy"):  # earlier generations
        if entry.name != embeddings_file and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
    for pattern in (".added_embeddings-*", f".{added_json(paths).name}.*"):  # a killed write's
        for entry in paths.root.glob(pattern):
            if entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
    return notes


def _images_fingerprint(paths: RunPaths) -> str | None:
    fp = (read_json(paths.images, {}) or {}).get("fingerprint")
    return fp if isinstance(fp, str) else None


def read_additions(run: RunData) -> Additions | None:
    """The run's added images (``added.json``), checked; ``None`` when it has none.

    Additions made against another image list of the run (it was redone since) come back with
    ``problem`` set and no folders.

    Raises:
        RunFolderError: ``added.json`` is damaged or unsafe; the message names it.
    """
    where = added_json(run.paths)
    data = read_json(where)
    if data is None:
        return None
    try:
        additions = _parse(data, len(run.image_paths))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise RunFolderError(f"{where} is damaged: {exc}") from None
    if additions.run_images != _images_fingerprint(run.paths):
        additions.problem = (
            f"{where} was made for another image list of the run (it was run again since); "
            "assign the folders again"
        )
        log.warning("%s.", additions.problem)
        additions.folders = []
    return additions


def _parse(data: object, n: int) -> Additions:
    if not isinstance(data, dict) or data.get("format") != ADDED_FORMAT:
        raise ValueError(f"not an additions file of format {ADDED_FORMAT}")
    space, k, file = data["space"], data["k"], data["embeddings_file"]
    if space not in ("embeddings", "features") or not isinstance(k, int) or k < 1:
        raise ValueError("its space or k is not one this app writes")
    if file is not None and not (isinstance(file, str) and _EMBEDDINGS_FILE.fullmatch(file)):
        raise ValueError("its embeddings file is not one this app names")
    run_images = data.get("run_images")
    if run_images is not None and not isinstance(run_images, str):
        raise ValueError("its run fingerprint is not text")
    if not isinstance(data["folders"], list):
        raise ValueError("no list of folders")
    folders = [_parse_folder(f, n) for f in data["folders"]]
    return Additions(folders, space, k, file, run_images)


def _parse_folder(f: dict, n: int) -> AddedFolder:
    root, rels = f["root"], f["paths"]
    if not isinstance(root, str) or not Path(root).is_absolute():
        raise ValueError("a folder that is not an absolute path")
    if not isinstance(rels, list):
        raise ValueError("no list of image paths")
    for rel in rels:
        problem = unsafe_image_path(rel)
        if problem:
            raise ValueError(f"it names {rel!r}, {problem}")
    m = len(rels)
    neighbours = np.asarray(f["neighbours"], dtype=np.int64).reshape(m, -1)
    similarity = np.asarray(f["similarity"], dtype=np.float32).reshape(m, -1)
    cluster = np.asarray(f["cluster"], dtype=np.int64).reshape(m)
    confidence = np.asarray(f["confidence"], dtype=np.float32).reshape(m)
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= n):
        raise ValueError("it points at run images that do not exist")
    if similarity.shape != neighbours.shape or not np.all(np.isfinite(similarity)):
        raise ValueError("its similarities do not match its neighbours")
    umap = None
    if f.get("map") is not None:
        umap = np.asarray(f["map"], dtype=np.float32).reshape(m, 2)
        if not np.all(np.isfinite(umap)):
            raise ValueError("its map positions are not finite")
    skipped = [(str(p), str(r)) for p, r in f.get("skipped", [])]
    return AddedFolder(
        Path(root), list(rels), cluster, confidence, umap, neighbours.astype(np.int32),
        similarity, skipped, str(f.get("assigned", "")),
    )  # fmt: skip


def added_rows(run: RunData, additions: Additions | None) -> list[tuple[Path, int, float]]:
    """Every added image as (absolute path, cluster, confidence), voted from its stored neighbours
    and the run's assignment of now (corrections made since included)."""
    if additions is None:
        return []
    assignment = run.assignment
    rows: list[tuple[Path, int, float]] = []
    for f in additions.folders:
        cluster, confidence = vote(f.neighbours, f.similarity, assignment, run.n_clusters)
        rows += [
            (path, int(c), float(p))
            for path, c, p in zip(f.absolute_paths(), cluster, confidence, strict=True)
        ]
    return rows
