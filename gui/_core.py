"""The core functions the GUI calls, in one place.

``core.run`` imports Keras and TensorFlow (seconds); it is imported only when a run starts, so the
window opens at once and exploring a finished run never loads TensorFlow.
"""

from __future__ import annotations

from semclust.core.config import RunConfig
from semclust.core.images import ImageError, InputError, load_image, survey_folder
from semclust.core.metrics import cluster_summary, evaluate
from semclust.core.progress import STAGES, Cancelled, CancelToken, Progress
from semclust.core.results import RunData, load_run, read_skipped

__all__ = [
    "STAGES", "CancelToken", "Cancelled", "ImageError", "InputError", "Progress", "RunConfig",
    "RunData", "cluster_summary", "evaluate", "load_image", "load_run", "read_skipped",
    "run_pipeline", "survey_folder",
]  # fmt: skip


def run_pipeline(*args, **kwargs):
    """Calls ``core.run.run_pipeline``, importing it (and TensorFlow) on first use.

    The worker calls this on its own thread, so the seconds of importing never block the window.
    """
    from semclust.core.run import run_pipeline as pipeline

    return pipeline(*args, **kwargs)
