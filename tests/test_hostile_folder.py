"""An image folder made hostile at test time: every odd entry is skipped with a reason, nothing hangs.

Reproduces issue 17, item 3: a dangling link, a link loop, a name that is not UTF-8 and a link
leading out of the folder aborted the run with a traceback; a FIFO named ``*.png`` hung it forever;
a PNG header of 60,000 x 60,000 pixels aborted the look before ingest.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from semclust.core.images import ingest, survey_folder, typical_look
from semclust.core.plan import look_at

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links, FIFOs and byte names")


def bomb_header_png(path: Path, side: int = 60_000) -> None:
    """A tiny file whose PNG header claims ``side`` x ``side`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.fixture()
def hostile(tmp_path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 0, 0)).save(root / f"ok{i}.png")
    os.symlink(root / "missing.png", root / "dangling.png")
    os.symlink(root / "loop_b.png", root / "loop_a.png")
    os.symlink(root / "loop_a.png", root / "loop_b.png")
    outside = tmp_path / "outside.png"
    Image.new("RGB", (20, 20)).save(outside)
    os.symlink(outside, root / "escape.png")
    os.symlink(root / "ok0.png", root / "inside_link.png")  # a link inside the folder is fine
    Image.new("RGB", (20, 20)).save(os.path.join(os.fsencode(root), b"caf\xe9.png"))
    os.mkfifo(root / "pipe.png")
    bomb_header_png(root / "bomb.png")
    return root


def _within(seconds: float, fn):
    """``fn()``, failing the test instead of hanging when it does not return in time."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(value=fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with open(hostile_fifo[0], "wb"):  # unblock the reader so the thread can end
            pass
        pytest.fail(f"did not return within {seconds} s (it opened a pipe?)")
    return result["value"]


hostile_fifo: list[Path] = []


def test_the_survey_skips_odd_entries_with_reasons(hostile):
    hostile_fifo[:] = [hostile / "pipe.png"]
    survey = _within(20, lambda: survey_folder(hostile))
    assert survey.files == [
        "bomb.png",
        "inside_link.png",
        "ok0.png",
        "ok1.png",
        "ok2.png",
        "ok3.png",
    ]
    reasons = dict(survey.skipped)
    assert "broken link" in reasons["dangling.png"]
    assert "broken link" in reasons["loop_a.png"] and "broken link" in reasons["loop_b.png"]
    assert "outside the image folder" in reasons["escape.png"]
    assert "not a regular file" in reasons["pipe.png"]
    assert "UTF-8" in reasons["caf\\xe9.png"]


def test_the_look_before_ingest_neither_hangs_nor_raises(hostile):
    hostile_fifo[:] = [hostile / "pipe.png"]
    look = _within(20, lambda: look_at(hostile))
    assert look.side == 20
    assert _within(20, lambda: typical_look(survey_folder(hostile)))[0] == 20


def test_ingest_uses_the_good_files_and_lists_the_rest(hostile, tmp_path):
    hostile_fifo[:] = [hostile / "pipe.png"]
    data = _within(60, lambda: ingest(hostile, cache_dir=tmp_path / "cache", workers=1))
    assert data.paths == ["inside_link.png", "ok0.png", "ok1.png", "ok2.png", "ok3.png"]
    skipped = dict(data.skipped)
    assert "too large" in skipped["bomb.png"]
    assert len(skipped) == 7
