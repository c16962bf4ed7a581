"""The images added to a finished run (``semclust assign``): the artefact, read and written.

:mod:`semclust.core.runfolder.assign` computes the additions; this module keeps them in the run folder,
written atomically under the run folder's lock, and reads them back, checked (a run folder may come
from elsewhere). Nothing else of the run folder, and nothing of the user's folders, is written:

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
the run's own (:func:`added_rows`), with their absolute paths and ``added`` = 1; their clusters are voted
again there from the stored neighbours and the run's assignment of that moment (:func:`vote`), so
corrections made since count. When the run is redone on other images, the additions no longer match it
and are left out (said in the log and in :attr:`Additions.problem`).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semclust.core.metrics import neighbour_counts
from semclust.core.runfolder.artefacts import (
    RunFolderError,
    RunPaths,
    atomic_path,
    load_array,
    read_json,
    write_json,
)
from semclust.core.runfolder.image_list import stale_artefacts, unsafe_image_path
from semclust.core.runfolder.results import RunData

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
    counts = neighbour_counts(assignment, neighbours, n_clusters).astype(np.float64)
    sims = np.zeros((m, n_clusters), dtype=np.float64)
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


def write_additions(
    run: RunData, added: AddedFolder, vectors: np.ndarray, space: str, k: int
) -> list[str]:
    """Writes ``added.json`` and a new embeddings generation, replacing ``added``'s folder's earlier
    additions; call it holding the run folder's lock (:func:`~.ownership.run_folder_lock`).

    Args:
        run: the run.
        added: the folder's images as assigned.
        vectors: (M, D) their unit vectors, in the order of ``added.paths``.
        space: see :attr:`Additions.space`.
        k: neighbours per image.

    Returns:
        notes for the user (earlier additions replaced or dropped).

    Raises:
        RunFolderError: the earlier additions are damaged (nothing is written).
    """
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
            "run_images": images_fingerprint(paths),
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


def images_fingerprint(paths: RunPaths) -> str | None:
    fp = (read_json(paths.images, {}) or {}).get("fingerprint")
    return fp if isinstance(fp, str) else None


def current_features(run: RunData, cannot: str) -> np.ndarray:
    """The run's ``features.npy`` (memory-mapped), when it and the encoder that made them are current
    (made from the run's image list).

    Raises:
        FileNotFoundError: either is missing or left by an earlier run of other images; the message
            ends with ``cannot`` (what cannot be done without them).
        RunFolderError: ``features.npy`` does not match the run's images.
    """
    paths = run.paths
    stale = stale_artefacts(paths, images_fingerprint(paths))
    missing = [
        p.name
        for p in (paths.features, paths.encoder_weights)
        if not p.is_file() or p.name in stale
    ]
    if missing:
        raise FileNotFoundError(
            f"The run in {paths.root} keeps no current {' or '.join(missing)}: {cannot}; run it "
            "again to compute them."
        )
    features = np.load(paths.features, mmap_mode="r", allow_pickle=False)
    if features.ndim != 2 or len(features) != len(run.image_paths):
        raise RunFolderError(f"{paths.features} does not match the run's images.")
    return features


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
    if additions.run_images != images_fingerprint(run.paths):
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
