"""Typed, frozen configuration of a clustering run, one dataclass per stage.

Loss hyper-parameters follow the papers (SimCLR: Chen et al. 2020; SCAN: Van Gansbeke et al. 2020,
CIFAR-10 settings). Epoch counts are set for a 2-core CPU, far below the papers' hundreds of epochs;
raise them for better clusters when there is time or a GPU.

A config is saved as ``config.json`` in the run folder. Each stage has a fingerprint made from its own
config and the fingerprints of the stages it depends on, so that changing a late parameter (say the SCAN
entropy weight) never reruns an early stage (the representation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from semclust.core.representation.backbones import REGISTRY, SCRATCH_BACKBONE, check_backbone

#: The registered backbones (core/representation/backbones.py); a keras-hub preset id, an ``hf://`` id or a local
#: preset directory also works as ``EncoderConfig.backbone``.
BACKBONES = tuple(REGISTRY)

#: How the clusters are made from the representation: ``auto`` (the quick alternatives, with SCAN's
#: heads when :func:`trains_scan`, the best kept by a label-free criterion:
#: core/clustering/selection.py), SCAN alone (the paper), or one alternative on the same representation:
#: K-means, Ward's agglomerative clustering, UMAP + Gaussian mixture (N2D), Ward on that UMAP map, the
#: mixture with twice the clusters merged by neighbour links, Deep Embedded Clustering (Xie et al. 2016).
METHODS = ("auto", "scan", "kmeans", "ward", "umap_gmm", "ward_umap", "umap_gmm_merged", "dec")


@dataclass(frozen=True)
class IngestConfig:
    """How images are found, decoded and resized.

    Attributes:
        image_size: side of the square RGB image every file is resized to.
        labels_from_subfolders: take the first folder level below the root as the true label.
        labels_csv: optional CSV of ``path,label`` (paths relative to the folder) giving true labels.
        max_image_pixels: files that would decode to more pixels than this are skipped
            (decompression-bomb guard; a JPEG decodes at down to 1/8 of its size).
    """

    image_size: int = 32
    labels_from_subfolders: bool = True
    labels_csv: str | None = None
    max_image_pixels: int = 89_478_485  # Pillow's own warning threshold


@dataclass(frozen=True)
class AugmentConfig:
    """SimCLR view augmentation (Chen et al. 2020, section 3), with SCAN's CIFAR-10 strengths.

    Colour operations (saturation, hue, grayscale) are skipped for grey data sets. The colour jitter is
    Keras's ``RandomColorJitter``: ``brightness`` is an additive shift of up to that share of the range
    (SimCLR v1's form; torchvision's, which SCAN used, multiplies), ``contrast``, ``saturation`` and
    ``hue`` are factors and a shift on the colour wheel, as in torchvision.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_probability: float = 0.5
    jitter_probability: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_probability: float = 0.2


@dataclass(frozen=True)
class StrongAugmentConfig:
    """Strong augmentation for self-labelling (SCAN uses RandAugment + Cutout).

    Here: a SimCLR view plus a random rotation and shear and a cutout square.
    """

    base: AugmentConfig = AugmentConfig(crop_scale=(0.35, 1.0))
    max_rotation_degrees: float = 25.0
    max_shear: float = 0.2
    cutout_fraction: float = 0.5


@dataclass(frozen=True)
class EncoderConfig:
    """The backbone network that turns an image into a feature vector.

    Attributes:
        backbone: a name of :data:`BACKBONES` (core/representation/backbones.py: ``resnet_small`` from scratch,
            ``mobilenet``, ``efficientnet_lite2``, EfficientNetV2, ConvNeXt, DINOv2, CLIP, SigLIP...), or a
            keras-hub preset id, ``hf://`` id or local preset folder.
        weights: ``None`` for random initialisation, ``"pretrained"`` for the backbone's own
            pretrained weights (downloaded once and cached), or a local weights file. ``"imagenet"``,
            keras.applications' word for the same, is accepted and stored as ``"pretrained"``.
        width: base number of filters of ``resnet_small``.
        layer: where frozen features are read: ``final`` (the pooled last layer), ``mid`` (the
            backbone's mid-level layer, pooled and square-rooted: for small grey images such as digits
            and silhouettes, see ``BackboneSpec.mid_layer``), or ``auto``: ``mid`` when a run finds such
            images, a frozen backbone and a mid-level layer, else ``final`` (the run records its choice).
    """

    backbone: str = SCRATCH_BACKBONE
    weights: str | None = None
    width: int = 32
    layer: str = "auto"

    def __post_init__(self) -> None:
        if self.weights == "imagenet":  # one word for one meaning, whatever the user typed
            object.__setattr__(self, "weights", "pretrained")


@dataclass(frozen=True)
class PretextConfig:
    """SimCLR representation learning. ``epochs=0`` keeps the backbone as it is (frozen)."""

    epochs: int = 40
    batch_size: int = 256
    temperature: float = 0.1
    projection_dim: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    augment: AugmentConfig = AugmentConfig()


@dataclass(frozen=True)
class NeighbourConfig:
    """Top-k cosine nearest neighbours (SCAN: k=20)."""

    k: int = 20
    batch_size: int = 512


@dataclass(frozen=True)
class ScanConfig:
    """SCAN clustering (Van Gansbeke et al. 2020, eq. 2).

    Attributes:
        entropy_weight: lambda, the weight of the entropy of the mean assignment (paper: 5).
        heads: number of clustering heads trained at once; the lowest-loss head is kept.
        hidden: width of a hidden layer (Dense-BatchNorm-ReLU) shared by the heads; 0 gives SCAN's linear
            heads. Off by default because its effect depends on the features (one seed each, 512 wide):
            from scratch it raised ACC on animals (0.628 to 0.679) and MNIST-5k (0.827 to 0.863) but
            lowered the digits demo (0.878 to 0.865); on frozen MobileNet features it raised MNIST-5k
            (0.805 to 0.837) but lowered animals (0.723 to 0.642). It costs 2-4 times SCAN's seconds.
        update_encoder: also fine-tune the backbone (slower) instead of training heads on frozen features;
            then 10-20 epochs are usually enough on a CPU.
        views: with a frozen backbone, features of this many augmented views of every image are computed
            once, and anchors and neighbours are drawn from them and the clean features (SCAN augments
            both). Used only after SimCLR training (a frozen ImageNet backbone is not invariant to these
            views). Off by default: with 4 views, the 10k animal shapes went from ACC 0.641 to 0.670, but
            the 1,797 digits fell from 0.878 to 0.760.

        max_steps: large collections train fewer epochs, at most this many batches in all: 100 epochs of
            10k images are 7,900 steps, of 100k 25 epochs (19,550 steps), of 1M 2 epochs.

    On frozen features a step costs almost nothing, and the heads need about a thousand steps or more:
    measured on the 1,797 digits with frozen MobileNet features, 25 epochs of 256 gave ACC 0.52 and
    100 epochs of 128 gave 0.60 (K-means on the same features: 0.53).
    """

    epochs: int = 100
    max_steps: int = 20_000
    batch_size: int = 128
    learning_rate: float = 1e-3
    entropy_weight: float = 5.0
    heads: int = 5
    hidden: int = 0
    update_encoder: bool = False
    views: int = 0


@dataclass(frozen=True)
class SelfLabelConfig:
    """Self-labelling on confident predictions (SCAN section 2.3).

    Off by default: in the CPU setting (heads on frozen features, a few epochs) it moved ACC by less than
    a point either way on every real set of the benchmark (means of 3 seeds, BENCHMARKS.md: digits from
    scratch 0.806 -> 0.806, MNIST-5k from scratch 0.780 -> 0.783, with frozen MobileNet 0.822 -> 0.823,
    10k animal shapes from scratch 0.682 -> 0.677) and a higher learning rate made it worse (digits 0.79).
    The paper's gain comes from fine-tuning the whole network for 200 epochs.
    """

    enabled: bool = False
    threshold: float = 0.99
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-4
    views: int = 4
    augment: StrongAugmentConfig = StrongAugmentConfig()


@dataclass(frozen=True)
class ProjectionConfig:
    """2-D UMAP of the embeddings, for the scatter plot.

    Above ``large`` points the layout starts from a PCA of the data instead of UMAP's spectral one and
    runs ``large_epochs`` epochs instead of ``epochs``: on 100k clustered 512-d vectors, 19-22 s instead
    of 54 s on 2 cores, with the same share of each point's 15 nearest 2-D neighbours in its own cluster
    (0.957 against 0.959; the mined neighbours themselves, 0.89).

    Up to ``large`` points it runs ``epochs`` epochs: UMAP's own choice is 500 up to 10,000 points and
    200 above. 200 take about half the time, with the same share of each point's 15 nearest 2-D
    neighbours in its own class (digits 0.968 against 0.970, MNIST-5k 0.945 and 0.945, the 10,000
    animal shapes 0.944 against 0.946, food photos 0.707 against 0.711).
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    epochs: int = 200
    large: int = 50_000
    large_epochs: int = 100


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Same config, same data, same machine: same clusters.

    ``auto_clusters``: ``None`` clusters into ``clusters``; a ``(low, high)`` range chooses the number
    without labels first (``--clusters auto``, :mod:`semclust.core.clustering.choose_k`), and the run then sets
    ``clusters`` to the choice. ``picked_clusters``: with a range, a k the user picked on its curve, used
    instead of the best one (the curve, features and neighbours are kept; only the clusters change).
    What a user gets without asking is decided in :class:`semclust.core.choices.RunChoices`: a range
    (``auto``), where a config built here by hand clusters into a fixed 10.
    """

    clusters: int = 10
    auto_clusters: tuple[int, int] | None = None
    picked_clusters: int | None = None
    seed: int = 0
    method: str = "auto"
    ingest: IngestConfig = IngestConfig()
    encoder: EncoderConfig = EncoderConfig()
    pretext: PretextConfig = PretextConfig()
    neighbours: NeighbourConfig = NeighbourConfig()
    scan: ScanConfig = ScanConfig()
    selflabel: SelfLabelConfig = SelfLabelConfig()
    projection: ProjectionConfig = ProjectionConfig()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _from_dict(cls, data)

    def replace(self, **changes: Any) -> RunConfig:
        """Returns a copy with changes; nested fields as ``"scan.epochs"``-style keys or whole objects."""
        return _replace_dotted(self, changes)

    def validate(self) -> None:
        """Raises ValueError with a readable message for impossible settings."""
        if self.clusters < 2:
            raise ValueError("The number of clusters must be at least 2.")
        if self.auto_clusters is not None:
            low, high = self.auto_clusters
            if not 2 <= low <= high:
                raise ValueError("The range of clusters to choose from must be 2 <= low <= high.")
        if self.picked_clusters is not None:
            low, high = self.auto_clusters or (0, -1)
            if not low <= self.picked_clusters <= high:
                raise ValueError(
                    "A picked number of clusters must lie in the range that auto tried "
                    f"({low}-{high})." if self.auto_clusters else
                    "A number of clusters is picked on the curve of auto: use --clusters auto."
                )  # fmt: skip
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; choose one of {METHODS}.")
        if self.selflabel.enabled and self.method not in ("scan", "auto"):
            raise ValueError(
                "Self-labelling refines SCAN's heads: it needs the scan or auto method."
            )
        check_backbone(self.encoder.backbone, self.encoder.weights, self.encoder.layer)
        if self.ingest.image_size < 32:
            raise ValueError("The image size must be at least 32 pixels.")
        if self.neighbours.k < 1:
            raise ValueError("k (neighbours) must be at least 1.")
        if self.scan.heads < 1:
            raise ValueError("At least one clustering head is needed.")
        if not 0.0 < self.selflabel.threshold < 1.0:
            raise ValueError("The self-labelling threshold must lie between 0 and 1.")
        if self.pretext.epochs == 0 and self.encoder.weights is None:
            raise ValueError(
                "With no pretext training the backbone needs pretrained weights "
                "('imagenet' or a weights file)."
            )


def trains_scan(config: RunConfig) -> bool:
    """Whether the clustering stage trains SCAN's heads: with ``--method scan``, and with ``auto`` when
    the representation was learnt here (SimCLR) or the heads are needed later (self-labelling, an
    updated encoder). On a frozen pretrained backbone ``auto`` leaves SCAN out: its kNN-graph
    modularity was below the other candidates' in all 90 runs of the clustering benchmark (5 sets,
    balanced and long-tailed, 3 seeds, two backbones; BENCHMARKS.md), so it would cost most of the run for nothing.
    """
    if config.method == "scan":
        return True
    learnt = config.pretext.epochs > 0 or config.scan.update_encoder
    return config.method == "auto" and (learnt or config.selflabel.enabled)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (configs as dicts, upstream fingerprints, paths)."""
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        ftype = f.type if isinstance(f.type, type) else _resolve(f.type)
        if ftype is not None and dataclasses.is_dataclass(ftype) and isinstance(value, dict):
            value = _from_dict(ftype, value)
        elif isinstance(value, list) and (isinstance(f.default, tuple) or "tuple" in str(f.type)):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _resolve(name: Any) -> type | None:
    return {
        c.__name__: c
        for c in (
            IngestConfig,
            AugmentConfig,
            StrongAugmentConfig,
            EncoderConfig,
            PretextConfig,
            NeighbourConfig,
            ScanConfig,
            SelfLabelConfig,
            ProjectionConfig,
        )
    }.get(str(name))


def _replace_dotted(obj: Any, changes: dict[str, Any]) -> Any:
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = _replace_dotted(direct.get(head, getattr(obj, head)), sub)
    return dataclasses.replace(obj, **direct)
