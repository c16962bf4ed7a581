"""Exports: the labels CSV and per-cluster folders of copies.

``labels.csv`` has the columns ``path`` (relative to the image folder), ``cluster``, ``cluster_name``,
``name_confidence`` (the suggested name's confidence; empty for a name the user gave and for a cluster's
number), ``confidence`` (the image's cluster probability) and, when known, ``true_label``. Quoting follows RFC 4180; cells that a spreadsheet would
run as a formula are prefixed with a quote (see :func:`core.runfolder.artefacts.inert_cell`).
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from semclust.core.runfolder.artefacts import is_inside, restore_cell, write_csv
from semclust.core.runfolder.results import RunData

LABEL_COLUMNS = (
    "path", "cluster", "cluster_name", "name_confidence", "confidence", "true_label",
)  # fmt: skip


def export_labels(run: RunData, path: str | Path, indices: Sequence[int] | None = None) -> Path:
    """Writes the labels CSV of a run (with the user's corrections) and returns its path.

    Args:
        run: the run.
        path: the CSV to write.
        indices: only these images (say, a selection made in the map), in this order; default: all.
    """
    assignment = run.assignment
    confidence = run.confidence
    has_truth = run.true_labels is not None
    header = LABEL_COLUMNS if has_truth else LABEL_COLUMNS[:-1]
    name_confidence = {c: run.name_confidence(c) for c in range(run.n_clusters)}
    rows = []
    for i in range(len(run.image_paths)) if indices is None else [int(i) for i in indices]:
        rel = run.image_paths[i]
        c = int(assignment[i])
        moved = i in run.corrections.moves
        # A moved image was placed by the user: the model's confidence no longer applies.
        named = name_confidence.get(c)
        row = [
            rel,
            c,
            run.cluster_name(c),
            "" if named is None else f"{named:.4f}",
            "" if moved else f"{confidence[i]:.4f}",
        ]
        if has_truth:
            row.append(run.true_labels[i] or "")
        rows.append(row)
    write_csv(Path(path), header, rows)
    return Path(path)


def read_labels(path: str | Path) -> list[dict[str, str]]:
    """Reads a labels CSV written by :func:`export_labels` back into dicts of strings."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: restore_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def export_cluster_folders(run: RunData, out_dir: str | Path) -> Path:
    """Copies every image into ``out_dir/<cluster name>/``. The originals are never touched.

    Raises:
        ValueError: if ``out_dir`` lies inside the image folder (copies would mix with the originals).
        RunFolderError: an image path leads outside the image folder; nothing is copied then.
    """
    out_dir = Path(out_dir).resolve()
    if is_inside(out_dir, run.image_root):
        raise ValueError("Choose an export folder outside the image folder.")
    sources = [run.absolute_path(i) for i in range(len(run.image_paths))]  # all checked first
    assignment = run.assignment
    used: dict[int, str] = {}
    for c in sorted(set(int(a) for a in assignment)):
        base = _safe_name(run.cluster_name(c)) or f"cluster_{c}"
        name = base if base not in used.values() else f"{base}_{c}"
        used[c] = name
    for i, rel in enumerate(run.image_paths):
        target_dir = out_dir / used[int(assignment[i])]
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / Path(rel).name
        if target.exists():  # two images with one file name from different subfolders
            target = target_dir / f"{i:06d}_{Path(rel).name}"
        shutil.copy2(sources[i], target)
    return out_dir


def _safe_name(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
