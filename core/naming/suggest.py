"""Suggested cluster names, from what the backbone knows: its ImageNet classifier or its text tower.

- EfficientNet-Lite2 keeps its ImageNet head: a cluster is named after the most frequent classes of its
  prototypes (:func:`semclust.core.naming.imagenet.names_from_classifier`).
- CLIP and SigLIP have a text tower: a cluster is named after the noun of a shipped vocabulary whose
  "a photo of a ..." embedding is nearest its prototypes (:func:`semclust.core.naming.zero_shot.names_from_text`).

Names are suggestions: the user renames clusters in the app, and a user's name wins. Only a frozen
pretrained backbone names clusters (SimCLR fine-tuning moves its features away from its head and its text
tower). Naming never fails a run: without a way to name, the clusters keep their numbers.
"""

from __future__ import annotations

import logging

import numpy as np

from semclust.core.config import RunConfig

log = logging.getLogger(__name__)


def suggest_names(
    config: RunConfig,
    features: np.ndarray,
    assignment: np.ndarray,
    prototypes: dict[int, list[int]],
) -> dict[int, str]:
    """cluster -> suggested name ("" where the backbone cannot tell), or {} when it cannot name."""
    if config.encoder.weights is None or config.pretext.epochs != 0:
        return {}
    from semclust.core.representation.backbones import get_spec

    try:
        family = get_spec(config.encoder.backbone).family
        if family == "efficientnet_lite":
            return _from_imagenet_head(config, features, assignment, prototypes)
        if family in ("clip", "siglip"):
            return _from_text(config, features, prototypes)
    except (OSError, ValueError, KeyError) as exc:  # no weights, no text tower here: numbers stay
        log.warning("clusters not named: %s", exc)
    return {}


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


def _from_imagenet_head(config, features, assignment, prototypes) -> dict[int, str]:
    from semclust.core.naming.imagenet import load_imagenet_class_names, names_from_classifier
    from semclust.core.representation import efficientnet_lite
    from semclust.core.representation.backbones import PRETRAINED

    weights = config.encoder.weights
    if weights in PRETRAINED:
        weights = efficientnet_lite.find_or_convert_weights()
    model = efficientnet_lite.build_efficientnet_lite2(include_top=True, weights=weights)
    kernel, bias = (np.asarray(w) for w in model.get_layer("predictions").get_weights())
    voters = sorted({int(i) for members in prototypes.values() for i in members})
    probs = np.zeros((len(features), kernel.shape[1]), np.float32)
    probs[voters] = classifier_probabilities(np.asarray(features)[voters], kernel, bias)
    return names_from_classifier(probs, assignment, prototypes, load_imagenet_class_names())


def _from_text(config, features, prototypes) -> dict[int, str]:
    from semclust.core.naming.zero_shot import load_nouns, names_from_text, text_tower

    encode, tokenize = text_tower(config.encoder.backbone)
    embeddings = {c: np.asarray(features)[list(m)] for c, m in prototypes.items() if m}
    return names_from_text(embeddings, encode, tokenize, load_nouns())
