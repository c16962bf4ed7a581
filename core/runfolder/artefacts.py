"""The run folder: where every artefact of a run lives, written atomically.

One object, :class:`RunPaths`, names every file, so that the pipeline, the command line and the GUI agree.
A stage records its fingerprint in ``stages.json`` once its artefacts are written; a stage whose
fingerprint matches is skipped on the next run. Which folder a run may write to, and its lock:
:mod:`semclust.core.runfolder.ownership`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RunPaths:
    """Every path of a run folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda s: s.root / "config.json")
    stages = property(lambda s: s.root / "stages.json")
    images = property(lambda s: s.root / "images.json")
    skipped = property(lambda s: s.root / "skipped.csv")
    encoder_weights = property(lambda s: s.root / "encoder.weights.h5")
    pretext_checkpoint = property(lambda s: s.root / "pretext_checkpoint.weights.h5")
    pretext_checkpoint_state = property(lambda s: s.root / "pretext_checkpoint.json")
    pretext_checkpoint_owner = property(lambda s: s.root / "pretext_checkpoint.for")
    embeddings = property(lambda s: s.root / "embeddings.npy")
    features = property(lambda s: s.root / "features.npy")
    neighbours = property(lambda s: s.root / "neighbours.npy")
    choose_k = property(lambda s: s.root / "choose_k.json")
    choose_k_partial = property(lambda s: s.root / "choose_k.partial.json")
    preview = property(lambda s: s.root / "preview_probabilities.npy")
    scan_weights = property(lambda s: s.root / "scan_heads.weights.h5")
    clustering_probabilities = property(lambda s: s.root / "clustering_probabilities.npy")
    clustering_summary = property(lambda s: s.root / "clustering.json")
    classifier_weights = property(lambda s: s.root / "classifier.weights.h5")
    probabilities = property(lambda s: s.root / "probabilities.npy")
    umap = property(lambda s: s.root / "umap.npy")
    prototypes = property(lambda s: s.root / "prototypes.json")
    names = property(lambda s: s.root / "names.json")
    metrics = property(lambda s: s.root / "metrics.json")
    labels_csv = property(lambda s: s.root / "labels.csv")
    corrections = property(lambda s: s.root / "corrections.json")
    retrained_probabilities = property(lambda s: s.root / "retrained_probabilities.npy")
    retrained = property(lambda s: s.root / "retrained.json")
    marker = property(lambda s: s.root / MARKER)

    def exists(self) -> bool:
        return self.config.is_file()


#: Stages renamed since older run folders were written (old name -> name now): ``stages.json`` is read
#: with the names of now (:class:`StageRecord`).
RENAMED_STAGES = {"scan": "clustering"}
#: Artefacts renamed with them (file name then -> :class:`RunPaths` attribute now): a run renames them
#: (:func:`adopt_renamed_artefacts`), so that an older run's clustering is reused, not redone.
RENAMED_ARTEFACTS = {
    "scan_probabilities.npy": "clustering_probabilities",
    "scan.json": "clustering_summary",
}


def adopt_renamed_artefacts(paths: RunPaths) -> list[str]:
    """Gives an older run folder's artefacts their names of now; call it once the folder is claimed.

    The record of an older run names their stage by its old name, which :class:`StageRecord` reads as
    the new one: the stage is skipped when its settings are unchanged. Where the record holds both
    names (a run of an older version after one of this version), it vouches for neither and the stage
    runs again. Returns the old names renamed.
    """
    renamed = []
    for old, attr in RENAMED_ARTEFACTS.items():
        source = paths.root / old
        if source.is_file() and not source.is_symlink():
            source.replace(getattr(paths, attr))  # the record, if any, vouches for the old file
            renamed.append(old)
    return renamed


#: Written first into a folder a run owns; a non-empty folder without it is never written to.
MARKER = ".semclust-run"

#: Which stage's record vouches for each artefact that ``load_run`` reads: an artefact is current only
#: when that record names the image list now in ``images.json`` (see :func:`StageRecord.mark_done`).
PRODUCED_BY = {
    "embeddings.npy": "pretext",
    "features.npy": "pretext",
    "neighbours.npy": "neighbours",
    "umap.npy": "projection",
    "preview_probabilities.npy": "preview",
    "probabilities.npy": "selflabel",
    "prototypes.json": "report",
    "names.json": "report",
    "metrics.json": "report",
    "choose_k.json": "choose_k",
}


def remove_leftovers(paths: RunPaths) -> list[str]:
    """Removes the temporaries of writes that a killed run left (``.<artefact>.<random><suffix>``).

    Only names :func:`atomic_path` makes beside a file of :class:`RunPaths` are touched; call it once
    the folder is claimed by this run. Returns the names removed.
    """
    names = {
        getattr(paths, a).name for a in dir(RunPaths) if isinstance(getattr(RunPaths, a), property)
    } | set(RENAMED_ARTEFACTS)
    removed = []
    for entry in paths.root.iterdir():
        n = entry.name
        if n.startswith(".") and n != MARKER and any(n.startswith(f".{a}.") for a in names):
            if entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(n)
    return removed


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it, once both are resolved (links followed)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def _read_umask() -> int:
    """The process's umask (read by setting it and putting it back: done once, at import, before any
    thread of ours writes files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only if the block succeeds.

    The file gets the permissions a plain ``open`` would give it (the user's umask), not the owner-only
    ones of :func:`tempfile.mkstemp`: a labels CSV or a report is meant to be shared.

    Args:
        path: final destination.
        suffix: suffix the temporary file must keep (Keras insists on ``.weights.h5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    with contextlib.suppress(OSError, AttributeError):  # no modes here, or no os.fchmod (Windows)
        os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def array_file(path: Path, shape: tuple[int, ...], dtype=np.float32) -> Iterator[np.ndarray]:
    """A new ``.npy`` array filled in place through a memory map (so never all in memory), renamed
    onto ``path`` only if the block succeeds. Keep no reference to it after the block."""
    with atomic_path(path, suffix=".npy") as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()
        del array


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=_to_builtin) + "\n")


class RunFolderError(ValueError):
    """A run folder file that is damaged, inconsistent or unsafe; the message names the file."""


def read_json(path: Path, default: Any = None) -> Any:
    """The content of a JSON file, ``default`` if it does not exist.

    Raises:
        RunFolderError: the file exists but is not valid UTF-8 JSON (the message names the file).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as exc:
        raise RunFolderError(
            f"{path} is damaged: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path} is damaged: not UTF-8 text.") from None


#: What reading a damaged file raises: NumPy parses a ``.npy`` header with Python's tokenizer (a
#: damaged header: SyntaxError, TokenError).
UNREADABLE = (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError)


def load_array(path: Path, default: Any = None) -> Any:
    """A ``.npy`` array (never unpickling objects), ``default`` if the file does not exist.

    Raises:
        RunFolderError: the file exists but is not a readable numeric array.
    """
    path = Path(path)
    if not path.is_file():
        return default
    try:
        array = np.load(path, allow_pickle=False)
    except UNREADABLE as exc:
        raise RunFolderError(f"{path} is damaged: not a readable array ({exc}).") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise RunFolderError(f"{path} is damaged: not a numeric array.")
    return array


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array))


def save_weights(path: Path, model: Any) -> None:
    """Saves a Keras model's weights atomically."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        tmp.unlink()  # Keras refuses to overwrite without asking
        model.save_weights(tmp)


def load_weights(model: Any, path: Path) -> None:
    """Loads a Keras model's weights saved by :func:`save_weights`.

    Raises:
        RunFolderError: the file is damaged or does not fit the model (the message names it).
    """
    if not intact(path):
        raise RunFolderError(f"{path} is damaged (cut short?); delete it and run again.")
    try:
        model.load_weights(path)
    except Exception as exc:  # h5py and Keras raise many kinds; none should reach the user raw
        raise RunFolderError(
            f"{path} does not fit this run ({type(exc).__name__}); delete it and run again."
        ) from None


def intact(path: Path) -> bool:
    """Whether an artefact is whole: a ``.npy`` whose header and size agree, an HDF5 file as long as
    its superblock says, JSON that parses; other files when they exist."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            np.load(path, mmap_mode="r", allow_pickle=False)
        elif path.suffix == ".h5":
            return _hdf5_whole(path)
        elif path.suffix == ".json":
            read_json(path)
        return path.is_file()
    except UNREADABLE:
        return False


def _hdf5_whole(path: Path) -> bool:
    """An HDF5 file whose superblock's end-of-file address is within the file (a truncated file is not)."""
    with open(path, "rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    if head[:8] != b"\x89HDF\r\n\x1a\n" or len(head) < 48:
        return False
    version = head[8]
    if version in (0, 1):
        offsets = head[13]
        at = 24 + 2 * offsets + (4 if version == 1 else 0)
    elif version in (2, 3):
        offsets = head[9]
        at = 12 + 2 * offsets
    else:
        return True  # a newer layout: not checked here
    if offsets != 8 or len(head) < at + 8:
        return True
    end = int.from_bytes(head[at : at + 8], "little")
    return end <= size


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Writes a CSV (RFC 4180 quoting, UTF-8) atomically, with spreadsheet formulas made inert."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([inert_cell(v) for v in row])
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def inert_cell(value: Any) -> Any:
    """Prefixes a quote to text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """Inverse of :func:`inert_cell` for text read back from our own CSVs."""
    if len(value) > 1 and value[0] == "'" and value[1] in ("=", "+", "-", "@", "\t", "\r"):
        return value[1:]
    return value


class StageRecord:
    """Reads and writes ``stages.json``: which stage finished with which fingerprint, in how long, and
    from which image list (``images``: the fingerprint ``images.json`` holds).

    The record only saves work: a damaged one is read as empty (every stage runs again) and said in
    ``problem``. An older record's stage names are read as the names of now (:data:`RENAMED_STAGES`);
    a record holding both a stage's old and new names vouches for neither (the stage runs again). The
    record is rewritten with the new names at its next write.
    """

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.problem = ""
        self.images: str | None = None  # set once the run's images are known
        try:
            data = read_json(paths.stages, {})
        except RunFolderError as exc:
            data, self.problem = {}, f"{exc} Every stage runs again."
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            data, self.problem = {}, f"{paths.stages} is damaged; every stage runs again."
        for old, new in RENAMED_STAGES.items():
            entry = data.pop(old, None)
            if entry is not None and data.pop(new, None) is None:
                data[new] = entry
        self.data: dict[str, dict[str, Any]] = data

    def is_done(self, stage: str, fp: str) -> bool:
        return self.data.get(stage, {}).get("fingerprint") == fp

    def mark_done(self, stage: str, fp: str, seconds: float, **info: Any) -> None:
        images = {"images": self.images} if self.images is not None else {}
        self.data[stage] = {"fingerprint": fp, "seconds": round(seconds, 2), **images, **info}
        write_json(self.paths.stages, self.data)

    def vouch(self, stage: str) -> None:
        """Records that a done stage's artefacts were made from this run's images (its fingerprint
        matched, and every fingerprint includes the images')."""
        entry = self.data.get(stage)
        if entry is not None and self.images is not None and entry.get("images") != self.images:
            entry["images"] = self.images
            write_json(self.paths.stages, self.data)

    def forget(self, *stages: str) -> None:
        if [s for s in stages if self.data.pop(s, None) is not None]:
            write_json(self.paths.stages, self.data)


def _to_builtin(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
