"""One factory from a user's choices to a run configuration, shared by the command line and the GUI.

Both front ends describe what the user picked as a :class:`RunChoices` (the words of the form and of the
options, with ``None`` for "the default for this representation") and call :func:`build_config`, so that
the same choices always give the same :class:`~semclust.core.config.RunConfig`: a frozen pretrained
backbone runs at the same image size whether it was asked for with ``--weights`` or in the window.

Example:
    >>> cfg = build_config(RunChoices(representation=FROZEN, weights="imagenet"))
    >>> (cfg.encoder.backbone, cfg.pretext.epochs, cfg.ingest.image_size)
    ('mobilenet', 0, 96)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from semclust.core.config import RunConfig

SCRATCH, FROZEN, FINETUNED = "scratch", "frozen", "finetuned"
#: The three ways to get a representation, in the order the GUI lists them.
REPRESENTATIONS = (SCRATCH, FROZEN, FINETUNED)

#: Image side for the older pretrained backbones (MobileNet, ResNet50V2), below their native 224 px:
#: 96 px kept ImageNet MobileNet's kNN accuracy on 28 px silhouettes at 0.80-0.91 (../shared/DATA.md) at
#: a CPU cost a user can wait for. The other backbones run at their native size (core/representation/backbones.py).
PRETRAINED_IMAGE_SIZE = 96
REDUCED_SIZE_BACKBONES = ("mobilenet", "resnet50v2")
#: ``--clusters auto`` tries every number of clusters in this range (issue 9: "say 2-30").
AUTO = "auto"
AUTO_RANGE = (2, 30)
#: The pretrained backbone used when weights are given without a backbone.
PRETRAINED_BACKBONE = "mobilenet"
#: ``RunChoices.weights`` (``--weights none``) for a randomly initialised backbone, even a pretrained one.
NO_WEIGHTS = "none"


@dataclass(frozen=True)
class RunChoices:
    """What the user chose, as both front ends present it; ``None`` means "the default".

    Attributes:
        clusters: number of clusters, or ``"auto"``: chosen without labels within ``clusters_range``.
        clusters_range: the smallest and largest number of clusters ``"auto"`` tries.
        representation: :data:`SCRATCH` (SimCLR on these images), :data:`FROZEN` (a pretrained backbone
            as it is) or :data:`FINETUNED` (a pretrained backbone trained further with SimCLR). ``None``:
            pretrained (frozen, or fine-tuned with pretext epochs) when weights are given or the
            backbone named has pretrained weights, from scratch otherwise or with :data:`NO_WEIGHTS`.
        backbone: encoder network; default: ``resnet_small`` from scratch, MobileNet when pretrained.
        weights: ``"imagenet"`` / ``"pretrained"``, a local weights file, or :data:`NO_WEIGHTS` (a
            random initialisation); default ``"imagenet"`` when pretrained.
        image_size: square side; default 32 from scratch, the backbone's pretrained size otherwise.
        layer: where frozen features are read (``EncoderConfig.layer``); default ``auto``.
        pretext_epochs: SimCLR epochs when the representation is trained (ignored when frozen).
        method: how clusters are made (``scan``, ``kmeans``, ``ward``, ``dec``).
        labels_csv: a ``path,label`` CSV of true labels, or ``None``.
        subfolder_labels: take class subfolder names as true labels.
    """

    clusters: int | str = RunConfig.clusters
    clusters_range: tuple[int, int] = AUTO_RANGE
    representation: str | None = None
    backbone: str | None = None
    weights: str | None = None
    image_size: int | None = None
    layer: str | None = None
    pretext_epochs: int | None = None
    method: str = RunConfig.method
    scan_epochs: int | None = None
    heads: int | None = None
    head_hidden: int | None = None
    entropy_weight: float | None = None
    k: int | None = None
    update_encoder: bool = False
    selflabel: bool = False
    selflabel_epochs: int | None = None
    seed: int = RunConfig.seed
    subfolder_labels: bool = True
    labels_csv: str | None = None


def with_default_representation(choices: RunChoices, default) -> RunChoices:
    """``choices`` with the default representation filled in, when the user named none.

    Args:
        choices: what the user chose; nothing about the representation (no representation, backbone,
            weights or pretext epochs) means "the default".
        default: a :class:`semclust.core.representation.backbones.Representation` (``default_representation()``): a
            pretrained backbone available here, frozen, or from scratch when there is none.
    """
    if any(
        v is not None
        for v in (choices.representation, choices.backbone, choices.weights, choices.pretext_epochs)
    ):
        return choices
    return replace(
        choices,
        representation=FROZEN if default.pretrained else SCRATCH,
        backbone=default.backbone,
        weights=default.weights,
    )


def representation_of(choices: RunChoices) -> str:
    """The representation the choices ask for, resolving ``None`` from the weights and the backbone.

    Naming a backbone that has pretrained weights means those weights (``--backbone
    efficientnet_lite2`` is a pretrained EfficientNet-Lite2), unless the weights are
    :data:`NO_WEIGHTS`; a backbone without any (``resnet_small``) is trained from scratch.
    """
    if choices.representation is not None:
        if choices.representation not in REPRESENTATIONS:
            raise ValueError(
                f"Unknown representation {choices.representation!r}; choose one of {REPRESENTATIONS}."
            )
        if choices.representation != SCRATCH and choices.weights == NO_WEIGHTS:
            raise ValueError(
                f"A pretrained representation needs weights, not {NO_WEIGHTS!r}: choose from "
                "scratch for a randomly initialised backbone."
            )
        return choices.representation
    if choices.weights == NO_WEIGHTS:
        return SCRATCH
    if choices.weights is None and not _has_pretrained_weights(choices.backbone):
        return SCRATCH
    return FROZEN if not choices.pretext_epochs else FINETUNED


def _has_pretrained_weights(backbone: str | None) -> bool:
    """Whether ``backbone`` names a backbone with pretrained weights (registered or a preset)."""
    if backbone is None:
        return False
    from semclust.core.representation.backbones import get_spec  # no Keras at import time

    try:
        return get_spec(backbone).pretrained
    except ValueError:
        return False  # an unknown name: validation says so later


def default_image_size(backbone: str, pretrained: bool, image_side: int | None = None) -> int:
    """The image side a backbone runs at by default: 32 px from scratch, else its native size.

    Args:
        backbone: the backbone's name.
        pretrained: whether it starts from pretrained weights.
        image_side: the typical shorter side of the user's images, when known. A convolutional
            backbone does not enlarge small images beyond what they hold: it runs at that side rounded
            up to 32 px, at least 96 and at most its native size. For 28 px silhouettes EfficientNet-Lite2's
            features were as good at 96 px as at 260 px (kNN accuracy 0.895 both) at about a seventh of the
            cost. Vision transformers keep their own size (their patch grid).
    """
    if not pretrained:
        return RunConfig().ingest.image_size
    if backbone in REDUCED_SIZE_BACKBONES:
        return PRETRAINED_IMAGE_SIZE
    from semclust.core.representation.backbones import get_spec  # no Keras at import time

    try:
        spec = get_spec(backbone)
    except ValueError:
        return PRETRAINED_IMAGE_SIZE  # an unknown name: validation says so later
    if image_side is None or spec.keras_hub:
        return spec.input_size
    return min(spec.input_size, max(PRETRAINED_IMAGE_SIZE, -(-image_side // 32) * 32))


def build_config(
    choices: RunChoices, base: RunConfig | None = None, image_side: int | None = None
) -> RunConfig:
    """The run configuration for these choices, on top of ``base`` (default: the core's defaults).

    Args:
        choices: what the user chose.
        base: settings the front end does not show (say, those of an earlier run being continued).
        image_side: the typical shorter side of the images (:func:`semclust.core.images.typical_side`),
            which sets the default image size of a pretrained backbone.
    """
    base = base or RunConfig()
    rep = representation_of(choices)
    pretrained = rep != SCRATCH
    backbone = choices.backbone or (
        PRETRAINED_BACKBONE if pretrained else RunConfig().encoder.backbone
    )
    if rep == FROZEN:
        pretext_epochs = 0
    elif choices.pretext_epochs is not None:
        pretext_epochs = choices.pretext_epochs
    else:
        pretext_epochs = RunConfig().pretext.epochs
    auto = choices.clusters == AUTO
    if not auto and not isinstance(choices.clusters, int):
        raise ValueError(f"The number of clusters must be a number or {AUTO!r}.")
    changes = {
        "clusters": choices.clusters_range[0] if auto else choices.clusters,
        "auto_clusters": tuple(choices.clusters_range) if auto else None,
        "seed": choices.seed,
        "method": choices.method,
        "encoder.backbone": backbone,
        "encoder.weights": (choices.weights or "imagenet") if pretrained else None,
        "ingest.image_size": choices.image_size
        or default_image_size(backbone, pretrained, image_side),
        "encoder.layer": choices.layer or "auto",  # settled by the run: a base's layer may not fit
        "ingest.labels_from_subfolders": choices.subfolder_labels,
        "ingest.labels_csv": choices.labels_csv or None,
        "pretext.epochs": pretext_epochs,
        "scan.update_encoder": choices.update_encoder,
        "selflabel.enabled": choices.selflabel,
    }
    optional = {
        "scan.epochs": choices.scan_epochs,
        "scan.heads": choices.heads,
        "scan.hidden": choices.head_hidden,
        "scan.entropy_weight": choices.entropy_weight,
        "neighbours.k": choices.k,
        "selflabel.epochs": choices.selflabel_epochs,
    }
    changes.update({key: value for key, value in optional.items() if value is not None})
    return base.replace(**changes)


def choices_of(config: RunConfig) -> RunChoices:
    """The choices that give ``config`` back (for a form showing an earlier run's settings)."""
    if config.encoder.weights is None:
        rep = SCRATCH
    else:
        rep = FROZEN if config.pretext.epochs == 0 else FINETUNED
    return RunChoices(
        clusters=AUTO if config.auto_clusters else config.clusters,
        clusters_range=config.auto_clusters or AUTO_RANGE,
        representation=rep,
        backbone=config.encoder.backbone,
        weights=config.encoder.weights,
        image_size=config.ingest.image_size,
        layer=config.encoder.layer,
        pretext_epochs=config.pretext.epochs if config.pretext.epochs else None,
        method=config.method,
        scan_epochs=config.scan.epochs,
        heads=config.scan.heads,
        head_hidden=config.scan.hidden,
        entropy_weight=config.scan.entropy_weight,
        k=config.neighbours.k,
        update_encoder=config.scan.update_encoder,
        selflabel=config.selflabel.enabled,
        selflabel_epochs=config.selflabel.epochs,
        seed=config.seed,
        subfolder_labels=config.ingest.labels_from_subfolders,
        labels_csv=config.ingest.labels_csv,
    )
