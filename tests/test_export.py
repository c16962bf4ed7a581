"""Labels CSV round trip with awkward names, corrections, per-cluster copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semclust.core.config import RunConfig
from semclust.core.runfolder.artefacts import RunPaths, write_json
from semclust.core.runfolder.corrections import Corrections
from semclust.core.runfolder.export import export_cluster_folders, export_labels, read_labels
from semclust.core.runfolder.results import RunData, load_run
from tests.conftest import tree_digest

AWKWARD = [
    "plain.png",
    "with, comma.png",
    'with "quotes".png',
    "new\nline.png",
    "ünïcødé 猫.png",
    "=SUM(A1).png",
    "+1.png",
    "-minus.png",
    "@at.png",
    "sub/dir/deep.png",
]


def make_run(tmp_path: Path, with_labels=True) -> RunData:
    images = tmp_path / "images"
    for i, rel in enumerate(AWKWARD):
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), i * 20).save(images / rel)
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    write_json(paths.config, RunConfig(clusters=3).to_dict())
    labels = ["=cat", "dog, big", 'say "hi"', "x\ny", "猫", "cat", "dog", "cat", "dog", "cat"]
    write_json(
        paths.images,
        {"root": str(images), "paths": AWKWARD, "labels": labels if with_labels else None},
    )
    probs = np.eye(3)[np.arange(len(AWKWARD)) % 3] * 0.9 + 0.1 / 3
    np.save(paths.probabilities, probs)
    return load_run(paths.root)


def test_csv_round_trip_with_awkward_names(tmp_path):
    run = make_run(tmp_path)
    out = export_labels(run, tmp_path / "labels.csv")
    rows = read_labels(out)
    assert [r["path"] for r in rows] == AWKWARD
    assert [r["true_label"] for r in rows] == run.true_labels
    assert [int(r["cluster"]) for r in rows] == list(run.predicted)
    assert all(float(r["confidence"]) == pytest.approx(0.9333, abs=1e-3) for r in rows)
    raw = out.read_text(encoding="utf-8")
    assert "\n'=SUM(A1).png" in raw.replace("\r\n", "\n")  # inert for spreadsheets
    assert "'=cat" in raw and "'-minus.png" in raw and "'@at.png" in raw and "'+1.png" in raw


def test_corrections_are_exported_and_saved(tmp_path):
    run = make_run(tmp_path)
    run.corrections.rename(0, "Cats, mostly")
    run.corrections.merge(2, 1, run.assignment)
    run.corrections.move([0], 1)
    run.save_corrections()
    reloaded = load_run(run.paths.root)
    assert reloaded.corrections.names == {0: "Cats, mostly"}
    rows = read_labels(export_labels(reloaded, tmp_path / "labels.csv"))
    clusters = [int(r["cluster"]) for r in rows]
    assert 2 not in clusters and clusters[0] == 1
    assert rows[3]["cluster_name"] == "Cats, mostly"  # index 3 is in cluster 0
    assert rows[0]["confidence"] == ""  # placed by the user
    assert rows[1]["cluster_name"] == "cluster 1"


def test_labels_csv_has_the_suggested_names_confidence_and_a_users_name_has_none(tmp_path):
    run = make_run(tmp_path)
    write_json(run.paths.names, {"0": {"name": "tabby cat", "confidence": 0.84},
                                 "1": {"name": "mixed: espresso / tea cup", "confidence": 0.4}})  # fmt: skip
    run = load_run(run.paths.root)
    run.corrections.rename(1, "coffee")
    rows = read_labels(export_labels(run, tmp_path / "labels.csv"))
    assert list(rows[0]) == ["path", "cluster", "cluster_name", "name_confidence", "confidence",
                             "true_label"]  # fmt: skip
    by_cluster = {int(r["cluster"]): (r["cluster_name"], r["name_confidence"]) for r in rows}
    assert by_cluster == {0: ("tabby cat", "0.8400"), 1: ("coffee", ""), 2: ("cluster 2", "")}


def test_no_true_label_column_without_labels(tmp_path):
    run = make_run(tmp_path, with_labels=False)
    rows = read_labels(export_labels(run, tmp_path / "labels.csv"))
    assert "true_label" not in rows[0]


def test_cluster_folders_are_copies(tmp_path):
    run = make_run(tmp_path)
    run.corrections.rename(1, "a/b: c")
    before = tree_digest(run.image_root)
    out = export_cluster_folders(run, tmp_path / "export")
    copied = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(copied) == len(AWKWARD)
    assert (out / "a_b_ c").is_dir()
    assert tree_digest(run.image_root) == before
    with pytest.raises(ValueError, match="outside"):
        export_cluster_folders(run, run.image_root / "export")


def test_corrections_dict_round_trip():
    c = Corrections()
    c.rename(3, "  trucks ")
    c.move(np.array([1, 2]), 0)
    again = Corrections.from_dict(c.to_dict())
    assert again.names == {3: "trucks"} and again.moves == {1: 0, 2: 0}
    c.rename(3, "")
    assert 3 not in c.names
