"""The run folder: where every artefact of a run lives, written atomically.

One object, :class:`RunPaths`, names every file, so that the pipeline, the command line and the GUI agree.
A stage records its fingerprint in ``stages.json`` once its artefacts are written; a stage whose
fingerprint matches is skipped on the next run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
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
    embeddings = property(lambda s: s.root / "embeddings.npy")
    features = property(lambda s: s.root / "features.npy")
    neighbours = property(lambda s: s.root / "neighbours.npy")
    choose_k = property(lambda s: s.root / "choose_k.json")
    preview = property(lambda s: s.root / "preview_probabilities.npy")
    scan_weights = property(lambda s: s.root / "scan_heads.weights.h5")
    scan_probabilities = property(lambda s: s.root / "scan_probabilities.npy")
    scan_summary = property(lambda s: s.root / "scan.json")
    classifier_weights = property(lambda s: s.root / "classifier.weights.h5")
    probabilities = property(lambda s: s.root / "probabilities.npy")
    umap = property(lambda s: s.root / "umap.npy")
    prototypes = property(lambda s: s.root / "prototypes.json")
    names = property(lambda s: s.root / "names.json")
    metrics = property(lambda s: s.root / "metrics.json")
    labels_csv = property(lambda s: s.root / "labels.csv")
    corrections = property(lambda s: s.root / "corrections.json")

    def exists(self) -> bool:
        return self.config.is_file()


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it, once both are resolved (links followed)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only if the block succeeds.

    Args:
        path: final destination.
        suffix: suffix the temporary file must keep (Keras insists on ``.weights.h5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
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
    except (OSError, ValueError, EOFError) as exc:
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
    """Reads and writes ``stages.json``: which stage finished with which fingerprint, in how long."""

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.data: dict[str, dict[str, Any]] = read_json(paths.stages, {}) or {}

    def is_done(self, stage: str, fp: str) -> bool:
        return self.data.get(stage, {}).get("fingerprint") == fp

    def mark_done(self, stage: str, fp: str, seconds: float, **info: Any) -> None:
        self.data[stage] = {"fingerprint": fp, "seconds": round(seconds, 2), **info}
        write_json(self.paths.stages, self.data)

    def forget(self, stage: str) -> None:
        if self.data.pop(stage, None) is not None:
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
