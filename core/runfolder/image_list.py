"""A run folder's list of images (``images.json``), checked before any path in it is used, what it
makes stale, and the files the ingest skipped (``skipped.csv``).

A run folder may come from elsewhere, so every image path must be a relative path to an image file
inside the image folder (:func:`unsafe_image_path`).
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath, PureWindowsPath

from semclust.core.images import KNOWN_EXTENSIONS
from semclust.core.runfolder.artefacts import PRODUCED_BY, RunFolderError, RunPaths, read_json


def read_image_list(
    paths: RunPaths, image_root: str | Path | None = None
) -> tuple[Path, list[str], list[str] | None, str | None]:
    """The image folder, the image paths, the true labels and the list's fingerprint (``None`` in
    older run folders) recorded in ``images.json``, checked.

    Raises:
        RunFolderError: the file is missing, damaged or names a path that is not a relative path to
            an image file inside the image folder.
    """
    where = paths.images
    data = read_json(where)
    if data is None:
        raise RunFolderError(f"{where} is missing: the run folder is incomplete.")
    if not isinstance(data, dict) or not isinstance(data.get("paths"), list):
        raise RunFolderError(f"{where} is damaged: no list of image paths.")
    root = image_root if image_root is not None else data.get("root")
    if not isinstance(root, (str, Path)) or not Path(root).expanduser().is_absolute():
        raise RunFolderError(f"{where} is damaged: the image folder is not an absolute path.")
    image_paths = data["paths"]
    for rel in image_paths:
        problem = unsafe_image_path(rel)
        if problem:
            raise RunFolderError(f"{where} names {rel!r}, {problem}; the run is refused.")
    labels = data.get("labels")
    if labels is not None and (
        not isinstance(labels, list)
        or len(labels) != len(image_paths)
        or not all(lab is None or isinstance(lab, str) for lab in labels)
    ):
        raise RunFolderError(f"{where} is damaged: the labels do not match the images.")
    fp = data.get("fingerprint")
    if fp is not None and not isinstance(fp, str):
        raise RunFolderError(f"{where} is damaged: its fingerprint is not text.")
    return Path(root).expanduser(), list(image_paths), labels, fp


def unsafe_image_path(rel: object) -> str | None:
    """Why ``rel`` is not a safe relative path to an image file, or None when it is."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return "which is not a file path"
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or rel.startswith(("/", "\\")):
        return "an absolute path (only paths inside the image folder are allowed)"
    if ".." in posix.parts or ".." in windows.parts:
        return "a path that leads out of the image folder"
    if not rel.lower().endswith(KNOWN_EXTENSIONS):
        return "which is not an image file"
    return None


def stale_artefacts(paths: RunPaths, images_fp: str | None) -> set[str]:
    """The artefacts (file names) whose stage record does not name the image list of ``images.json``:
    left by an earlier run of other images, whose rerun stopped before redoing them.

    A run folder written before image lists were fingerprinted (no ``images_fp``) is taken as it is.

    Raises:
        RunFolderError: ``stages.json`` is damaged.
    """
    if images_fp is None:
        return set()
    record = read_json(paths.stages, {})
    if not isinstance(record, dict) or not all(isinstance(v, dict) for v in record.values()):
        raise RunFolderError(f"{paths.stages} is damaged: not a record of stages.")
    return {
        name for name, stage in PRODUCED_BY.items()
        if record.get(stage, {}).get("images") != images_fp
    }  # fmt: skip


def read_skipped(paths: RunPaths) -> list[tuple[str, str]]:
    """The files the ingest skipped, as (path, reason)."""
    if not paths.skipped.is_file():
        return []
    try:
        with open(paths.skipped, encoding="utf-8", newline="") as f:
            return [(row["path"], row["reason"]) for row in csv.DictReader(f)]
    except (KeyError, UnicodeDecodeError, csv.Error):
        raise RunFolderError(f"{paths.skipped} is damaged: not a path,reason CSV.") from None
