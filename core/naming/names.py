"""A suggested cluster name with its confidence: the naming rule, distinct names, and ``names.json``.

The rule (:func:`name_from_votes`) is label-free: each of a cluster's prototypes votes for one class
(its top-1 ImageNet class); the cluster is named after the leading class when that class holds a clear
majority, more than half of the votes. Otherwise, when the classes come with the groups they belong to
(ImageNet's WordNet hypernyms), the most specific group that holds more than 55% of the votes names it
with its two leading classes, ``"mammal: porcupine / gibbon"``; failing that, ``"mixed: a / b"``. The
confidence is the share of the votes of what the name says first: the class, the group, or for a mixed
name the leading class (at most 0.5).

``names.json`` maps a cluster to ``{"name": ..., "confidence": ...}``; run folders written before
confidences were kept map a cluster to its name alone, and still load (:func:`names_from_json`).

Example:
    >>> name_from_votes(["cat", "cat", "cat", "dog"])
    SuggestedName(name='cat', confidence=0.75)
    >>> name_from_votes(["cat", "cat", "dog", "dog", "fox"]).name
    'mixed: cat / dog'
    >>> animal = [("a1", "animal")]
    >>> name_from_votes(["cat", "cat", "dog", "dog", "fox"], groups={"cat": animal, "dog": animal})
    SuggestedName(name='animal: cat / dog', confidence=0.8)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

#: A class names a cluster on its own when it holds more than this share of the prototypes' votes.
MAJORITY = 0.5
#: A group of classes names a cluster when its classes hold more than this share, a little more than
#: a class needs: a group name claims a kind. On the benchmark's photo runs the group names that fit
#: held 56-95% of the votes, and at 52% the click game's fish sprites were "device" (BENCHMARKS.md,
#: "Names for mixed clusters").
GROUP_MAJORITY = 0.55
#: Longest suggested name read from a run folder (run folders are not trusted).
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class SuggestedName:
    """A name suggested for a cluster by the backbone.

    Attributes:
        name: the name, e.g. ``"tabby cat"`` or ``"mixed: tabby cat / tiger cat"``.
        confidence: the share (0..1) of the cluster's prototypes that voted for the leading class, or
            ``None`` when unknown (a run folder written before confidences were kept).
    """

    name: str
    confidence: float | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "confidence": self.confidence}


MIXED = "mixed"


def mixed(first: str, second: str) -> str:
    """The name of a cluster whose prototypes disagree."""
    return f"{MIXED}: {first} / {second}"


def numbered(name: str, n: int) -> str:
    """The ``n``-th cluster of a name: ``"cat (2)"``; ``"mixed (2): a / b"`` and ``"mammal (2): a /
    b"``, whose number would otherwise read as the second class's."""
    head, colon, rest = name.partition(": ")
    if colon and " / " in rest:
        return f"{head} ({n}): {rest}"
    return f"{name} ({n})"


def name_from_votes(
    votes: Sequence[str],
    weights: Sequence[float] | None = None,
    majority: float = MAJORITY,
    groups: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    group_majority: float = GROUP_MAJORITY,
) -> SuggestedName | None:
    """A cluster's name from the classes its prototypes voted for: the majority class, else the
    majority group, else ``mixed``.

    The leading class is the one with the most votes; ties go to the class with more ``weights``
    (say, the summed top-1 probabilities of its voters), then to the alphabetically first. It names the
    cluster when its share of the votes is above ``majority`` (the confidence: that share). Otherwise
    the most specific of the ``groups`` that holds more than ``group_majority`` of the votes names it,
    ``"group: leading / runner-up"`` (the confidence: the group's share), and without one the name is
    ``"mixed: leading / runner-up"`` (the confidence: the leading class's share).

    Args:
        votes: one class name per voting prototype.
        weights: one weight per vote, for ties only; default: all equal.
        majority: the share of the votes the leading class must exceed.
        groups: class name -> the groups it belongs to, each as (key, name): the key tells groups
            of one name apart. Classes not in it belong to none.
        group_majority: the share of the votes a group's classes must exceed.

    Returns:
        The suggestion, or ``None`` without votes.
    """
    if not votes:
        return None
    if weights is not None and len(weights) != len(votes):
        raise ValueError(f"{len(weights)} weights for {len(votes)} votes.")
    count = Counter(votes)
    mass: Counter[str] = Counter()
    for vote, weight in zip(votes, weights if weights is not None else [1.0] * len(votes)):
        mass[vote] += float(weight)
    ranked = sorted(count, key=lambda name: (-count[name], -mass[name], name))
    share = count[ranked[0]] / len(votes)
    if share > majority or len(ranked) == 1:
        return SuggestedName(ranked[0], share)
    if groups:
        named = _majority_group(count, groups, group_majority)
        if named is not None:
            group, members, held = named
            first, second = [c for c in ranked if c in members][:2]
            return SuggestedName(f"{group}: {first} / {second}", held)
    return SuggestedName(mixed(ranked[0], ranked[1]), share)


def _majority_group(
    count: Counter[str], groups: Mapping[str, Sequence[tuple[str, str]]], majority: float
) -> tuple[str, set[str], float] | None:
    """The most specific group whose voted classes hold more than ``majority`` of the votes: the one
    that the fewest classes of ``groups`` belong to, ties going to the one nearer its classes (and
    then to the lowest key). Returns (its name, those classes, their share), or None."""
    total = sum(count.values())
    size: Counter[str] = Counter(key for chain in groups.values() for key, _ in set(chain))
    depth: dict[str, int] = {}
    for chain in groups.values():
        for position, (key, _) in enumerate(chain):
            depth[key] = min(depth.get(key, position), position)
    voted: dict[str, tuple[str, set[str]]] = {}
    for c in count:
        for key, name in groups.get(c, ()):
            voted.setdefault(key, (name, set()))[1].add(c)
    held = {key: sum(count[c] for c in classes) / total for key, (_, classes) in voted.items()}
    best = min(
        (key for key in held if held[key] > majority),
        key=lambda k: (size[k], depth[k], k),
        default=None,
    )
    if best is None:
        return None
    return voted[best][0], voted[best][1], held[best]


def distinct_names(
    names: Mapping[int, SuggestedName], taken: Collection[str] = ()
) -> dict[int, SuggestedName]:
    """The same names, numbered (``"cat (2)"``, ``"mixed (2): a / b"``: :func:`numbered`) where
    clusters would share one.

    Among clusters with the same name, the most confident keeps it plain (ties: the lower cluster);
    the others are numbered in order of confidence, so ``"cat"`` and ``"cat (2)"`` are two clusters of
    cats, the first the surer. Their confidences stay as they were. A name in ``taken`` (other
    clusters' names) is numbered in every cluster here that has it.
    """
    used = {s.name for s in names.values()} | set(taken)
    out: dict[int, SuggestedName] = {}
    groups: dict[str, list[int]] = {}
    for c, s in names.items():
        groups.setdefault(s.name, []).append(c)
    for name, clusters in groups.items():
        clusters.sort(key=lambda c: (-(names[c].confidence or 0.0), c))
        if name not in taken:
            out[clusters[0]] = names[clusters[0]]
            clusters = clusters[1:]
        n = 1
        for c in clusters:
            n += 1
            while numbered(name, n) in used:
                n += 1
            used.add(numbered(name, n))
            out[c] = SuggestedName(numbered(name, n), names[c].confidence)
    return {c: out[c] for c in sorted(out)}


def names_to_json(names: Mapping[int, SuggestedName]) -> dict[str, dict]:
    """``names.json``'s content: ``{"3": {"name": "tabby cat", "confidence": 0.84}, ...}``."""
    return {str(c): s.to_json() for c, s in sorted(names.items()) if s.name}


def names_from_json(data: object, k: int) -> dict[int, SuggestedName]:
    """Reads ``names.json``'s content, in either format, checking every entry.

    Args:
        data: the parsed JSON: cluster -> ``{"name": str, "confidence": number or null}``, or
            cluster -> name (run folders written before confidences were kept).
        k: the run's number of clusters.

    Raises:
        ValueError: anything else; the message says what is wrong.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of cluster -> name")
    names: dict[int, SuggestedName] = {}
    for key, value in data.items():
        try:
            c = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{key!r} is not a cluster number") from None
        if not 0 <= c < k:
            raise ValueError(f"it names cluster {c}, and the run has {k}")
        confidence = None
        if isinstance(value, dict):
            name, confidence = value.get("name"), value.get("confidence")
            if confidence is not None and not _is_share(confidence):
                raise ValueError(f"cluster {c}'s confidence {confidence!r} is not a share 0..1")
        else:
            name = value
        if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
            raise ValueError(
                f"cluster {c}'s name is not a text of at most {MAX_NAME_LENGTH} characters"
            )
        if name.strip():
            names[c] = SuggestedName(
                name.strip(), None if confidence is None else float(confidence)
            )
    return names


def _is_share(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )
