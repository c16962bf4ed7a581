"""Decoding within a memory budget (issue 17, item 4): a huge image costs about one decoded copy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from semclust.core.config import IngestConfig
from semclust.core.images import InputError, ingest

PEAK = """
import resource, sys
import numpy as np
from PIL import Image
from semclust.core.images import load_image
path = sys.argv[1]
rgba = np.random.default_rng(0).integers(0, 255, (4000, 4000, 4), dtype=np.uint8)
Image.fromarray(rgba, "RGBA").save(path, compress_level=1)
del rgba
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert load_image(path, 96).shape == (96, 96, 3)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kB is Linux's")
def test_a_huge_rgba_png_is_decoded_with_about_one_full_copy(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(tmp_path / "big.png")],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    raw_mb = 4000 * 4000 * 4 / 2**20  # 61 MB decoded; before: about 6 copies (360 MB)
    assert peak_mb < 2 * raw_mb, peak_mb


@pytest.mark.parametrize("size", [0, 100_000])
def test_an_absurd_image_size_is_refused_before_decoding(tmp_path, size):
    with pytest.raises(InputError, match="out of range"):
        ingest(tmp_path, IngestConfig(image_size=size), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
