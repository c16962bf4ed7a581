"""Augmentation layers: ranges, grey stays grey, seeded, the Keras layers' settings, save/load round trip."""

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


def test_keras_jitter_ranges_are_simclrs():
    """The Keras layers get SimCLR's ranges: contrast and saturation x[0.6, 1.4], hue +-0.1 of the
    circle (RandomContrast would read a single 0.4 as [1, 1.4]; RandomSaturation maps f to f/(1-f))."""
    aug = ViewAugment(AugmentConfig(), grey=False, seed=0)
    low, high = aug.jitter.random_contrast.factor
    assert (1 - low, 1 + high) == (0.6, 1.4)
    multiplier = [f / (1 - f) for f in aug.jitter.random_saturation.factor]
    np.testing.assert_allclose(multiplier, [0.6, 1.4])
    assert aug.jitter.random_hue.factor == (0, 0.2)  # shifts of up to half the factor, either way
    assert aug.grayscale.factor == 0.2
    grey = ViewAugment(AugmentConfig(), grey=True, seed=0)
    assert grey.jitter.random_saturation is None and grey.jitter.random_hue is None
    assert grey.grayscale is None


def test_seeds_give_different_views():
    x = batch()
    a = keras.ops.convert_to_numpy(ViewAugment(seed=0)(x, training=True))
    b = keras.ops.convert_to_numpy(ViewAugment(seed=1)(x, training=True))
    assert np.abs(a - b).mean() > 1.0


def test_strong_augment_erases_a_grey_square():
    x = np.zeros((8, 32, 32, 3), "float32")  # black: only the erased square is grey
    cfg = StrongAugmentConfig(base=AugmentConfig(jitter_probability=0.0, grayscale_probability=0.0))
    y = keras.ops.convert_to_numpy(StrongAugment(cfg, seed=0)(x, training=True))
    erased = np.isclose(y[..., 0], 127.5, atol=0.5)
    np.testing.assert_array_equal(erased.sum(axis=(1, 2)), 16 * 16)  # half the side, inside
