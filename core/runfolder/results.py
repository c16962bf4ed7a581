"""A finished run, loaded from its folder, with the user's corrections applied.

The GUI explores a :class:`RunData`; the command line's ``export`` writes it. Corrections (cluster names,
merges, images moved between clusters, clusters the user made: from a selection or by splitting one)
are kept apart from the model's predictions in ``corrections.json``, so they can be undone and survive
re-exports (:mod:`semclust.core.runfolder.corrections`).

Which probabilities a run shows: ``probabilities.npy`` is the run's model and is never rewritten by the
app. "Retrain with my corrections" (:mod:`semclust.core.runfolder.retrain`) writes the probabilities it
recomputes to ``retrained_probabilities.npy`` with ``retrained.json``, its record, written last;
:func:`load_run` reads them into :attr:`RunData.retrained`, which takes precedence over
``probabilities`` for every image's cluster and confidence (:attr:`RunData.model_probabilities`) only
while the record vouches for both arrays: it names a digest of the run's probabilities they were
computed from (:func:`model_digest`) and one of their own. A rerun of the run or a k picked on the curve
writes new probabilities, and the retrained ones are then ignored; restoring the model's clusters deletes
both files (record first). The corrections apply on top of either.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semclust.core.config import METHODS, RunConfig
from semclust.core.images import DecodedFiles, load_image
from semclust.core.metrics import LookAlike, central_members, look_alike
from semclust.core.naming.names import SuggestedName
from semclust.core.naming.suggest import cannot_name, suggest_names
from semclust.core.runfolder.artefacts import (
    RunFolderError,
    RunPaths,
    is_inside,
    load_array,
    read_json,
    write_json,
)
from semclust.core.runfolder.checks import (
    check_corrections,
    check_indices,
    json_object,
    parsed,
    read_k_choice,
    read_prototypes,
    read_suggested_names,
    rows_of,
    valid_config,
)
from semclust.core.runfolder.corrections import Corrections, split_members
from semclust.core.runfolder.image_list import read_image_list, read_skipped, stale_artefacts

log = logging.getLogger(__name__)


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
        suggested_names: cluster -> name suggested by the backbone (its classifier or text tower).
        suggested_confidence: cluster -> confidence of its suggested name, where known.
        names_problem: why ``names.json`` was ignored (damaged), or ``""``.
        k_choice: ``choose_k.json`` when the number of clusters was chosen without labels, else None.
        preview: the quick K-means preview of a run still training (read-only).
        map_only: a preview of the map alone, before the number of clusters is chosen: every image
            in one cluster.
        retrained: (N, K') probabilities recomputed with the user's corrections (K': the clusters
            when they were, the user's made ones included), or ``None``; they take precedence over
            ``probabilities`` (see the module's docstring).
        retrained_info: ``retrained.json``: what the retrain did (corrections, images changed, seconds).
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
    suggested_names: dict[int, str] = field(default_factory=dict)
    suggested_confidence: dict[int, float] = field(default_factory=dict)
    names_problem: str = ""
    k_choice: dict | None = None
    preview: bool = False
    map_only: bool = False
    retrained: np.ndarray | None = None
    retrained_info: dict = field(default_factory=dict)

    @property
    def predicted_clusters(self) -> int:
        """The clusters the run found (the columns of ``probabilities``)."""
        return int(self.probabilities.shape[1])

    @property
    def n_clusters(self) -> int:
        """Every cluster: the run's and those the user made (new ones are numbered after the run's).
        Everything that counts clusters (tables, colours, accuracy, exports) uses this."""
        return self.predicted_clusters + self.corrections.added

    @property
    def model_probabilities(self) -> np.ndarray:
        """The probabilities the clusters come from: the retrained ones when there are some (their
        columns of clusters that no longer exist left out), else the run's."""
        if self.retrained is None:
            return self.probabilities
        return self.retrained[:, : self.n_clusters]

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.model_probabilities, axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return np.max(self.model_probabilities, axis=1)

    @property
    def model_confidence(self) -> np.ndarray:
        """Each image's :attr:`confidence`, NaN for the images the user moved: placed by the user,
        the model's confidence no longer applies. A cluster's mean confidence (the clusters table,
        the report) and ``labels.csv`` leave them out, so a cluster the user made has none."""
        out = self.confidence.astype(np.float64)
        if self.corrections.moves:
            out[np.fromiter(self.corrections.moves, dtype=np.int64)] = np.nan
        return out

    @property
    def assignment(self) -> np.ndarray:
        """Cluster per image after the user's corrections."""
        return self.corrections.apply(self.predicted)

    def cluster_name(self, cluster: int) -> str:
        """The user's name, else the backbone's suggestion, else the cluster's number."""
        c = int(cluster)
        return self.corrections.names.get(c) or self._suggestion(c)[0] or f"cluster {c}"

    def name_confidence(self, cluster: int) -> float | None:
        """The confidence of the suggested name shown for ``cluster``; None for a user's own name,
        for the cluster's number, and for names suggested before confidences were kept."""
        c = int(cluster)
        return None if self.corrections.names.get(c) else self._suggestion(c)[1]

    def snapshot(self) -> RunData:
        """The run with a copy of its corrections of now (the arrays shared), for work in the
        background while editing goes on."""
        return dataclasses.replace(
            self, corrections=Corrections.from_dict(self.corrections.to_dict())
        )

    @property
    def close_alternative(self) -> tuple[str, float, str] | None:
        """The close call of a run whose ``auto`` kept one method's clusters over another's that
        scored nearly as well and differ (``metrics.json``'s ``method_kept`` and ``close_alternative``:
        :meth:`semclust.core.clustering.selection.Selection.close_alternative`): the other method, the
        share of images it places elsewhere, and the method kept (as
        :func:`~semclust.core.metrics.close_said` takes them); None when the run made none, or when
        the record is not one, methods of :data:`~semclust.core.config.METHODS` included (a run
        folder from elsewhere is not trusted), and for a run that did not choose among methods."""
        kept, close = self.metrics.get("method_kept"), self.metrics.get("close_alternative")
        if not (self.config.method == "auto" and kept in METHODS and isinstance(close, dict)):
            return None
        method, moved = close.get("method"), close.get("moved")
        if method in METHODS and type(moved) in (int, float) and 0.0 <= moved <= 1.0:
            return method, float(moved), kept
        return None

    def look_alike(self, assignment: np.ndarray | None = None) -> LookAlike | None:
        """The two clusters that look like one group (:func:`~semclust.core.metrics.look_alike`),
        leaving out the clusters the user made (a split's new parts too: the user set them apart)
        and the pairs the user said are not one group; None without the mined neighbours, or when
        no pair does. ``assignment``: the clusters of now (default: :attr:`assignment`)."""
        if self.neighbours is None:
            return None
        assignment = self.assignment if assignment is None else assignment
        k = self.n_clusters
        made = {(m, c) for m in range(self.predicted_clusters, k) for c in range(k)}
        return look_alike(assignment, self.neighbours, k, self.corrections.apart | made)

    def examples(
        self, cluster: int, n: int, assignment: np.ndarray | None = None
    ) -> tuple[list[int], str]:
        """Up to ``n`` images that show ``cluster`` (the app's prototypes strip, the report's
        gallery), and how they were chosen: the run's prototypes still in it, then its other
        members in :meth:`members`' order ("most confident"); for a
        cluster that has none of the run's prototypes (one the user made, a split's new part), the
        members nearest its mean embedding, which are also those that name it ("nearest its
        centre"), where the run kept embeddings.

        Args:
            assignment: the clusters of now (default: :attr:`assignment`, computed again).
        """
        c = int(cluster)
        assignment = self.assignment if assignment is None else assignment
        chosen = [i for i in self.prototypes.get(c, []) if assignment[i] == c][:n]
        if not chosen and self.embeddings is not None:
            return central_members(self.embeddings, assignment, [c], n)[c], "nearest its centre"
        if len(chosen) < n:
            taken = set(chosen)
            ranked = self.members(c, assignment)
            chosen += [int(i) for i in ranked if int(i) not in taken][: n - len(chosen)]
        return chosen, "most confident"

    def members(
        self,
        cluster: int,
        assignment: np.ndarray | None = None,
        least_confident_first: bool = False,
    ) -> np.ndarray:
        """Images of ``cluster``, most confident first, or the doubtful ones first (to review); in
        either order the images the user moved there come last, nearest the cluster's centre first
        (in their order without embeddings): the user placed them, and the model's confidence in
        another cluster says nothing of them here. So a cluster the user made lists its most
        typical images first. ``assignment``: the clusters of now (default: :attr:`assignment`)."""
        assignment = self.assignment if assignment is None else assignment
        idx = np.flatnonzero(assignment == cluster)
        conf = self.model_confidence[idx]  # NaN for moved images: argsort puts them last
        order = idx[np.argsort(conf if least_confident_first else -conf, kind="stable")]
        placed = int(np.isnan(conf).sum())
        if placed > 1 and self.embeddings is not None:
            typical = central_members(self.embeddings, assignment, [cluster], len(idx))
            rank = np.empty(len(self.image_paths), dtype=np.int64)
            rank[typical[int(cluster)]] = np.arange(len(idx))
            tail = order[-placed:]
            order[-placed:] = tail[np.argsort(rank[tail], kind="stable")]
        return order

    def _suggestion(self, c: int) -> tuple[str, float | None]:
        """The backbone's name for cluster ``c`` and its confidence: the one it got when the user
        made or split it, else the run's; ``("", None)`` for none."""
        if c in self.corrections.suggested:
            return self.corrections.suggested[c].name, self.corrections.suggested[c].confidence
        name = self.suggested_names.get(c, "")
        return name, self.suggested_confidence.get(c) if name else None

    def suggest_names_for(self, clusters: Iterable[int]) -> tuple[dict[int, SuggestedName], str]:
        """The backbone's names for ``clusters`` as they are now (a split's parts, a cluster the
        user made, a merge's target), told apart from the names of the other clusters that have
        images, and ``""`` or why none: what the run's report does for its clusters, with each
        cluster's members nearest its mean embedding voting
        (:func:`~semclust.core.metrics.central_members`; a made cluster has no confidences). The
        head or text tower is read from the default cache (milliseconds for EfficientNet-Lite2's
        head; seconds for a text tower): call it off the GUI thread."""
        clusters = sorted({int(c) for c in clusters})
        if why := cannot_name(self.config):
            return {}, why
        if self.embeddings is None or not self.paths.features.is_file():
            return {}, "Clusters not named: the run folder has no features or embeddings."
        assignment = self.assignment
        used = np.flatnonzero(np.bincount(assignment, minlength=self.n_clusters))  # not emptied
        taken = {self.cluster_name(c) for c in used if c not in clusters}
        return suggest_names(
            self.config,
            np.load(self.paths.features, mmap_mode="r"),
            assignment,
            central_members(self.embeddings, assignment, clusters),
            taken=taken,
        )

    @property
    def naming_note(self) -> str:
        """One line when the run suggested no names: why, and which backbones can; else ``""``."""
        if self.preview:
            return ""
        if self.names_problem:
            return self.names_problem
        if self.suggested_names:
            return ""
        return cannot_name(self.config) or (
            "Clusters not named: this run suggested no names (its log says why); rename them here."
        )

    def absolute_path(self, index: int) -> Path:
        """The image file, checked to lie inside the image folder once links are followed.

        Raises:
            RunFolderError: the path leads outside the image folder (a link pointing elsewhere).
        """
        path = self.image_root / self.image_paths[index]
        if not is_inside(path, self.image_root):
            raise RunFolderError(
                f"{path} leads outside the image folder {self.image_root}; refused."
            )
        return path

    def read_image(self, index: int, size: int) -> np.ndarray:
        """Image ``index`` as a ``size`` px square: from the run's decoded images in the cache when
        they hold it at that size or larger, else decoded from its file as the run decoded it
        (:func:`~semclust.core.images.load_image`, under the run's pixel limit).

        Raises:
            ImageError: the file cannot be read now (gone, changed, corrupt).
            RunFolderError: its path leads outside the image folder.
        """
        path = self.absolute_path(index)
        cached = self._decoded.image(self.image_paths[index], size)
        if cached is not None:
            return cached
        return load_image(path, size, self.config.ingest.max_image_pixels)

    @functools.cached_property
    def _decoded(self) -> DecodedFiles:
        return DecodedFiles(self.image_root, self.config.ingest)

    def split_parts(self, cluster: int, parts: int) -> list[np.ndarray]:
        """``cluster``'s images (after corrections) clustered again into ``parts`` groups by K-means
        on their embeddings with the run's seed, largest first (see
        :func:`~semclust.core.runfolder.corrections.split_members`).

        Raises:
            ValueError: the run kept no embeddings, or the cluster has too few distinct images.
        """
        if self.embeddings is None:
            raise ValueError(
                "This run folder keeps no embeddings (or they are out of date): a cluster cannot "
                "be split; run it again to compute them."
            )
        members = np.flatnonzero(self.assignment == int(cluster))
        return split_members(self.embeddings, members, parts, self.config.seed)

    def save_corrections(self) -> None:
        write_json(self.paths.corrections, self.corrections.to_dict())


def load_run(
    run_dir: str | Path,
    image_root: str | Path | None = None,
    preview: bool = False,
    map_only: bool = False,
) -> RunData:
    """Loads a finished run folder, checking every file it reads.

    A run folder may come from elsewhere (computed on a server, shared), so nothing in it is trusted:
    every image path must be a relative path to an image file inside the image folder, every index must
    point at an existing image or cluster, and every array must have one row per image.

    Args:
        run_dir: the run folder.
        image_root: where the images are now, when they moved (say, a run computed on another machine);
            default: the folder the run recorded.
        preview: load the K-means preview of a run that is still clustering, without corrections.
        map_only: load the map of a run that is still choosing its number of clusters (a preview,
            every image in one cluster).

    Raises:
        FileNotFoundError: the folder is not a run folder, or the run has not finished.
        RunFolderError: a file is damaged, inconsistent or unsafe; the message names it.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json).")
    preview = preview or map_only
    probs_path = paths.preview if preview else paths.probabilities
    needed = paths.umap if map_only else probs_path
    if not needed.is_file():
        raise FileNotFoundError(f"The run in {run_dir} has not finished: no {needed.name} yet.")
    root, image_paths, true_labels, images_fp = read_image_list(paths, image_root)
    stale = stale_artefacts(paths, images_fp)
    if needed.name in stale:
        raise FileNotFoundError(
            f"The run in {run_dir} has not finished: its {needed.name} was computed from "
            "other images than images.json lists (a rerun was stopped); run it again to finish."
        )

    def current(path: Path) -> Path:  # a stale artefact reads as absent
        return paths.root / "-stale-" if path.name in stale else path

    n = len(image_paths)
    if map_only:
        probabilities = np.ones((n, 1), dtype=np.float32)
    else:
        probabilities = rows_of(load_array(probs_path), n, probs_path, ndim=2)
    k = probabilities.shape[1]
    if k < 1 or probabilities.dtype.kind != "f" or not np.all(np.isfinite(probabilities)):
        raise RunFolderError(f"{probs_path} is damaged: no clusters, or not finite numbers.")
    if probabilities.min() < 0 or probabilities.max() > 1 + 1e-3:
        raise RunFolderError(f"{probs_path} is damaged: probabilities outside 0-1.")
    metrics = {} if preview else json_object(read_json(current(paths.metrics), {}), paths.metrics)
    made = metrics.get("clusters")
    if isinstance(made, int) and not isinstance(made, bool) and made != k:
        raise RunFolderError(
            f"{probs_path} and {paths.metrics} disagree: {k} clusters against the {made} the run "
            "made; one of them is damaged (run it again to redo them)."
        )
    neighbours = rows_of(load_array(current(paths.neighbours)), n, paths.neighbours, ndim=2)
    if neighbours is not None:
        check_indices(neighbours, n, paths.neighbours, "image")
    # A preview's clusters are not those an earlier run's prototypes.json and names.json describe.
    prototypes, names = {}, {}
    if map_only:
        names = {"suggested_names": {0: "not clustered yet"}}
    elif not preview:
        prototypes = read_prototypes(
            read_json(current(paths.prototypes), {}), n, k, paths.prototypes
        )
        names = read_suggested_names(current(paths.names), k)
    config = parsed(valid_config, read_json(paths.config), paths.config)
    corrections = Corrections()
    if not preview:
        corrections = parsed(Corrections.from_dict, read_json(paths.corrections), paths.corrections)
        check_corrections(corrections, n, k, paths.corrections)
    umap = rows_of(load_array(current(paths.umap)), n, paths.umap, ndim=2)
    if umap is not None and (
        umap.shape[1] != 2 or umap.dtype.kind != "f" or not np.all(np.isfinite(umap))
    ):
        raise RunFolderError(f"{paths.umap} is damaged: not one finite 2-d point per image.")
    embeddings = rows_of(load_array(current(paths.embeddings)), n, paths.embeddings, ndim=2)
    if embeddings is not None and (
        embeddings.dtype.kind != "f"
        or not np.isfinite(embeddings.sum(axis=1, dtype=np.float64)).all()
    ):  # a row sum in float64: finite exactly when every number is (no (N, D) mask in memory)
        raise RunFolderError(f"{paths.embeddings} is damaged: not finite numbers.")
    return RunData(
        paths=paths,
        config=config,
        image_root=root,
        image_paths=image_paths,
        true_labels=true_labels,
        probabilities=probabilities,
        embeddings=embeddings,
        neighbours=neighbours,
        umap=umap,
        prototypes=prototypes,
        metrics=metrics,
        corrections=corrections,
        **names,
        k_choice=read_k_choice(read_json(current(paths.choose_k)), paths.choose_k)
        if config.auto_clusters
        else None,
        preview=preview,
        map_only=map_only,
        **({} if preview else _retrained(paths, probabilities)),
    )


def model_digest(probabilities: np.ndarray) -> str:
    """A digest of a probability array (shape, type and values), as ``retrained.json`` records it."""
    array = np.ascontiguousarray(probabilities)
    h = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def _retrained(paths: RunPaths, probabilities: np.ndarray) -> dict:
    """``RunData``'s retrained probabilities and their record, when the record vouches for them.

    They only refine the run's clusters: when they do not belong to the run's probabilities of now (a
    rerun since), are damaged or do not fit, the run opens with its own, and a damaged file is logged.
    """
    if not paths.retrained.is_file():
        return {}
    try:
        record = read_json(paths.retrained)
        array = load_array(paths.retrained_probabilities)
        if not isinstance(record, dict) or array is None:
            raise RunFolderError(f"{paths.retrained} is damaged or its probabilities are missing.")
        if record.get("base") != model_digest(probabilities):
            log.info("%s belongs to an earlier clustering of this run: ignored.", paths.retrained)
            return {}
        if record.get("digest") != model_digest(array):
            raise RunFolderError(f"{paths.retrained_probabilities} does not match its record.")
        n, k = probabilities.shape
        if (
            array.ndim != 2 or len(array) != n or array.shape[1] < k
            or array.dtype.kind != "f" or not np.all(np.isfinite(array))
            or array.min() < 0 or array.max() > 1 + 1e-3
        ):  # fmt: skip
            raise RunFolderError(f"{paths.retrained_probabilities} does not fit this run.")
    except RunFolderError as exc:
        log.warning("%s The run's own clusters are shown.", exc)
        return {}
    return {"retrained": array, "retrained_info": record}


@dataclass(frozen=True)
class RunFolderInfo:
    """What a run folder holds, finished or not, read without loading any array.

    Attributes:
        root: the run folder.
        image_folder: the image folder the run recorded, or ``None`` when it recorded none yet.
        config: the run's settings, or ``None`` when the folder holds no run yet.
        n_images: images used (known once ingest finished), else ``None``.
        class_names: true-label classes (empty: no labels; ``None``: not known yet).
        skipped: files left out, with reasons (``None`` before ingest finished).
        finished: the run has cluster probabilities and can be explored.
    """

    root: Path
    image_folder: Path | None = None
    config: RunConfig | None = None
    n_images: int | None = None
    class_names: list[str] | None = None
    skipped: list[tuple[str, str]] | None = None
    finished: bool = False


def inspect_run_folder(run_dir: str | Path) -> RunFolderInfo:
    """Reads what ``run_dir`` holds (nothing for a new folder), checking each file it reads.

    Raises:
        RunFolderError: a file is damaged or unsafe; the message names it.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.exists():
        return RunFolderInfo(root=paths.root)
    config_data = json_object(read_json(paths.config), paths.config)
    meta = config_data.get("_meta") if isinstance(config_data.get("_meta"), dict) else {}
    folder = meta.get("image_folder")
    info = {
        "config": parsed(valid_config, config_data, paths.config),
        "image_folder": Path(folder) if isinstance(folder, str) and folder else None,
        "finished": paths.probabilities.is_file(),
    }
    if paths.images.is_file():
        root, image_paths, labels, images_fp = read_image_list(paths)
        if paths.probabilities.name in stale_artefacts(paths, images_fp):
            info["finished"] = False
        info.update(
            image_folder=root,
            n_images=len(image_paths),
            class_names=sorted({lab for lab in labels if lab is not None}) if labels else [],
            skipped=read_skipped(paths),
        )
    return RunFolderInfo(root=paths.root, **info)
