"""Ingest of real photos in every format and mode, bad files, labels, cache; the folder is never written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from semclust.core.config import IngestConfig
from semclust.core.images import (
    DecodedFiles,
    ImageError,
    InputError,
    ingest,
    load_image,
    read_labels_csv,
    survey_folder,
    typical_look,
)
from tests.conftest import tree_digest


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skdata.astronaut()[::4, ::4]  # a real 128x128 RGB photo


def _save_modes(folder, photo):
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(photo)
    written = {
        "rgb.png": img,
        "grey.png": img.convert("L"),
        "grey_alpha.png": img.convert("LA"),
        "palette.png": img.convert("P"),
        "rgba.png": img.convert("RGBA"),
        "photo.jpg": img,
        "cmyk.jpg": img.convert("CMYK"),
        "bitmap.bmp": img,
        "anim.gif": img.convert("P"),
        "photo.webp": img,
        "photo.tif": img,
        "photo.tiff": img.convert("CMYK"),
    }
    for name, im in written.items():
        im.save(folder / name)
    Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(folder / "grey16.png")
    Image.fromarray(photo[..., 1].astype(np.uint16) * 257).save(folder / "grey16.tif")
    return len(written) + 2


def test_every_format_and_mode_becomes_rgb(tmp_path, photo, cache_dir):
    n = _save_modes(tmp_path / "imgs", photo)
    result = ingest(tmp_path / "imgs", IngestConfig(image_size=32), cache_dir=cache_dir)
    assert result.skipped == []
    assert result.images.shape == (n, 32, 32, 3) and result.images.dtype == np.uint8
    rgb = result.images[result.paths.index("rgb.png")].astype(float)
    for name in ("photo.jpg", "bitmap.bmp", "photo.webp", "photo.tif", "cmyk.jpg", "rgba.png"):
        diff = np.abs(result.images[result.paths.index(name)].astype(float) - rgb).mean()
        assert diff < 20, name  # the same photo, whatever the container
    grey16 = result.images[result.paths.index("grey16.png")].astype(float)
    assert np.abs(grey16[..., 0] - rgb[..., 0]).mean() < 3  # 16 bit scaled to 8, not clipped


def test_a_phones_heic_and_avif_photos_are_read(tmp_path, photo, cache_dir):
    """iPhones save HEIC; the same photo as HEIC (pillow-heif) and AVIF (Pillow) becomes the same
    pixels as its PNG."""
    pytest.importorskip("pillow_heif")
    from semclust.core.images import readable_extensions

    assert {".heic", ".heif", ".avif"} <= set(readable_extensions())  # registers pillow-heif
    folder = tmp_path / "phone"
    folder.mkdir()
    img = Image.fromarray(photo)
    img.save(folder / "IMG_0001.png")
    img.save(folder / "IMG_0002.HEIC", format="HEIF", quality=95)
    img.save(folder / "IMG_0003.avif", quality=95)
    result = ingest(folder, IngestConfig(image_size=32), cache_dir=cache_dir)
    assert result.skipped == [] and len(result.paths) == 3
    png = result.images[result.paths.index("IMG_0001.png")].astype(float)
    for name in ("IMG_0002.HEIC", "IMG_0003.avif"):
        assert np.abs(result.images[result.paths.index(name)] - png).mean() < 8, name


def test_photos_without_a_decoder_here_are_skipped_saying_why(
    tmp_path, photo, cache_dir, monkeypatch
):
    """Without pillow-heif a phone's HEIC photos are listed as skipped with what reads them, and
    camera RAW files with what to do: none silently left out. Other files are not images and not
    listed."""
    import semclust.core.images as images

    monkeypatch.setattr(images, "readable_extensions", lambda: images.IMAGE_EXTENSIONS)
    folder = tmp_path / "camera"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.jpg")
    for name in ("b.HEIC", "c.heif", "d.avif", "e.NEF", "f.dng"):
        (folder / name).write_bytes(b"not decoded here")
    (folder / "notes.txt").write_text("not an image")
    survey = survey_folder(folder)
    assert survey.files == ["a.jpg"]
    reasons = dict(survey.skipped)
    assert set(reasons) == {"b.HEIC", "c.heif", "d.avif", "e.NEF", "f.dng"}
    assert "pip install pillow-heif" in reasons["b.HEIC"] and "HEIF photo" in reasons["c.heif"]
    assert "AVIF" in reasons["d.avif"] and "camera RAW" in reasons["e.NEF"]
    (folder / "a.jpg").unlink()  # only photos it cannot read: the message says why
    with pytest.raises(InputError, match="pip install pillow-heif"):
        ingest(folder, IngestConfig(image_size=32), cache_dir=cache_dir)


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png", 32).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 30), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 30, 30))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    arr = load_image(tmp_path / "rotated.jpg", 32)
    # After rotation the image is portrait; the centre crop shows the white half at the top.
    assert arr[:8].mean() > 200 and arr[-8:].mean() < 60


def test_gif_gives_first_frame(tmp_path):
    frames = [Image.new("P", (40, 40), c) for c in (10, 200)]
    frames[0].putpalette([i for v in range(256) for i in (v, v, v)])
    frames[1].putpalette([i for v in range(256) for i in (v, v, v)])
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "a.gif", 32).mean() < 30


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.png", b"", "empty"),
        ("text.jpg", b"this is not an image at all", "not an image"),
        ("junk.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|decoded"),
    ],
)
def test_bad_files_raise_readable_reasons(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(tmp_path / name, 32)


def test_truncated_and_huge_files_are_skipped_and_listed(tmp_path, photo, cache_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "good.jpg")
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("L", (12000, 9000)).save(folder / "bomb.png")  # 108 Mpx > the guard
    (folder / "zero.png").write_bytes(b"")
    result = ingest(folder, IngestConfig(image_size=32), cache_dir=cache_dir)
    reasons = dict(result.skipped)
    assert result.paths == ["good.jpg"]
    assert reasons["bomb.png"] == "too large (108,000,000 pixels, limit 89,478,485)"
    assert "empty" in reasons["zero.png"]
    assert "truncated.jpg" in reasons


def test_a_limit_above_pillows_lets_larger_files_in_and_puts_pillows_guard_back(
    tmp_path, monkeypatch
):
    """Pillow refuses a file over twice its own limit when it opens it (a TIFF again while it
    decodes); a larger limit asked for is honoured for that file alone, and Pillow's guard is as it
    was afterwards. Under the limit asked for, the reason says the size and that limit."""
    Image.new("L", (100, 100), 200).save(tmp_path / "big.png")
    Image.new("RGB", (100, 100), "red").save(tmp_path / "big.tif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert load_image(tmp_path / "big.png", 32, max_pixels=20_000)[0, 0].tolist() == [200] * 3
    assert load_image(tmp_path / "big.tif", 32, max_pixels=20_000)[0, 0].tolist() == [255, 0, 0]
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(ImageError) as raised:
        load_image(tmp_path / "big.png", 32, max_pixels=5_000)
    assert str(raised.value) == "too large (10,000 pixels, limit 5,000)"


def test_files_over_pillows_limit_decode_side_by_side_with_the_others(
    tmp_path, monkeypatch, cache_dir
):
    """The raised guard is one process-wide setting shared by the ingest's decoding threads: every
    file under the run's limit is read, whichever thread meets it, and none over it."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        side = 100 if i % 2 else 20  # 10,000 pixels: over twice Pillow's limit below; 400: under
        Image.new("RGB", (side, side), (20 * i, 0, 0)).save(
            folder / f"{i:02d}.{'tif' if i % 3 else 'png'}"
        )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    raised = ingest(
        folder, IngestConfig(image_size=16, max_image_pixels=20_000), cache_dir=cache_dir, workers=4
    )
    assert len(raised.paths) == 12 and not raised.skipped
    assert [int(img[0, 0, 0]) for img in raised.images] == [20 * i for i in range(12)]
    low = ingest(
        folder, IngestConfig(image_size=16, max_image_pixels=5_000), cache_dir=cache_dir, workers=4
    )
    assert len(low.paths) == 6
    assert set(dict(low.skipped).values()) == {"too large (10,000 pixels, limit 5,000)"}
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_a_phone_photo_over_the_pixel_limit_is_read_at_a_reduced_scale(tmp_path, photo, cache_dir):
    """A 108-megapixel JPEG (a phone's full-resolution photo) decodes at 1/8 of its size, well under
    the limit, so it is read; a PNG of the same size cannot be decoded reduced and is skipped."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    big = Image.fromarray(photo).resize((12000, 9000), Image.Resampling.NEAREST)
    big.save(folder / "phone.jpg", quality=80)
    big.convert("L").save(folder / "scan.png")
    result = ingest(folder, IngestConfig(image_size=32), cache_dir=cache_dir)
    assert result.paths == ["phone.jpg"]
    assert dict(result.skipped) == {"scan.png": "too large (108,000,000 pixels, limit 89,478,485)"}
    big.resize((1200, 900)).save(tmp_path / "small.jpg", quality=80)
    small = load_image(tmp_path / "small.jpg", 32).astype(int)
    assert np.abs(result.images[0] - small).mean() < 12  # the same picture
    raised = ingest(
        folder, IngestConfig(image_size=32, max_image_pixels=120_000_000), cache_dir=cache_dir
    )
    assert raised.paths == ["phone.jpg", "scan.png"] and not raised.skipped


def test_a_jpeg_far_over_pillows_limit_is_refused_when_it_cannot_be_reduced(tmp_path, monkeypatch):
    """Over twice Pillow's limit a JPEG still opens; what counts is the size it decodes at, which
    depends on the image size asked for."""
    Image.new("RGB", (800, 600), "red").save(tmp_path / "big.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    assert load_image(tmp_path / "big.jpg", 32, max_pixels=100_000)[0, 0].tolist() == [254, 0, 0]
    assert typical_look(survey_folder(tmp_path))[0] == 600  # the survey reads its header too
    with pytest.raises(ImageError) as raised:
        load_image(tmp_path / "big.jpg", 400, max_pixels=100_000)  # decoded at full size
    assert str(raised.value) == "too large (800x600 pixels, limit 100,000)"


def test_labels_from_subfolders_and_switch_off(digits_folder, cache_dir):
    survey = survey_folder(digits_folder)
    assert survey.class_names == [str(d) for d in range(10)]
    result = ingest(digits_folder, IngestConfig(), cache_dir=cache_dir)
    assert result.labels[0] == result.paths[0].split("/")[0]
    off = ingest(digits_folder, IngestConfig(labels_from_subfolders=False), cache_dir=cache_dir)
    assert off.labels is None
    assert result.is_grey


def test_labels_from_csv(tmp_path, photo, cache_dir):
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo).save(folder / f"{i}.png")
    (tmp_path / "labels.csv").write_text("path,label\n0.png,cat\n1.png,dog\n", encoding="utf-8")
    result = ingest(
        folder, IngestConfig(labels_csv=str(tmp_path / "labels.csv")), cache_dir=cache_dir
    )
    assert result.labels == ["cat", "dog", None]
    with pytest.raises(InputError):
        read_labels_csv(tmp_path / "missing.csv")


def test_second_run_uses_cache_and_folder_is_untouched(digits_folder, cache_dir):
    before = tree_digest(digits_folder)
    first = ingest(digits_folder, IngestConfig(), cache_dir=cache_dir)
    second = ingest(digits_folder, IngestConfig(), cache_dir=cache_dir)
    assert first.cached == 0 and second.cached == len(second.paths) == 600
    np.testing.assert_array_equal(first.images, second.images)
    assert tree_digest(digits_folder) == before
    other_size = ingest(digits_folder, IngestConfig(image_size=48), cache_dir=cache_dir)
    assert other_size.cached == 0 and other_size.images.shape[1] == 48


def test_cache_notices_changed_file(tmp_path, photo, cache_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    Image.fromarray(photo).save(folder / "b.png")
    ingest(folder, IngestConfig(), cache_dir=cache_dir)
    Image.fromarray(255 - photo).save(folder / "b.png")
    again = ingest(folder, IngestConfig(), cache_dir=cache_dir)
    assert again.cached == 1
    assert again.images[1].mean() != again.images[0].mean()


def test_missing_and_empty_folders_give_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ingest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="No images found"):
        ingest(tmp_path / "empty")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(InputError, match="not a folder"):
        survey_folder(tmp_path / "file.png")


def test_typical_look_reads_side_and_colour_from_headers(tmp_path, digits_folder, photo):
    assert typical_look(survey_folder(digits_folder)) == (8, True)  # 8 px grey PNGs
    colour = tmp_path / "photos"
    colour.mkdir()
    for i in range(3):
        Image.fromarray(photo).save(colour / f"{i}.jpg")
    Image.fromarray(photo[..., 0]).save(colour / "grey.png")  # one grey among colour: colour
    assert typical_look(survey_folder(colour)) == (min(photo.shape[:2]), False)
    empty = tmp_path / "broken"
    empty.mkdir()
    (empty / "a.png").write_bytes(b"not an image")
    assert typical_look(survey_folder(empty)) == (None, False)


def test_the_decoded_images_are_read_back_by_file_until_the_file_changes(tmp_path, cache_dir):
    """What a run's thumbnails read: the cache's copy of a file, smaller on demand, found again after
    a later ingest replaced the cache's array, and not found once the file changed."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (40, 30), colour).save(folder / name)
    config = IngestConfig(image_size=32)
    first = ingest(folder, config, cache_dir=cache_dir)
    decoded = DecodedFiles(first.root, config, cache_dir)
    assert np.array_equal(decoded.image("a.png", 32), first.images[0])
    assert decoded.image("b.png", 16).shape == (16, 16, 3)
    assert decoded.image("b.png", 16)[8, 8].tolist() == [0, 0, 255]
    assert decoded.image("a.png", 64) is None  # larger than the cache holds
    Image.new("RGB", (40, 30), "green").save(folder / "c.png")
    later = ingest(folder, config, cache_dir=cache_dir)  # a new array replaces the first
    assert later.cached == 2
    assert decoded.image("b.png", 32)[0, 0].tolist() == [0, 0, 255]
    for array in cache_dir.glob("images/*/images-*.npy"):
        array.unlink()  # the cache's array removed by hand: nothing found, and no error
    assert decoded.image("b.png", 32) is None and decoded.image("c.png", 32) is None
    ingest(folder, config, cache_dir=cache_dir)  # decoded again
    assert decoded.image("c.png", 32)[0, 0].tolist() == [0, 128, 0]
    Image.new("RGB", (41, 30), "white").save(folder / "a.png")
    assert decoded.image("a.png", 32) is None
    (folder / "b.png").unlink()
    assert decoded.image("b.png", 32) is None
