"""The core names the GUI uses, in one place: no other module of ``gui/`` imports ``semclust.core``.

``core.run`` imports Keras and TensorFlow (seconds); it is imported in the background once an image
folder is opened (:func:`prepare_pipeline`), or when a run starts, so the window opens at once and
exploring a finished run never loads TensorFlow. Everything imported here loads without Keras
(``tests/test_import_contracts.py`` checks both).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading

from semclust.core.choices import (
    METHOD_TITLES,
    SCRATCH,
    RunChoices,
    build_config,
    choices_of,
    representation_of,
)
from semclust.core.clustering.k_choice import KChoice
from semclust.core.config import RunConfig
from semclust.core.image_store import remove_store
from semclust.core.images import (
    ImageError,
    InputError,
    cache_stores,
    describe_store,
    over_the_pixel_limit,
    survey_folder,
)
from semclust.core.metrics import (
    LookAlike,
    close_said,
    close_shown_said,
    cluster_summary,
    evaluate,
)
from semclust.core.naming.suggest import cannot_name
from semclust.core.param import Declared, declared
from semclust.core.paths import resource
from semclust.core.plan import FolderLook, Plan, look_at, plan_run
from semclust.core.progress import (
    STAGES,
    Cancelled,
    CancelToken,
    Progress,
    format_bytes,
    format_seconds,
)
from semclust.core.representation.backbones import pretrained_backbone
from semclust.core.runfolder.added import read_additions, vote
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths, StageRecord, is_inside
from semclust.core.runfolder.assign import assign_folder
from semclust.core.runfolder.corrections import Corrections
from semclust.core.runfolder.export import export_cluster_folders, export_labels
from semclust.core.runfolder.image_list import read_skipped
from semclust.core.runfolder.model_export import check_model_path, export_model
from semclust.core.runfolder.report import check_report_path, write_report
from semclust.core.runfolder.report_pictures import rescaled
from semclust.core.runfolder.results import RunData, RunFolderInfo, inspect_run_folder, load_run
from semclust.core.runfolder.retrain import restore as restore_model_clusters
from semclust.core.runfolder.retrain import retrain as retrain_with_corrections

__all__ = [
    "CancelToken", "Cancelled", "Corrections", "Declared", "FolderLook",
    "ImageError", "InputError", "KChoice", "LookAlike", "METHOD_TITLES", "Plan", "Progress",
    "RunChoices", "RunConfig", "RunData", "RunFolderError", "RunFolderInfo", "RunPaths", "SCRATCH",
    "STAGES", "assign_folder", "build_config", "cache_stores", "cannot_name", "check_model_path",
    "check_report_path", "choices_of", "close_said", "close_shown_said", "cluster_summary",
    "declared", "describe_store", "evaluate", "export_cluster_folders", "export_labels",
    "export_model", "format_bytes", "format_seconds", "inspect_run_folder", "is_inside", "load_run",
    "look_at", "over_the_pixel_limit", "plan_run", "prepare_pipeline", "pretrained_backbone",
    "read_additions", "read_skipped", "remove_store", "representation_of", "rescaled", "resource",
    "restore_model_clusters", "retrain_with_corrections", "run_pipeline", "stage_seconds",
    "survey_folder", "vote", "write_report",
]  # fmt: skip


def stage_seconds(paths: RunPaths) -> dict[str, float]:
    """What each finished stage of a run folder took, from its record (empty when it has none)."""
    seconds = {}
    for stage, entry in StageRecord(paths).data.items():
        value = entry.get("seconds")
        if isinstance(value, int | float):
            seconds[stage] = float(value)
    return seconds


def run_pipeline(*args, **kwargs):
    """Calls ``core.run.run_pipeline``, importing it (and TensorFlow) on first use.

    The worker calls this on its own thread, so the seconds of importing never block the window.
    """
    from semclust.core.run import run_pipeline as pipeline

    return pipeline(*args, **kwargs)


_importing: threading.Thread | None = None


def prepare_pipeline() -> threading.Thread | None:
    """Starts importing ``core.run`` (TensorFlow and Keras: 3-4 s on 2 cores) on a thread of its own,
    once, and returns that thread (``None`` when there is nothing left to import). The window calls it
    when an image folder is opened, so that a run started a few seconds later does not wait for the
    imports (285 photos, Run pressed 4 s after opening: 7.3-7.8 s from Run to the clusters shown,
    11.4 s before; ``python -m bench.time_in_window``); a run started sooner waits for what is left.
    A failed import is left for the run to meet and say."""
    global _importing
    if "semclust.core.run" in sys.modules or _importing is not None:
        return _importing

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module("semclust.core.run")

    # Not a daemon: an interpreter that ends mid-import of TensorFlow may crash on its way out.
    _importing = threading.Thread(target=load, name="semclust-import-pipeline")
    _importing.start()
    return _importing
