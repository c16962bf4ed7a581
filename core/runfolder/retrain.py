"""Retrain a finished run with the user's corrections, and restore the model's clusters (undo).

:func:`retrain` recomputes the clusters of the images the user did not correct
(:func:`semclust.core.clustering.refine.refine`: their mined neighbours vote again, the corrected ones
with a high weight) and keeps the result as an artefact of its own, so that the run's model is never
overwritten:

- ``retrained_probabilities.npy``: (N, K') the probabilities recomputed with the corrections (K'
  counts the clusters the user made too);
- ``retrained.json``: its record, written last: the digest of the run's probabilities it started from
  (``base``) and its own (``digest``), the corrections it used, the images that changed, the seconds.

:func:`~semclust.core.runfolder.results.load_run` shows the retrained clusters while that record
vouches for them (see :mod:`semclust.core.runfolder.results`); :func:`restore` deletes both files.
Both write under the run folder's lock: a run writing into the folder refuses them, and they refuse it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semclust.core.clustering.refine import RefineSettings, refine
from semclust.core.runfolder.artefacts import RunPaths, save_array, write_json
from semclust.core.runfolder.ownership import run_folder_lock
from semclust.core.runfolder.results import RunData, load_run, model_digest


@dataclass(frozen=True)
class Retrained:
    """A retrain written into its run folder.

    Attributes:
        probabilities: (N, K') the probabilities recomputed with the corrections
            (:attr:`RunData.retrained`).
        info: the record written to ``retrained.json``, for :attr:`RunData.retrained_info`.
    """

    probabilities: np.ndarray
    info: dict

    @property
    def corrected(self) -> int:
        return int(self.info["corrected"])

    @property
    def changed(self) -> int:
        return int(self.info["changed"])

    def message(self) -> str:
        """One line for the user: ``Retrained with 12 corrections: 40 other images changed cluster``."""
        n, m = self.corrected, self.changed
        return (
            f"Retrained with {n:,} correction{'s' * (n != 1)}: "
            f"{m:,} other image{'s' * (m != 1)} changed cluster"
        )


def retrain(run: RunData, settings: RefineSettings = RefineSettings()) -> Retrained:
    """Retrains ``run``'s clusters with its corrections and writes the result into its folder.

    ``run`` itself is not changed (the app retrains a copy in the background and applies the result);
    the changes are counted against the clusters ``run`` shows now.

    Raises:
        ValueError: a preview, a run without its neighbours, or no image moved.
        RunFolderError: another run writes into the folder (its lock), or it cannot be written.
    """
    if run.preview:
        raise ValueError("A preview cannot be retrained: wait for the run to finish.")
    if run.neighbours is None:
        raise ValueError(
            "This run folder keeps no neighbours (or they are out of date): it cannot be "
            "retrained; run it again to compute them."
        )
    refined = refine(
        run.neighbours,
        run.probabilities,
        run.corrections.moves,
        n_clusters=run.n_clusters,
        shown=run.assignment,
        settings=settings,
    )
    info = {
        **refined.summary(),
        "base": model_digest(run.probabilities),
        "digest": model_digest(refined.probabilities),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    paths = run.paths
    with run_folder_lock(paths):
        save_array(paths.retrained_probabilities, refined.probabilities)
        write_json(paths.retrained, info)  # last: the record vouches for the array
    return Retrained(refined.probabilities, info)


def retrain_folder(run_dir: str | Path, settings: RefineSettings = RefineSettings()) -> Retrained:
    """:func:`retrain` of the finished run in ``run_dir``, with the corrections saved there."""
    return retrain(load_run(run_dir), settings)


def restore(paths: RunPaths) -> bool:
    """Deletes the retrained clusters of a run folder: the run's model shows again. Returns whether
    there were any.

    Raises:
        RunFolderError: another run writes into the folder (its lock).
    """
    paths = RunPaths(paths.root)
    with run_folder_lock(paths):
        found = paths.retrained.is_file() or paths.retrained_probabilities.is_file()
        paths.retrained.unlink(missing_ok=True)  # first: without its record the array is ignored
        paths.retrained_probabilities.unlink(missing_ok=True)
    return found
