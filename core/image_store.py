"""The decoded-image cache: one memory-mapped uint8 array per image folder and image size, on disk.

Ingest writes decoded, resized images here and the pipeline reads batches from the returned
``np.memmap``, so memory stays bounded whatever the size of the folder (a million 96 px images are
27 GB: on disk, not in memory). A store is a folder holding ``index.json`` (the file key of every row,
and the files that could not be decoded, with reasons) and the array ``images-<generation>.npy`` it names.
A new generation is written beside the old one and ``index.json`` is replaced atomically last, so a store
is always whole: an interrupted write leaves the old generation in use.

The stores of a cache are listed, and those no run needs removed, by :func:`list_stores` and
:func:`remove_store` (``semclust cache``): a store's folder is touched whenever a run or the window
reads it, so its modification time says when it was last used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semclust.core.paths import bytes_under
from semclust.core.runfolder.artefacts import write_json
from semclust.core.runfolder.ownership import process_alive

#: Rows copied or decoded at a time when a store is written (bounds memory: 4096 x 96 x 96 x 3 = 113 MB).
CHUNK = 4096


class ImageStore:
    """A cache folder of decoded images, keyed by file (path, size, modification time).

    Args:
        folder: the store's folder (created when first written).
        size: the side of the square images it holds.
        source: the image folder it caches and the pixel limit it was decoded under, recorded beside
            its index (:data:`ABOUT`) for :func:`list_stores`.
    """

    def __init__(self, folder: Path, size: int, source: tuple[Path, int] | None = None) -> None:
        self.folder = Path(folder)
        self.size = size
        self.source = source
        self.keys: list[str] = []
        self.errors: dict[str, str] = {}
        self.images: np.ndarray = np.zeros((0, size, size, 3), np.uint8)
        self._read()

    @property
    def rows(self) -> dict[str, int]:
        return {key: row for row, key in enumerate(self.keys)}

    def _read(self) -> None:
        try:
            file, keys, errors = _read_index(self.folder)
            images = np.load(self.folder / file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError):
            return  # no store yet, or a damaged one: it is rebuilt
        if images.shape[1:] != (self.size, self.size, 3) or len(images) != len(keys):
            return
        self.keys, self.errors, self.images = keys, errors, images
        _touch(self.folder)
        if not (self.folder / ABOUT).is_file():  # a store written before ABOUT: record it now
            self._write_about(len(keys))

    def holds_exactly(self, keys: Sequence[str]) -> bool:
        """True when the store's rows are these keys in this order (nothing to write)."""
        return self.keys == list(keys)

    def write(
        self,
        keys: Sequence[str],
        decode: Callable[[list[int]], Iterable[tuple[int, np.ndarray | None, str]]],
        todo: Sequence[int],
    ) -> None:
        """Writes a new generation holding ``keys`` (in order, less those that fail to decode).

        Args:
            keys: the file key of every image wanted, in the order of the rows.
            decode: decodes a list of positions in ``keys``; yields (position, image or None, reason).
            todo: positions in ``keys`` to decode; the others are copied from the current generation.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        _remove_orphans(self.folder)
        generation = uuid.uuid4().hex[:12]
        fresh_path = self.folder / f".fresh-{os.getpid()}-{generation}.u8"
        decoded: dict[int, int] = {}  # position in keys -> row of the fresh file
        errors = {k: v for k, v in self.errors.items() if k in set(keys)}
        try:
            with open(fresh_path, "wb") as fresh:
                for start in range(0, len(todo), CHUNK):
                    for i, image, reason in decode(list(todo[start : start + CHUNK])):
                        if image is None:
                            errors[keys[i]] = reason
                        else:
                            decoded[i] = len(decoded)
                            fresh.write(np.ascontiguousarray(image, np.uint8).tobytes())
            shape = (self.size, self.size, 3)
            new = (
                np.memmap(fresh_path, np.uint8, "r", shape=(len(decoded), *shape))
                if decoded
                else None
            )
            old_rows = self.rows
            order = [i for i, k in enumerate(keys) if i in decoded or k in old_rows]
            file = f"images-{generation}.npy"
            target = np.lib.format.open_memmap(
                self.folder / file, mode="w+", dtype=np.uint8, shape=(len(order), *shape)
            )
            for start in range(0, len(order), CHUNK):
                part = order[start : start + CHUNK]
                target[start : start + len(part)] = np.stack(
                    [
                        new[decoded[i]] if i in decoded else self.images[old_rows[keys[i]]]
                        for i in part
                    ]
                )
            target.flush()
            del target
            old_file = self._file()
            write_json(
                self.folder / "index.json",
                {"file": file, "keys": [keys[i] for i in order], "errors": errors},
            )
            self._write_about(len(order))
        finally:
            fresh_path.unlink(missing_ok=True)
        if old_file is not None and old_file.name != file:
            old_file.unlink(missing_ok=True)  # an open memmap of it stays valid (POSIX)
        self._read()

    def _write_about(self, images: int) -> None:
        """Records :data:`ABOUT` for :func:`list_stores`, which need not read a large index."""
        if self.source is None:
            return
        about = {"folder": str(self.source[0]), "pixel_limit": self.source[1], "images": images}
        try:
            write_json(self.folder / ABOUT, about)
        except OSError:  # a read-only cache: still usable, listed without its folder
            pass

    def _file(self) -> Path | None:
        name = getattr(self.images, "filename", None)
        return Path(name) if name else None


class StoreLookup:
    """One image at a time from a store, by file key, without keeping its array open.

    The window reads thumbnails here while a later ingest may replace the array (an array held open
    could not be removed on Windows). The index is read once, and again when the array it names has
    been replaced since; it is kept as the keys' 64-bit hashes, sorted (16 MB for a million files
    instead of 210 MB as a dictionary).
    """

    def __init__(self, folder: Path, size: int) -> None:
        self.folder = Path(folder)
        self.size = size
        self._lock = threading.Lock()
        self._index: tuple[str, np.ndarray, np.ndarray] | None = None
        self._version: tuple[int, int] | None = None  # index.json's (mtime, size) when last read

    def get(self, key: str) -> np.ndarray | None:
        """The decoded image of the file ``key``, or ``None`` when the store does not hold it."""
        for again in (False, True):
            index = self._read_index(again)
            if index is None:
                return None
            file, hashes, rows = index
            wanted = hash(key)
            at = int(np.searchsorted(hashes, wanted))
            if at == len(hashes) or hashes[at] != wanted:
                return None
            try:
                images = np.load(self.folder / file, mmap_mode="r", allow_pickle=False)
                if images.dtype != np.uint8 or images.shape[1:] != (self.size, self.size, 3):
                    raise ValueError("not a store's array")
                return np.array(images[rows[at]])
            except (OSError, ValueError, IndexError):
                continue  # replaced by a later ingest, or damaged: its index again
        return None

    def _read_index(self, again: bool) -> tuple[str, np.ndarray, np.ndarray] | None:
        """The index as last read; with ``again``, or when none was read, the index as it is now,
        read at most once for each version of ``index.json`` (``None``: no usable index)."""
        with self._lock:
            if self._index is not None and not again:
                return self._index
            path = self.folder / "index.json"
            try:
                st = path.stat()
            except OSError:
                return None
            if (st.st_mtime_ns, st.st_size) == self._version:
                return None  # this version was read already: its array is gone, or it is damaged
            self._version, self._index = (st.st_mtime_ns, st.st_size), None
            try:
                file, keys, _ = _read_index(self.folder)
            except (OSError, ValueError, KeyError, TypeError):
                return None
            # Python's string hash: 64 bits, the same throughout this process.
            hashes = np.fromiter(map(hash, keys), np.int64, len(keys))
            rows = np.argsort(hashes, kind="stable")
            self._index = (file, hashes[rows], rows)
            _touch(self.folder)
            return self._index


#: A store's small file beside its index: the image folder it caches, the pixel limit and the number of
#: images (its index holds every file's key: 0.4 s to read for a million images).
ABOUT = "about.json"
#: A store's folder name: ``v<cache version>_<a hash of its image folder, size and pixel limit>_<size>px``.
STORE_NAME = re.compile(r"v(\d+)_[0-9a-f]{20}_(\d+)px")


@dataclass(frozen=True)
class StoreInfo:
    """One store of a cache, as :func:`list_stores` finds it."""

    folder: Path
    #: The image size it holds, and the cache version it was written for.
    size: int
    version: int
    #: Images it holds; None when neither :data:`ABOUT` nor its index can be read.
    images: int | None
    bytes: int
    #: When a run or the window last read or wrote it (seconds since the epoch).
    last_used: float
    #: The image folder it caches and the pixel limit, when the store records them (:data:`ABOUT`:
    #: stores written since 2026-12-07).
    source: Path | None
    pixel_limit: int | None
    #: A process writing it now (its ``.fresh-<pid>-*`` file): never removed.
    in_use: bool
    #: Why no run will read it again (written for another cache version, or its image folder is
    #: gone), or None.
    stale: str | None


def list_stores(images_dir: Path, version: int) -> list[StoreInfo]:
    """Every store in ``images_dir`` (a cache's ``images`` folder), the most recently used first;
    ``version``: the cache version runs read now (the others are stale). Only real folders named as
    stores are listed: nothing else there is ever counted or removed."""
    try:
        entries = list(Path(images_dir).iterdir())
    except OSError:
        return []
    found = []
    for folder in entries:
        name = STORE_NAME.fullmatch(folder.name)
        if name is None or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            last_used = folder.stat().st_mtime
        except OSError:  # removed meanwhile
            continue
        about = _read_about(folder)
        images, source, limit = about.get("images"), about.get("folder"), about.get("pixel_limit")
        if not isinstance(images, int):  # a store written before ABOUT: count its index's keys
            try:
                images = len(_read_index(folder)[1])
            except (OSError, ValueError, KeyError, TypeError):
                images = None
        source = Path(source) if isinstance(source, str) else None
        written_for = int(name.group(1))
        stale = (
            f"cache version {written_for}, this one reads {version}" if written_for != version
            else "its folder is gone" if source is not None and not source.is_dir()
            else None
        )  # fmt: skip
        found.append(StoreInfo(
            folder, int(name.group(2)), written_for, images, bytes_under([folder]), last_used,
            source, limit if isinstance(limit, int) else None, _being_written(folder), stale,
        ))  # fmt: skip
    return sorted(found, key=lambda s: -s.last_used)


def remove_store(store: StoreInfo) -> bool:
    """Removes a store that no process is writing; True when it is gone. It is first renamed, in one
    step, so that a run starting meanwhile finds no store and decodes its files again, never half a
    store; a run already reading it keeps its open array (POSIX), or the rename fails (Windows) and
    the store is kept."""
    folder = store.folder
    if STORE_NAME.fullmatch(folder.name) is None or folder.is_symlink() or _being_written(folder):
        return False
    doomed = folder.with_name(f".removing-{uuid.uuid4().hex[:12]}")
    try:
        folder.rename(doomed)
    except OSError:
        return False
    for gone in folder.parent.glob(".removing-*"):  # this one, and any an earlier removal left
        shutil.rmtree(gone, ignore_errors=True)
    return True


def _read_about(folder: Path) -> dict:
    try:
        about = json.loads((folder / ABOUT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return about if isinstance(about, dict) else {}


def _being_written(folder: Path) -> bool:
    return any(
        (pid := _writer(entry)) is not None and process_alive(pid)
        for entry in folder.glob(".fresh-*.u8")
    )


def _writer(fresh: Path) -> int | None:
    """The process id in the name of a ``.fresh-<pid>-<generation>.u8`` file (None: the older unnamed
    form)."""
    parts = fresh.name.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _touch(folder: Path) -> None:
    """Marks a store as used now (its folder's modification time), for :func:`list_stores`."""
    try:
        os.utime(folder)
    except OSError:  # a read-only cache: still usable
        pass


def _read_index(folder: Path) -> tuple[str, list[str], dict[str, str]]:
    """A store's ``index.json``: the name of its array (in the store's folder), the file key of every
    row and the files that could not be decoded, with reasons.

    Raises:
        OSError, ValueError, KeyError, TypeError: no index, or a damaged one.
    """
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    return Path(index["file"]).name, list(index["keys"]), dict(index["errors"])


def _remove_orphans(folder: Path) -> None:
    """Removes the ``.fresh-*.u8`` files of writers that died (killed mid-write); a live writer's
    (its process id in the name) is left alone, as are files of the older unnamed form younger than
    a day."""
    for entry in folder.glob(".fresh-*.u8"):
        if (pid := _writer(entry)) is not None:
            dead = not process_alive(pid)
        else:
            try:
                dead = time.time() - entry.stat().st_mtime > 86_400
            except OSError:
                continue
        if dead:
            entry.unlink(missing_ok=True)
    # An array no index names is a generation whose index.json was never written.
    try:
        named = json.loads((folder / "index.json").read_text(encoding="utf-8")).get("file")
    except (OSError, ValueError, AttributeError):
        return
    for entry in folder.glob("images-*.npy"):
        if entry.name != named and time.time() - entry.stat().st_mtime > 3600:
            entry.unlink(missing_ok=True)
