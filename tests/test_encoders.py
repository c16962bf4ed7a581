"""Backbones: shapes, and the pretrained MobileNet path with local weights (what users get from
``weights="imagenet"``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from skimage import data as skdata

from semclust.core.config import EncoderConfig
from semclust.core.representation.encoders import build_encoder
from tests.conftest import MOBILENET_WEIGHTS

WEIGHTS = MOBILENET_WEIGHTS


@pytest.mark.parametrize("backbone,width", [("resnet_small", 128), ("resnet50v2", 2048)])
def test_scratch_backbones(backbone, width):
    encoder = build_encoder(EncoderConfig(backbone=backbone), 32)
    out = encoder.predict_on_batch(np.zeros((2, 32, 32, 3), "float32"))
    assert out.shape == (2, width)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        build_encoder(EncoderConfig(backbone="mobilenet", weights=str(tmp_path / "none.h5")), 64)


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="local ImageNet weights not present")
def test_mobilenet_local_weights_match_keras_preprocessing():
    photo = np.asarray(
        keras.utils.array_to_img(skdata.chelsea()).resize((96, 96)), dtype="float32"
    )[None]
    ours = build_encoder(EncoderConfig(backbone="mobilenet", weights=str(WEIGHTS)), 96)
    reference = keras.applications.MobileNet(
        include_top=False, weights=str(WEIGHTS), input_shape=(96, 96, 3), pooling="avg"
    )
    expected = reference.predict_on_batch(
        keras.applications.mobilenet.preprocess_input(photo.copy())
    )
    np.testing.assert_allclose(ours.predict_on_batch(photo), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected).sum() > 0


def test_feature_size_is_read_from_the_model_without_predicting():
    import keras
    import numpy as np

    from semclust.core.representation.simclr import feature_size

    calls = []
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(
        inputs, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(inputs))
    )
    model.predict_on_batch = lambda x: calls.append(len(x)) or np.zeros((len(x), 5))
    assert feature_size(model, np.zeros((3, 8, 8, 3), np.uint8)) == 5 and calls == []
