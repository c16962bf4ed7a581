"""A run whose backbone's weights cannot be had falls back to one that can, and says why."""

from __future__ import annotations

from pathlib import Path

from semclust.core import run as run_module
from semclust.core.config import RunConfig
from semclust.core.progress import Progress
from semclust.core.representation.backbones import REGISTRY

WANTED = RunConfig().replace(
    **{"encoder.backbone": "convnext_tiny", "encoder.weights": "imagenet", "pretext.epochs": 0,
       "ingest.image_size": 224}
)  # fmt: skip


def _events():
    events: list[Progress] = []
    return events, events.append


def test_nothing_changes_when_the_weights_are_there(monkeypatch):
    monkeypatch.setattr(
        run_module, "resolve_backbone", lambda b, w, c, progress=None: (REGISTRY[b], w, "")
    )
    events, report = _events()
    assert run_module._available_backbone(WANTED, Path("/nowhere"), report, None) is WANTED
    assert not events


def test_a_pretrained_fallback_runs_at_the_size_a_plan_gives_it(monkeypatch, digits_folder):
    """As the plan of a run does: 8 px digits run at 96 px, not at Lite2's native 260."""
    monkeypatch.setattr(
        run_module, "resolve_backbone",
        lambda b, w, c, progress=None: (
            REGISTRY["efficientnet_lite2"], "/w/lite2.weights.h5", "no network: ..."),
    )  # fmt: skip
    events, report = _events()
    cfg = run_module._available_backbone(WANTED, digits_folder, report, None)
    assert (cfg.encoder.backbone, cfg.encoder.weights, cfg.ingest.image_size) == (
        "efficientnet_lite2",
        "/w/lite2.weights.h5",
        96,
    )
    assert cfg.pretext.epochs == 0 and events[0].message == "no network: ..."


def test_a_fallback_to_scratch_learns_its_representation(monkeypatch):
    monkeypatch.setattr(
        run_module, "resolve_backbone",
        lambda b, w, c, progress=None: (REGISTRY["resnet_small"], None, "none"),
    )  # fmt: skip
    cfg = run_module._available_backbone(WANTED, Path("/nowhere"), lambda e: None, None)
    assert (cfg.encoder.backbone, cfg.encoder.weights) == ("resnet_small", None)
    assert cfg.pretext.epochs == RunConfig().pretext.epochs and cfg.ingest.image_size == 32
    cfg.validate()
