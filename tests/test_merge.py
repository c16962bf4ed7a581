"""Over-clustering merged by neighbour links (core/clustering/merge.py) and the link scores it shares
with the app's merge hint (core/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from semclust.core.clustering.merge import merge_by_links
from semclust.core.metrics import link_scores, look_alike, neighbour_links
from tests.conftest import neighbour_links_loop


def _merge_loop(assignment, neighbours, clusters):
    """The reference: every step recounts the links of the clusters so far and joins the pair with
    the highest (L[a, b] + L[b, a]) / min(a's links, b's links), the first of equal scores."""
    labels = np.unique(assignment, return_inverse=True)[1]
    while labels.max() + 1 > clusters:
        k = labels.max() + 1
        links = neighbour_links_loop(labels, neighbours, k)
        out = links.sum(axis=1)
        best, pair = -np.inf, None
        for a in range(k):
            for b in range(a + 1, k):
                score = (links[a, b] + links[b, a]) / min(out[a], out[b])
                if score > best:
                    best, pair = score, (a, b)
        labels = np.unique(np.where(labels == pair[1], pair[0], labels), return_inverse=True)[1]
    return labels


def _graph(groups, seed, per=8, noise=0.1):
    """Mined neighbours of images in ``groups`` (one group number each): mostly in the same group."""
    rng = np.random.default_rng(seed)
    n = len(groups)
    nb = np.array([rng.choice(np.flatnonzero(groups == groups[i]), per) for i in range(n)])
    stray = rng.random(nb.shape) < noise
    nb[stray] = rng.integers(0, n, int(stray.sum()))
    return nb


@pytest.mark.parametrize("seed", [0, 1])
def test_links_and_scores_match_a_loop(seed, monkeypatch):
    from semclust.core import metrics

    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 4, 200)
    nb = _graph(groups, seed)
    nb[:5, 0] = np.arange(5)  # links to themselves: not counted
    assignment = rng.integers(0, 6, 200)
    monkeypatch.setattr(metrics, "ROWS_PER_BLOCK", 7)  # read in blocks: the same counts
    links = neighbour_links(assignment, nb, 7)  # cluster 6 empty
    expected = neighbour_links_loop(assignment, nb, 7)
    np.testing.assert_array_equal(links, expected)
    scores = link_scores(links)
    for a in range(6):
        for b in range(6):
            smaller = min(expected[a].sum(), expected[b].sum())
            assert scores[a, b] == pytest.approx((expected[a, b] + expected[b, a]) / smaller)
    assert not scores[6].any() and not scores[:, 6].any()  # no links: no score, no division by 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merging_matches_a_step_by_step_reference(seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 5, 300)
    nb = _graph(groups, seed, noise=0.3)
    fine = rng.integers(0, 12, 300) * 10  # any cluster numbers
    for clusters in (1, 3, 5, 11, 12):
        merged = merge_by_links(fine, nb, clusters)
        assert sorted(np.unique(merged)) == list(range(clusters))
        assert adjusted_rand_score(merged, _merge_loop(fine, nb, clusters)) == 1.0
    assert len(np.unique(merge_by_links(fine, nb, 20))) == 12  # fewer parts than asked: kept


def test_the_parts_of_a_large_group_merge_before_a_small_group():
    # a large group cut in three parts, a middle one and a small one whose neighbours stay in it
    groups = np.repeat([0, 1, 2], [240, 80, 12])
    parts = np.concatenate([np.repeat([0, 1, 2], 80), np.full(80, 3), np.full(12, 4)])
    nb = _graph(groups, 0, noise=0.15)
    merged = merge_by_links(parts, nb, 3)
    assert adjusted_rand_score(merged, groups) == 1.0
    # the first merge is the pair the app's merge hint offers
    hint = look_alike(parts, nb, 5)
    first = merge_by_links(parts, nb, 4)
    assert hint is not None and first[parts == hint.into][0] == first[parts == hint.merged][0]
    assert len(np.unique(first[np.isin(parts, [hint.into, hint.merged])])) == 1


def test_the_merged_mixture_keeps_a_group_the_mixture_splits():
    from semclust.core.clustering.methods import (
        AUTO_CANDIDATES,
        MAP_METHODS,
        METHODS,
        Inputs,
    )
    from semclust.core.metrics import evaluate
    from semclust.core.neighbours import mine_neighbours

    assert "umap_gmm_merged" in set(AUTO_CANDIDATES) & set(MAP_METHODS)
    # one group of two touching modes (500 images), one of 80 and one of 15
    rng = np.random.default_rng(0)
    dim = 16
    a, b, c, u = rng.normal(size=(4, dim))
    means = [(a, 250), (a + 1.5 * u / np.linalg.norm(u), 250), (b, 80), (c, 15)]
    x = np.concatenate([m + 0.35 * rng.normal(size=(n, dim)) for m, n in means])
    labels = np.repeat([0, 0, 1, 2], [n for _, n in means])
    emb = x / np.linalg.norm(x, axis=1, keepdims=True)
    inputs = Inputs(x.astype(np.float32), emb.astype(np.float32), mine_neighbours(emb, 15))
    merged = METHODS["umap_gmm_merged"](inputs, 3, 0)
    mixture = METHODS["umap_gmm"](inputs, 3, 0)
    assert merged.shape == (595, 3) and np.allclose(merged.sum(axis=1), 1.0, atol=1e-5)
    assert evaluate(labels, merged.argmax(1), 3)["acc"] > 0.95
    assert evaluate(labels, mixture.argmax(1), 3)["acc"] < 0.8  # it halves the large group
