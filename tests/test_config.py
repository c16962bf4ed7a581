"""Configs: paper defaults, JSON round trip, fingerprints, validation."""

from __future__ import annotations

import json

import pytest

from semclust.core.config import RunConfig, fingerprint


def test_paper_defaults():
    c = RunConfig()
    assert c.pretext.temperature == 0.1 and c.neighbours.k == 20
    assert c.scan.entropy_weight == 5.0 and c.selflabel.threshold == 0.99
    assert not c.selflabel.enabled  # measured: no gain on a CPU budget


def test_json_round_trip():
    c = RunConfig(clusters=7, seed=3).replace(
        **{"scan.epochs": 3, "pretext.augment.crop_scale": (0.3, 1.0)}
    )
    again = RunConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c


def test_fingerprints_follow_only_their_settings():
    a, b = RunConfig(), RunConfig().replace(**{"scan.entropy_weight": 2.0})
    assert fingerprint(a.pretext, a.encoder) == fingerprint(b.pretext, b.encoder)
    assert fingerprint(a.scan) != fingerprint(b.scan)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"clusters": 1}, "at least 2"),
        ({"encoder.backbone": "vgg"}, "Unknown backbone"),
        ({"ingest.image_size": 16}, "at least 32"),
        ({"pretext.epochs": 0}, "pretrained weights"),
        ({"encoder.weights": "imagenet"}, "resnet_small has no pretrained weights"),
    ],
)
def test_validation_messages(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig().replace(**changes).validate()


def test_imagenet_and_pretrained_are_one_word_in_a_config():
    from semclust.core.config import EncoderConfig

    assert EncoderConfig(backbone="mobilenet", weights="imagenet").weights == "pretrained"
    old = RunConfig().replace(**{"encoder.backbone": "mobilenet", "encoder.weights": "imagenet"})
    assert RunConfig.from_dict(old.to_dict()).encoder.weights == "pretrained"
