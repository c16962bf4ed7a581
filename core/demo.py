"""The built-in demo data: scikit-learn's 1,797 real handwritten digits as PNG files in class folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from semclust.core.paths import default_cache_dir


def write_digits_folder(folder: str | Path | None = None, limit: int | None = None) -> Path:
    """Writes the digits (8x8, grey) as PNGs under ``folder/<digit>/NNNN.png``; returns the folder.

    Idempotent: existing files are kept. ``limit`` takes the first images of every class only.
    """
    from sklearn.datasets import load_digits

    folder = Path(folder) if folder else default_cache_dir() / "demo" / "digits"
    digits = load_digits()
    counts: dict[int, int] = {}
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        counts[int(target)] = counts.get(int(target), 0) + 1
        if limit is not None and counts[int(target)] > limit:
            continue
        path = folder / str(int(target)) / f"{i:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(pixels * 255.0 / 16.0).astype(np.uint8), mode="L").save(path)
    return folder
