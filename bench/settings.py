"""Where the benchmarks read and write, as one frozen settings object.

Every path is a setting with a default relative to the repository, so that a user with a different layout
(or the ``weights="imagenet"`` download) can point the benchmarks elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The local ImageNet MobileNet v1 weights (Keras 3 format), next to the repository.
DEFAULT_WEIGHTS = (
    REPO_ROOT / ".." / "shared" / "weights" / "mobilenet_1_0_224_imagenet_notop.weights.h5"
)


def _default_weights() -> str:
    return os.environ.get("SEMCLUST_MOBILENET_WEIGHTS", str(DEFAULT_WEIGHTS.resolve()))


@dataclass(frozen=True)
class BenchSettings:
    """Paths used by the benchmarks.

    Attributes:
        cache_dir: where the labelled datasets are written as folders of PNG files.
        work_dir: scratch space for run folders and timing experiments.
        plots_dir: where the PNG plots go.
        report_path: the markdown report.
        weights: MobileNet ImageNet weights: a ``.weights.h5`` path, or ``"imagenet"`` to download.
    """

    cache_dir: Path = REPO_ROOT / "bench" / "out" / "data"
    work_dir: Path = REPO_ROOT / "bench" / "out" / "work"
    plots_dir: Path = REPO_ROOT / "bench" / "plots"
    report_path: Path = REPO_ROOT / "BENCHMARKS.md"
    weights: str = field(default_factory=_default_weights)
