"""Metrics against plain NumPy references (brute-force matching, textbook NMI and ARI)."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from semclust.core.metrics import (
    central_members,
    cluster_summary,
    evaluate,
    look_alike,
    prototypes,
)
from tests.conftest import neighbour_links_loop


def brute_force_acc(assign, labels, k):
    classes = sorted(set(labels))
    best = 0
    for perm in itertools.permutations(range(k), len(classes)):
        mapping = dict(zip(perm, classes))
        best = max(best, sum(mapping.get(a) == lab for a, lab in zip(assign, labels)))
    return best / len(labels)


def nmi_reference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    n = len(a)

    def h(x):
        _, c = np.unique(x, return_counts=True)
        p = c / n
        return -np.sum(p * np.log(p))

    mi = 0.0
    for u in np.unique(a):
        for v in np.unique(b):
            nuv = np.sum((a == u) & (b == v))
            if nuv:
                mi += nuv / n * np.log(n * nuv / (np.sum(a == u) * np.sum(b == v)))
    return mi / ((h(a) + h(b)) / 2)


def ari_reference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    cont = np.array([[np.sum((a == u) & (b == v)) for v in np.unique(b)] for u in np.unique(a)])
    sum_ij = sum(comb(int(x), 2) for x in cont.ravel())
    sum_a = sum(comb(int(x), 2) for x in cont.sum(axis=1))
    sum_b = sum(comb(int(x), 2) for x in cont.sum(axis=0))
    expected = sum_a * sum_b / comb(len(a), 2)
    return (sum_ij - expected) / ((sum_a + sum_b) / 2 - expected)


@pytest.mark.parametrize("seed", range(4))
def test_evaluate_matches_references(seed):
    rng = np.random.default_rng(seed)
    labels = [["cat", "dog", "truck"][i] for i in rng.integers(0, 3, 60)]
    assign = rng.integers(0, 4, 60)
    m = evaluate(labels, assign, 4)
    label_ids = [["cat", "dog", "truck"].index(x) for x in labels]
    assert m["acc"] == pytest.approx(brute_force_acc(list(assign), labels, 4))
    assert m["nmi"] == pytest.approx(nmi_reference(assign, label_ids), rel=1e-6)
    assert m["ari"] == pytest.approx(ari_reference(assign, label_ids), rel=1e-6)
    assert np.sum(m["confusion"]) == 60


def test_perfect_and_permuted_clustering():
    labels = ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    assign = np.array([2] * 5 + [0] * 5 + [1] * 5)
    m = evaluate(labels, assign, 3)
    assert m["acc"] == 1.0 and m["nmi"] == pytest.approx(1.0) and m["ari"] == pytest.approx(1.0)


def test_many_to_one_with_more_clusters_than_classes():
    labels = ["a"] * 6 + ["b"] * 6
    assign = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    m = evaluate(labels, assign, 4)
    assert m["many_to_one_acc"] == 1.0
    assert m["acc"] == pytest.approx(0.5)


def test_unknown_labels_are_ignored():
    m = evaluate(["a", None, "b", "b"], np.array([0, 1, 1, 1]), 2)
    assert m["n_labelled"] == 3 and m["acc"] == 1.0


def test_cluster_summary_purity_and_empty_clusters():
    rows = cluster_summary(
        np.array([0, 0, 0, 1]), 3, ["x", "x", "y", "y"], np.array([0.9, 0.8, 0.7, 0.6])
    )
    assert [r.size for r in rows] == [3, 1, 0]
    assert rows[0].majority_label == "x" and rows[0].purity == pytest.approx(2 / 3)
    assert rows[0].mean_confidence == pytest.approx(0.8)
    assert rows[2].purity is None and rows[2].mean_confidence is None


def test_cluster_summary_leaves_out_confidences_that_do_not_apply():
    """NaN (an image the user moved) is left out of its cluster's mean; a cluster of such images
    only has no mean confidence."""
    conf = np.array([0.9, np.nan, 0.7, np.nan, np.nan])
    rows = cluster_summary(np.array([0, 0, 0, 1, 1]), 2, None, conf)
    assert rows[0].mean_confidence == pytest.approx(0.8)
    assert rows[1].mean_confidence is None


def test_prototypes_are_the_most_confident_members_ties_in_image_order():
    assignment = np.array([0, 1, 0, 0, 1, 0])
    confidence = np.array([0.6, 0.9, 0.8, 0.6, 0.7, 0.6])
    assert prototypes(assignment, confidence, 3, per_cluster=3) == {0: [2, 0, 3], 1: [1, 4], 2: []}


def test_central_members_are_those_nearest_the_clusters_mean_embedding(monkeypatch):
    from semclust.core import metrics

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(40, 6))
    assignment = rng.integers(0, 3, 40)
    found = central_members(embeddings, assignment, [2, 0, 5], per_cluster=4)
    for c in (0, 2):  # the reference, in a loop: dot product with the mean (unit vectors: nearest)
        members = [i for i in range(40) if assignment[i] == c]
        mean = embeddings[members].mean(axis=0)
        closeness = {i: float(embeddings[i] @ mean) for i in members}
        assert found[c] == sorted(members, key=lambda i: -closeness[i])[:4]
    assert found[5] == [] and list(found) == [2, 0, 5]
    monkeypatch.setattr(metrics, "ROWS_PER_BLOCK", 3)  # read in blocks: the same members
    assert central_members(embeddings, assignment, [2, 0, 5], per_cluster=4) == found


def _look_alike_loop(assignment, neighbours, k):
    """The same score, a link at a time (the reference for ``look_alike``)."""
    links = neighbour_links_loop(assignment, neighbours, k)
    out, sizes = links.sum(1), np.bincount(assignment, minlength=k)
    best = None
    for a in range(k):
        for b in range(a + 1, k):
            if sizes[a] and sizes[b] and out[a] and out[b]:
                score = (links[a, b] + links[b, a]) / min(out[a], out[b])
                if best is None or score > best[2]:
                    best = (a, b, score)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_look_alike_matches_a_loop_and_reads_blocks(seed, monkeypatch):
    from semclust.core import metrics

    rng = np.random.default_rng(seed)
    n, k = 300, 6
    group = rng.integers(0, 3, n)  # 3 groups of images, their neighbours mostly in the group
    nb = np.array([rng.choice(np.flatnonzero(group == group[i]), 8) for i in range(n)])
    noise = rng.random(nb.shape) < 0.1  # and a few anywhere
    nb[noise] = rng.integers(0, n, int(noise.sum()))
    nb[:5, 0] = np.arange(5)  # links to themselves: not counted
    assignment = np.where(
        group == 0, rng.integers(0, 2, n), group + 2
    )  # group 0 cut in two; 5 empty
    a, b, score = _look_alike_loop(assignment, nb, k)
    monkeypatch.setattr(metrics, "ROWS_PER_BLOCK", 7)
    found = look_alike(assignment, nb, k)
    assert found is not None and {found.into, found.merged} == {a, b} == {0, 1}
    assert found.score == pytest.approx(score)
    assert np.sum(assignment == found.into) >= np.sum(assignment == found.merged)  # the larger
    own = nb != np.arange(n)[:, None]  # the directed shares, a link at a time
    for x, y, share in ((found.merged, found.into, found.merged_share),
                        (found.into, found.merged, found.into_share)):  # fmt: skip
        rows = assignment == x
        assert share == pytest.approx((assignment[nb[rows]][own[rows]] == y).mean())
    assert look_alike(group, nb, 3) is None  # whole groups: no pair reaches the threshold
    assert look_alike(assignment, nb, k, ignore=[(1, 0)]) is None  # either order; none else
    assert look_alike(assignment, nb, k, ignore=[(3, 4), (5, 0)]) == found  # other pairs
    assert look_alike(np.zeros(n, dtype=int), nb, 1) is None
