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
#: a CPU cost a user can wait for. The other backbones run at their native size (core/backbones.py).
PRETRAINED_IMAGE_SIZE = 96
REDUCED_SIZE_BACKBONES = ("mobilenet", "resnet50v2")
#: The pretrained backbone used when weights are given without a backbone.
PRETRAINED_BACKBONE = "mobilenet"


@dataclass(frozen=True)
class RunChoices:
    """What the user chose, as both front ends present it; ``None`` means "the default".

    Attributes:
        clusters: number of clusters.
        representation: :data:`SCRATCH` (SimCLR on these images), :data:`FROZEN` (a pretrained backbone
            as it is) or :data:`FINETUNED` (a pretrained backbone trained further with SimCLR). ``None``:
            frozen when weights are given, from scratch otherwise.
        backbone: encoder network; default: ``resnet_small`` from scratch, MobileNet when pretrained.
        weights: ``"imagenet"`` or a local weights file; default ``"imagenet"`` when pretrained.
        image_size: square side; default 32 from scratch, the backbone's pretrained size otherwise.
        pretext_epochs: SimCLR epochs when the representation is trained (ignored when frozen).
        method: how clusters are made (``scan``, ``kmeans``, ``ward``, ``dec``).
        labels_csv: a ``path,label`` CSV of true labels, or ``None``.
        subfolder_labels: take class subfolder names as true labels.
    """

    clusters: int = RunConfig.clusters
    representation: str | None = None
    backbone: str | None = None
    weights: str | None = None
    image_size: int | None = None
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
        default: a :class:`semclust.core.backbones.Representation` (``default_representation()``): a
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
    """The representation the choices ask for, resolving ``None`` from the weights."""
    if choices.representation is not None:
        if choices.representation not in REPRESENTATIONS:
            raise ValueError(
                f"Unknown representation {choices.representation!r}; choose one of {REPRESENTATIONS}."
            )
        return choices.representation
    if choices.weights is None:
        return SCRATCH
    return FROZEN if not choices.pretext_epochs else FINETUNED


def default_image_size(backbone: str, pretrained: bool) -> int:
    """The image side a backbone runs at by default: 32 px from scratch, else its native size."""
    if not pretrained:
        return RunConfig().ingest.image_size
    if backbone in REDUCED_SIZE_BACKBONES:
        return PRETRAINED_IMAGE_SIZE
    from semclust.core.backbones import get_spec  # no Keras at import time

    try:
        return get_spec(backbone).input_size
    except ValueError:
        return PRETRAINED_IMAGE_SIZE  # an unknown name: validation says so later


def build_config(choices: RunChoices, base: RunConfig | None = None) -> RunConfig:
    """The run configuration for these choices, on top of ``base`` (default: the core's defaults).

    ``base`` keeps settings the front end does not show (say, those of an earlier run being continued).
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
    changes = {
        "clusters": choices.clusters,
        "seed": choices.seed,
        "method": choices.method,
        "encoder.backbone": backbone,
        "encoder.weights": (choices.weights or "imagenet") if pretrained else None,
        "ingest.image_size": choices.image_size or default_image_size(backbone, pretrained),
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
        clusters=config.clusters,
        representation=rep,
        backbone=config.encoder.backbone,
        weights=config.encoder.weights,
        image_size=config.ingest.image_size,
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
