"""Suggested cluster names, from what the backbone knows: its ImageNet classifier or its text tower.

- EfficientNet-Lite2 keeps its ImageNet head: a cluster is named after the class that most of its
  prototypes vote for, or "mixed: a / b" when no class holds a majority, with the leading class's share
  of the votes as its confidence (:func:`semclust.core.naming.imagenet.names_from_classifier`).
- CLIP and SigLIP have a text tower: a cluster is named after the noun of a shipped vocabulary whose
  "a photo of a ..." embedding is nearest its prototypes (:func:`semclust.core.naming.zero_shot.names_from_text`).

Names are suggestions: the user renames clusters in the app, and a user's name wins. Only a frozen
pretrained backbone names clusters (SimCLR fine-tuning moves its features away from its head and its text
tower). Naming never fails a run: without a way to name, the clusters keep their numbers and the run
says why (:func:`cannot_name`), in the console and in the app.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np

from semclust.core.config import RunConfig
from semclust.core.naming.names import SuggestedName, distinct_names

log = logging.getLogger(__name__)

#: Which backbones name clusters, said wherever a run cannot name them.
CAN_NAME = (
    "efficientnet_lite2 names clusters with ImageNet classes, clip_vit_b16 or siglip_b16 with "
    "everyday nouns (pretrained and frozen)"
)
_NAMING_FAMILIES = ("efficientnet_lite", "clip", "siglip")


def cannot_name(config: RunConfig) -> str | None:
    """Why a run with this configuration cannot name its clusters, in one line; None when it can.

    Only a frozen pretrained backbone with an ImageNet classifier head (EfficientNet-Lite2) or a text
    tower (CLIP, SigLIP) names clusters, from the features of its last layer.
    """
    backbone = config.encoder.backbone
    from semclust.core.representation.backbones import get_spec

    try:
        family = get_spec(backbone).family
    except ValueError:
        family = "unknown"
    if family not in _NAMING_FAMILIES:
        why = f"{backbone} has no classifier head or text tower to name them"
    elif config.encoder.weights is None:
        why = f"{backbone} was not pretrained here (no weights), so its head knows no names"
    elif config.pretext.epochs != 0:
        why = f"{backbone} was fine-tuned with SimCLR: its features no longer fit its names"
    elif config.encoder.layer == "mid":
        why = f"the features come from {backbone}'s mid-level layer, which its names do not fit"
    else:
        return None
    return f"Clusters not named: {why}; {CAN_NAME}."


def suggest_names(
    config: RunConfig,
    features: np.ndarray,
    assignment: np.ndarray,
    prototypes: dict[int, list[int]],
    cache_dir: str | Path | None = None,
    taken: Collection[str] = (),
) -> tuple[dict[int, SuggestedName], str]:
    """A name with a confidence for every non-empty cluster of ``prototypes`` (the clusters to
    name, each with the images that vote), or none and the reason why.

    ``cache_dir`` is the run's cache root, where its pretrained weights were fetched (the features
    stage's): the head and the text tower are looked for there.

    Names that two clusters would share are told apart (``"cat"``, ``"cat (2)"``: see
    :func:`semclust.core.naming.names.distinct_names`), and so are names in ``taken`` (those of
    clusters not named here: a split's parts are named beside the run's other clusters).

    Returns:
        cluster -> suggestion, and ``""`` or a one-line note saying why no cluster is named (this
        backbone cannot name; naming failed) and which backbones can.
    """
    reason = cannot_name(config)
    if reason:
        return {}, reason
    from semclust.core.representation.backbones import get_spec

    try:
        if get_spec(config.encoder.backbone).family == "efficientnet_lite":
            names = _from_imagenet_head(config, features, assignment, prototypes, cache_dir)
        else:
            names = _from_text(config, features, prototypes, cache_dir)
    except (OSError, ValueError, KeyError) as exc:  # weights or text tower missing: numbers stay
        log.warning("clusters not named: %s", exc)
        return {}, f"Clusters not named: {exc}"
    names = {c: s for c, s in names.items() if c in prototypes}  # only the clusters asked
    return distinct_names(names, taken), ""


def classifier_probabilities(
    features: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """Softmax of the ImageNet head over pooled backbone features, in batches (bounded memory)."""
    out = []
    for start in range(0, len(features), 8192):
        logits = np.asarray(features[start : start + 8192], np.float32) @ kernel + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out.append(p / p.sum(axis=1, keepdims=True))
    return np.concatenate(out)


def _from_imagenet_head(
    config, features, assignment, prototypes, cache_dir=None
) -> dict[int, SuggestedName]:
    from semclust.core.naming.imagenet import load_imagenet_class_names, names_from_classifier
    from semclust.core.representation import efficientnet_lite
    from semclust.core.representation.backbones import PRETRAINED

    weights = config.encoder.weights
    if weights in PRETRAINED:
        weights = efficientnet_lite.find_or_convert_weights(cache_dir=cache_dir)
    kernel, bias = efficientnet_lite.imagenet_head(weights)
    voters = sorted({int(i) for members in prototypes.values() for i in members})
    probs = np.zeros((len(features), kernel.shape[1]), np.float32)
    probs[voters] = classifier_probabilities(np.asarray(features)[voters], kernel, bias)
    return names_from_classifier(probs, assignment, prototypes, load_imagenet_class_names())


def _from_text(config, features, prototypes, cache_dir=None) -> dict[int, SuggestedName]:
    from semclust.core.naming.zero_shot import load_nouns, suggestions_from_text, text_tower

    encode, tokenize = text_tower(config.encoder.backbone, cache_dir)
    embeddings = {c: np.asarray(features)[list(m)] for c, m in prototypes.items() if m}
    return suggestions_from_text(embeddings, encode, tokenize, load_nouns())
