"""Suggested cluster names: from the ImageNet head of EfficientNet-Lite2, with a confidence, for every
cluster; without a way to name, none and a reason; ``names.json`` old and new, damaged or not."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.config import RunConfig
from semclust.core.naming.suggest import cannot_name, classifier_probabilities, suggest_names
from semclust.core.runfolder.results import RunData


def test_classifier_probabilities_are_a_softmax_of_the_head():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    logits = x @ w + b
    ref = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(classifier_probabilities(x, w, b), ref, atol=1e-5)


def _config(backbone: str, weights: str | None = "pretrained", **changes) -> RunConfig:
    return RunConfig().replace(
        **{"encoder.backbone": backbone, "encoder.weights": weights, "pretext.epochs": 0, **changes}
    )


def test_no_names_without_a_pretrained_frozen_backbone_and_the_reason_is_said():
    feats = np.zeros((4, 8), np.float32)
    args = (feats, np.array([0, 0, 1, 1]), {0: [0], 1: [2]})
    for config, why in [
        (RunConfig(), "resnet_small has no classifier head"),
        (_config("mobilenet"), "mobilenet has no classifier head or text tower"),
        (_config("dinov2_small"), "dinov2_small has no classifier head"),
        (_config("efficientnet_lite2", None), "not pretrained"),
        (_config("efficientnet_lite2", "x.h5", **{"pretext.epochs": 5}), "fine-tuned"),
        (_config("efficientnet_lite2", **{"encoder.layer": "mid"}), "mid-level layer"),
    ]:
        names, note = suggest_names(config, *args)
        assert names == {} and why in note, note
        assert note == cannot_name(config)
        assert "efficientnet_lite2" in note and "clip_vit_b16" in note and "siglip_b16" in note
    for backbone in ("efficientnet_lite2", "clip_vit_b16", "siglip_b16"):
        assert cannot_name(_config(backbone)) is None


def test_a_failure_to_name_is_said_not_silent(monkeypatch):
    from semclust.core.representation import efficientnet_lite

    def missing(*args, **kwargs):
        raise FileNotFoundError("no EfficientNet-Lite2 weights here")

    monkeypatch.setattr(efficientnet_lite, "find_or_convert_weights", missing)
    names, note = suggest_names(
        _config("efficientnet_lite2"), np.zeros((2, 4)), np.zeros(2, int), {0: [0, 1]}
    )
    assert names == {} and "no EfficientNet-Lite2 weights here" in note


def identity_head(config, features, assignment, prototypes, cache_dir=None):
    """Lite2's head stood in by the identity: an image's ImageNet class is its feature's largest
    entry (``np.eye(1000)[classes] * 20`` as features)."""
    from semclust.core.naming.imagenet import load_imagenet_class_names, names_from_classifier

    probs = classifier_probabilities(features, np.eye(1000, dtype=np.float32), np.zeros(1000))
    return names_from_classifier(probs, assignment, prototypes, load_imagenet_class_names())


def test_every_cluster_is_named_and_names_are_distinct(monkeypatch):
    """Three clusters, two of them of the same class."""
    from semclust.core.naming import suggest

    winners = [281, 281, 281, 967, 967, 504, 281, 281, 282]  # tabby x3 | espresso x2, mug | ...
    features = np.eye(1000, dtype=np.float32)[winners] * 20
    monkeypatch.setattr(suggest, "_from_imagenet_head", identity_head)
    assignment = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    voters = {0: [0, 1, 2], 1: [3, 4, 5], 2: [6, 7, 8]}
    names, note = suggest_names(_config("efficientnet_lite2"), features, assignment, voters)
    assert note == ""
    assert names[0].name == "tabby cat" and names[0].confidence == 1.0
    assert names[1].name == "espresso" and names[1].confidence == pytest.approx(2 / 3)
    assert names[2].name == "tabby cat (2)" and names[2].confidence == pytest.approx(2 / 3)
    del voters[1]  # only the clusters asked for are named
    assert set(suggest_names(_config("efficientnet_lite2"), features, assignment, voters)[0]) == {
        0, 2
    }  # fmt: skip


def test_a_users_name_wins_over_a_suggestion_and_has_no_confidence():
    from semclust.core.runfolder.artefacts import RunPaths
    from semclust.core.runfolder.corrections import Corrections

    run = RunData(RunPaths("r"), RunConfig(), None, ["a.png"], None, np.ones((1, 3)) / 3)
    run.suggested_names = {0: "tabby cat", 1: ""}
    run.suggested_confidence = {0: 0.8, 1: 0.3}
    run.corrections = Corrections(names={0: "my cats"})
    assert [run.cluster_name(c) for c in range(3)] == ["my cats", "cluster 1", "cluster 2"]
    assert [run.name_confidence(c) for c in range(3)] == [None, None, None]
    run.corrections = Corrections()
    assert run.cluster_name(0) == "tabby cat" and run.name_confidence(0) == 0.8


def _finished(tmp_path, config: RunConfig, names: object = None, raw: str | None = None):
    from semclust.core.runfolder.artefacts import RunPaths, write_json
    from semclust.core.runfolder.results import load_run

    images = tmp_path / "images"
    images.mkdir(parents=True)
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    write_json(paths.config, config.replace(clusters=3).to_dict())
    write_json(paths.images, {"root": str(images), "paths": [f"{i}.png" for i in range(6)]})
    np.save(paths.probabilities, np.eye(3)[[0, 0, 1, 1, 2, 2]] * 0.7 + 0.1)
    if names is not None:
        write_json(paths.names, names)
    if raw is not None:
        paths.names.write_text(raw, encoding="utf-8")
    return load_run(paths.root)


def test_names_json_with_confidences_and_the_old_format_both_load(tmp_path):
    lite2 = _config("efficientnet_lite2")
    new = {"0": {"name": "tabby cat", "confidence": 0.84}, "2": {"name": "mixed: a / b",
           "confidence": 0.4}}  # fmt: skip
    run = _finished(tmp_path / "new", lite2, new)
    assert run.suggested_names == {0: "tabby cat", 2: "mixed: a / b"}
    assert run.name_confidence(0) == 0.84 and run.name_confidence(1) is None
    assert run.naming_note == "" and run.names_problem == ""
    old = _finished(tmp_path / "old", lite2, {"0": "tabby cat", "1": "espresso"})
    assert old.suggested_names == {0: "tabby cat", 1: "espresso"}
    assert old.name_confidence(0) is None  # not known then
    nothing = _finished(tmp_path / "none", _config("mobilenet"), {})
    assert "mobilenet has no classifier head" in nothing.naming_note


@pytest.mark.parametrize(
    "names, raw, problem",
    [
        ({"0": {"name": 3, "confidence": 0.5}}, None, "cluster 0's name is not a text"),
        ({"0": {"name": "cat", "confidence": "high"}}, None, "'high' is not a share"),
        ({"0": {"name": "cat", "confidence": 1.5}}, None, "1.5 is not a share"),
        ({"0": {"name": "cat", "confidence": True}}, None, "True is not a share"),
        ({"0": ["cat"]}, None, "cluster 0's name is not a text"),
        ({"7": "cat"}, None, "it names cluster 7, and the run has 3"),
        ({"cat": "cat"}, None, "'cat' is not a cluster number"),
        (["cat"], None, "expected a JSON object"),
        ({"0": "x" * 1000}, None, "at most 200 characters"),
        (None, '{"0": {"name": "cat", "confidence": NaN}}', "nan is not a share"),
        (None, '{"0": "cat",', "not valid JSON"),
    ],
)
def test_a_damaged_names_json_is_ignored_with_a_clear_message(
    tmp_path, caplog, names, raw, problem
):
    run = _finished(tmp_path, _config("efficientnet_lite2"), names, raw)
    assert run.suggested_names == {} and run.suggested_confidence == {}
    assert "names.json" in run.names_problem and problem in run.names_problem
    assert run.naming_note == run.names_problem
    assert "suggested cluster names are ignored" in run.naming_note
    assert problem in caplog.text


@pytest.mark.slow
def test_efficientnet_lite2_names_cats_and_coffee(tmp_path, lite2_downloads, monkeypatch):
    skimage = pytest.importorskip("skimage.data")
    from semclust.core.config import EncoderConfig
    from semclust.core.representation import efficientnet_lite
    from semclust.core.representation.encoders import build_encoder

    try:  # converted into a temporary cache: a test must not change the user's default backbone
        weights = efficientnet_lite.find_or_convert_weights(lite2_downloads, cache_dir=tmp_path)
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"EfficientNet-Lite2 weights not available here: {exc}")
    from PIL import Image

    def crops(photo):
        img = Image.fromarray(photo)
        w, h = img.size
        boxes = [(0, 0, w, h), (w // 8, h // 8, w, h), (0, 0, w - w // 8, h - h // 8)]
        return [np.asarray(img.crop(b).resize((260, 260))) for b in boxes]

    images = np.stack(crops(skimage.chelsea()) + crops(skimage.coffee()))
    encoder = build_encoder(EncoderConfig("efficientnet_lite2", str(weights)), 260)
    features = np.asarray(encoder.predict(images, verbose=0))
    config = RunConfig(clusters=2).replace(
        **{"encoder.backbone": "efficientnet_lite2", "encoder.weights": str(weights),
           "pretext.epochs": 0}
    )  # fmt: skip
    names, note = suggest_names(
        config, features, np.array([0, 0, 0, 1, 1, 1]), {0: [0, 1, 2], 1: [3, 4, 5]}
    )
    cats = ("cat", "tabby", "Mau", "Persian", "Siamese", "lynx")  # ImageNet's cat classes
    assert note == "" and set(names) == {0, 1}
    assert any(word in names[0].name for word in cats), names
    assert any(word in names[1].name for word in ("espresso", "cup", "coffee")), names
    assert all(0 < s.confidence <= 1 for s in names.values()), names
    # "pretrained", as a run records it: the head is read from the run's cache (--cache-dir), where
    # its features stage fetched the weights, not from the default cache, which has none
    monkeypatch.setenv("SEMCLUST_CACHE", str(tmp_path / "empty"))
    pretrained = config.replace(**{"encoder.weights": "pretrained"})
    again, note = suggest_names(
        pretrained, features, np.array([0, 0, 0, 1, 1, 1]), {0: [0, 1, 2], 1: [3, 4, 5]}, tmp_path
    )
    assert note == "" and again == names
