"""Cluster names suggested from ImageNet votes of the prototypes: the rule on NumPy inputs."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.core.naming.imagenet import (
    class_groups,
    load_imagenet_class_names,
    names_from_classifier,
    top_classes,
)
from semclust.core.naming.names import SuggestedName, distinct_names, name_from_votes

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


def test_a_clear_majority_names_the_cluster_and_split_votes_are_mixed():
    #          cluster 0: cats (3 of 6)      1: coffee (3 of 4)  2: all different
    winners = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 0, 2, 3, 4, 6]
    assignment = np.array([0] * 6 + [1] * 4 + [2] * 5)
    prototypes = {0: [0, 1, 2, 3, 4, 5], 1: [6, 7, 8, 9], 2: [10, 11, 12, 13, 14]}
    names = names_from_classifier(_probabilities(winners), assignment, prototypes, NAMES)
    assert names[1] == SuggestedName("espresso", 0.75)  # 3 of 4: a clear majority
    assert names[0] == SuggestedName("mixed: tabby cat / tiger cat", 0.5)  # half is no majority
    assert names[2].name.startswith("mixed: ") and names[2].confidence == pytest.approx(0.2)
    assert set(names) == {0, 1, 2}  # every cluster gets a name


def test_the_rule_on_votes():
    assert name_from_votes([]) is None
    assert name_from_votes(["cat"]) == SuggestedName("cat", 1.0)
    assert name_from_votes(["cat", "dog", "cat"]) == SuggestedName("cat", pytest.approx(2 / 3))
    assert name_from_votes(["cat", "dog"]).name == "mixed: cat / dog"  # tie: alphabetical
    assert name_from_votes(["cat", "dog"], [0.2, 0.9]).name == "mixed: dog / cat"  # tie: mass
    four = ["owl", "cat", "cat", "dog", "dog", "fox"]
    assert name_from_votes(four, [1, 1, 1, 2, 2, 1]) == SuggestedName("mixed: dog / cat", 2 / 6)
    assert name_from_votes(["a", "a", "b"], majority=0.7).name == "mixed: a / b"
    with pytest.raises(ValueError, match="weights"):
        name_from_votes(["a"], [1, 2])


def test_the_rule_on_groups_of_classes():
    """Without a majority class, the most specific group whose classes hold more than 55% of the
    votes names the cluster, with its two leading classes; the group's share is the confidence."""
    cat, mammal, animal = ("k1", "cat family"), ("k2", "mammal"), ("k3", "animal")
    groups = {
        "tabby": [cat, mammal, animal], "lion": [cat, mammal, animal], "ox": [mammal, animal],
        "wolf": [mammal, animal], "owl": [animal], "gong": [],
    }  # fmt: skip
    votes = ["tabby", "lion", "owl", "owl", "gong"]  # the group's leading two, not the gong
    assert name_from_votes(votes, groups=groups) == SuggestedName("animal: owl / lion", 4 / 5)
    votes = ["tabby", "tabby", "lion", "lion", "ox", "wolf", "wolf", "gong"]
    # "cat family" holds 4 of 8 (not more than 55%), "mammal" 7 of 8: the most specific that holds.
    assert name_from_votes(votes, groups=groups) == SuggestedName("mammal: lion / tabby", 7 / 8)
    assert name_from_votes(["ox", "owl", "gong", "gong"], groups=groups).name == "mixed: gong / owl"
    assert name_from_votes(votes, groups=groups, group_majority=0.9).name == "mixed: lion / tabby"
    assert name_from_votes(["tabby", "tabby", "ox"], groups=groups).name == "tabby"  # a class first
    twice = {0: SuggestedName("mammal: ox / wolf", 0.6), 1: SuggestedName("mammal: ox / wolf", 0.7)}
    assert distinct_names(twice)[0].name == "mammal (2): ox / wolf"


def test_imagenet_classes_belong_to_their_wordnet_groups():
    """The shipped hierarchy: each class's WordNet hypernyms, the broad and unhelpful ones left out."""
    names = load_imagenet_class_names()
    groups = {c: [name for _, name in g] for c, g in class_groups(names).items()}
    assert len(groups) == 998  # by name: the two duplicate pairs share theirs
    assert groups["ox"][:3] == ["cattle", "bovine", "bovid"]
    assert {"ruminant", "mammal", "vertebrate", "animal"} <= set(groups["ox"])
    assert not {"placental", "chordate", "organism", "entity"} & set(groups["ox"])
    assert {"vegetable", "produce", "food"} <= set(groups["cucumber"])
    assert "artifact" not in groups["gong"] and "instrumentality" not in groups["gong"]
    assert class_groups(NAMES) == {}  # another vocabulary: no groups
    votes = [names.index(c) for c in ("ox", "ox", "ox", "Alpine ibex", "Alpine ibex", "gong")]
    p = np.full((len(votes), 1000), 0.1 / 999)
    p[np.arange(len(votes)), votes] = 0.9
    found = names_from_classifier(p, np.zeros(len(votes), int), {0: list(range(6))}, names)
    assert found == {0: SuggestedName("bovid: ox / Alpine ibex", 5 / 6)}


def test_duplicate_class_names_pool_their_votes():
    winners = [4, 5, 4, 5, 0, 2, 3]  # two "missile" classes, 4 votes of 7 together
    names = names_from_classifier(
        _probabilities(winners), np.zeros(7, int), {0: list(range(7))}, NAMES
    )
    assert names == {0: SuggestedName("missile", 4 / 7)}


def test_moved_prototypes_do_not_vote_and_empty_clusters_fall_back_to_members():
    winners = [0, 0, 2, 2, 2]
    assignment = np.array([1, 1, 1, 1, 1])  # the user moved the prototypes of cluster 0 away
    prototypes = {0: [0, 1], 1: [2, 3]}
    names = names_from_classifier(_probabilities(winners), assignment, prototypes, NAMES)
    assert 0 not in names  # no image left in cluster 0: nothing to name
    assert names[1] == SuggestedName("espresso", 1.0)
    no_prototypes = names_from_classifier(_probabilities(winners), assignment, {}, NAMES)
    assert no_prototypes == {1: SuggestedName("espresso", 0.6)}  # all five members vote: 3 of 5


def test_two_clusters_with_one_name_are_told_apart():
    names = {
        0: SuggestedName("cat", 0.6),
        1: SuggestedName("dog", 0.9),
        2: SuggestedName("cat", 0.9),
        3: SuggestedName("cat", 0.6),
        4: SuggestedName("cat (2)", 1.0),  # a name that is already taken is skipped
    }
    assert distinct_names(names) == {
        0: SuggestedName("cat (3)", 0.6),
        1: SuggestedName("dog", 0.9),
        2: SuggestedName("cat", 0.9),  # the surest keeps the plain name
        3: SuggestedName("cat (4)", 0.6),
        4: SuggestedName("cat (2)", 1.0),
    }
    twice = {0: SuggestedName("mixed: ox / hen", 0.2), 1: SuggestedName("mixed: ox / hen", 0.3)}
    assert distinct_names(twice) == {  # the number is the cluster's, not the hen's
        0: SuggestedName("mixed (2): ox / hen", 0.2),
        1: SuggestedName("mixed: ox / hen", 0.3),
    }
    # Names other clusters have (a split's parts named beside the run's clusters) are numbered too.
    parts = {3: SuggestedName("cat", 0.9), 4: SuggestedName("dog", 0.5)}
    assert distinct_names(parts, taken={"cat", "cat (2)", "hen"}) == {
        3: SuggestedName("cat (3)", 0.9),
        4: SuggestedName("dog", 0.5),
    }


def test_shapes_are_checked():
    p = _probabilities([0, 1])
    with pytest.raises(ValueError, match="class_probabilities"):
        names_from_classifier(p[:, :3], np.zeros(2, int), {}, NAMES)
    with pytest.raises(ValueError, match="assignment"):
        names_from_classifier(p, np.zeros(3, int), {}, NAMES)


def test_top_classes():
    p = np.array([0.1, 0.6, 0.05, 0.25, 0, 0, 0])
    assert top_classes(p, NAMES, top=2) == [("tiger cat", 0.6), ("tea cup", 0.25)]
