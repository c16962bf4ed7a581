"""The backbone registry: keras-hub presets through a local preset directory (tiny random configs, no
download), keras.applications specs, and what happens with no network and no cache."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from semclust.core.config import EncoderConfig, RunConfig
from semclust.core.representation import backbones, pretrained
from semclust.core.representation.backbones import (
    REGISTRY,
    WeightsUnavailable,
    default_representation,
    get_spec,
    resolve_backbone,
)
from semclust.core.representation.encoders import build_encoder

HAS_HUB = importlib.util.find_spec("keras_hub") is not None
HAS_LITE = importlib.util.find_spec("semclust.core.representation.efficientnet_lite") is not None
needs_hub = pytest.mark.skipif(not HAS_HUB, reason="keras-hub is not installed")
SIZE = 28  # tiny ViTs: patch 4 at 28 px gives 49 patches


def _pixels(n: int = 3, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


# --- keras-hub presets from a local directory -------------------------------------------------------


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """Tiny random DINOv2, CLIP and SigLIP presets saved as keras-hub preset directories."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("presets")
    tower = dict(patch_size=4, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
    text = dict(vocabulary_size=64, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2)
    image_shape = (SIZE, SIZE, 3)
    models = {
        "dinov2": keras_hub.models.DINOV2Backbone(
            **tower, image_shape=image_shape, position_embedding_shape=image_shape
        ),
        "clip": keras_hub.models.CLIPBackbone(
            keras_hub.models.CLIPVisionEncoder(**tower, image_shape=image_shape),
            keras_hub.models.CLIPTextEncoder(**text, intermediate_dim=32),
            projection_dim=8,
        ),
        "siglip": keras_hub.models.SigLIPBackbone(
            keras_hub.models.SigLIPVisionEncoder(**tower, image_shape=image_shape),
            keras_hub.models.SigLIPTextEncoder(**text, intermediate_dim=32),
        ),
    }
    for family, model in models.items():
        model.save_to_preset(root / family)
    # DINOv2 carries its own image converter (as real presets do); CLIP and SigLIP use the defaults.
    converter = keras_hub.layers.DINOV2ImageConverter(image_size=(SIZE, SIZE), scale=1 / 255)
    converter.save_to_preset(root / "dinov2")
    return {family: (root / family, model) for family, model in models.items()}


@needs_hub
@pytest.mark.parametrize("family,width", [("dinov2", 16), ("clip", 8), ("siglip", 16)])
def test_local_preset_directory_gives_its_pooled_image_embedding(presets, family, width):
    folder, original = presets[family]
    spec = get_spec(str(folder))
    assert (spec.family, spec.input_size, spec.feature_dim) == (family, SIZE, width)
    RunConfig().replace(
        **{"encoder.backbone": str(folder), "encoder.weights": "pretrained"}
    ).validate()

    encoder = build_encoder(EncoderConfig(backbone=str(folder), weights="pretrained"), SIZE)
    x = _pixels()
    features = encoder.predict_on_batch(x)
    assert features.shape == (3, width)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(features, encoder.predict_on_batch(x))  # deterministic

    # The preset's own weights and preprocessing: the original model on hand-scaled pixels.
    if family == "dinov2":
        expected = original({"images": x / 255})[:, 0, :]
    elif family == "clip":
        mean = np.array([0.48145466, 0.4578275, 0.40821073])
        std = np.array([0.26862954, 0.26130258, 0.27577711])
        expected = original.get_vision_embeddings(((x / 255 - mean) / std).astype("float32"))
    else:
        expected = original.get_vision_embeddings(x / 127.5 - 1)
    np.testing.assert_allclose(features, keras.ops.convert_to_numpy(expected), atol=1e-4)

    # Without weights the same architecture starts from a random initialisation.
    scratch = build_encoder(EncoderConfig(backbone=str(folder), weights=None), SIZE)
    assert scratch.predict_on_batch(x).shape == (3, width)
    assert not np.allclose(scratch.predict_on_batch(x), features, atol=1e-3)


@needs_hub
def test_preset_input_size_is_adapted(presets):
    """Other image sizes work: DINOv2 runs at any multiple of its patch, CLIP resizes to its own."""
    dino = build_encoder(
        EncoderConfig(backbone=str(presets["dinov2"][0]), weights="pretrained"), 32
    )
    assert "resizing" not in [layer.name.rstrip("_0123456789") for layer in dino.layers]
    assert dino.predict_on_batch(_pixels(2, 32)).shape == (2, 16)
    clip = build_encoder(EncoderConfig(backbone=str(presets["clip"][0]), weights="pretrained"), 40)
    assert any(isinstance(layer, keras.layers.Resizing) for layer in clip.layers)
    assert clip.predict_on_batch(_pixels(2, 40)).shape == (2, 8)


@needs_hub
def test_preset_directory_without_weights_is_a_clear_error(presets, tmp_path):
    folder = tmp_path / "no_weights"
    folder.mkdir()
    (folder / "config.json").write_text((presets["dinov2"][0] / "config.json").read_text())
    with pytest.raises(WeightsUnavailable, match="model.weights.h5"):
        build_encoder(EncoderConfig(backbone=str(folder), weights="pretrained"), SIZE)


@needs_hub
@pytest.mark.slow
def test_pipeline_runs_on_a_preset_frozen_and_fine_tuned(presets, tmp_path):
    """A run on a keras-hub preset directory: frozen features, then SimCLR + SCAN updating the ViT
    (the encoder is rebuilt from the preset and the run folder's weights)."""
    import warnings

    from semclust.core.demo import write_digits_folder
    from semclust.core.run import run_pipeline

    digits_folder = write_digits_folder(tmp_path / "digits", limit=10)

    frozen = RunConfig(clusters=10).replace(
        **{
            "encoder.backbone": str(presets["dinov2"][0]),
            "encoder.weights": "pretrained",
            "ingest.image_size": 32,
            "pretext.epochs": 0,
            "scan.epochs": 2,
        }
    )
    run = run_pipeline(digits_folder, tmp_path / "frozen", frozen, cache_dir=tmp_path / "cache")
    assert run.probabilities.shape == (100, 10)
    assert np.load(tmp_path / "frozen" / "features.npy").shape == (100, 16)

    tuned = frozen.replace(
        **{"pretext.epochs": 1, "scan.update_encoder": True, "selflabel.enabled": True}
    )
    tuned = tuned.replace(**{"selflabel.epochs": 1, "scan.epochs": 1})
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Gradients do not exist")
        run = run_pipeline(digits_folder, tmp_path / "tuned", tuned, cache_dir=tmp_path / "cache")
    assert np.allclose(run.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_preset_names_are_known_without_importing_keras_hub():
    assert backbones.is_preset_reference("hf://facebook/dinov2-small")
    if HAS_HUB:
        assert {"dinov2_small", "clip_vit_base_patch16"} <= backbones.keras_hub_preset_names()
    with pytest.raises(ValueError, match="Unknown backbone"):
        get_spec("vgg")
    with pytest.raises(ValueError, match="not a keras-hub preset directory"):
        get_spec(str(Path(__file__).parent))


# --- keras.applications and EfficientNet-Lite2 ------------------------------------------------------


@pytest.mark.parametrize("name", ["efficientnetv2_b0", "convnext_tiny"])
def test_application_specs_build_without_weights(name):
    spec = REGISTRY[name]
    encoder = build_encoder(EncoderConfig(backbone=name), 64)
    assert encoder.predict_on_batch(_pixels(2, 64)).shape == (2, spec.feature_dim)


@pytest.mark.slow
def test_efficientnetv2_s_builds_without_weights():
    encoder = build_encoder(EncoderConfig(backbone="efficientnetv2_s"), 64)
    assert encoder.predict_on_batch(_pixels(1, 64)).shape == (1, 1280)


@pytest.mark.skipif(
    not HAS_LITE, reason="core/representation/efficientnet_lite.py is not there yet"
)
def test_efficientnet_lite2_builds_without_weights():
    encoder = build_encoder(EncoderConfig(backbone="efficientnet_lite2"), 64)
    assert encoder.predict_on_batch(_pixels(2, 64)).shape == (2, 1280)


def test_every_spec_is_complete():
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.input_size >= 32 and spec.preprocessing
        assert spec.pretrained == (name != "resnet_small")
        if spec.family == "keras_applications":
            assert hasattr(keras.applications, spec.source) and spec.cache_files
        if spec.keras_hub:
            assert spec.source.startswith("kaggle://") and spec.feature_dim


# --- no network, no cache --------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, empty caches, no local weights anywhere; yields the folder searched for weights."""
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    monkeypatch.setattr(pretrained, "network_available", lambda host, timeout=0: False)
    monkeypatch.setattr(pretrained, "preset_cached", lambda handle: False)
    monkeypatch.setattr(pretrained, "keras_cache_dir", lambda: tmp_path / "keras")
    monkeypatch.setattr(pretrained, "weights_search_dirs", lambda cache_dir=None: [weights_dir])
    if HAS_LITE:
        from semclust.core.representation import efficientnet_lite

        def nothing(*args, **kwargs):
            raise FileNotFoundError("The EfficientNet-Lite2 ImageNet weights are not here.")

        monkeypatch.setattr(efficientnet_lite, "find_or_convert_weights", nothing)
    return weights_dir


def test_offline_preset_is_a_clear_error_and_falls_back_to_scratch(offline):
    assert pretrained.needs_download(REGISTRY["dinov2_small"], "pretrained")
    assert not pretrained.needs_download(REGISTRY["dinov2_small"], None)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        build_encoder(EncoderConfig(backbone="dinov2_small", weights="pretrained"), 224)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "kagglehub.model_download('keras/dinov2/keras/dinov2_small/1')" in message
    assert "give that folder as the backbone" in message

    spec, weights, note = resolve_backbone("dinov2_small", "pretrained")
    assert (spec.name, weights) == ("resnet_small", None)
    assert "No network" in note and "from scratch" in note and "\n" not in note
    rep = default_representation()  # whether it can be fetched is for the run to find out
    assert (rep.backbone, rep.weights, rep.pretrained) == ("efficientnet_lite2", "pretrained", True)
    assert "fetched on first use" in rep.reason


def test_offline_application_names_the_file_and_falls_back_to_local_mobilenet(offline):
    with pytest.raises(WeightsUnavailable, match="convnext_tiny_notop.h5"):
        build_encoder(EncoderConfig(backbone="convnext_tiny", weights="imagenet"), 64)
    local = offline / "mobilenet_1_0_224_imagenet_notop.weights.h5"
    local.write_bytes(b"")
    spec, weights, note = resolve_backbone("convnext_tiny", "imagenet")
    assert (spec.name, weights) == ("mobilenet", str(local))
    assert "convnext_tiny" in note and "Falling back to pretrained mobilenet" in note
    rep = default_representation()
    assert (rep.backbone, rep.weights, rep.pretrained) == ("mobilenet", str(local), True)


@pytest.mark.skipif(
    not HAS_LITE, reason="core/representation/efficientnet_lite.py is not there yet"
)
def test_offline_prefers_efficientnet_lite2_when_its_weights_are_found(offline, monkeypatch):
    from semclust.core.representation import efficientnet_lite

    converted = offline / efficientnet_lite.WEIGHTS_NAME
    converted.write_bytes(b"")
    monkeypatch.setattr(efficientnet_lite, "find_or_convert_weights", lambda **kw: converted)
    spec, weights, note = resolve_backbone("siglip_b16", "pretrained")
    assert (spec.name, weights) == ("efficientnet_lite2", str(converted))
    assert default_representation().backbone == "efficientnet_lite2"


def test_small_grey_images_prefer_a_backbone_with_a_mid_level_layer(offline, monkeypatch):
    from semclust.core.representation import efficientnet_lite

    converted = offline / efficientnet_lite.WEIGHTS_NAME
    converted.write_bytes(b"")
    (offline / REGISTRY["mobilenet"].cache_files[1]).write_bytes(b"")
    monkeypatch.setattr(efficientnet_lite, "find_or_convert_weights", lambda **kw: converted)
    assert default_representation().backbone == "efficientnet_lite2"  # photos: the stronger one
    grey = default_representation(small_grey_images=True)  # both have one: the stronger one
    assert grey.backbone == "efficientnet_lite2" and "mid-level layer" in grey.reason
    converted.unlink()

    def nothing(**kwargs):
        raise FileNotFoundError("not here")

    monkeypatch.setattr(efficientnet_lite, "find_or_convert_weights", nothing)
    grey = default_representation(small_grey_images=True)  # only MobileNet here
    assert grey.backbone == "mobilenet" and "mid-level layer" in grey.reason
    assert backbones.small_grey(True, 28) and not backbones.small_grey(True, 64)
    assert not backbones.small_grey(False, 28) and not backbones.small_grey(True, None)


def test_a_failed_download_is_weights_unavailable(monkeypatch, tmp_path):
    """The network probe says yes, but the download itself fails."""
    from keras.src.utils import file_utils

    def refuse(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no route")  # noqa: TRY002

    monkeypatch.setattr(pretrained, "network_available", lambda host, timeout=0: True)
    monkeypatch.setattr(pretrained, "keras_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(pretrained, "weights_search_dirs", lambda cache_dir=None: [tmp_path])
    monkeypatch.setattr(file_utils, "get_file", refuse)
    with pytest.raises(WeightsUnavailable, match="efficientnetv2-b0_notop.h5"):
        build_encoder(EncoderConfig(backbone="efficientnetv2_b0", weights="imagenet"), 64)


def test_network_probe_gives_up_quickly():
    pretrained._NETWORK.pop("semclust-test.invalid", None)
    start = time.monotonic()
    assert not pretrained.network_available("semclust-test.invalid", timeout=1.0)
    assert time.monotonic() - start < 2.5


def test_resnet_small_keeps_refusing_weights():
    with pytest.raises(ValueError, match="resnet_small has no pretrained weights"):
        RunConfig().replace(**{"encoder.weights": "pretrained"}).validate()


# --- first-use download progress --------------------------------------------------------------------


def test_download_progress_reports_the_megabytes_as_they_arrive(offline, tmp_path):
    spec = REGISTRY["efficientnetv2_b0"]  # keras.applications: the file grows in the Keras cache
    target = pretrained.keras_cache_dir() / spec.cache_files[0]
    target.parent.mkdir(parents=True)
    (target.parent / "older_download.h5").write_bytes(b"x" * 2**20)  # there before: not counted
    events = []
    with pretrained.download_progress(spec, "pretrained", events.append, "pretext", interval=0.02):
        with target.open("wb") as file:
            for _ in range(3):
                file.write(b"w" * 2**20)
                file.flush()
                time.sleep(0.1)
    assert all(e.stage == "pretext" and e.kind == "progress" for e in events)
    assert events[0].step == 0 and events[-2].step == 3 and events[-2].total == spec.download_mb
    steps = [e.step for e in events]
    assert (
        steps == sorted(steps) and len(set(steps)) >= 3
    )  # seen while it grew, not only at the end
    assert events[-2].message.endswith(f"3.0 of about {spec.download_mb} MB")
    assert "efficientnetv2_b0" in events[-2].message and "first use" in events[-2].message
    # done: the bar ends full, and the message gives what arrived
    assert events[-1].step == events[-1].total == spec.download_mb
    assert events[-1].message.endswith("efficientnetv2_b0 (now cached): 3.0 MB")

    after = []  # now cached: nothing to report, no thread
    with pretrained.download_progress(spec, "pretrained", after.append, "pretext"):
        pass
    assert after == []


def test_download_folders_follow_each_source(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    hub = pretrained.download_folders(REGISTRY["dinov2_small"])
    assert hub == [tmp_path / "kaggle" / "models" / "keras" / "dinov2"]
    hf = backbones.BackboneSpec("x", "dinov2", 224, "", 384, weights="hf", source="hf://org/name")
    assert pretrained.download_folders(hf)[0].name == "models--org--name"
    assert pretrained.download_folders(REGISTRY["convnext_tiny"]) == [pretrained.keras_cache_dir()]
    assert pretrained.download_folders(REGISTRY["resnet_small"]) == []


# --- the layer frozen features are read from ----------------------------------------------------------


def test_feature_layer_is_mid_only_for_small_grey_images_on_a_frozen_backbone_with_one():
    mobilenet = REGISTRY["mobilenet"]
    assert backbones.feature_layer(mobilenet, frozen=True, grey=True, image_side=28) == "mid"
    assert backbones.feature_layer(mobilenet, frozen=True, grey=False, image_side=28) == "final"
    assert backbones.feature_layer(mobilenet, frozen=True, grey=True, image_side=240) == "final"
    assert backbones.feature_layer(mobilenet, frozen=True, grey=True, image_side=None) == "final"
    assert backbones.feature_layer(mobilenet, frozen=False, grey=True, image_side=28) == "final"
    lite = REGISTRY["efficientnet_lite2"]
    assert backbones.feature_layer(lite, frozen=True, grey=True, image_side=28) == "mid"
    convnext = REGISTRY["convnext_tiny"]
    assert backbones.feature_layer(convnext, frozen=True, grey=True, image_side=28) == "final"


def test_a_mid_layer_is_refused_where_there_is_none():
    backbones.check_backbone("mobilenet", "pretrained", "mid")
    with pytest.raises(ValueError, match="no mid-level feature layer.*mobilenet"):
        RunConfig().replace(
            **{"encoder.backbone": "convnext_tiny", "encoder.layer": "mid"}
        ).validate()
    with pytest.raises(ValueError, match="Unknown feature layer"):
        backbones.check_backbone("mobilenet", None, "top")


def test_mid_layer_features_are_the_pooled_square_root_of_that_layer():
    spec = REGISTRY["mobilenet"]
    encoder = build_encoder(EncoderConfig("mobilenet", None, layer="mid"), 64)
    pixels = _pixels(2, 64)
    features = np.asarray(encoder.predict_on_batch(pixels))
    inner = next(layer for layer in encoder.layers if isinstance(layer, keras.Model))
    activations = np.asarray(inner.predict_on_batch(pixels / 127.5 - 1.0))
    assert inner.output.name.startswith(spec.mid_layer) or inner.layers[-1].name == spec.mid_layer
    np.testing.assert_allclose(
        features, np.sqrt(activations.mean(axis=(1, 2))), rtol=1e-4, atol=1e-5
    )
    assert features.shape == (2, 512)


def test_efficientnet_lite2_mid_layer_features_are_the_pooled_square_root_of_that_layer():
    from semclust.core.representation import efficientnet_lite

    spec = REGISTRY["efficientnet_lite2"]
    encoder = build_encoder(EncoderConfig("efficientnet_lite2", None, layer="mid"), 64)
    pixels = _pixels(2, 64)
    features = np.asarray(encoder.predict_on_batch(pixels))
    inner = next(layer for layer in encoder.layers if isinstance(layer, keras.Model))
    assert inner.layers[-1].name == spec.mid_layer
    activations = np.asarray(inner.predict_on_batch(efficientnet_lite.preprocess_input(pixels)))
    np.testing.assert_allclose(
        features, np.sqrt(activations.mean(axis=(1, 2))), rtol=1e-4, atol=1e-5
    )
    assert features.shape == (2, 720)  # stage 4's 120 channels, widened six times
