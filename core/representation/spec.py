"""What a backbone is: :class:`BackboneSpec`, the registry's record (:mod:`.backbones`).

A module of its own so that the weight finders (:mod:`.pretrained`) can name it without importing the
registry, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

KERAS_HUB_FAMILIES = ("dinov2", "clip", "siglip")


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: what it is and how its weights are obtained.

    Attributes:
        name: the name used in ``EncoderConfig.backbone``.
        family: ``scratch``, ``keras_applications``, ``efficientnet_lite``, or a keras-hub family
            (``dinov2``, ``clip``, ``siglip``).
        input_size: native square input size: the default image size for frozen features.
        preprocessing: how 0..255 RGB pixels are scaled (every encoder does it itself).
        feature_dim: width of the feature vector (``None`` until a custom preset is read).
        fine_tunable: whether SimCLR / SCAN may update it (all can; ViTs are slow on a CPU).
        weights: how the pretrained weights are obtained (``None``: none exist, from scratch only).
        source: keras.applications constructor name, keras-hub preset handle or directory.
        cache_files: file names of the downloaded weights (keras.applications) looked for locally.
        download_mb: approximate size of the first download.
        description: one line for menus and tooltips.
        mid_layer: a mid-level layer whose pooled, square-rooted activations describe small grey
            images (digits, silhouettes) better than the last layer's ImageNet object features
            (``EncoderConfig.layer``); ``None``: only the last layer.
    """

    name: str
    family: str
    input_size: int
    preprocessing: str
    feature_dim: int | None
    fine_tunable: bool = True
    weights: str | None = None
    source: str | None = None
    cache_files: tuple[str, ...] = ()
    download_mb: float | None = None
    description: str = ""
    mid_layer: str | None = None

    @property
    def pretrained(self) -> bool:
        """Whether pretrained weights exist for this backbone."""
        return self.weights is not None

    @property
    def keras_hub(self) -> bool:
        return self.family in KERAS_HUB_FAMILIES
