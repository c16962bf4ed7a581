"""Zero-shot cluster names: matching on a hand-made joint space, and the keras-hub CLIP text tower
with a tiny random preset (plumbing only: random weights name nothing meaningfully)."""

from __future__ import annotations

import importlib.util
import string

import keras
import numpy as np
import pytest

from semclust.core.config import EncoderConfig
from semclust.core.naming.zero_shot import (
    load_nouns,
    names_from_text,
    prompts,
    similarities,
    suggestions_from_text,
    text_embeddings,
    text_tower,
)
from semclust.core.representation.encoders import build_encoder

VOCABULARY = ["cat", "dog", "airplane", "tree"]


def _toy_model(dim: int = 6, seed: int = 0):
    """A tokenizer that maps a prompt to its noun's index and an encoder that looks up a row."""
    table = np.random.default_rng(seed).normal(size=(len(VOCABULARY), dim)).astype("float32")
    index = {p: i for i, p in enumerate(prompts(VOCABULARY))}

    def tokenizer(texts):
        return np.array([[index[t]] for t in texts])

    def encoder(token_ids):
        return table[token_ids[:, 0]] * 3.0  # any scale: embeddings are normalised

    return table, tokenizer, encoder


def test_prompts_use_the_right_article():
    assert prompts(["cat", "airplane"]) == ["a photo of a cat.", "a photo of an airplane."]


def test_each_cluster_gets_the_nearest_noun_and_names_are_unique():
    table, tokenizer, encoder = _toy_model()
    rng = np.random.default_rng(1)
    protos = {
        4: table[2] + 0.05 * rng.normal(size=(5, table.shape[1])),  # airplanes
        7: table[0] + 0.05 * rng.normal(size=(5, table.shape[1])),  # cats
    }
    assert names_from_text(protos, encoder, tokenizer, VOCABULARY) == {4: "airplane", 7: "cat"}

    # A second cluster of airplanes, a little less typical: unique names give it the next best noun.
    protos[9] = table[2] + 0.3 * table[3] + 0.05 * rng.normal(size=(5, table.shape[1]))
    text = text_embeddings(encoder, tokenizer, VOCABULARY)
    clusters, sim = similarities(protos, text)
    assert clusters == [4, 7, 9] and sim[2].argmax() == 2 and sim[0, 2] > sim[2, 2]
    unique = names_from_text(protos, encoder, tokenizer, VOCABULARY)
    assert unique[4] == "airplane" and unique[9] != "airplane"
    assert len(set(unique.values())) == 3
    shared = names_from_text(protos, encoder, tokenizer, VOCABULARY, unique=False)
    assert shared == {4: "airplane", 7: "cat", 9: "airplane"}


def test_a_nouns_confidence_is_the_share_of_prototypes_nearest_to_it():
    table, tokenizer, encoder = _toy_model()
    protos = {
        0: np.stack([table[0], table[0], table[0], table[1]]),  # 3 cats, 1 dog
        1: np.stack([table[2], table[2]]),  # airplanes
        2: np.stack([table[2] * 1.01, table[3]]),  # unique matching leaves it "tree": 1 of 2
    }
    found = suggestions_from_text(protos, encoder, tokenizer, VOCABULARY)
    assert {c: s.name for c, s in found.items()} == {0: "cat", 1: "airplane", 2: "tree"}
    assert [found[c].confidence for c in range(3)] == [0.75, 1.0, 0.5]
    assert names_from_text(protos, encoder, tokenizer, VOCABULARY) == {
        c: s.name for c, s in found.items()
    }


def test_embeddings_of_another_model_are_refused():
    _, tokenizer, encoder = _toy_model(dim=6)
    with pytest.raises(ValueError, match="same CLIP/SigLIP model"):
        names_from_text({0: np.ones((2, 5))}, encoder, tokenizer, VOCABULARY)


def test_the_shipped_vocabulary():
    nouns = load_nouns()
    assert 300 <= len(nouns) == len(set(nouns))
    assert {"cat", "fish", "monument", "wind turbine", "hammer", "rice"} <= set(nouns)
    assert all(n == n.strip().lower() and not n.startswith("#") for n in nouns)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP preset with a character-level tokenizer, saved as a preset directory."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    chars = list(string.ascii_lowercase + ".")
    tokens = chars + [c + "</w>" for c in chars] + ["ca", "cat</w>"]
    vocab = {t: i for i, t in enumerate([*tokens, "<|startoftext|>", "<|endoftext|>"])}
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocab, merges=["c a", "ca t</w>"])
    tower = dict(patch_size=4, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
    model = keras_hub.models.CLIPBackbone(
        keras_hub.models.CLIPVisionEncoder(**tower, image_shape=(28, 28, 3)),
        keras_hub.models.CLIPTextEncoder(
            vocabulary_size=64,
            embedding_dim=16,
            hidden_dim=16,
            num_layers=1,
            num_heads=2,
            intermediate_dim=32,
            max_sequence_length=24,
        ),
        projection_dim=8,
    )
    folder = tmp_path_factory.mktemp("clip_preset")
    model.save_to_preset(folder)
    keras_hub.models.CLIPPreprocessor(tokenizer, sequence_length=24).save_to_preset(folder)
    return folder, model, vocab


@pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason="no keras-hub")
def test_clip_text_tower_names_clusters_of_its_own_image_embeddings(tiny_clip):
    folder, model, vocab = tiny_clip
    encode, tokenize = text_tower(str(folder))
    ids = tokenize(["a photo of a cat.", "a photo of an owl."])
    assert ids.shape == (2, 24) and ids[0, 0] == vocab["<|startoftext|>"]
    assert vocab["<|endoftext|>"] in ids[0]
    expected = keras.ops.convert_to_numpy(model.get_text_embeddings(ids))
    np.testing.assert_allclose(encode(ids), expected, atol=1e-5)

    images = np.random.default_rng(0).uniform(0, 255, (6, 28, 28, 3)).astype("float32")
    encoder = build_encoder(EncoderConfig(backbone=str(folder), weights="pretrained"), 28)
    features = encoder.predict_on_batch(images)
    names = names_from_text({0: features[:3], 1: features[3:]}, encode, tokenize, VOCABULARY)
    assert set(names) == {0, 1} and set(names.values()) <= set(VOCABULARY)
    assert names[0] != names[1]


def test_a_backbone_without_text_tower_is_refused():
    pytest.importorskip("keras_hub")
    with pytest.raises(ValueError, match="no text tower"):
        text_tower("mobilenet")
