"""Exports: the labels CSV and per-cluster folders of copies.

``labels.csv`` has the columns ``path`` (relative to the image folder), ``cluster``, ``cluster_name``,
``name_confidence`` (the suggested name's confidence; empty for a name the user gave and for a cluster's
number), ``confidence`` (the image's cluster probability) and, when known, ``true_label``. Quoting follows RFC 4180; cells that a spreadsheet would
run as a formula are prefixed with a quote (see :func:`core.runfolder.artefacts.inert_cell`).

A run with images added since (``semclust assign``, :mod:`semclust.core.runfolder.added`) lists them
after its own, with their absolute paths, their neighbours' vote as ``confidence``, an empty
``true_label``, and a last column ``added``: 1 for them, 0 for the run's own images. A run without
added images has no ``added`` column.
"""

from __future__ import annotations

import csv
import filecmp
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semclust.core.runfolder.added import added_rows, read_additions
from semclust.core.runfolder.artefacts import atomic_path, is_inside, restore_cell, write_csv
from semclust.core.runfolder.results import RunData

LABEL_COLUMNS = (
    "path", "cluster", "cluster_name", "name_confidence", "confidence", "true_label",
)  # fmt: skip


def export_labels(
    run: RunData, path: str | Path, indices: Sequence[int] | None = None, with_added: bool = True
) -> Path:
    """Writes the labels CSV of a run (with the user's corrections) and returns its path.

    Args:
        run: the run.
        path: the CSV to write.
        indices: only these images (say, a selection made in the map), in this order; default: all,
            and the images added to the run since (see the module docstring).
        with_added: False leaves the added images out without reading ``added.json``.

    Raises:
        ValueError: ``path`` lies inside the image folder (it could replace an image); nothing is written.
        RunFolderError: the run's ``added.json`` is damaged; nothing is written.
    """
    check_csv_path(run, path, with_added)
    added = added_rows(run, read_additions(run)) if with_added and indices is None else []
    assignment = run.assignment
    confidence = run.model_confidence  # NaN where the user moved the image
    has_truth = run.true_labels is not None
    header = LABEL_COLUMNS if has_truth else LABEL_COLUMNS[:-1]
    if added:
        header = (*header, "added")
    name_confidence = {c: run.name_confidence(c) for c in range(run.n_clusters)}
    rows = []
    for i in range(len(run.image_paths)) if indices is None else [int(i) for i in indices]:
        rel = run.image_paths[i]
        c = int(assignment[i])
        named = name_confidence.get(c)
        row = [
            rel,
            c,
            run.cluster_name(c),
            "" if named is None else f"{named:.4f}",
            "" if math.isnan(confidence[i]) else f"{confidence[i]:.4f}",
        ]
        if has_truth:
            row.append(run.true_labels[i] or "")
        rows.append(row + [0] if added else row)
    for image, c, share in added:
        named = name_confidence.get(c)
        row = [str(image), c, run.cluster_name(c), "" if named is None else f"{named:.4f}"]
        rows.append([*row, f"{share:.4f}", *([""] if has_truth else []), 1])
    write_csv(Path(path), header, rows)
    return Path(path)


def check_csv_path(run: RunData, path: str | Path, with_added: bool = True) -> None:
    """Refuses a labels CSV inside the image folder, or (``with_added``) a folder of images added to
    the run since (it could replace a user's file there).

    Raises:
        ValueError: with the reason (a RunFolderError when ``added.json`` is damaged).
    """
    additions = read_additions(run) if with_added else None
    for root in [run.image_root, *(f.root for f in (additions.folders if additions else []))]:
        if is_inside(Path(path).expanduser().absolute().parent, root) or is_inside(path, root):
            raise ValueError(
                f"Choose a labels CSV outside the image folder {root}: it is never written to."
            )


def read_labels(path: str | Path) -> list[dict[str, str]]:
    """Reads a labels CSV written by :func:`export_labels` back into dicts of strings."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: restore_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


#: Longest folder or file name written, in UTF-8 bytes (file systems allow 255).
MAX_NAME_BYTES = 120


@dataclass(frozen=True)
class FolderPlan:
    """The copies an export of cluster folders will make, all checked before the first is made.

    Attributes:
        root: the export folder, resolved.
        copies: (source image, target) pairs still to copy.
        present: how many targets already hold their image (an earlier export): left as they are.
    """

    root: Path
    copies: list[tuple[Path, Path]]
    present: int


def plan_cluster_folders(run: RunData, out_dir: str | Path) -> FolderPlan:
    """Plans ``export_cluster_folders`` and checks it, writing nothing.

    Every image gets a target named from the run alone (its cluster's name, its file name; an index
    where two names would collide), so a second export into the same folder plans the same tree. A
    target that already holds its image is left; anything else there (a user's file, a link, a folder)
    is refused, and so is a link anywhere below ``out_dir``: an export never overwrites and never writes
    outside its folder.

    Raises:
        ValueError: ``out_dir`` lies inside the image folder, or a target is taken; nothing is written.
        RunFolderError: an image path leads outside the image folder.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    if is_inside(out_dir, run.image_root) or is_inside(run.image_root, out_dir):
        raise ValueError(
            "Choose an export folder outside the image folder (and not holding it): "
            "the images are never written to."
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file; choose a folder for the copies.")
    sources = [run.absolute_path(i) for i in range(len(run.image_paths))]  # all checked first
    assignment = run.assignment
    folders: dict[int, str] = {}
    for c in sorted(set(int(a) for a in assignment)):
        base = _clip(_safe_name(run.cluster_name(c))) or f"cluster_{c}"
        folders[c] = base if base.casefold() not in _folded(folders) else f"{base}_{c}"
    targets, taken = [], set()
    for i, rel in enumerate(run.image_paths):
        folder = folders[int(assignment[i])]
        name = _clip(_safe_name(Path(rel).name)) or f"{i:06d}.png"
        if (folder, name.casefold()) in taken:  # two images with one file name from two subfolders
            name = _clip(f"{i:06d}_{name}")
        taken.add((folder, name.casefold()))
        targets.append(out_dir / folder / name)
    copies, present = [], 0
    for folder in set(folders.values()):
        _refuse_link(out_dir / folder, out_dir)
    for source, target in zip(sources, targets, strict=True):
        if not os.path.lexists(target):
            copies.append((source, target))
        elif target.is_symlink() or not target.is_file() or not _same_file(source, target):
            raise ValueError(
                f"{target} already exists and is not a copy of {source.name}; an export never "
                "overwrites: choose an empty folder (nothing was copied)."
            )
        else:
            present += 1
    return FolderPlan(out_dir, copies, present)


def export_cluster_folders(run: RunData, out_dir: str | Path) -> Path:
    """Copies every image into ``out_dir/<cluster name>/``. The originals are never touched.

    See :func:`plan_cluster_folders`: everything is checked before the first copy; a copy is made
    beside its target and moved there only when whole and only if the target is still free.

    Raises:
        ValueError: ``out_dir`` lies inside the image folder, or a target is taken.
        RunFolderError: an image path leads outside the image folder; nothing is copied then.
    """
    plan = plan_cluster_folders(run, out_dir)
    for source, target in plan.copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        _refuse_link(target.parent, plan.root)  # made between the plan and now
        with atomic_path(target, suffix=target.suffix) as tmp:
            shutil.copy2(source, tmp, follow_symlinks=True)
            if os.path.lexists(target):
                raise ValueError(f"{target} appeared during the export; it is left as it is.")
    return plan.root


def _refuse_link(path: Path, root: Path) -> None:
    """Refuses ``path`` when it, or a folder between ``root`` and it, is a link or not a folder."""
    for part in [path, *path.parents]:
        if part == root:
            return
        if part.is_symlink() or (part.exists() and not part.is_dir()):
            raise ValueError(
                f"{part} is a link or a file where the export needs a folder of its own; an "
                "export never follows links: choose an empty folder (nothing was copied)."
            )


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)


def _folded(folders: dict[int, str]) -> set[str]:
    return {f.casefold() for f in folders.values()}


def _clip(name: str) -> str:
    """``name`` cut to :data:`MAX_NAME_BYTES` of UTF-8, keeping its extension."""
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, suffix = os.path.splitext(name)
    suffix = suffix if len(suffix.encode("utf-8")) <= 16 else ""
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
    return stem + suffix


def _safe_name(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
