"""Batched image augmentation as Keras layers (backend-agnostic: only ``keras.ops`` and ``keras.random``).

:class:`ViewAugment` makes SimCLR views (Chen et al. 2020): random resized crop, horizontal flip, colour
jitter with probability 0.8, grayscale with probability 0.2. :class:`StrongAugment` adds rotation, shear
and cutout, standing in for SCAN's RandAugment + Cutout in self-labelling. Every sample gets its own
random parameters; crop, flip, rotation and shear are one affine resampling per batch.

Images go in and come out as float 0..255 (N, H, W, 3). Outside training the layers pass images through.

Example:
    >>> aug = ViewAugment(AugmentConfig(), grey=False, seed=1)
    >>> views = aug(keras.ops.ones((8, 32, 32, 3)) * 128.0, training=True)
"""

from __future__ import annotations

import math

import keras
from keras import ops

from semclust.core.config import AugmentConfig, StrongAugmentConfig


@keras.saving.register_keras_serializable(package="semclust")
class ViewAugment(keras.layers.Layer):
    """One random SimCLR view of each image in a batch.

    Args:
        config: augmentation strengths (SimCLR / SCAN CIFAR-10 defaults).
        grey: the data set is grey: skip saturation, hue and grayscale (they do nothing or harm).
        seed: seed of the layer's random stream.
    """

    def __init__(
        self, config: AugmentConfig = AugmentConfig(), grey: bool = False, seed: int = 0, **kwargs
    ):
        super().__init__(**kwargs)
        self.config = config
        self.grey = grey
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        x = ops.cast(images, "float32") / 255.0
        x = self._geometry(x)
        x = self._colour(x)
        return ops.clip(x, 0.0, 1.0) * 255.0

    # --- geometry -------------------------------------------------------------------------------
    def _geometry(self, x, extra=None):
        c = self.config
        n = ops.shape(x)[0]
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        h_f, w_f = ops.cast(h, "float32"), ops.cast(w, "float32")
        area = self._uniform((n,), *c.crop_scale)
        log_ratio = self._uniform((n,), math.log(c.crop_ratio[0]), math.log(c.crop_ratio[1]))
        ratio = ops.exp(log_ratio)
        sx = ops.minimum(ops.sqrt(area * ratio), 1.0)  # crop width as a fraction of the image
        sy = ops.minimum(ops.sqrt(area / ratio), 1.0)
        ox = self._uniform((n,), 0.0, 1.0) * (1.0 - sx) * w_f
        oy = self._uniform((n,), 0.0, 1.0) * (1.0 - sy) * h_f
        flip = ops.cast(self._uniform((n,), 0.0, 1.0) < c.flip_probability, "float32")
        sign = 1.0 - 2.0 * flip
        a0 = sign * sx
        a2 = ox + flip * (w_f - 1.0) * sx
        b1 = sy
        b2 = oy
        zeros = ops.zeros_like(a0)
        if extra is None:
            transform = ops.stack([a0, zeros, a2, zeros, b1, b2, zeros, zeros], axis=1)
        else:
            # Compose crop/flip (output -> crop space) with rotation/shear about the centre.
            r00, r01, r10, r11 = extra
            cx, cy = (w_f - 1.0) / 2.0, (h_f - 1.0) / 2.0
            # point p -> R (p - c) + c, then the crop map.
            t0 = cx - (r00 * cx + r01 * cy)
            t1 = cy - (r10 * cx + r11 * cy)
            transform = ops.stack(
                [a0 * r00, a0 * r01, a0 * t0 + a2, b1 * r10, b1 * r11, b1 * t1 + b2, zeros, zeros],
                axis=1,
            )
        return ops.image.affine_transform(
            x, transform, interpolation="bilinear", fill_mode="reflect"
        )

    # --- colour ---------------------------------------------------------------------------------
    def _colour(self, x):
        c = self.config
        n = ops.shape(x)[0]
        jitter = ops.reshape(
            ops.cast(self._uniform((n,), 0.0, 1.0) < c.jitter_probability, "float32"), (-1, 1, 1, 1)
        )
        y = x * ops.reshape(
            self._uniform((n,), 1.0 - c.brightness, 1.0 + c.brightness), (-1, 1, 1, 1)
        )
        mean = ops.mean(_luma(y), axis=(1, 2, 3), keepdims=True)
        y = (y - mean) * ops.reshape(
            self._uniform((n,), 1.0 - c.contrast, 1.0 + c.contrast), (-1, 1, 1, 1)
        ) + mean
        if not self.grey:
            grey = _luma(y)
            factor = ops.reshape(
                self._uniform((n,), 1.0 - c.saturation, 1.0 + c.saturation), (-1, 1, 1, 1)
            )
            y = (y - grey) * factor + grey
            y = _rotate_hue(y, self._uniform((n,), -c.hue, c.hue) * 2.0 * math.pi)
        y = ops.clip(y, 0.0, 1.0)
        x = jitter * y + (1.0 - jitter) * x
        if not self.grey and c.grayscale_probability > 0:
            to_grey = ops.reshape(
                ops.cast(self._uniform((n,), 0.0, 1.0) < c.grayscale_probability, "float32"),
                (-1, 1, 1, 1),
            )
            x = to_grey * ops.repeat(_luma(x), 3, axis=-1) + (1.0 - to_grey) * x
        return x

    def _uniform(self, shape, low, high):
        return keras.random.uniform(shape, minval=low, maxval=high, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        cfg = super().get_config()
        cfg.update(config=_to_plain(self.config), grey=self.grey, seed=self.seed)
        return cfg

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        cfg["config"] = AugmentConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["config"].items()}
        )
        return cls(**cfg)


@keras.saving.register_keras_serializable(package="semclust")
class StrongAugment(ViewAugment):
    """A SimCLR view plus random rotation, shear and a cutout square (for self-labelling)."""

    def __init__(
        self,
        config: StrongAugmentConfig = StrongAugmentConfig(),
        grey: bool = False,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(config.base, grey=grey, seed=seed, **kwargs)
        self.strong = config

    def call(self, images, training=None):
        if not training:
            return images
        x = ops.cast(images, "float32") / 255.0
        n = ops.shape(x)[0]
        angle = self._uniform((n,), -1.0, 1.0) * self.strong.max_rotation_degrees * math.pi / 180.0
        shear = self._uniform((n,), -self.strong.max_shear, self.strong.max_shear)
        cos, sin = ops.cos(angle), ops.sin(angle)
        # rotation followed by a horizontal shear: [[1, s], [0, 1]] @ [[cos, -sin], [sin, cos]]
        extra = (cos + shear * sin, -sin + shear * cos, sin, cos)
        x = self._geometry(x, extra=extra)
        x = self._colour(x)
        x = self._cutout(x)
        return ops.clip(x, 0.0, 1.0) * 255.0

    def _cutout(self, x):
        n = ops.shape(x)[0]
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        half = self.strong.cutout_fraction / 2.0
        cy = ops.reshape(self._uniform((n,), 0.0, 1.0), (-1, 1, 1, 1))
        cx = ops.reshape(self._uniform((n,), 0.0, 1.0), (-1, 1, 1, 1))
        ys = ops.reshape(ops.linspace(0.0, 1.0, h), (1, -1, 1, 1))
        xs = ops.reshape(ops.linspace(0.0, 1.0, w), (1, 1, -1, 1))
        inside = ops.logical_and(ops.abs(ys - cy) < half, ops.abs(xs - cx) < half)
        return ops.where(inside, 0.5, x)

    def get_config(self):
        cfg = super().get_config()
        cfg["config"] = _to_plain(self.strong)
        return cfg

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        strong = dict(cfg["config"])
        base = AugmentConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in strong.pop("base").items()}
        )
        cfg["config"] = StrongAugmentConfig(base=base, **strong)
        return cls(**cfg)


def _luma(x):
    weights = ops.convert_to_tensor([0.299, 0.587, 0.114], dtype="float32")
    return ops.sum(x * weights, axis=-1, keepdims=True)


def _rotate_hue(x, angle):
    """Rotates the chroma of RGB images by a per-sample angle in YIQ space."""
    to_yiq = ops.convert_to_tensor(
        [[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]], dtype="float32"
    )
    to_rgb = ops.convert_to_tensor(
        [[1.0, 1.0, 1.0], [0.956, -0.272, -1.106], [0.621, -0.647, 1.703]], dtype="float32"
    )
    yiq = ops.matmul(x, to_yiq)
    cos = ops.reshape(ops.cos(angle), (-1, 1, 1))
    sin = ops.reshape(ops.sin(angle), (-1, 1, 1))
    y, i, q = yiq[..., 0], yiq[..., 1], yiq[..., 2]
    i2 = i * cos - q * sin
    q2 = i * sin + q * cos
    return ops.matmul(ops.stack([y, i2, q2], axis=-1), to_rgb)


def _to_plain(cfg):
    import dataclasses

    return dataclasses.asdict(cfg)
