"""Ingest: find the images of a folder, decode them to square RGB arrays, cache them.

The user's folder is only ever read. Files that cannot be used are skipped with a reason and the run goes
on. Decoded images are cached outside the folder (``~/.cache/semclust`` or ``$SEMCLUST_CACHE``), keyed by
relative path, file size, modification time and image size, so a second run does not decode again. The
cache is a memory-mapped array on disk (:mod:`semclust.core.image_store`): the images of a run are never
all in memory, whatever the size of the folder.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import os
import re
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError, features

from semclust.core.config import IngestConfig
from semclust.core.image_store import ImageStore, StoreInfo, StoreLookup, list_stores
from semclust.core.paths import images_cache_dir
from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Photo formats read when a decoder for them is installed (a phone's HEIC photos with the optional
#: ``pillow-heif``, AVIF with Pillow's own plugin), and what a file of them says when none is.
OPTIONAL_FORMATS = {
    ".heic": "a HEIC photo: install pillow-heif to read it (pip install pillow-heif)",
    ".heif": "a HEIF photo: install pillow-heif to read it (pip install pillow-heif)",
    ".avif": "an AVIF image: this Pillow cannot decode it (pip install -U pillow)",
}
#: Camera RAW files: listed as skipped, with the reason, never decoded.
RAW_EXTENSIONS = (".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2")
RAW_REASON = "a camera RAW file: not read (export it as JPEG or TIFF to use it)"
#: Every extension a run's image may have (whether or not this installation decodes it).
KNOWN_EXTENSIONS = (*IMAGE_EXTENSIONS, *OPTIONAL_FORMATS)
#: Files listed as skipped, with their reason, where no decoder reads them.
_SAID_EXTENSIONS = (*OPTIONAL_FORMATS, *RAW_EXTENSIONS)
#: 2: a memory-mapped store per folder and size (core.image_store); 3: JPEGs over the pixel limit
#: decoded at a reduced scale (a version 2 store remembers them as too large).
CACHE_VERSION = 3


class InputError(ValueError):
    """A problem with what the user gave us (path, folder content, settings), with a readable message."""


class ImageError(ValueError):
    """A file that cannot be used as an image; the message is the reason shown to the user."""


#: How the reason for a file over the pixel limit begins.
TOO_LARGE = "too large"


def over_the_pixel_limit(skipped: list[tuple[str, str]]) -> int:
    """How many of the skipped ``(path, reason)`` were left out for their size alone: a larger pixel
    limit (``--max-megapixels``) would let them in."""
    return sum(reason.startswith(TOO_LARGE) for _, reason in skipped)


@dataclass(frozen=True)
class FolderSurvey:
    """What a folder holds, found without decoding anything.

    Attributes:
        root: the folder, absolute.
        files: relative paths (POSIX style) of regular files with an image extension, sorted.
        class_names: sorted names of the class subfolders, empty when labels are not taken from them.
        skipped: (relative path, reason) of image-named entries that are not usable files (a broken
            link, a pipe, a name that is not UTF-8, a link leading out of the folder): never opened.
    """

    root: Path
    files: list[str]
    class_names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_labels(self) -> bool:
        return bool(self.class_names)

    def label_of(self, rel: str) -> str | None:
        parts = rel.split("/")
        return parts[0] if self.class_names and len(parts) > 1 else None


@dataclass
class IngestResult:
    """The decoded images of a folder, in a fixed order (sorted relative paths).

    Attributes:
        root: the image folder.
        paths: relative paths of the images kept.
        images: (N, S, S, 3) uint8 RGB, memory-mapped read-only from the cache; index it in batches.
        labels: true label per image, or ``None`` when unknown.
        skipped: (relative path, reason) of every file that was left out.
        cached: how many images came from the cache rather than being decoded.
    """

    root: Path
    paths: list[str]
    images: np.ndarray
    labels: list[str] | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0

    @property
    def is_grey(self) -> bool:
        """True when every image has equal R, G and B (colour augmentations are then skipped)."""
        sample = self.images[:: max(1, len(self.images) // 500)].astype(np.int16)
        return bool(
            np.all(sample[..., 0] == sample[..., 1]) and np.all(sample[..., 1] == sample[..., 2])
        )

    @property
    def class_names(self) -> list[str]:
        return sorted({lab for lab in self.labels if lab is not None}) if self.labels else []


@functools.cache
def readable_extensions() -> tuple[str, ...]:
    """The file extensions this installation decodes: :data:`IMAGE_EXTENSIONS`, and those of
    :data:`OPTIONAL_FORMATS` whose decoder is here (registering pillow-heif's with Pillow, once)."""
    found = list(IMAGE_EXTENSIONS)
    if features.check("avif"):
        found.append(".avif")
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        pillow_heif.register_heif_opener()
        found += [".heic", ".heif"]
    return tuple(found)


def survey_folder(folder: str | Path, labels_from_subfolders: bool = True) -> FolderSurvey:
    """Lists the image files under ``folder`` (recursively, hidden entries ignored).

    Class labels are taken from the first level of subfolders when there are at least two of them and
    every image lies in one.

    Raises:
        InputError: the path does not exist or is not a folder.
    """
    root = require_folder(folder)
    readable = readable_extensions()
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            lower = name.lower()
            if lower.endswith(readable):
                path = Path(dirpath, name)
                rel = path.relative_to(root).as_posix()
                problem = _not_a_usable_file(path, root)
                if problem:
                    skipped.append((_printable(rel), problem))
                else:
                    files.append(rel)
            elif lower.endswith(_SAID_EXTENSIONS):
                rel = _printable(Path(dirpath, name).relative_to(root).as_posix())
                skipped.append((rel, OPTIONAL_FORMATS.get(Path(lower).suffix, RAW_REASON)))
    files.sort()
    skipped.sort()
    classes: list[str] = []
    if labels_from_subfolders and files and all("/" in f for f in files):
        classes = sorted({f.split("/", 1)[0] for f in files})
        if len(classes) < 2:
            classes = []
    return FolderSurvey(root=root, files=files, class_names=classes, skipped=skipped)


def _not_a_usable_file(path: Path, root: Path) -> str | None:
    """Why ``path`` is not read (it is never opened to find out), or None for a regular file."""
    try:
        str(path.relative_to(root)).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 text: rename it to use it"
    try:
        st = path.stat()  # follows a link
    except OSError as exc:
        if path.is_symlink():
            return f"a broken link ({exc.strerror or 'cannot be followed'})"
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, device or folder): never opened"
    if path.is_symlink() and not _resolves_inside(path, root):
        return "a link leading outside the image folder"
    return None


def _resolves_inside(path: Path, root: Path) -> bool:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return target == root or root in target.parents


def _printable(rel: str) -> str:
    """``rel`` with bytes that are not UTF-8 shown as ``\\xNN`` (for skipped.csv and messages)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def typical_side(survey: FolderSurvey, sample: int = 64) -> int | None:
    """The median shorter side of an even sample of the folder's images, read from their headers only.

    ``None`` when no sampled file could be opened.
    """
    return typical_look(survey, sample)[0]


#: PIL modes of single-channel images.
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def typical_look(survey: FolderSurvey, sample: int = 64) -> tuple[int | None, bool]:
    """The median shorter side of an even sample of the folder's images, and whether most of them
    are single-channel (grey), both read from their headers only.

    ``(None, False)`` when no sampled file could be opened.
    """
    files = survey.files[:: max(1, len(survey.files) // sample)][:sample]
    sides, grey = [], 0
    for rel in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with _open(survey.root / rel) as img:
                    sides.append(min(img.size))
                    grey += img.mode in GREY_MODES
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue  # unreadable, or far over Pillow's pixel limit: the sample's others tell
    if not sides:
        return None, False
    return int(np.median(sides)), grey > len(sides) / 2


def require_folder(folder: str | Path) -> Path:
    """The folder as an absolute path.

    Raises:
        InputError: it does not exist or is not a folder.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise InputError(f"The folder {root} does not exist.")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder.")
    return root.resolve()


def load_image(
    path: str | Path, size: int, max_pixels: int = IngestConfig.max_image_pixels
) -> np.ndarray:
    """Decodes one image file into a (size, size, 3) uint8 RGB array.

    EXIF orientation is applied; GIFs give their first frame; every mode (L, LA, P, RGB, RGBA, CMYK,
    16-bit, float) becomes 8-bit RGB, transparency composited on white. The image is scaled so that its
    shorter side is ``size`` and centre-cropped. A file that would decode to more than ``max_pixels``
    pixels is refused (a JPEG decodes at down to 1/8 of its size); a limit above Pillow's own
    decompression-bomb guard lets larger files in, decoded one at a time.

    Raises:
        ImageError: with the reason (empty, not an image, truncated, too large, ...).
    """
    path = Path(path)
    readable_extensions()  # the optional decoders registered (a run opened without a survey)
    try:
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        try:
            return _decode(path, size, max_pixels)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            with _pillow_limit(max_pixels):  # Pillow's guard refused it: again, at our limit
                return _decode(path, size, max_pixels)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image, or a format Pillow cannot read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(_too_large(str(exc), max_pixels)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = "truncated file"
        raise ImageError(f"cannot be decoded: {reason}") from None


def _decode(path: Path, size: int, max_pixels: int) -> np.ndarray:
    """:func:`load_image`'s decoding, with Pillow's decompression-bomb guard as it is set."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _open(path) as img:
            w, h = img.size
            img.draft("RGB", (size, size))  # JPEG: decode at 1/2 to 1/8 of its size, faster
            decoded = img.width * img.height  # w * h, but for a JPEG draft reduced
            if decoded > max_pixels:
                raise ImageError(f"{TOO_LARGE} ({w}x{h} pixels, limit {max_pixels:,})")
            if getattr(img, "n_frames", 1) > 1:  # after the check: a GIF's count reads it all
                img.seek(0)  # an MPO photo is at frame 0 already: its draft holds
            big = decoded > BIG_IMAGE_PIXELS
            with _BIG_DECODES if big else contextlib.nullcontext():
                img = _reduced(img, size)  # before any full-size copy is made
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
            rgb = ImageOps.fit(rgb, (size, size), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)


@contextlib.contextmanager
def _pillow_limit(max_pixels: int):
    """Pillow's decompression-bomb guard at ``max_pixels`` while the block runs.

    The guard is one process-wide setting, read when a file is opened and again while some formats
    (TIFF) decode, so the block holds it for the whole decoding. The lock keeps two such blocks from
    mixing. Another thread's decoding meanwhile meets the changed guard: it still applies its own
    check on the pixels it will decode, and where Pillow refuses it, it decodes again in this block.
    """
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(path: Path) -> Image.Image:
    """``Image.open``, and for a JPEG that Pillow's decompression-bomb guard refuses at its full size,
    Pillow's JPEG reader itself: a JPEG decodes at 1/2 to 1/8 of its size (``draft``), so the guard
    that matters is :func:`load_image`'s on the pixels it will decode. A phone's 200-megapixel photo
    (16,320x12,240) decodes as 2,040x1,530 for a 224 px run."""
    try:
        return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        with open(path, "rb") as f:
            if f.read(3) != b"\xff\xd8\xff":  # not a JPEG
                raise
        return JpegImagePlugin.JpegImageFile(path)


def _too_large(pillow_message: str, max_pixels: int) -> str:
    """The reason for a file that Pillow's decompression-bomb guard refused when opening it, with
    the image's size when Pillow's message gives it (before ``load_image`` can) and the limit."""
    found = re.search(r"\((\d+) pixels\) exceeds limit", pillow_message)
    if found is None:
        return f"{TOO_LARGE} (limit {max_pixels:,} pixels)"
    return f"{TOO_LARGE} ({int(found[1]):,} pixels, limit {max_pixels:,})"


#: Images above this many pixels are decoded one at a time, whatever the number of decode threads.
BIG_IMAGE_PIXELS = 16_000_000
_BIG_DECODES = threading.Semaphore(1)
_PILLOW_LIMIT = threading.Lock()
#: The largest ``image_size``: a 1024 px image is 3 MB decoded; the cache holds one per file.
MAX_IMAGE_SIZE = 1024


def _reduced(img: Image.Image, size: int) -> Image.Image:
    """``img`` decoded and shrunk by an integer factor that keeps its shorter side at least twice
    ``size`` (box filter, no quality lost before the final resize): what follows works on a small image.
    """
    factor = min(img.size) // (2 * size)
    if factor < 2:
        return img
    img.load()
    if img.mode == "P":  # reduce cannot average palette indices
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    try:
        return img.reduce(factor)
    except (ValueError, NotImplementedError):  # a mode reduce does not support
        return img


def check_image_size(size: int) -> None:
    """Refuses an image size whose decoded images could not fit in memory.

    Raises:
        InputError: the size is below 1 or above :data:`MAX_IMAGE_SIZE`.
    """
    if not 1 <= int(size) <= MAX_IMAGE_SIZE:
        raise InputError(
            f"An image size of {size} pixels is out of range: choose 32 to {MAX_IMAGE_SIZE} "
            f"({MAX_IMAGE_SIZE} px images take {MAX_IMAGE_SIZE**2 * 3 // 2**20} MB each)."
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert(
            "RGB"
        )
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.nan_to_num(arr).astype(np.uint8)).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def read_labels_csv(path: str | Path) -> dict[str, str]:
    """Reads a ``path,label`` CSV (header optional) into {relative path: label}.

    Raises:
        InputError: the file is missing or has no usable rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The labels file {path} does not exist.")
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) >= 2]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    if not rows:
        raise InputError(f"The labels file {path} has no 'path,label' rows.")
    return {Path(r[0].strip()).as_posix(): r[1].strip() for r in rows}


def ingest(
    folder: str | Path,
    config: IngestConfig = IngestConfig(),
    cache_dir: str | Path | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    workers: int = 4,
) -> IngestResult:
    """Decodes every image of ``folder``, reusing the cache; see the module docstring.

    Raises:
        InputError: missing folder, or no image file could be used.
    """
    check_image_size(config.image_size)
    survey = survey_folder(folder, config.labels_from_subfolders)
    if not survey.files:
        unusable = (
            f"; {len(survey.skipped)} unusable, e.g. {survey.skipped[0][0]}: "
            + survey.skipped[0][1]
            if survey.skipped
            else ""
        )
        raise InputError(
            f"No images found in {survey.root} (looked for {', '.join(readable_extensions())}"
            f"{unusable})."
        )
    store = ImageStore(
        _store_folder(cache_dir, survey.root, config),
        config.image_size,
        source=(survey.root, config.max_image_pixels),
    )
    keys, gone = [], []
    for rel in survey.files:
        try:
            keys.append(_file_key(survey.root, rel))
        except OSError as exc:  # removed or changed since the survey
            keys.append(f"{rel}|gone")
            gone.append((rel, f"cannot be read ({exc.strerror or exc})"))
    cached_rows = store.rows
    store.errors.update({f"{rel}|gone": reason for rel, reason in gone})
    todo = [i for i, key in enumerate(keys) if key not in cached_rows and key not in store.errors]
    total = len(survey.files)
    progress(Progress("ingest", "progress", total - len(todo), total, message="decoding images"))

    def decode_all(positions: list[int]):
        def decode(i: int) -> tuple[int, np.ndarray | None, str]:
            try:
                path = survey.root / survey.files[i]
                return i, load_image(path, config.image_size, config.max_image_pixels), ""
            except ImageError as exc:
                return i, None, str(exc)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(positions), 256):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                yield from pool.map(decode, positions[start : start + 256])
                done = total - len(todo) + min(start + 256, len(todo))
                progress(Progress("ingest", "progress", done, total, message="decoding images"))
        if cancel is not None:
            cancel.raise_if_cancelled()

    usable = [k for k in keys if k not in store.errors]
    if todo or not store.holds_exactly(usable):
        store.write(keys, decode_all, todo)

    labels_map = read_labels_csv(config.labels_csv) if config.labels_csv else None
    kept = set(store.keys)
    paths, labels, skipped = [], [], list(survey.skipped)
    for rel, key in zip(survey.files, keys, strict=True):
        if key not in kept:
            skipped.append((rel, store.errors.get(key, "unreadable")))
            continue
        paths.append(rel)
        labels.append(labels_map.get(rel) if labels_map is not None else survey.label_of(rel))
    skipped.sort()
    if not paths:
        raise InputError(f"None of the {total} image files in {survey.root} could be read.")
    has_labels = any(lab is not None for lab in labels)
    return IngestResult(
        root=survey.root,
        paths=paths,
        images=store.images,
        labels=labels if has_labels else None,
        skipped=skipped,
        cached=total - len(todo),
    )


class DecodedFiles:
    """A folder's images as the ingest decoded them into the cache, read a file at a time.

    A run's thumbnails come from here rather than from decoding each file again. A file that changed
    since (size or modification time) is not found, nor an image larger than the cache holds.

    Args:
        root: the image folder, as the ingest surveyed it.
        config: the ingest's settings (the image size and pixel limit pick the cache).
        cache_dir: semclust's cache root (default: the user's).
    """

    def __init__(
        self, root: Path, config: IngestConfig, cache_dir: str | Path | None = None
    ) -> None:
        self.root = Path(root)
        self.size = config.image_size
        self._store = StoreLookup(_store_folder(cache_dir, self.root, config), self.size)

    def image(self, rel: str, size: int) -> np.ndarray | None:
        """The file ``rel`` (relative to the root) as a ``size`` px square, or ``None``."""
        if size > self.size:
            return None
        try:
            image = self._store.get(_file_key(self.root, rel))
        except OSError:  # the file is gone
            return None
        if image is None or size == self.size:
            return image
        return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def _file_key(root: Path, rel: str) -> str:
    st = (root / rel).stat()
    return f"{rel}|{st.st_size}|{st.st_mtime_ns}"


def _store_folder(cache_dir: str | Path | None, root: Path, config: IngestConfig) -> Path:
    tag = hashlib.sha256(
        f"{root}|{config.image_size}|{config.max_image_pixels}".encode()
    ).hexdigest()[:20]  # a store's name: image_store.STORE_NAME
    return images_cache_dir(cache_dir) / f"v{CACHE_VERSION}_{tag}_{config.image_size}px"


def cache_stores(cache_dir: str | Path | None = None) -> list[StoreInfo]:
    """The decoded-image stores of semclust's cache (default: the user's), most recently used first;
    those of another :data:`CACHE_VERSION` are stale."""
    return list_stores(images_cache_dir(cache_dir), CACHE_VERSION)


def describe_store(store: StoreInfo) -> tuple[str, str]:
    """What the cache's list says of a store: the image folder it caches (with its pixel limit when
    not the default), and a note: why no run will read it again, or that it is being written."""
    folder = str(store.source) if store.source else "(folder not recorded: an older store)"
    if store.pixel_limit not in (None, IngestConfig().max_image_pixels):
        folder += f" (pixel limit {store.pixel_limit / 1e6:.0f} MP)"
    notes = [store.stale or "", "being written" if store.in_use else ""]
    return folder, "; ".join(n for n in notes if n)
