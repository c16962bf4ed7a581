"""Batched image augmentation as Keras layers.

:class:`ViewAugment` makes SimCLR views (Chen et al. 2020): random resized crop, horizontal flip, colour
jitter with probability 0.8, grayscale with probability 0.2. :class:`StrongAugment` adds rotation, shear
and an erased square, standing in for SCAN's RandAugment + Cutout in self-labelling. Every sample gets
its own random parameters.

The colour operations and the erasing are Keras's own layers: ``keras.layers.RandomColorJitter`` (its
brightness is additive, as in SimCLR v1's ``tf.image.random_brightness``), ``RandomGrayscale`` and
``RandomErasing``. The geometry is written here as one affine resampling per batch: Keras 3.15 has no
random resized crop (``RandomZoom`` + ``RandomTranslation`` draw size and place independently), and its
geometric layers each resample the batch again, which blurs small images and costs time (SimCLR on the
digits, 2 CPU cores: 348 images/s with Keras's zoom, translation and flip, 429 with the one affine).

Images go in and come out as float 0..255 (N, H, W, 3). Outside training the layers pass images through.

Example:
    >>> aug = ViewAugment(AugmentConfig(), grey=False, seed=1)
    >>> views = aug(keras.ops.ones((8, 32, 32, 3)) * 128.0, training=True)
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

from semclust.core.config import AugmentConfig, StrongAugmentConfig

#: Sub-layer seeds are ``seed * SEED_STRIDE + k``: distinct streams for every layer and every seed.
SEED_STRIDE = 16


@keras.saving.register_keras_serializable(package="semclust")
class ViewAugment(keras.layers.Layer):
    """One random SimCLR view of each image in a batch (Chen et al. 2020, appendix A).

    Args:
        config: augmentation strengths (SimCLR / SCAN CIFAR-10 defaults).
        grey: the data set is grey: skip saturation, hue and grayscale (they do nothing or harm).
        seed: seed of the layer's random streams.
    """

    def __init__(
        self, config: AugmentConfig = AugmentConfig(), grey: bool = False, seed: int = 0, **kwargs
    ):
        super().__init__(**kwargs)
        self.config = config
        self.grey = grey
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed * SEED_STRIDE)
        c = config
        colour = not grey
        self.jitter = keras.layers.RandomColorJitter(
            value_range=(0.0, 1.0),
            brightness_factor=c.brightness or None,
            # a pair: RandomContrast reads one number f as [1, 1 + f], not [1 - f, 1 + f]
            contrast_factor=(c.contrast, c.contrast) if c.contrast else None,
            # RandomSaturation multiplies S by f / (1 - f): [1 - s, 1 + s] for f in this range
            saturation_factor=(
                ((1 - c.saturation) / (2 - c.saturation), (1 + c.saturation) / (2 + c.saturation))
                if colour and c.saturation
                else None
            ),
            # RandomHue shifts the hue by up to half its factor, either way
            hue_factor=2 * c.hue if colour and c.hue else None,
            seed=seed * SEED_STRIDE + 1,
            name="jitter",
        )
        self.grayscale = (
            keras.layers.RandomGrayscale(
                c.grayscale_probability, seed=seed * SEED_STRIDE + 2, name="grayscale"
            )
            if colour and c.grayscale_probability > 0
            else None
        )

    def build(self, input_shape):
        for layer in self._keras_layers():
            layer.build(input_shape)
        self.built = True

    def _keras_layers(self) -> list[keras.layers.Layer]:
        return [la for la in (self.jitter, self.grayscale) if la is not None]

    def call(self, images, training=None):
        if not training:
            return images
        x = ops.cast(images, "float32") / 255.0
        x = self._geometry(x)
        x = self._colour(x)
        return ops.clip(x, 0.0, 1.0) * 255.0

    # --- geometry -------------------------------------------------------------------------------
    def _geometry(self, x, extra=None):
        """Random resized crop and horizontal flip (then ``extra``: rotation and shear) as one
        bilinear resampling with reflected borders."""
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
        """Colour jitter on a random ``jitter_probability`` of the images, then grayscale."""
        n = ops.shape(x)[0]
        if self.config.jitter_probability > 0:
            chosen = self._uniform((n,), 0.0, 1.0) < self.config.jitter_probability
            x = ops.where(ops.reshape(chosen, (-1, 1, 1, 1)), self.jitter(x, training=True), x)
        if self.grayscale is not None:
            x = self.grayscale(x, training=True)
        return x

    def _uniform(self, shape, low, high):
        return keras.random.uniform(shape, minval=low, maxval=high, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        cfg = super().get_config()
        cfg.update(config=dataclasses.asdict(self.config), grey=self.grey, seed=self.seed)
        return cfg

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        cfg["config"] = _augment_config(cfg["config"])
        return cls(**cfg)


@keras.saving.register_keras_serializable(package="semclust")
class StrongAugment(ViewAugment):
    """A SimCLR view plus random rotation, shear and an erased square (for self-labelling).

    The square (``cutout_fraction`` of the side, grey) is Keras's ``RandomErasing`` (Zhong et al.
    2020) at a fixed size, which is DeVries & Taylor's Cutout kept inside the image.
    """

    def __init__(
        self,
        config: StrongAugmentConfig = StrongAugmentConfig(),
        grey: bool = False,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(config.base, grey=grey, seed=seed, **kwargs)
        self.strong = config
        area = config.cutout_fraction**2
        self.erase = (
            keras.layers.RandomErasing(
                factor=(1.0, 1.0),  # always (one number p would draw the probability from [0, p])
                scale=(area, area),  # per side: the square root, so a square of cutout_fraction
                fill_value=0.5,
                value_range=(0.0, 1.0),
                seed=seed * SEED_STRIDE + 3,
                name="erase",
            )
            if area > 0
            else None
        )

    def _keras_layers(self) -> list[keras.layers.Layer]:
        return [*super()._keras_layers(), *([self.erase] if self.erase is not None else [])]

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
        if self.erase is not None:
            x = self.erase(x, training=True)
        return ops.clip(x, 0.0, 1.0) * 255.0

    def get_config(self):
        cfg = super().get_config()
        cfg["config"] = dataclasses.asdict(self.strong)
        return cfg

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        strong = dict(cfg["config"])
        cfg["config"] = StrongAugmentConfig(base=_augment_config(strong.pop("base")), **strong)
        return cls(**cfg)


def _augment_config(plain: dict) -> AugmentConfig:
    """An :class:`AugmentConfig` from its JSON form (pairs come back as lists)."""
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in plain.items()})
