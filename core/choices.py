"""What a user chooses for a run, each parameter declared once, and one factory from the choices to a
run configuration, shared by the command line, the window and the benchmark.

Every field of :class:`RunChoices` declares its option, label, help and range beside it
(:mod:`semclust.core.param`): the command line builds its options from these declarations and the
window its parameter form, and :func:`build_config` maps them onto the
:class:`~semclust.core.config.RunConfig`, so that the same choices always give the same configuration:
a frozen pretrained backbone runs at the same image size whether it was asked for with ``--weights``
or in the window. A new run parameter is a field of its stage's config and one declared field here.

Example:
    >>> cfg = build_config(RunChoices(representation=FROZEN, weights="pretrained"))
    >>> (cfg.encoder.backbone, cfg.pretext.epochs, cfg.ingest.image_size)
    ('mobilenet', 0, 96)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from semclust.core.config import BACKBONES, METHODS, RunConfig, trains_scan
from semclust.core.param import config_value, declared, out_of_range, param
from semclust.core.representation.backbones import (
    FETCHED_DEFAULT,
    LAYERS,
    PRETRAINED_BACKBONE,
    REGISTRY,
    SCRATCH_BACKBONE,
    get_spec,
    has_pretrained_weights,
)

SCRATCH, FROZEN, FINETUNED = "scratch", "frozen", "finetuned"
#: The three ways to get a representation, in the order the GUI lists them.
REPRESENTATIONS = (SCRATCH, FROZEN, FINETUNED)
REPRESENTATION_TITLES = {
    SCRATCH: "From scratch (SimCLR on these images)",
    FROZEN: "Pretrained backbone, frozen",
    FINETUNED: "Pretrained backbone, fine-tuned",
}
METHOD_TITLES = {
    "auto": "Best of several methods (label-free choice)",
    "scan": "SCAN (neighbours agree)",
    "umap_gmm": "UMAP + Gaussian mixture (unequal cluster sizes)",
    "ward_umap": "Ward on the same UMAP map (unequal cluster sizes)",
    "umap_gmm_merged": "UMAP + mixture, over-split then merged (keeps small groups)",
    "kmeans": "K-means on the normalised embeddings (seconds)",
    "ward": "Ward agglomerative (seconds, up to 20,000 images)",
    "dec": "Deep Embedded Clustering",
}

#: Image side for the older pretrained backbones (MobileNet, ResNet50V2), below their native 224 px:
#: 96 px kept ImageNet MobileNet's kNN accuracy on 28 px silhouettes at 0.80-0.91 (../shared/DATA.md) at
#: a CPU cost a user can wait for. The other backbones run at their native size (core/representation/backbones.py).
PRETRAINED_IMAGE_SIZE = 96
REDUCED_SIZE_BACKBONES = ("mobilenet", "resnet50v2")
#: ``--clusters auto`` tries every number of clusters in this range (issue 9: "say 2-30").
AUTO = "auto"
AUTO_RANGE = (2, 30)
#: ``RunChoices.weights`` (``--weights none``) for a randomly initialised backbone, even a pretrained one.
NO_WEIGHTS = "none"


def parse_clusters(text: str) -> int | str:
    """A number of clusters, or :data:`AUTO`, from text."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a number nor 'auto'") from None


def parse_range(text: str) -> tuple[int, int]:
    """``"LOW,HIGH"`` as two whole numbers."""
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r} is not LOW,HIGH (say 2,30)") from None
    return low, high


# When a parameter matters (the window greys out the others).
def _choosing_k(c: RunChoices) -> bool:
    return c.clusters == AUTO


def _pretrained(c: RunChoices) -> bool:
    return c.representation != SCRATCH


def _frozen(c: RunChoices) -> bool:
    return c.representation == FROZEN


def _learnt(c: RunChoices) -> bool:
    return c.representation != FROZEN


def _may_train_heads(c: RunChoices) -> bool:
    """Self-labelling or an updated encoder would make this run train SCAN's heads."""
    return c.method in ("scan", "auto")


def _trains_heads(c: RunChoices) -> bool:
    """Whether the run these choices describe trains SCAN's heads (:func:`trains_scan`)."""
    try:
        return trains_scan(build_config(c))
    except ValueError:  # a value being typed, out of range for now
        return _may_train_heads(c)


def _selflabels(c: RunChoices) -> bool:
    return c.selflabel and _may_train_heads(c)


_D = RunConfig()


@dataclass(frozen=True)
class RunChoices:
    """What the user chose, in the words of the command line and the window; ``None`` means "the
    default" (for the other choices, or the configuration's own).

    Each field declares its option, label, help and range (:func:`semclust.core.param.param`); the
    command line's options and the window's form are built from them, in this order.
    """

    clusters: int | str = param(
        AUTO, "--clusters", "Clusters",
        "Number of clusters to find (SCAN's K), or auto (the default): chosen without labels within "
        "the clusters range.",
        config="clusters", derived=True, range=(1, 1000), special=(AUTO, AUTO), parse=parse_clusters,
        tip="Number of clusters to find (SCAN's K); auto: chosen without labels within the range "
        "below (its curve is in the Number of clusters tab).",
    )  # fmt: skip
    clusters_range: tuple[int, int] = param(
        AUTO_RANGE, "--clusters-range", "Range for auto",
        "The smallest and largest numbers of clusters auto tries.",
        config="auto_clusters", derived=True, range=(2, 1000), parse=parse_range, metavar="LOW,HIGH",
        when=_choosing_k,
    )  # fmt: skip
    use_k: int | None = param(
        None, "--use-k", "Use k",
        "With auto: cluster with this number of clusters instead of the best one on the curve (pick "
        "one after looking at the curve; the features, neighbours and curve are kept).",
        config="picked_clusters", derived=True, range=(1, 1000), special=("best", None),
        when=_choosing_k,
    )  # fmt: skip
    method: str = param(
        _D.method, "--method", "Method",
        "How clusters are made from the representation: auto (the quick alternatives, with SCAN's "
        "heads when the representation is learnt here, the best kept without labels), scan "
        "(clustering heads trained so that an image and its neighbours agree), or one alternative "
        "on the same features: kmeans, ward, umap_gmm, ward_umap, umap_gmm_merged, dec (K-means is "
        "also shown as a preview while the clustering runs).",
        config="method", choices=METHODS, titles=METHOD_TITLES,
    )  # fmt: skip
    representation: str | None = param(
        None, "--representation", "Representation",
        "From scratch: learn features with SimCLR on these images (slow, no download). Frozen: a "
        "pretrained backbone as it is (fast). Fine-tuned: a pretrained backbone trained further "
        "with SimCLR. Default: pretrained when the backbone or the weights are (frozen, or "
        "fine-tuned with pretext epochs), else from scratch.",
        derived=True, choices=REPRESENTATIONS, titles=REPRESENTATION_TITLES,
    )  # fmt: skip
    backbone: str | None = param(
        None, "--backbone", "Backbone",
        f"Encoder network: {', '.join(BACKBONES)}, or a keras-hub preset id, hf:// id or local "
        "preset folder; a pretrained one starts from its pretrained weights. Default: a pretrained "
        f"backbone whose weights are here, else {FETCHED_DEFAULT}, fetched on first use (about "
        f"{REGISTRY[FETCHED_DEFAULT].download_mb} MB), else {SCRATCH_BACKBONE} from scratch; "
        f"{PRETRAINED_BACKBONE} for weights given without a backbone.",
        config="encoder.backbone", derived=True, choices=BACKBONES, free=True,
    )  # fmt: skip
    weights: str | None = param(
        None, "--weights", "Weights",
        "'pretrained' (the backbone's own weights, downloaded once and cached; the default of a "
        f"pretrained backbone; 'imagenet' says the same), a local weights file, or '{NO_WEIGHTS}': a "
        "random initialisation, trained from scratch.",
        config="encoder.weights", derived=True, browse="Keras weights (*.h5)",
        placeholder="pretrained", when=_pretrained,
    )  # fmt: skip
    image_size: int | None = param(
        None, "--image-size", "Image size",
        "Side of the square image every file is resized to. Default (auto): "
        f"{_D.ingest.image_size} from scratch, else the backbone's own size ({PRETRAINED_IMAGE_SIZE} "
        "for mobilenet), no larger than the images need.",
        config="ingest.image_size", derived=True, range=(0, 1024), step=32, special=(AUTO, None),
    )  # fmt: skip
    max_megapixels: int | None = param(
        None, "--max-megapixels", "Pixel limit (megapixels)",
        "Files that would decode to more megapixels than this are skipped, as a guard against "
        f"decompression bombs. Default: {_D.ingest.max_image_pixels / 1e6:.0f}, Pillow's. A JPEG "
        "decodes at down to 1/8 of its size; raise it for large scans or panoramas in PNG or TIFF "
        "(decoding takes 4 to 8 bytes a pixel: a 300-megapixel PNG took 1.2 GB).",
        config="ingest.max_image_pixels", derived=True, range=(0, 2000), step=100,
        special=(f"{_D.ingest.max_image_pixels / 1e6:.0f} (default)", None),
    )  # fmt: skip
    layer: str = param(
        _D.encoder.layer, "--layer", "Feature layer",
        "Where frozen features are read: the last layer (final), or a mid-level one, pooled and "
        "square-rooted (mid); auto: mid for small grey images (digits, silhouettes), else final.",
        config="encoder.layer", choices=LAYERS, when=_frozen,
    )  # fmt: skip
    pretext_epochs: int | None = param(
        None, "--pretext-epochs", "Pretext epochs",
        f"SimCLR epochs (representation learning; default {_D.pretext.epochs}; 0 with pretrained "
        "weights: frozen).",
        config="pretext.epochs", derived=True, range=(0, 10_000), when=_learnt,
    )  # fmt: skip
    scan_epochs: int | None = param(
        None, "--scan-epochs", "SCAN epochs", "SCAN clustering epochs.",
        config="scan.epochs", range=(1, 10_000), when=_trains_heads,
    )  # fmt: skip
    selflabel_epochs: int | None = param(
        None, "--selflabel-epochs", "Self-label epochs", "Self-labelling epochs.",
        config="selflabel.epochs", range=(0, 10_000), when=_selflabels,
    )  # fmt: skip
    k: int | None = param(
        None, "--k", "k neighbours", "Nearest neighbours per image mined for SCAN (paper: 20).",
        config="neighbours.k", range=(1, 500),
    )  # fmt: skip
    entropy_weight: float | None = param(
        None, "--entropy-weight", "Entropy weight",
        "SCAN's entropy weight (lambda, paper: 5). Higher spreads images over more clusters; raise "
        "it if the clustering collapses into a few clusters.",
        config="scan.entropy_weight", range=(0.0, 100.0), step=0.5, when=_trains_heads,
    )  # fmt: skip
    heads: int | None = param(
        None, "--heads", "Heads",
        "Clustering heads trained at once; the one with the lowest SCAN loss is kept (no labels "
        "used).",
        config="scan.heads", range=(1, 50), when=_trains_heads,
    )  # fmt: skip
    head_hidden: int | None = param(
        None, "--head-hidden", "Head hidden width",
        "Width of a hidden layer shared by the clustering heads; 0: linear heads, as in SCAN.",
        config="scan.hidden", range=(0, 4096), step=64, special=("none (linear)", 0),
        when=_trains_heads,
    )  # fmt: skip
    labels_csv: str | None = param(
        None, "--labels-csv", "True labels CSV",
        "Optional CSV of path,label (paths relative to the image folder) giving true labels, for "
        "accuracy figures.",
        config="ingest.labels_csv", browse="CSV (*.csv)", placeholder="from class subfolders",
    )  # fmt: skip
    subfolder_labels: bool = param(
        _D.ingest.labels_from_subfolders, "--no-subfolder-labels", "Class subfolders as true labels",
        "Take class subfolder names as true labels (for accuracy figures).",
        config="ingest.labels_from_subfolders",
    )  # fmt: skip
    update_encoder: bool = param(
        _D.scan.update_encoder, "--update-encoder", "Fine-tune the backbone during SCAN",
        "Slower: trains the backbone with the clustering heads.",
        config="scan.update_encoder", when=_may_train_heads,
    )  # fmt: skip
    selflabel: bool = param(
        _D.selflabel.enabled, "--selflabel", "Self-labelling",
        "Add SCAN's self-labelling stage: retrain on the confident predictions (SCAN section 2.3). "
        "Off by default: no gain measured on a CPU budget.",
        config="selflabel.enabled", when=_may_train_heads,
    )  # fmt: skip
    seed: int = param(
        _D.seed, "--seed", "Seed", "Random seed: same seed, data and machine, same clusters.",
        config="seed", range=(0, 2**31 - 1),
    )  # fmt: skip


def with_default_representation(choices: RunChoices, default) -> RunChoices:
    """``choices`` with the default representation filled in, where the user left it open.

    Args:
        choices: what the user chose. Nothing about the representation (no representation,
            backbone, weights or pretext epochs) means the default; a pretrained representation
            without a backbone or weights (``--representation frozen``) means the default's backbone
            and weights, when the default is pretrained.
        default: a :class:`semclust.core.representation.backbones.Representation`
            (``default_representation()``): a pretrained backbone available here, frozen, or from
            scratch when there is none.
    """
    if choices.backbone is not None or choices.weights is not None:
        return choices
    if choices.representation is None and choices.pretext_epochs is None:
        rep = FROZEN if default.pretrained else SCRATCH
    elif choices.representation in (FROZEN, FINETUNED) and default.pretrained:
        rep = choices.representation
    else:
        return choices
    return replace(choices, representation=rep, backbone=default.backbone, weights=default.weights)


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
    if choices.weights is None and not has_pretrained_weights(choices.backbone):
        return SCRATCH
    return FROZEN if not choices.pretext_epochs else FINETUNED


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
        return _D.ingest.image_size
    if backbone in REDUCED_SIZE_BACKBONES:
        return PRETRAINED_IMAGE_SIZE
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

    A declared parameter that is not ``derived`` sets its config field (``None``: ``base``'s value,
    unless ``None`` is a value of that field); the others are worked out here.

    Args:
        choices: what the user chose.
        base: settings the front end does not show (say, those of an earlier run being continued).
        image_side: the typical shorter side of the images (:func:`semclust.core.images.typical_side`),
            which sets the default image size of a pretrained backbone.
    """
    problems = out_of_range(choices)
    if problems:
        raise ValueError(" ".join(problems))
    base = base or RunConfig()
    changes = {}
    for d in declared(type(choices)):
        if d.param.config is None or d.param.derived:
            continue
        value = getattr(choices, d.name)
        if d.kind == "text":
            value = value or None
        if value is not None or config_value(d.param.config) is None:
            changes[d.param.config] = value
    rep = representation_of(choices)
    pretrained = rep != SCRATCH
    backbone = choices.backbone or (PRETRAINED_BACKBONE if pretrained else SCRATCH_BACKBONE)
    if rep == FROZEN:
        pretext_epochs = 0
    elif choices.pretext_epochs is not None:
        pretext_epochs = choices.pretext_epochs
    else:
        pretext_epochs = _D.pretext.epochs
    auto = choices.clusters == AUTO
    if not auto and not isinstance(choices.clusters, int):
        raise ValueError(f"The number of clusters must be a number or {AUTO!r}.")
    changes |= {
        "clusters": choices.clusters_range[0] if auto else choices.clusters,
        "auto_clusters": tuple(choices.clusters_range) if auto else None,
        "picked_clusters": choices.use_k if auto else None,
        "encoder.backbone": backbone,
        "encoder.weights": (choices.weights or "pretrained") if pretrained else None,
        "ingest.image_size": choices.image_size
        or default_image_size(backbone, pretrained, image_side),
        "ingest.max_image_pixels": choices.max_megapixels * 1_000_000
        if choices.max_megapixels
        else base.ingest.max_image_pixels,
        "pretext.epochs": pretext_epochs,
    }
    return base.replace(**changes)


def choices_of(config: RunConfig) -> RunChoices:
    """The choices that give ``config`` back (for a form showing an earlier run's settings)."""
    if config.encoder.weights is None:
        rep = SCRATCH
    else:
        rep = FROZEN if config.pretext.epochs == 0 else FINETUNED
    copied = {
        d.name: config_value(d.param.config, config)
        for d in declared(RunChoices)
        if d.param.config and not d.param.derived
    }
    return RunChoices(
        **copied,
        clusters=AUTO if config.auto_clusters else config.clusters,
        clusters_range=config.auto_clusters or AUTO_RANGE,
        use_k=config.picked_clusters,
        representation=rep,
        backbone=config.encoder.backbone,
        weights=config.encoder.weights,
        image_size=config.ingest.image_size,
        max_megapixels=None
        if config.ingest.max_image_pixels == _D.ingest.max_image_pixels
        else round(config.ingest.max_image_pixels / 1e6),
        pretext_epochs=config.pretext.epochs if config.pretext.epochs else None,
    )
