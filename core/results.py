"""A finished run, loaded from its folder, with the user's corrections applied.

The GUI explores a :class:`RunData`; the command line's ``export`` writes it. Corrections (cluster names,
merges, images moved between clusters) are kept apart from the model's predictions in
``corrections.json``, so they can be undone and survive re-exports.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semclust.core.artefacts import RunPaths, read_json, write_json
from semclust.core.config import RunConfig


@dataclass
class Corrections:
    """The user's edits on top of the predicted clusters.

    Attributes:
        names: cluster index -> name given by the user.
        moves: image index -> cluster index the user put it in (merges are recorded as moves).
    """

    names: dict[int, str] = field(default_factory=dict)
    moves: dict[int, int] = field(default_factory=dict)

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
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Corrections:
        data = data or {}
        return cls(
            names={int(k): str(v) for k, v in data.get("names", {}).items()},
            moves={int(k): int(v) for k, v in data.get("moves", {}).items()},
        )


@dataclass
class RunData:
    """Everything the explorer and the exporter need from a run folder.

    Attributes:
        paths: the run folder.
        config: the run's configuration.
        image_root: the user's image folder.
        image_paths: image paths relative to ``image_root``, in the order of every array.
        true_labels: true label per image, or ``None`` when unknown.
        probabilities: (N, K) cluster probabilities of the final model.
        embeddings: (N, D) l2-normalised embeddings, or ``None``.
        neighbours: (N, k) indices of nearest neighbours, or ``None``.
        umap: (N, 2) projection, or ``None``.
        prototypes: cluster -> image indices, most confident first.
        metrics: the content of ``metrics.json``.
        corrections: the user's edits.
    """

    paths: RunPaths
    config: RunConfig
    image_root: Path
    image_paths: list[str]
    true_labels: list[str] | None
    probabilities: np.ndarray
    embeddings: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    umap: np.ndarray | None = None
    prototypes: dict[int, list[int]] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    corrections: Corrections = field(default_factory=Corrections)

    @property
    def n_clusters(self) -> int:
        return int(self.probabilities.shape[1])

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.probabilities, axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return np.max(self.probabilities, axis=1)

    @property
    def assignment(self) -> np.ndarray:
        """Cluster per image after the user's corrections."""
        return self.corrections.apply(self.predicted)

    def cluster_name(self, cluster: int) -> str:
        return self.corrections.names.get(int(cluster), f"cluster {int(cluster)}")

    def absolute_path(self, index: int) -> Path:
        return self.image_root / self.image_paths[index]

    def save_corrections(self) -> None:
        write_json(self.paths.corrections, self.corrections.to_dict())


def load_run(run_dir: str | Path) -> RunData:
    """Loads a finished run folder.

    Raises:
        FileNotFoundError: with a readable message when the folder is not a finished run.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json).")
    if not paths.probabilities.is_file():
        raise FileNotFoundError(f"The run in {run_dir} has not finished: no probabilities.npy yet.")
    images = read_json(paths.images)
    optional = {
        name: np.load(p) if p.is_file() else None
        for name, p in (
            ("embeddings", paths.embeddings),
            ("neighbours", paths.neighbours),
            ("umap", paths.umap),
        )
    }
    prototypes = {int(k): v for k, v in (read_json(paths.prototypes, {}) or {}).items()}
    return RunData(
        paths=paths,
        config=RunConfig.from_dict(read_json(paths.config)),
        image_root=Path(images["root"]),
        image_paths=list(images["paths"]),
        true_labels=images.get("labels"),
        probabilities=np.load(paths.probabilities),
        prototypes=prototypes,
        metrics=read_json(paths.metrics, {}) or {},
        corrections=Corrections.from_dict(read_json(paths.corrections)),
        **optional,
    )


def read_skipped(paths: RunPaths) -> list[tuple[str, str]]:
    """The files the ingest skipped, as (path, reason)."""
    if not paths.skipped.is_file():
        return []
    with open(paths.skipped, encoding="utf-8", newline="") as f:
        return [(row["path"], row["reason"]) for row in csv.DictReader(f)]
