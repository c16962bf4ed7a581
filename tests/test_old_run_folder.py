"""A run folder written before the clustering stage was renamed (it was ``scan``, with ``scan.json`` and
``scan_probabilities.npy``) still opens, exports, and takes a rerun: the clustering is reused when its
settings are unchanged and redone when they changed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from semclust.cli import main
from semclust.core.config import RunConfig
from semclust.core.runfolder.artefacts import RunPaths, StageRecord
from semclust.core.runfolder.export import export_cluster_folders, export_labels, read_labels
from semclust.core.runfolder.results import inspect_run_folder, load_run

#: Seconds, not minutes: a from-scratch encoder trained for an epoch, SCAN's heads for two.
TINY = RunConfig(clusters=10, seed=0).replace(
    **{
        "pretext.epochs": 1,
        "pretext.batch_size": 128,
        "neighbours.k": 10,
        "scan.epochs": 2,
        "selflabel.enabled": False,
    }
)

#: The names a run folder of the earlier version used: name now -> name then.
OLD_FILES = {
    "clustering.json": "scan.json",
    "clustering_probabilities.npy": "scan_probabilities.npy",
}


def _make_old(root) -> None:
    """Turns a run folder of this version into one of the version before the rename."""
    for new, old in OLD_FILES.items():
        (root / new).rename(root / old)
    stages = json.loads((root / "stages.json").read_text())
    stages = {("scan" if k == "clustering" else k): v for k, v in stages.items()}
    (root / "stages.json").write_text(json.dumps(stages, indent=2))
    metrics = json.loads((root / "metrics.json").read_text())
    metrics["stage_seconds"] = {
        ("scan" if k == "clustering" else k): v for k, v in metrics["stage_seconds"].items()
    }
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2))


def _started(events) -> set[str]:
    return {e.stage for e in events if e.kind == "started"}


def _skipped(events) -> set[str]:
    return {e.stage for e in events if e.kind == "skipped"}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory, digits_folder):
    """A finished run folder in the layout of the version before the rename, and the run it was."""
    from semclust.core.run import run_pipeline

    base = tmp_path_factory.mktemp("old-layout")
    out = base / "run"
    run = run_pipeline(digits_folder, out, TINY, cache_dir=base / "cache")
    assert (out / "clustering.json").is_file() and (out / "clustering_probabilities.npy").is_file()
    assert not (out / "scan.json").exists() and "scan" not in json.loads(
        (out / "stages.json").read_text()
    )
    _make_old(out)
    return out, run


@pytest.mark.slow
def test_an_old_run_folder_opens_and_exports(old_run, tmp_path, capsys):
    out, before = old_run
    assert inspect_run_folder(out).finished
    run = load_run(out)
    np.testing.assert_array_equal(run.probabilities, before.probabilities)
    rows = read_labels(export_labels(run, tmp_path / "labels.csv"))
    assert len(rows) == len(before.image_paths)
    export_cluster_folders(run, tmp_path / "folders")
    assert sum(1 for _ in (tmp_path / "folders").rglob("*.png")) == len(before.image_paths)
    assert main(["export", str(out), "--csv", str(tmp_path / "cli.csv")]) == 0
    assert len(read_labels(tmp_path / "cli.csv")) == len(before.image_paths)
    # The app shows the clustering stage done, in the time the old record holds.
    record = StageRecord(RunPaths(out)).data
    assert "scan" not in record and record["clustering"]["seconds"] >= 0
    # Reading changes nothing in the folder.
    assert (out / "scan.json").is_file() and not (out / "clustering.json").exists()
    assert "scan" in json.loads((out / "stages.json").read_text())


@pytest.mark.slow
def test_a_rerun_into_an_old_run_folder(old_run, tmp_path, digits_folder):
    from semclust.core.run import run_pipeline

    src, before = old_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    # Same settings: the earlier clustering is reused, under its new names.
    events = []
    again = run_pipeline(digits_folder, out, TINY, events.append, cache_dir=tmp_path / "cache")
    assert {"pretext", "neighbours", "preview", "clustering"} <= _skipped(events)
    assert "clustering" not in _started(events) and "scan" not in {e.stage for e in events}
    np.testing.assert_array_equal(again.probabilities, before.probabilities)
    for new, old in OLD_FILES.items():
        assert (out / new).is_file() and not (out / old).exists()
    stages = json.loads((out / "stages.json").read_text())
    assert "scan" not in stages and "clustering" in stages
    assert "scan" not in again.metrics["stage_seconds"]
    assert again.metrics["method_kept"] == before.metrics["method_kept"]
    # A clustering setting changed: the stage runs again, cleanly.
    events = []
    kmeans = run_pipeline(
        digits_folder, out, TINY.replace(method="kmeans"), events.append, cache_dir=tmp_path / "c"
    )
    assert "clustering" in _started(events) and "pretext" in _skipped(events)
    assert kmeans.metrics["method_kept"] == "kmeans" and kmeans.probabilities.shape == (600, 10)
    assert json.loads((out / "clustering.json").read_text()) == {"method": "kmeans"}
    assert not (out / "scan.json").exists() and not (out / "scan_probabilities.npy").exists()


@pytest.mark.slow
def test_a_rerun_redoes_an_old_clustering_with_new_settings(old_run, tmp_path, digits_folder):
    from semclust.core.run import run_pipeline

    src, _ = old_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    events = []
    run = run_pipeline(
        digits_folder, out, TINY.replace(**{"scan.entropy_weight": 4.0}), events.append,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert "clustering" in _started(events) and {"pretext", "neighbours"} <= _skipped(events)
    assert run.probabilities.shape == (600, 10)
    assert "scan" not in json.loads((out / "stages.json").read_text())
    assert not (out / "scan.json").exists() and (out / "clustering.json").is_file()


def test_a_record_with_both_names_vouches_for_neither(tmp_path):
    """A run of the earlier version after one of this version: which clustering is current is not
    known, so the stage runs again (and what was made from it)."""
    paths = RunPaths(tmp_path)
    entry = {"fingerprint": "f", "seconds": 1.0}
    paths.stages.write_text(json.dumps({"neighbours": entry, "scan": entry, "clustering": entry}))
    record = StageRecord(paths)
    assert set(record.data) == {"neighbours"}
    paths.stages.write_text(json.dumps({"neighbours": entry, "scan": entry}))
    assert StageRecord(paths).is_done("clustering", "f")
