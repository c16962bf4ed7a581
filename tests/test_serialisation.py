"""Every class registered with ``keras.saving.register_keras_serializable`` survives a ``.keras`` save and
load (keras-hub's style guide): same class, same init arguments, same outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from semclust.core.clustering.dec import ClusteringLayer
from semclust.core.clustering.scan import ClusterHeads
from semclust.core.config import AugmentConfig, StrongAugmentConfig
from semclust.core.representation.augment import StrongAugment, ViewAugment
from semclust.core.representation.encoders import SquareRoot
from semclust.core.representation.simclr import SimCLRModel

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (4, 16, 16, 3)).astype("float32")
FEATURES = RNG.standard_normal((6, 5)).astype("float32")


def _round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path)


def _tiny_encoder() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, kernel_initializer=keras.initializers.GlorotUniform(1))(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")


@pytest.mark.parametrize("hidden", [0, 8])
def test_cluster_heads_on_features(tmp_path, hidden):
    heads = ClusterHeads(3, n_heads=2, seed=4, hidden=hidden)
    heads.adapt(FEATURES)
    before = heads.predict_on_batch(FEATURES)
    again = _round_trip(heads, tmp_path)
    assert isinstance(again, ClusterHeads)
    assert (again.n_clusters, again.n_heads, again.seed, again.hidden_units) == (3, 2, 4, hidden)
    np.testing.assert_allclose(again.predict_on_batch(FEATURES), before, rtol=1e-6)


def test_cluster_heads_with_a_backbone(tmp_path):
    heads = ClusterHeads(3, backbone=_tiny_encoder(), seed=1)
    heads.adapt(keras.ops.convert_to_numpy(heads.backbone(IMAGES)))
    before = heads.predict_on_batch(IMAGES)
    again = _round_trip(heads, tmp_path)
    assert isinstance(again.backbone, keras.Model) and again.backbone.name == "tiny"
    np.testing.assert_allclose(again.predict_on_batch(IMAGES), before, rtol=1e-6)


def test_simclr_model(tmp_path):
    augment = ViewAugment(AugmentConfig(crop_scale=(0.5, 1.0)), grey=True, seed=7)
    model = SimCLRModel(_tiny_encoder(), augment, projection_dim=6, temperature=0.2)
    model.build(IMAGES.shape)
    before = model.predict_on_batch(IMAGES)
    again = _round_trip(model, tmp_path)
    assert isinstance(again, SimCLRModel)
    assert (again.projection_dim, again.temperature) == (6, 0.2)
    assert isinstance(again.augment, ViewAugment) and again.augment.grey
    assert again.augment.config.crop_scale == (0.5, 1.0) and again.augment.seed == 7
    np.testing.assert_allclose(again.predict_on_batch(IMAGES), before, rtol=1e-6)


def test_clustering_layer_and_square_root(tmp_path):
    inputs = keras.Input((5,))
    x = SquareRoot(name="sqrt")(inputs)
    model = keras.Model(inputs, ClusteringLayer(3, alpha=2.0, name="clustering")(x))
    model.get_layer("clustering").set_weights([RNG.uniform(0, 1, (3, 5)).astype("float32")])
    before = model.predict_on_batch(FEATURES)
    again = _round_trip(model, tmp_path)
    assert isinstance(again.get_layer("sqrt"), SquareRoot)
    assert again.get_layer("clustering").alpha == 2.0
    np.testing.assert_allclose(again.predict_on_batch(FEATURES), before, rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ViewAugment(AugmentConfig(brightness=0.2), grey=False, seed=3),
        lambda: StrongAugment(StrongAugmentConfig(max_shear=0.1), grey=True, seed=5),
    ],
)
def test_augment_layers(tmp_path, make):
    """The loaded layer has the same configuration and, from the same seed, makes the same views."""
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, make()(inputs))
    again = _round_trip(model, tmp_path)
    layer, loaded = model.layers[-1], again.layers[-1]
    assert type(loaded) is type(layer) and loaded.get_config() == layer.get_config()
    np.testing.assert_array_equal(again.predict_on_batch(IMAGES), IMAGES)  # inference: unchanged
    fresh = make()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(IMAGES, training=True)),
        keras.ops.convert_to_numpy(fresh(IMAGES, training=True)),
        rtol=1e-5,
        atol=1e-3,
    )
