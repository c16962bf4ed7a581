"""Suggested cluster names from words: zero-shot similarity in a CLIP / SigLIP embedding space.

Each noun of a vocabulary becomes a prompt, ``"a photo of a {noun}."`` (Radford et al. 2021, section
3.1.4), and is embedded by the model's text tower; a cluster is named after the noun whose text
embedding is most similar (cosine) to the mean of its prototypes' image embeddings. With
``unique=True`` the nouns are matched to the clusters by the Hungarian method, so that no two
clusters get the same name while there are enough nouns. A name's confidence
(:func:`suggestions_from_text`) is the share of the cluster's prototypes whose own nearest noun it is.

The image embeddings must come from the same model's image tower, unchanged: the frozen features of
a ``clip_*`` or ``siglip_*`` backbone (``features.npy`` of a run), not features fine-tuned with SimCLR.

The vocabulary ships in ``resources/nouns.txt`` (a few hundred everyday nouns).

Example:
    >>> encode, tokenize = text_tower("clip_vit_b16")  # doctest: +SKIP
    >>> names_from_text({0: feats[protos[0]], 1: feats[protos[1]]}, encode, tokenize, load_nouns())
    {0: 'cat', 1: 'bicycle'}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from semclust.core.naming.names import SuggestedName
from semclust.core.paths import resource

NOUNS_FILE = resource("nouns.txt")
TEMPLATE = "a photo of {article} {noun}."

TextEncoder = Callable[[np.ndarray], np.ndarray]
Tokenizer = Callable[[list[str]], np.ndarray]


def load_nouns(path: str | Path = NOUNS_FILE) -> list[str]:
    """The nouns of a vocabulary file: one per line, ``#`` starts a comment line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def prompts(vocabulary: Sequence[str], template: str = TEMPLATE) -> list[str]:
    """``"a photo of a {noun}."`` for every noun (``an`` before a vowel)."""
    return [
        template.format(article="an" if noun[:1].lower() in "aeiou" else "a", noun=noun)
        for noun in vocabulary
    ]


def text_embeddings(
    text_encoder: TextEncoder,
    tokenizer: Tokenizer,
    vocabulary: Sequence[str],
    template: str = TEMPLATE,
    batch_size: int = 64,
) -> np.ndarray:
    """L2-normalised text embeddings (V, D) of the vocabulary's prompts."""
    texts = prompts(vocabulary, template)
    parts = [
        np.asarray(text_encoder(tokenizer(texts[i : i + batch_size])), dtype=np.float32)
        for i in range(0, len(texts), batch_size)
    ]
    return _normalise(np.concatenate(parts))


def similarities(
    prototype_embeddings: dict[int, np.ndarray], text: np.ndarray
) -> tuple[list[int], np.ndarray]:
    """Cosine similarity (K, V) of each cluster's mean prototype embedding to the text embeddings.

    Args:
        prototype_embeddings: cluster -> image embeddings of its prototypes, (P, D) or one (D,).
        text: L2-normalised text embeddings (V, D).

    Returns:
        The clusters (sorted) and their similarity rows.
    """
    clusters = sorted(prototype_embeddings)
    if not clusters:
        return [], np.zeros((0, len(text)), np.float32)
    centres = np.stack(
        [
            _normalise(np.atleast_2d(np.asarray(prototype_embeddings[c], np.float32))).mean(0)
            for c in clusters
        ]
    )
    if centres.shape[1] != text.shape[1]:
        raise ValueError(
            f"The image embeddings have {centres.shape[1]} dimensions and the text embeddings "
            f"{text.shape[1]}: use the frozen features of the same CLIP/SigLIP model."
        )
    return clusters, _normalise(centres) @ text.T


def names_from_text(
    prototype_embeddings: dict[int, np.ndarray],
    text_encoder: TextEncoder,
    tokenizer: Tokenizer,
    vocabulary: Sequence[str],
    unique: bool = True,
    template: str = TEMPLATE,
) -> dict[int, str]:
    """A suggested name for every cluster: the noun most similar to its prototypes.

    Args:
        prototype_embeddings: cluster -> image embeddings (P, D) of its prototypes (or one (D,)),
            from the image tower of the model whose text tower ``text_encoder`` is.
        text_encoder: token ids (N, L) -> text embeddings (N, D) in the joint space.
        tokenizer: prompts -> token ids (N, L), as ``text_encoder`` expects them.
        vocabulary: candidate nouns.
        unique: no two clusters share a noun (Hungarian matching on the similarities) while the
            vocabulary has at least as many nouns as there are clusters.
        template: the prompt, with ``{article}`` and ``{noun}``.

    Returns:
        cluster -> noun.
    """
    return {c: s.name for c, s in suggestions_from_text(
        prototype_embeddings, text_encoder, tokenizer, vocabulary, unique, template
    ).items()}  # fmt: skip


def suggestions_from_text(
    prototype_embeddings: dict[int, np.ndarray],
    text_encoder: TextEncoder,
    tokenizer: Tokenizer,
    vocabulary: Sequence[str],
    unique: bool = True,
    template: str = TEMPLATE,
) -> dict[int, SuggestedName]:
    """:func:`names_from_text`'s nouns, each with a confidence: the share of the cluster's prototypes
    whose own nearest noun is the cluster's noun (0 when unique matching gave it another noun)."""
    if not vocabulary:
        raise ValueError("The vocabulary is empty.")
    text = text_embeddings(text_encoder, tokenizer, vocabulary, template)
    clusters, sim = similarities(prototype_embeddings, text)
    if not clusters:
        return {}
    if unique and len(vocabulary) >= len(clusters):
        rows, cols = linear_sum_assignment(-sim)
        chosen = {clusters[r]: int(j) for r, j in zip(rows, cols)}
    else:
        chosen = {c: int(j) for c, j in zip(clusters, sim.argmax(axis=1))}
    out = {}
    for c, j in chosen.items():
        own = _normalise(np.atleast_2d(np.asarray(prototype_embeddings[c], np.float32))) @ text.T
        out[c] = SuggestedName(vocabulary[j], float(np.mean(own.argmax(axis=1) == j)))
    return out


def text_tower(backbone: str, cache_dir: str | Path | None = None) -> tuple[TextEncoder, Tokenizer]:
    """The text encoder and tokenizer of a CLIP or SigLIP keras-hub preset, for :func:`names_from_text`.

    Args:
        backbone: a registered ``clip_*`` / ``siglip_*`` backbone, or a preset id or directory of one.
        cache_dir: semclust's cache root, where the run's weights were looked for.

    Raises:
        ValueError: the backbone has no text tower.
        WeightsUnavailable: the preset is neither cached nor downloadable.
    """
    import keras  # noqa: PLC0415
    import keras_hub  # noqa: PLC0415 (slow import)

    from semclust.core.representation.backbones import ensure_weights, get_spec  # noqa: PLC0415

    spec = get_spec(backbone)
    preprocessors = {
        "clip": keras_hub.models.CLIPPreprocessor,
        "siglip": keras_hub.models.SigLIPPreprocessor,
    }
    if spec.family not in preprocessors:
        raise ValueError(f"{spec.name} has no text tower: name clusters with a CLIP or SigLIP one.")
    source = ensure_weights(spec, "pretrained", cache_dir)
    model = keras_hub.models.Backbone.from_preset(source)
    preprocessor = preprocessors[spec.family].from_preset(source)
    preprocessor.image_converter = None  # text only

    def tokenize(texts: list[str]) -> np.ndarray:
        out = preprocessor({"images": None, "prompts": list(texts)})
        out = out[0] if isinstance(out, tuple) else out
        return keras.ops.convert_to_numpy(out["token_ids"])

    def encode(token_ids: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(model.get_text_embeddings(token_ids))

    return encode, tokenize


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
