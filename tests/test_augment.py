"""Augmentation layers: ranges, grey stays grey, seeded, save/load round trip (keras-hub style)."""

from __future__ import annotations

import keras
import numpy as np
from skimage import data as skdata

from semclust.core.config import AugmentConfig, StrongAugmentConfig
from semclust.core.representation.augment import StrongAugment, ViewAugment


def batch():
    photo = skdata.astronaut()[::16, ::16]  # 32x32 real photo
    return np.stack([photo, photo[::-1], photo[:, ::-1], photo]).astype("float32")


def test_views_differ_and_stay_in_range():
    aug = ViewAugment(seed=1)
    x = batch()
    a = keras.ops.convert_to_numpy(aug(x, training=True))
    b = keras.ops.convert_to_numpy(aug(x, training=True))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 255
    assert np.abs(a - b).mean() > 1.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x, training=False)), x)


def test_grey_images_stay_grey():
    x = np.repeat(batch()[..., :1], 3, axis=-1)
    for aug in (ViewAugment(grey=True, seed=0), StrongAugment(grey=True, seed=0)):
        y = keras.ops.convert_to_numpy(aug(x, training=True))
        np.testing.assert_allclose(y[..., 0], y[..., 1], atol=1e-3)


def test_same_seed_same_views():
    x = batch()
    a = keras.ops.convert_to_numpy(StrongAugment(seed=5)(x, training=True))
    b = keras.ops.convert_to_numpy(StrongAugment(seed=5)(x, training=True))
    np.testing.assert_allclose(a, b)


def test_config_round_trip(tmp_path):
    inputs = keras.Input((32, 32, 3))
    outputs = StrongAugment(StrongAugmentConfig(max_shear=0.1), grey=True, seed=3)(inputs)
    outputs = ViewAugment(AugmentConfig(crop_scale=(0.5, 1.0)), seed=2)(outputs)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    layers = [la for la in again.layers if isinstance(la, ViewAugment)]
    assert layers[0].strong.max_shear == 0.1 and layers[0].grey
    assert layers[1].config.crop_scale == (0.5, 1.0)
