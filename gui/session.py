"""The one model object every panel pulls from: the current run, the selection, the corrections.

Panels never keep their own copy of the run's arrays; they read them here when a signal says
something changed. Corrections go through :class:`Session` so that they are saved with the run at once
and every view follows.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from semclust.gui._core import (
    Corrections,
    LookAlike,
    RunData,
    cannot_name,
    cluster_summary,
    evaluate,
)
from semclust.gui.tasks import run_in_background


class Session(QObject):
    """The explored run, the current image and the selected images.

    Signals:
        runChanged: a different run was loaded (or cleared).
        assignmentChanged: cluster names or memberships changed (a correction).
        currentChanged(int): the current image changed (-1 for none).
        selectionChanged: the set of selected images changed.
        namingDone: the names asked for a split's parts or a made cluster came, or none could.
    """

    runChanged = Signal()
    assignmentChanged = Signal()
    currentChanged = Signal(int)
    selectionChanged = Signal()
    namingDone = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._run: RunData | None = None
        self._assignment = np.zeros(0, dtype=int)
        self._current = -1
        self._selection = np.zeros(0, dtype=int)
        self._undo: list[dict] = []  # the corrections before each edit, the last on top
        self._redo: list[dict] = []  # the corrections before each undo, while no edit came since
        self._edits = 0  # corrections, undos and redos so far: names that come late check it
        self._namings = 0  # names asked for and not come yet

    # -- reading ---------------------------------------------------------------------------------
    @property
    def run(self) -> RunData | None:
        return self._run

    @property
    def assignment(self) -> np.ndarray:
        """Cluster of every image after corrections (cached; do not modify)."""
        return self._assignment

    @property
    def current(self) -> int:
        return self._current

    @property
    def selection(self) -> np.ndarray:
        return self._selection

    @property
    def n_images(self) -> int:
        return len(self._run.image_paths) if self._run else 0

    @property
    def n_clusters(self) -> int:
        return self._run.n_clusters if self._run else 0

    @property
    def has_labels(self) -> bool:
        return self._run is not None and self._run.true_labels is not None

    def cluster_name(self, c: int) -> str:
        return self._run.cluster_name(c) if self._run else ""

    def name_confidence(self, c: int) -> float | None:
        """The suggested name's confidence; None for a user's name, a number, or an old run."""
        return self._run.name_confidence(c) if self._run else None

    def naming_note(self) -> str:
        """Why the run's clusters have no suggested names and which backbones can name them, or ""."""
        return self._run.naming_note if self._run else ""

    def true_label(self, i: int) -> str | None:
        if self._run is None or self._run.true_labels is None:
            return None
        return self._run.true_labels[i]

    def file_name(self, i: int) -> str:
        return self._run.image_paths[i] if self._run else ""

    def read_image(self, i: int, size: int) -> np.ndarray:
        return self._run.read_image(i, size)

    def confidence_text(self, i: int) -> str:
        """The model's confidence of image ``i``, or "placed by you" for an image the user moved
        (the model's confidence was for another cluster)."""
        if int(i) in self._run.corrections.moves:
            return "placed by you"
        return f"{self._run.confidence[int(i)]:.2f}"

    def members(self, cluster: int, least_confident_first: bool = False) -> np.ndarray:
        """Images of ``cluster`` in the order the Clusters tab lists them (``RunData.members``)."""
        return self._run.members(cluster, self._assignment, least_confident_first)

    def prototypes(self, cluster: int, n: int = 8) -> tuple[np.ndarray, str]:
        """What ``cluster`` looks like, and how they were chosen (``RunData.examples``): the run's
        prototypes still in it, or for a cluster the user made the members nearest its centre."""
        shown, how = self._run.examples(cluster, n, self._assignment)
        return np.asarray(shown, dtype=int), how

    def neighbours(self, i: int) -> np.ndarray:
        if self._run is None or self._run.neighbours is None or i < 0:
            return np.zeros(0, dtype=int)
        row = np.asarray(self._run.neighbours[i], dtype=int)
        return row[row != i]

    def summary(self) -> list:
        """Per-cluster statistics after corrections (see ``core.metrics.cluster_summary``)."""
        run = self._run
        return cluster_summary(
            self._assignment, run.n_clusters, run.true_labels, run.model_confidence
        )

    def look_alike(self) -> LookAlike | None:
        """The two clusters that look like one group now (``RunData.look_alike``); None before a
        finished run."""
        if not self.clustered or not self.editable:
            return None
        return self._run.look_alike(self._assignment)

    def keep_apart(self, a: int, b: int) -> None:
        """The user says clusters ``a`` and ``b`` are not one group: :meth:`look_alike` no longer
        offers them. Kept with the corrections (one step to undo)."""
        self._correct(lambda c: c.keep_apart(a, b))

    def evaluation(self) -> dict | None:
        """ACC/NMI/ARI and confusion of the corrected clusters, or None without labels."""
        if not self.has_labels:
            return None
        return evaluate(self._run.true_labels, self._assignment, self._run.n_clusters)

    def class_names(self) -> list[str]:
        if not self.has_labels:
            return []
        return sorted({str(t) for t in self._run.true_labels if t is not None})

    # -- changing ---------------------------------------------------------------------------------
    def set_run(self, run: RunData | None) -> None:
        self._run = run
        self._assignment = run.assignment if run is not None else np.zeros(0, dtype=int)
        self._current = -1
        self._selection = np.zeros(0, dtype=int)
        self._undo.clear()
        self._redo.clear()
        self.runChanged.emit()
        self.selectionChanged.emit()
        self.currentChanged.emit(-1)

    def set_current(self, i: int) -> None:
        i = int(i)
        if self._run is None or not -1 <= i < self.n_images or i == self._current:
            return
        self._current = i
        self.currentChanged.emit(i)

    def set_selection(self, indices) -> None:
        sel = np.sort(np.asarray(indices, dtype=int).ravel())  # np.unique: 50x slower at 1M
        if len(sel) > 1:
            sel = sel[np.concatenate(([True], sel[1:] != sel[:-1]))]
        if np.array_equal(sel, self._selection):
            return
        self._selection = sel
        self.selectionChanged.emit()

    def rename(self, cluster: int, name: str) -> None:
        self._correct(lambda c: c.rename(cluster, name))

    def merge(self, source: int, target: int) -> None:
        """Moves every image of ``source`` into ``target``, which the backbone names again in the
        background from its members now, as a split's parts (:meth:`_name`; a name the user gave
        still wins)."""
        if source == target or not self.editable:
            return
        self._correct(lambda c: c.merge(source, target, self._assignment))
        self._name([int(target)])

    def move(self, images, cluster: int) -> None:
        images = np.asarray(images, dtype=int).ravel()
        if len(images):
            self._correct(lambda c: c.move(images, cluster))

    def new_cluster(self, images) -> int | None:
        """Moves ``images`` into a new cluster (numbered after the others); returns its number, or
        None when nothing was done (no images, or a run that cannot be corrected)."""
        images = np.asarray(images, dtype=int).ravel()
        if not len(images) or not self.editable:
            return None
        made: list[int] = []
        self._correct(lambda c: made.append(c.new_cluster(images, self.n_clusters)))
        self._name(made)
        return made[0]

    def split(self, cluster: int, parts: int) -> list[int]:
        """Clusters ``cluster``'s images again into ``parts`` groups (K-means on their embeddings):
        the largest keeps the number, the others become new clusters, and the backbone names each
        part in the background (:meth:`_name`); one step to undo. Returns the clusters of the parts
        ([] when the run cannot be corrected).

        Raises:
            ValueError: the run has no embeddings, or the cluster too few distinct images.
        """
        if not self.editable:
            return []
        groups = self._run.split_parts(cluster, parts)  # before the undo step: it may refuse
        made: list[int] = []
        self._correct(lambda c: made.extend(c.split(cluster, groups, self.n_clusters)))
        self._name(made)
        return made

    @property
    def naming(self) -> bool:
        """Names asked for a split's parts or a made cluster have not come yet."""
        return self._namings > 0

    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> None:
        self._step(self._undo, self._redo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def redo(self) -> None:
        """Does the last undone correction again (with the names that had come for it); a new
        correction since forgets what was undone, as in any editor."""
        self._step(self._redo, self._undo)

    def _step(self, back: list[dict], forth: list[dict]) -> None:
        if not back or not self.editable:
            return
        forth.append(self._run.corrections.to_dict())
        self._run.corrections = Corrections.from_dict(back.pop())
        self._edits += 1
        self._after_correction()

    @property
    def can_retrain(self) -> bool:
        """A finished run with its mined neighbours and at least one image the user moved."""
        run = self._run
        return self.editable and run.neighbours is not None and bool(run.corrections.moves)

    @property
    def retrained(self) -> bool:
        """The clusters shown come from a model retrained with the corrections."""
        return self._run is not None and self._run.retrained is not None

    def set_retrained(self, probabilities, info: dict | None = None) -> None:
        """Shows the clusters of a retrained model (``None``: the run's own model's again); every
        view follows as after a correction. The corrections still apply on top."""
        if not self.editable:
            return
        self._run.retrained = probabilities
        self._run.retrained_info = dict(info or {})
        self._assignment = self._run.assignment
        self.assignmentChanged.emit()

    @property
    def clustered(self) -> bool:
        """There is a run with clusters: not the map alone of one still choosing their number."""
        return self._run is not None and not self._run.map_only

    @property
    def editable(self) -> bool:
        """Corrections apply to a finished run, not to the preview of one still training."""
        return self._run is not None and not self._run.preview

    def _correct(self, edit) -> None:
        if not self.editable:
            return
        self._undo.append(self._run.corrections.to_dict())
        self._redo.clear()
        self._edits += 1
        edit(self._run.corrections)
        self._after_correction()

    def _name(self, clusters: list[int]) -> None:
        """Names ``clusters`` (a split's parts, a made cluster) as the run's report names its own,
        in the background; the names are kept with the corrections when they come, unless another
        edit came first (then they would name clusters that changed)."""
        run, edits = self._run, self._edits
        if not clusters or cannot_name(run.config):
            return

        def arrived(found) -> None:
            self._namings -= 1
            names, _why = found  # why none: suggest_names logs it
            if self._run is run and self._edits == edits and names:
                run.corrections.suggested.update(names)
                self._after_correction()
            self.namingDone.emit()

        self._namings += 1
        run_in_background(
            run.snapshot().suggest_names_for, clusters,
            on_result=arrived, on_error=lambda exc: arrived(({}, str(exc))),
        )  # fmt: skip

    def _after_correction(self) -> None:
        self._run.save_corrections()
        self._assignment = self._run.assignment
        self.assignmentChanged.emit()
