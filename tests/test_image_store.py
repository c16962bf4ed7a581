"""The decoded-image cache is a memory-mapped array on disk: bounded memory, updated incrementally."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from semclust.core import image_store
from semclust.core.config import IngestConfig
from semclust.core.images import CACHE_VERSION, ingest
from semclust.core.progress import Cancelled, CancelToken, Progress


def _folder(root, n, start=0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            root / f"{i:05d}.png"
        )
    return root


def test_images_come_memory_mapped_and_equal_a_fresh_decode(tmp_path):
    folder = _folder(tmp_path / "imgs", 30)
    first = ingest(folder, IngestConfig(image_size=32), cache_dir=tmp_path / "c")
    second = ingest(folder, IngestConfig(image_size=32), cache_dir=tmp_path / "c")
    assert isinstance(second.images, np.memmap) and second.cached == 30
    assert not second.images.flags.writeable  # the cache cannot be changed through a run
    assert np.array_equal(first.images, second.images)


def test_new_and_removed_files_update_the_store_in_order(tmp_path):
    folder = _folder(tmp_path / "imgs", 20)
    cfg = IngestConfig(image_size=32)
    before = ingest(folder, cfg, cache_dir=tmp_path / "c")
    _folder(folder, 5, start=100)
    (folder / "00003.png").unlink()
    after = ingest(folder, cfg, cache_dir=tmp_path / "c")
    assert after.cached == 19 and len(after.paths) == 24
    assert after.paths == sorted(after.paths)
    for rel, image in zip(before.paths, before.images, strict=True):
        if rel != "00003.png":
            assert np.array_equal(after.images[after.paths.index(rel)], image)
    fresh = ingest(folder, cfg, cache_dir=tmp_path / "fresh")
    assert np.array_equal(fresh.images, after.images)
    stores = list((tmp_path / "c" / "images").iterdir())
    assert len(stores) == 1 and len(list(stores[0].glob("images-*.npy"))) == 1  # old one removed


def test_a_damaged_index_is_rebuilt(tmp_path):
    folder = _folder(tmp_path / "imgs", 10)
    ingest(folder, IngestConfig(image_size=32), cache_dir=tmp_path / "c")
    (index,) = (tmp_path / "c" / "images").glob("*/index.json")
    index.write_text("{ damaged", encoding="utf-8")
    again = ingest(folder, IngestConfig(image_size=32), cache_dir=tmp_path / "c")
    assert again.cached == 0 and len(again.paths) == 10
    assert json.loads(index.read_text(encoding="utf-8"))["keys"]


def test_a_cancelled_ingest_keeps_the_last_whole_store(tmp_path):
    folder = _folder(tmp_path / "imgs", 12)
    cfg = IngestConfig(image_size=32)
    ingest(folder, cfg, cache_dir=tmp_path / "c")
    _folder(folder, 600, start=1000)
    token = CancelToken()

    def cancel_soon(p: Progress) -> None:
        if p.step > 12:
            token.cancel()

    with pytest.raises(Cancelled):
        ingest(folder, cfg, cache_dir=tmp_path / "c", progress=cancel_soon, cancel=token)
    (store,) = (tmp_path / "c" / "images").iterdir()
    index = json.loads((store / "index.json").read_text(encoding="utf-8"))
    assert len(index["keys"]) == 12 and not index["errors"]  # nothing half-written, no false errors
    assert not list(store.glob(".fresh-*"))


def test_memory_stays_bounded_while_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(image_store, "CHUNK", 64)
    folder = _folder(tmp_path / "imgs", 1200)
    tracemalloc.start()
    result = ingest(folder, IngestConfig(image_size=64), cache_dir=tmp_path / "c", workers=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = result.images.nbytes  # 1200 x 64 x 64 x 3 = 14.7 MB
    assert peak < total / 3, (peak, total)


def test_a_lookup_in_a_damaged_or_foreign_store_finds_nothing_and_never_raises(tmp_path):
    """What the window's thumbnails meet in a cache left damaged or written by something else: no
    image, so the file is decoded as before."""
    store = tmp_path / "store"
    store.mkdir()
    lookup = image_store.StoreLookup(store, 8)
    assert lookup.get("a.png|1|2") is None  # no store at all
    np.save(store / "images-1.npy", np.ones((1, 8, 8, 3), np.float32))
    np.save(tmp_path / "outside.npy", np.zeros((1, 8, 8, 3), np.uint8))  # a store's, but outside
    cases = [
        "{ damaged",
        json.dumps({"file": "images-1.npy", "keys": ["a.png|1|2"], "errors": {}}),  # not uint8
        json.dumps({"file": "../outside.npy", "keys": ["a.png|1|2"], "errors": {}}),
        json.dumps({"file": "images-2.npy", "keys": ["a.png|1|2"], "errors": {}}),  # missing
        json.dumps({"file": 3, "keys": "a.png|1|2"}),
    ]
    for i, text in enumerate(cases):
        (store / "index.json").write_text(text + " " * i, encoding="utf-8")  # a new version each
        assert lookup.get("a.png|1|2") is None, text
    np.save(store / "images-2.npy", np.full((1, 8, 8, 3), 7, np.uint8))
    (store / "index.json").write_text(cases[3] + "  ", encoding="utf-8")
    assert lookup.get("a.png|1|2")[0, 0].tolist() == [7, 7, 7]
    assert lookup.get("b.png|1|2") is None


def test_an_index_naming_an_array_outside_its_store_is_rebuilt(tmp_path):
    folder = _folder(tmp_path / "imgs", 4)
    first = ingest(folder, IngestConfig(image_size=32), cache_dir=tmp_path / "c")
    (index,) = (tmp_path / "c" / "images").glob("*/index.json")
    data = json.loads(index.read_text(encoding="utf-8"))
    (tmp_path / "outside.npy").write_bytes((index.parent / data["file"]).read_bytes())
    index.write_text(json.dumps({**data, "file": "../../../outside.npy"}), encoding="utf-8")
    again = ingest(folder, IngestConfig(image_size=32), cache_dir=tmp_path / "c")
    assert again.cached == 0 and np.array_equal(again.images, first.images)


def _stores(cache):
    return {
        (s.source.name if s.source else None, s.size): s
        for s in image_store.list_stores(cache / "images", CACHE_VERSION)
    }


def test_the_cache_lists_each_store_with_its_folder_size_and_images(tmp_path):
    cache = tmp_path / "c"
    ingest(_folder(tmp_path / "cats", 6), IngestConfig(image_size=32), cache_dir=cache)
    ingest(tmp_path / "cats", IngestConfig(image_size=48), cache_dir=cache)
    ingest(_folder(tmp_path / "dogs", 4), IngestConfig(image_size=32), cache_dir=cache)
    (cache / "images" / "notes").mkdir()  # not a store: never listed, never removed
    (cache / "images" / "v3_0123456789abcdef0123_32px").symlink_to(tmp_path / "cats")
    found = _stores(cache)
    assert set(found) == {("cats", 32), ("cats", 48), ("dogs", 32)}
    assert [found[k].images for k in sorted(found)] == [6, 6, 4]
    assert found[("cats", 48)].bytes > 6 * 48 * 48 * 3 > found[("cats", 32)].bytes > 0
    assert found[("cats", 32)].source == (tmp_path / "cats").resolve()
    assert found[("cats", 32)].pixel_limit == IngestConfig().max_image_pixels
    assert not any(s.stale or s.in_use for s in found.values())
    (found[("dogs", 32)].folder / image_store.ABOUT).unlink()  # a store written before it was kept
    older = _stores(cache)[(None, 32)]
    assert older.images == 4 and older.source is None and older.stale is None
    ingest(tmp_path / "dogs", IngestConfig(image_size=32), cache_dir=cache)  # read, not written
    assert _stores(cache)[("dogs", 32)].images == 4  # recorded on reading


def test_reading_a_store_marks_it_used(tmp_path):
    from semclust.core.images import DecodedFiles

    folder, cache, config = (
        _folder(tmp_path / "imgs", 5),
        tmp_path / "c",
        IngestConfig(image_size=32),
    )
    ingest(folder, config, cache_dir=cache)
    (store,) = image_store.list_stores(cache / "images", CACHE_VERSION)
    long_ago = store.last_used - 40 * 86_400
    os.utime(store.folder, (long_ago, long_ago))
    ingest(folder, config, cache_dir=cache)  # a second run reads it
    assert (
        image_store.list_stores(cache / "images", CACHE_VERSION)[0].last_used
        > long_ago + 39 * 86_400
    )
    os.utime(store.folder, (long_ago, long_ago))
    assert DecodedFiles(folder, config, cache).image("00001.png", 32) is not None  # the window
    assert (
        image_store.list_stores(cache / "images", CACHE_VERSION)[0].last_used
        > long_ago + 39 * 86_400
    )


def test_a_store_is_stale_when_its_folder_is_gone_or_its_version_old(tmp_path):
    cache = tmp_path / "c"
    ingest(_folder(tmp_path / "kept", 3), IngestConfig(image_size=32), cache_dir=cache)
    ingest(_folder(tmp_path / "moved", 3), IngestConfig(image_size=32), cache_dir=cache)
    (tmp_path / "moved").rename(tmp_path / "elsewhere")
    kept = _stores(cache)[("kept", 32)]
    earlier = CACHE_VERSION - 1
    old = kept.folder.with_name(kept.folder.name.replace(f"v{CACHE_VERSION}_", f"v{earlier}_", 1))
    shutil.copytree(kept.folder, old)
    found = {
        s.folder.name: s.stale for s in image_store.list_stores(cache / "images", CACHE_VERSION)
    }
    said = f"cache version {earlier}, this one reads {CACHE_VERSION}"
    assert found[kept.folder.name] is None and found[old.name] == said
    assert sorted(v for v in found.values() if v) == [said, "its folder is gone"]


def test_removing_a_store_spares_one_being_written_and_the_next_run_decodes_again(tmp_path):
    folder, cache, config = (
        _folder(tmp_path / "imgs", 4),
        tmp_path / "c",
        IngestConfig(image_size=32),
    )
    first = ingest(folder, config, cache_dir=cache)
    (store,) = image_store.list_stores(cache / "images", CACHE_VERSION)
    writing = store.folder / f".fresh-{os.getpid()}-0123456789ab.u8"  # a live writer's file
    writing.touch()
    assert image_store.list_stores(cache / "images", CACHE_VERSION)[0].in_use
    assert not image_store.remove_store(store) and store.folder.is_dir()
    writing.unlink()
    assert image_store.remove_store(store) and not store.folder.exists()
    assert list((cache / "images").iterdir()) == []  # nothing half-removed left behind
    again = ingest(folder, config, cache_dir=cache)
    assert again.cached == 0 and np.array_equal(np.asarray(again.images), np.asarray(first.images))


@pytest.mark.parametrize(
    "n,said",
    [(0, "0 bytes"), (999, "999 bytes"), (1000, "1.0 KB"), (150_528, "150.5 KB"),
     (27e9, "27.0 GB"), (3.2e15, "3200.0 TB")],
)  # fmt: skip
def test_sizes_on_disk_read_as_people_read_them(n, said):
    from semclust.core.progress import format_bytes

    assert format_bytes(n) == said
