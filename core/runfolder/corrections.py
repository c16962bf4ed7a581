"""The user's corrections of a run's clusters, kept apart from the model's (``corrections.json``).

Names given to clusters, images moved between clusters (a merge is recorded as moves), and clusters
the user made, from a selection or by splitting one (:func:`split_members`). :class:`Corrections`
applies them to the predicted clusters; :mod:`semclust.core.runfolder.results` reads and checks them
with the run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from semclust.core import metrics
from semclust.core.naming.names import SuggestedName, names_from_json, names_to_json


@dataclass
class Corrections:
    """The user's edits on top of the predicted clusters.

    The clusters the user made are numbered after the predicted ones: with ``k`` predicted clusters
    and ``added`` made, there are ``k + added``
    (:attr:`~semclust.core.runfolder.results.RunData.n_clusters`), and the next one made is
    number ``k + added``. A made cluster emptied later stays, empty (as a predicted one does).

    Attributes:
        names: cluster index -> name given by the user.
        moves: image index -> cluster index the user put it in (merges are recorded as moves).
        added: how many clusters the user made (0 in ``corrections.json`` files older than this).
        suggested: cluster index -> the backbone's name for a cluster the user made, split or
            merged another into, as it was then
            (:meth:`~semclust.core.runfolder.results.RunData.suggest_names_for`); it takes the
            place of the run's suggestion, and a name the user gives wins over both.
        apart: pairs of clusters (lower number first) the user said are not one group, when the
            app offered to merge them (:func:`~semclust.core.metrics.look_alike`): not offered again.
    """

    names: dict[int, str] = field(default_factory=dict)
    moves: dict[int, int] = field(default_factory=dict)
    added: int = 0
    suggested: dict[int, SuggestedName] = field(default_factory=dict)
    apart: set[tuple[int, int]] = field(default_factory=set)

    def keep_apart(self, a: int, b: int) -> None:
        """Clusters ``a`` and ``b`` are not one group (the user said so)."""
        self.apart.add((min(int(a), int(b)), max(int(a), int(b))))

    def rename(self, cluster: int, name: str) -> None:
        name = name.strip()
        if name:
            self.names[int(cluster)] = name
        else:
            self.names.pop(int(cluster), None)

    def move(self, images: np.ndarray | list[int], cluster: int) -> None:
        for i in np.asarray(images, dtype=int).ravel():
            self.moves[int(i)] = int(cluster)

    def merge(self, source: int, target: int, assignment: np.ndarray) -> None:
        """Moves every image now in ``source`` into ``target``."""
        self.move(np.flatnonzero(assignment == source), target)

    def new_cluster(self, images: np.ndarray | list[int], n_clusters: int) -> int:
        """Moves ``images`` into a new cluster and returns its number.

        Args:
            images: the images to put in it.
            n_clusters: the number of clusters now (predicted and made), which is the new one's number.
        """
        new = int(n_clusters)
        self.added += 1
        self.move(images, new)
        return new

    def split(self, cluster: int, parts: list[np.ndarray], n_clusters: int) -> list[int]:
        """Splits ``cluster`` into ``parts`` (image indices each): the first keeps the cluster's
        number, each other one becomes a new cluster (numbered from ``n_clusters``, the number of
        clusters now). Returns the clusters of the parts, in their order."""
        numbers = [int(cluster)]
        for part in parts[1:]:
            numbers.append(self.new_cluster(part, n_clusters + len(numbers) - 1))
        return numbers

    def apply(self, predicted: np.ndarray) -> np.ndarray:
        out = np.array(predicted, dtype=int, copy=True)
        for i, c in self.moves.items():
            if 0 <= i < len(out):
                out[i] = c
        return out

    def to_dict(self) -> dict:
        return {
            "names": {str(k): v for k, v in self.names.items()},
            "moves": {str(k): v for k, v in self.moves.items()},
            "added": self.added,
            "suggested": names_to_json(self.suggested),
            "apart": [list(pair) for pair in sorted(self.apart)],
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Corrections:
        data = data or {}
        return cls(
            names={int(k): str(v) for k, v in data.get("names", {}).items()},
            moves={int(k): int(v) for k, v in data.get("moves", {}).items()},
            added=_count(data.get("added", 0)),
            # checked against the run's clusters with the rest (checks.check_corrections)
            suggested=names_from_json(data.get("suggested"), k=sys.maxsize),
            apart={_pair(pair) for pair in data.get("apart", [])},
        )


def _pair(value: object) -> tuple[int, int]:
    """Two different clusters from JSON, lower first."""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
        or value[0] == value[1]
    ):
        raise ValueError(f"{value!r} in 'apart' is not a pair of two clusters")
    return min(value), max(value)


def _count(value: object) -> int:
    """A whole number of clusters from JSON (not a bool, a fraction or text)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"'added' is {value!r}, not a whole number of clusters")
    return value


#: A split fits K-means on at most this many of the cluster's images (drawn with the run's seed) and
#: gives every image the nearest of its centres: a cluster of 100,000 images took 14 s and 0.9 GB on
#: the window's thread fitted on all of them, 1.9 s so (512-d, 2 cores, idle).
SPLIT_SAMPLE = 10_000


def split_members(
    embeddings: np.ndarray, members: np.ndarray, parts: int, seed: int = 0
) -> list[np.ndarray]:
    """Clusters ``members`` again, by K-means on their embeddings, into ``parts`` groups (fitted on
    :data:`SPLIT_SAMPLE` of them at most).

    Returns:
        the groups of image indices (each sorted), largest first: the first is the one that keeps the
        cluster's number in :meth:`Corrections.split`.

    Raises:
        ValueError: fewer than two parts asked, or fewer distinct images than parts.
    """
    from sklearn.cluster import KMeans  # loaded on first split only

    members = np.asarray(members, dtype=int).ravel()
    parts = int(parts)
    if parts < 2:
        raise ValueError("Split a cluster into two parts or more.")
    fit_on = members
    if len(members) > SPLIT_SAMPLE:
        rng = np.random.default_rng(int(seed))
        fit_on = np.sort(rng.choice(members, SPLIT_SAMPLE, replace=False))
    points = np.asarray(embeddings[fit_on], dtype=np.float32)
    distinct = len(np.unique(points, axis=0)) if len(points) else 0
    if distinct < parts:
        raise ValueError(
            f"This cluster has {distinct} distinct image{'s' * (distinct != 1)}: "
            f"too few to split into {parts} parts."
        )
    kmeans = KMeans(parts, n_init=4, random_state=int(seed)).fit(points)
    block = metrics.ROWS_PER_BLOCK  # images given their part at once
    labels = np.concatenate([  # members is not empty here: it held at least `parts` images
        kmeans.predict(np.asarray(embeddings[members[i : i + block]], dtype=np.float32))
        for i in range(0, len(members), block)
    ])  # fmt: skip
    groups = [members[labels == p] for p in range(parts)]
    groups = [g for g in groups if len(g)]
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))
