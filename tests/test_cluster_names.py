"""Suggested cluster names: from the ImageNet head of EfficientNet-Lite2; none without a way to name."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.config import RunConfig
from semclust.core.naming.suggest import classifier_probabilities, suggest_names
from semclust.core.runfolder.results import RunData


def test_classifier_probabilities_are_a_softmax_of_the_head():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    logits = x @ w + b
    ref = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(classifier_probabilities(x, w, b), ref, atol=1e-5)


def test_no_names_without_a_pretrained_frozen_backbone():
    feats = np.zeros((4, 8), np.float32)
    assert suggest_names(RunConfig(), feats, np.array([0, 0, 1, 1]), {0: [0], 1: [2]}) == {}
    tuned = RunConfig().replace(
        **{"encoder.backbone": "efficientnet_lite2", "encoder.weights": "x.h5", "pretext.epochs": 5}
    )
    assert suggest_names(tuned, feats, np.array([0, 0, 1, 1]), {0: [0], 1: [2]}) == {}


def test_a_users_name_wins_over_a_suggestion():
    from semclust.core.runfolder.artefacts import RunPaths
    from semclust.core.runfolder.results import Corrections

    run = RunData(RunPaths("r"), RunConfig(), None, ["a.png"], None, np.ones((1, 3)) / 3)
    run.suggested_names = {0: "tabby cat", 1: ""}
    run.corrections = Corrections(names={0: "my cats"})
    assert [run.cluster_name(c) for c in range(3)] == ["my cats", "cluster 1", "cluster 2"]
    run.corrections = Corrections()
    assert run.cluster_name(0) == "tabby cat"


@pytest.mark.slow
def test_efficientnet_lite2_names_cats_and_coffee(tmp_path, lite2_downloads):
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
    names = suggest_names(
        config, features, np.array([0, 0, 0, 1, 1, 1]), {0: [0, 1, 2], 1: [3, 4, 5]}
    )
    cats = ("cat", "tabby", "Mau", "Persian", "Siamese", "lynx")  # ImageNet's cat classes
    assert any(word in names[0] for word in cats), names
    assert any(word in names[1] for word in ("espresso", "cup", "coffee")), names
