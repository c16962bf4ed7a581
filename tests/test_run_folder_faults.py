"""Faults and hostile input around a run folder: stale results, the user's files, damaged records.

Each test reproduces a problem of issue 17 and failed before its fix.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from semclust.cli import main
from semclust.core.config import RunConfig
from semclust.core.images import InputError
from semclust.core.progress import Cancelled, CancelToken
from semclust.core.run import run_pipeline
from semclust.core.runfolder.artefacts import RunPaths
from semclust.core.runfolder.results import inspect_run_folder, load_run
from tests.conftest import tree_digest

#: A run of seconds: one SimCLR epoch, K-means (no SCAN).
QUICK = RunConfig(clusters=3, seed=0, method="kmeans").replace(
    **{"pretext.epochs": 1, "pretext.batch_size": 32, "neighbours.k": 5}
)


@pytest.fixture()
def small_digits(tmp_path) -> Path:
    from semclust.core.demo import write_digits_folder

    return write_digits_folder(tmp_path / "digits", limit=6)


def _cancel_at_start_of(stage: str):
    token = CancelToken()

    def progress(p):
        if p.stage == stage and p.kind == "started":
            token.cancel()

    return progress, token


@pytest.mark.slow
def test_a_stopped_rerun_on_other_images_never_shows_the_old_results(tmp_path, small_digits):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = run_pipeline(small_digits, out, QUICK, cache_dir=cache)
    # Same number of images, different list: one removed, one added.
    files = sorted(small_digits.rglob("*.png"))
    files[0].unlink()
    new = files[-1].parent / "zzz_new.png"
    shutil.copy(files[-1], new)
    progress, token = _cancel_at_start_of("pretext")
    with pytest.raises(Cancelled):
        run_pipeline(small_digits, out, QUICK, progress, token, cache_dir=cache)
    assert len(json.loads(RunPaths(out).images.read_text())["paths"]) == len(first.image_paths)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        load_run(out)
    assert inspect_run_folder(out).finished is False
    assert main(["export", str(out), "--csv", str(tmp_path / "labels.csv")]) == 2
    assert not (tmp_path / "labels.csv").exists()
    again = run_pipeline(small_digits, out, QUICK, cache_dir=cache)  # resumed: whole again
    assert new.relative_to(small_digits).as_posix() in again.image_paths
    assert again.umap.shape == (60, 2)


def test_a_folder_of_the_users_files_is_refused_before_anything_is_written(tmp_path, small_digits):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("config.json", "labels.csv", "metrics.json"):
        (mine / name).write_text(f"the user's {name}")
    before = tree_digest(mine)
    with pytest.raises(InputError, match="not a semclust run folder"):
        run_pipeline(small_digits, mine, QUICK, cache_dir=tmp_path / "cache")
    assert tree_digest(mine) == before and not list(mine.glob(".*"))


def test_a_failed_rerun_leaves_the_earlier_run_untouched(tmp_path, small_digits):
    out = tmp_path / "run"
    paths = RunPaths(out)
    out.mkdir()  # an empty folder is taken
    with pytest.raises(InputError, match="No images found"):
        run_pipeline(tmp_path / "run", tmp_path / "run2", QUICK)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="No images found"):
        run_pipeline(empty, out, QUICK, cache_dir=tmp_path / "cache")
    assert out.is_dir() and list(out.iterdir()) == []  # nothing left, not even the marker
    # An earlier run's folder (as an older version wrote it: no marker) keeps its files.
    paths.config.write_text(json.dumps({**QUICK.to_dict(), "_meta": {"image_folder": "/x"}}))
    before = tree_digest(out)
    with pytest.raises(InputError, match="Only 2 usable images for 3 clusters"):
        two = tmp_path / "two"
        two.mkdir()
        for src in sorted(small_digits.rglob("*.png"))[:2]:
            shutil.copy(src, two / src.name)
        run_pipeline(two, out, QUICK, cache_dir=tmp_path / "cache")
    assert tree_digest(out) == before and not paths.images.exists() and not paths.skipped.exists()


def test_a_file_given_as_the_run_folder_is_refused(tmp_path, small_digits):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(InputError, match="is a file, not a folder"):
        run_pipeline(small_digits, not_a_folder, QUICK)
    assert not_a_folder.read_text() == "mine"


def test_stale_or_damaged_records_are_refused_on_load(tmp_path):
    from tests.test_export import make_run

    run = make_run(tmp_path)
    paths = run.paths
    data = json.loads(paths.images.read_text())
    paths.images.write_text(json.dumps({**data, "fingerprint": "abc"}))
    with pytest.raises(FileNotFoundError, match="has not finished"):  # no stage vouches for it
        load_run(paths.root)
    paths.stages.write_text(json.dumps({"selflabel": {"fingerprint": "x", "images": "abc"}}))
    assert load_run(paths.root).metrics == {}  # probabilities current; older metrics ignored
    paths.stages.write_text("")
    with pytest.raises(ValueError, match="stages.json is damaged"):
        load_run(paths.root)
    assert main(["export", str(paths.root)]) == 2


@pytest.mark.parametrize(
    ("what", "array", "message"),
    [
        ("umap", np.full((10, 2), np.nan), "umap.npy is damaged"),
        ("umap", np.zeros((10, 3)), "umap.npy is damaged"),
        ("probabilities", np.full((10, 3), -5.0), "outside 0-1"),
        ("probabilities", np.full((10, 3), 1e30), "outside 0-1"),
    ],
)
def test_maps_and_probabilities_out_of_range_are_refused(tmp_path, what, array, message):
    from tests.test_export import make_run

    paths = make_run(tmp_path).paths
    np.save(getattr(paths, what), array)
    with pytest.raises(ValueError, match=message):
        load_run(paths.root)


def test_a_truncated_weights_file_is_noticed_and_named(tmp_path):
    import keras

    from semclust.core.runfolder.artefacts import RunFolderError, intact, load_weights, save_weights

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64), keras.layers.Dense(3)])
    path = tmp_path / "m.weights.h5"
    save_weights(path, model)
    assert intact(path)
    load_weights(model, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not intact(path)
    with pytest.raises(RunFolderError, match="m.weights.h5 is damaged"):
        load_weights(model, path)
    np.save(tmp_path / "a.npy", np.zeros((100, 8)))
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:300])
    assert not intact(tmp_path / "a.npy")


@pytest.mark.slow
def test_damaged_records_and_artefacts_are_redone_on_rerun(tmp_path, small_digits):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = run_pipeline(small_digits, out, QUICK, cache_dir=cache)
    paths = first.paths
    weights = paths.encoder_weights.read_bytes()
    paths.encoder_weights.write_bytes(weights[: len(weights) // 3])
    paths.stages.write_text("")
    paths.corrections.write_text("")
    events = []
    again = run_pipeline(small_digits, out, QUICK, events.append, cache_dir=cache)
    started = [e.stage for e in events if e.kind == "started"]
    assert "pretext" in started and "neighbours" in started and "projection" in started
    assert any("stages.json is damaged" in (e.message or "") for e in events)
    assert list(out.glob("corrections.damaged-*.json")) and not paths.corrections.exists()
    np.testing.assert_array_equal(again.predicted, first.predicted)


@pytest.mark.slow
def test_a_checkpoint_of_other_settings_is_never_resumed(tmp_path, small_digits):
    out, cache = tmp_path / "run", tmp_path / "cache"
    config = QUICK.replace(**{"pretext.epochs": 3})
    steps_per_epoch = 2  # 60 images, batch 32
    token = CancelToken()

    def progress(p):
        if p.stage == "pretext" and p.kind == "progress" and p.step > steps_per_epoch:
            token.cancel()

    with pytest.raises(Cancelled):
        run_pipeline(small_digits, out, config, progress, token, cache_dir=cache)
    assert RunPaths(out).pretext_checkpoint.is_file()
    for changed in (config.replace(seed=1), config.replace(**{"ingest.image_size": 40})):
        events = []
        with pytest.raises(Cancelled):  # stopped at once: only where pretext starts matters
            token = CancelToken()

            def first_step(p, events=events, token=token):
                events.append(p)
                if p.stage == "pretext" and p.kind == "progress" and p.step >= 1:
                    token.cancel()

            run_pipeline(small_digits, out, changed, first_step, token, cache_dir=cache)
        steps = [e.step for e in events if e.stage == "pretext" and e.kind == "progress"]
        assert steps and min(steps) <= steps_per_epoch  # from the first epoch, not resumed


def test_temporaries_of_a_killed_run_are_removed_at_start(tmp_path):
    from semclust.core.image_store import ImageStore

    out = tmp_path / "run"
    out.mkdir()
    (out / ".semclust-run").write_text("{}")
    leftovers = [".features.npy.k2j3h4g5.npy", ".pretext_checkpoint.weights.h5.abc.weights.h5",
                 ".config.json.x1y2z3.tmp"]  # fmt: skip
    for name in leftovers:
        (out / name).write_bytes(b"partial")
    (out / ".my-notes.txt").write_text("not ours to remove")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="No images found"):
        run_pipeline(empty, out, QUICK)
    assert sorted(p.name for p in out.iterdir()) == [".my-notes.txt", ".semclust-run"]

    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / ".fresh-999999999-deadbeef.u8").write_bytes(b"x" * 100)
    ImageStore(store_dir, 4).write(
        ["a"], lambda pos: [(i, np.zeros((4, 4, 3)), "") for i in pos], [0]
    )
    assert not (store_dir / ".fresh-999999999-deadbeef.u8").exists()
