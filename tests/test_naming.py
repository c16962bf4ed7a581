"""Cluster names suggested from ImageNet votes of the prototypes."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.naming.imagenet import (
    load_imagenet_class_names,
    names_from_classifier,
    top_classes,
)

NAMES = ["tabby cat", "tiger cat", "espresso", "tea cup", "missile", "missile", "rocket"]


def _probabilities(winners: list[int], confidence: float = 0.6) -> np.ndarray:
    """One row per image whose top-1 class is ``winners[i]``."""
    p = np.full((len(winners), len(NAMES)), (1 - confidence) / (len(NAMES) - 1))
    p[np.arange(len(winners)), winners] = confidence
    return p


def test_imagenet_class_names_are_the_1000_in_index_order():
    names = load_imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[281] == "tabby cat" and names[282] == "tiger cat"
    assert names[967] == "espresso" and names[504] == "coffee mug"
    assert all(name and name == name.strip() and "\n" not in name for name in names)
    assert len(set(names)) == 998  # ImageNet's two duplicate pairs: missile, sunglasses
    names.append("x")  # a copy: the cached list stays intact
    assert len(load_imagenet_class_names()) == 1000


def test_names_from_the_most_frequent_classes():
    #          cluster 0: cats                cluster 1: coffee, 2: spread
    winners = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 0, 2, 3, 4, 6]
    assignment = np.array([0] * 6 + [1] * 4 + [2] * 5)
    prototypes = {0: [0, 1, 2, 3, 4, 5], 1: [6, 7, 8, 9], 2: [10, 11, 12, 13, 14]}
    names = names_from_classifier(_probabilities(winners), assignment, prototypes, NAMES)
    assert names[0] == "tabby cat / tiger cat"  # 3 and 2 votes of 6; espresso's 1 is below 25 %
    assert names[1] == "espresso"  # 3 of 4; tea cup's single vote (25 %) is not enough
    assert names[2] == ""  # five different classes: no share reaches 25 %


def test_the_second_name_needs_its_share_and_top_limits_the_count():
    winners = [2, 2, 2, 2, 2, 2, 3]  # 6 espresso, 1 tea cup (14 %)
    assignment = np.zeros(7, int)
    names = names_from_classifier(_probabilities(winners), assignment, {0: list(range(7))}, NAMES)
    assert names == {0: "espresso"}
    winners = [0, 0, 1, 1, 3, 3]
    names = names_from_classifier(
        _probabilities(winners), np.zeros(6, int), {0: list(range(6))}, NAMES, top=1
    )
    assert names[0] == "tabby cat"  # a tie of three: broken by probability mass, then by name


def test_duplicate_class_names_pool_their_votes():
    winners = [4, 5, 4, 5, 0, 2, 3]  # two "missile" classes, 4 votes of 7 together
    names = names_from_classifier(
        _probabilities(winners), np.zeros(7, int), {0: list(range(7))}, NAMES, min_share=0.5
    )
    assert names == {0: "missile"}


def test_moved_prototypes_do_not_vote_and_empty_clusters_fall_back_to_members():
    winners = [0, 0, 2, 2, 2]
    assignment = np.array([1, 1, 1, 1, 1])  # the user moved the prototypes of cluster 0 away
    prototypes = {0: [0, 1], 1: [2, 3]}
    names = names_from_classifier(_probabilities(winners), assignment, prototypes, NAMES)
    assert names[0] == ""  # no image left in cluster 0
    assert names[1] == "espresso"
    no_prototypes = names_from_classifier(_probabilities(winners), assignment, {}, NAMES)
    assert no_prototypes == {1: "espresso / tabby cat"}  # all five members vote: 3 and 2


def test_shapes_are_checked():
    p = _probabilities([0, 1])
    with pytest.raises(ValueError, match="class_probabilities"):
        names_from_classifier(p[:, :3], np.zeros(2, int), {}, NAMES)
    with pytest.raises(ValueError, match="assignment"):
        names_from_classifier(p, np.zeros(3, int), {}, NAMES)


def test_top_classes():
    p = np.array([0.1, 0.6, 0.05, 0.25, 0, 0, 0])
    assert top_classes(p, NAMES, top=2) == [("tiger cat", 0.6), ("tea cup", 0.25)]
