"""The shareable HTML report of a run: its content, its safety (escaping, the user's images), the CLI."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import shutil
import time
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semclust.cli import main
from semclust.core.config import RunConfig
from semclust.core.metrics import evaluate
from semclust.core.runfolder.artefacts import RunPaths, save_array, write_csv, write_json
from semclust.core.runfolder.report import report_html, write_report
from semclust.core.runfolder.report_pictures import map_svg, thumbnail
from semclust.core.runfolder.results import RunData, load_run
from tests.conftest import tree_digest


def build_run(folder: Path, out: Path, k: int = 10) -> RunData:
    """A finished run folder with the pipeline's layout, computed in well under a second from the
    real digits (K-means on their pixels; the map is their first two principal components)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    x = np.stack(
        [np.asarray(Image.open(folder / f).convert("L"), np.float32).ravel() / 255 for f in files]
    )
    km = KMeans(k, n_init=1, random_state=0).fit(x)
    logits = -2.0 * km.transform(x)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    pred, conf = prob.argmax(1), prob.max(1)
    labels = [f.split("/")[0] for f in files]
    paths = RunPaths(out)
    config = RunConfig(clusters=k, seed=3).replace(**{"encoder.backbone": "mobilenet",
                                                      "encoder.weights": "pretrained",
                                                      "encoder.layer": "mid"})  # fmt: skip
    write_json(paths.config, {**config.to_dict(), "_meta": {"image_folder": str(folder),
               "created": "2026-12-04T00:00:00+00:00", "versions": {"python": "3.x"}}})  # fmt: skip
    write_json(paths.images, {"root": str(folder), "paths": files, "labels": labels})
    write_csv(paths.skipped, ("path", "reason"), [("0/broken.png", "truncated file")])
    save_array(paths.probabilities, prob.astype(np.float32))
    save_array(paths.umap, PCA(2, random_state=0).fit_transform(x).astype(np.float32))
    write_json(paths.prototypes, {str(c): [int(i) for i in np.flatnonzero(pred == c)
               [np.argsort(-conf[pred == c])][:4]] for c in range(k)})  # fmt: skip
    write_json(paths.clustering_summary, {"selection": {"chosen": "umap_gmm"}})
    stages = {"ingest": 1.5, "pretext": 12.25, "neighbours": 0.5, "clustering": 3.0, "report": 0.2}
    write_json(paths.stages, {s: {"fingerprint": "x", "seconds": v} for s, v in stages.items()})
    write_json(paths.metrics, {"clusters": k, "method_kept": "umap_gmm", "neighbour_purity": 0.9,
                               **evaluate(labels, pred, k)})  # fmt: skip
    return load_run(out)


@pytest.fixture(scope="module")
def base_run(digits_folder, tmp_path_factory) -> Path:
    """One finished run folder on the session's digits; tests copy it before changing it."""
    return build_run(digits_folder, tmp_path_factory.mktemp("report") / "run").paths.root


@pytest.fixture
def run_dir(base_run, tmp_path) -> Path:
    return Path(shutil.copytree(base_run, tmp_path / "run"))


class Page(HTMLParser):
    """What a test reads from a report: the cluster rows and their cells, every image, every link."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.images: list[dict] = []
        self.tags: list[str] = []
        self.links: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and a.get("class") == "cluster-row":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        if "href" in a or "src" in a:
            self.links.append(a.get("href") or a.get("src"))

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def decode(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64")
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def test_the_report_shows_every_cluster_its_images_and_the_run(run_dir, digits_folder, tmp_path):
    before = tree_digest(digits_folder)
    run = load_run(run_dir)
    t0 = time.perf_counter()
    out = write_report(run, tmp_path / "card.html", per_cluster=5)
    assert time.perf_counter() - t0 < 10
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    counts = np.bincount(run.assignment, minlength=run.n_clusters)
    assert len(page.rows) == run.n_clusters == 10
    assert [int(r[1]) for r in page.rows] == list(range(10))
    assert [int(r[4].replace(",", "")) for r in page.rows] == counts.tolist()
    for row, c in zip(page.rows, range(10)):  # majority label and purity, as the metrics compute
        members = [run.true_labels[i] for i in np.flatnonzero(run.assignment == c)]
        values, n = np.unique(members, return_counts=True)
        assert row[6] == values[n.argmax()] and float(row[7]) == pytest.approx(
            n.max() / len(members), abs=1e-3
        )
    assert len(page.images) == 5 * 10
    for img in page.images:
        assert decode(img["src"]).size == (64, 64)
    assert all(
        link.startswith(("data:image/", "#cluster-")) for link in page.links
    )  # self-contained
    assert "script" not in page.tags and page.tags.count("svg") == 1  # the map; no k curve here
    assert page.tags.count("circle") == len(run.image_paths)
    acc = evaluate(run.true_labels, run.assignment, 10)["acc"]
    for expected in (f"{acc:.3f}", "mobilenet", "umap_gmm", "12.2 s", "32 px", "3.x",
                     "0/broken.png", "truncated file", str(digits_folder)):  # fmt: skip
        assert expected in text, expected
    assert tree_digest(digits_folder) == before  # the user's images only read


def test_names_paths_and_labels_are_escaped(run_dir, tmp_path):
    run = load_run(run_dir)
    run.corrections.rename(2, "<script>alert(1)</script> & co")
    html = report_html(run, per_cluster=1)
    page = Page(html)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "script" not in page.tags
    assert page.rows[2][2] == "<script>alert(1)</script> & co"  # the name, read back as text
    assert page.rows[2][3] == "yours"


def test_suggested_names_show_their_confidence(run_dir):
    write_json(RunPaths(run_dir).names, {"0": {"name": "zero", "confidence": 0.84}})
    page = Page(report_html(load_run(run_dir), per_cluster=0))
    assert page.rows[0][2:4] == ["zero", "84% (suggested)"]
    assert page.rows[1][2:4] == ["cluster 1", "–"]  # no name: its number, no confidence
    assert not page.images


def test_a_missing_or_corrupt_image_gets_a_grey_square(digits_folder, tmp_path):
    images = Path(shutil.copytree(digits_folder, tmp_path / "images"))
    run = build_run(images, tmp_path / "run")
    first, second = run.prototypes[0][:2]
    (images / run.image_paths[first]).unlink()
    (images / run.image_paths[second]).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    page = Page(report_html(run, per_cluster=2))
    grey = [decode(img["src"]).convert("RGB") for img in page.images[:2]]
    assert all(set(g.getdata()) == {(200, 200, 200)} for g in grey)
    assert run.image_paths[first] in page.images[0]["title"]


def test_the_pictures_read_the_images_under_the_runs_pixel_limit(run_dir):
    """A run's own pixel limit (``--max-megapixels``) decides which images its report can show."""
    run = load_run(run_dir)
    assert thumbnail(run, 0)[1] == ""
    tight = dataclasses.replace(run, config=run.config.replace(**{"ingest.max_image_pixels": 10}))
    assert thumbnail(tight, 0)[1].startswith("too large")


def test_a_runs_pictures_come_from_its_decoded_images_when_the_cache_holds_them(
    digits_folder, tmp_path, monkeypatch
):
    """The run's images in semclust's cache are read, not decoded again; once a file changed, it is."""
    from semclust.core.images import ingest
    from semclust.core.runfolder import results

    images = Path(shutil.copytree(digits_folder, tmp_path / "images"))
    run = build_run(images, tmp_path / "run")
    monkeypatch.setenv("SEMCLUST_CACHE", str(tmp_path / "cache"))
    decoded = ingest(images, run.config.ingest)
    row = decoded.paths.index(run.image_paths[7])
    decodes = []
    monkeypatch.setattr(results, "load_image", lambda *a: decodes.append(a) or np.zeros((8, 8, 3)))
    assert np.array_equal(run.read_image(7, run.config.ingest.image_size), decoded.images[row])
    assert run.read_image(7, 16).shape == (16, 16, 3) and decodes == []
    (images / run.image_paths[7]).write_bytes((images / run.image_paths[8]).read_bytes() + b"\0")
    assert run.read_image(7, 16).shape == (8, 8, 3) and len(decodes) == 1


def test_a_run_that_chose_its_k_shows_the_curve(run_dir):
    paths = RunPaths(run_dir)
    config = json.loads(paths.config.read_text(encoding="utf-8"))
    write_json(paths.config, {**config, "auto_clusters": [2, 12], "picked_clusters": 10})
    ks = list(range(2, 13))
    write_json(paths.choose_k, {"ks": ks, "best": 8, "score": [-abs(k - 8) for k in ks],
                                "curves": {"modularity": [0.1 * k for k in ks], "flat": [1] * 11}})  # fmt: skip
    html = report_html(load_run(run_dir), per_cluster=0)
    page = Page(html)
    assert page.tags.count("svg") == 2 and page.tags.count("polyline") == 2  # score, modularity
    assert (
        "k = 8 chosen" in html
        and "k = 10 in use" in html
        and "picked by the user among 2-12" in html
    )


def test_cli_writes_the_report_into_the_run_folder_by_default(run_dir, capsys):
    assert main(["report", str(run_dir), "--per-cluster", "1"]) == 0
    written = run_dir / "report.html"
    assert f"report: {written}" in capsys.readouterr().out
    assert len(Page(written.read_text(encoding="utf-8")).images) == 10
    assert not list(run_dir.glob(".report.html.*"))  # no temporary file left


@pytest.mark.parametrize(
    "args,message",
    [
        (lambda run, imgs: ["report", str(run), "--out", str(imgs / "0" / "r.html")],
         "outside the image folder"),
        (lambda run, imgs: ["report", str(run), "--out", str(imgs)], "outside the image folder"),
        (lambda run, imgs: ["report", str(run.parent)], "not a run folder"),
        (lambda run, imgs: ["report", str(run), "--per-cluster", "-1"], "0 to 100"),
    ],
)  # fmt: skip
def test_cli_refuses_with_a_message(run_dir, digits_folder, capsys, args, message):
    before = tree_digest(digits_folder)
    assert main(args(run_dir, digits_folder)) == 2
    err = capsys.readouterr().err
    assert err.startswith("semclust: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert tree_digest(digits_folder) == before
    assert not (run_dir / "report.html").exists()


def test_clusters_made_or_emptied_in_the_app_have_their_rows(run_dir):
    run = load_run(run_dir)
    run.corrections.merge(9, 8, run.assignment)  # cluster 9 emptied
    made = run.corrections.new_cluster([0, 1, 2, 3, 4], run.n_clusters)  # cluster 10
    page = Page(report_html(run, per_cluster=3))
    counts = np.bincount(run.assignment, minlength=run.n_clusters)
    assert made == 10 and counts[9] == 0 and counts[10] == 5
    assert [int(r[4]) for r in page.rows] == counts.tolist()
    assert len(page.images) == 3 * 10  # none for the emptied cluster


def test_a_run_without_true_labels_reports_no_accuracy(run_dir):
    paths = RunPaths(run_dir)
    images = json.loads(paths.images.read_text(encoding="utf-8"))
    write_json(paths.images, {**images, "labels": None})
    html = report_html(load_run(run_dir), per_cluster=0)
    page = Page(html)
    assert all(len(r) == 6 for r in page.rows)  # no majority label, no purity
    assert "no accuracy to report" in html and "ACC" not in html


def test_a_large_map_is_drawn_from_a_fixed_sample():
    rng = np.random.default_rng(1)
    points, clusters = rng.normal(size=(20_000, 2)), rng.integers(0, 3, 20_000)
    svg, drawn = map_svg(points, clusters, 3, max_points=5000)
    assert drawn == 5000 and svg.count("<circle") == 5000
    assert map_svg(points, clusters, 3, max_points=5000)[0] == svg


def test_seconds_of_an_older_run_read_with_the_stage_names_of_now(run_dir):
    paths = RunPaths(run_dir)
    paths.stages.unlink()
    metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    write_json(paths.metrics, {**metrics, "stage_seconds": {"scan": 2.0, "pretext": 1.0}})
    html = report_html(load_run(run_dir), per_cluster=0)
    assert '<th>clustering</th><td class="n">2.0 s</td>' in html and "<th>scan</th>" not in html
    assert "<b>3.0 s</b>" in html


def test_the_report_says_which_clusters_may_be_one_group(run_dir):
    run = load_run(run_dir)
    assert run.look_alike() is None  # no mined neighbours in this run folder: nothing to say
    prob = np.array(run.probabilities)
    run.neighbours = np.argsort(-(prob @ prob.T), axis=1)[:, 1:11]  # images of one K-means centre
    pred = prob.argmax(1)
    sizes = np.bincount(pred, minlength=prob.shape[1])
    big, small = int(sizes.argmax()), int(sizes.argmin())
    group = np.flatnonzero(pred == big)  # the model cuts its largest group in two
    for rows, column in ((np.flatnonzero(pred == small), big), (group[: len(group) // 2], small)):
        prob[rows] = 0.0
        prob[rows, column] = 1.0
    run.probabilities = prob
    look = run.look_alike()
    assert look is not None and {look.into, look.merged} == {big, small}
    assert escape(look.describe()) in report_html(run, per_cluster=0)
    run.corrections.keep_apart(small, big)  # the user said they are not: not said again
    again = run.look_alike()
    assert again is None or {again.into, again.merged} != {big, small}
    assert ("look-alike" in report_html(run, per_cluster=0)) == (again is not None)


def test_the_report_says_when_another_method_scored_nearly_as_well(run_dir):
    paths = RunPaths(run_dir)
    metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    assert "scored nearly as well" not in report_html(load_run(run_dir), per_cluster=0)
    close = {"method": "ward_umap", "moved": 0.24}
    write_json(paths.metrics, {**metrics, "method_kept": "kmeans", "close_alternative": close})
    html = report_html(load_run(run_dir), per_cluster=0)
    said = "ward_umap scores nearly as well as kmeans, whose clusters were kept, and puts 24%"
    assert "<th>scored nearly as well</th>" in html and said in html
    config = json.loads(paths.config.read_text(encoding="utf-8"))
    write_json(paths.config, {**config, "method": "kmeans"})  # one method asked: no choice made
    assert load_run(run_dir).close_alternative is None


@pytest.mark.parametrize(
    "record",
    [{"method": 3, "moved": 0.2}, {"method": "ward", "moved": "0.2"}, {"method": "ward", "moved": 7},
     {"method": "ward", "moved": True}, {"method": "ward"}, ["ward", 0.2], "ward",
     {"method": "<b>ward</b>", "moved": 0.2}, {"method": ["ward"], "moved": 0.2}],
)  # fmt: skip
def test_a_close_call_record_that_is_not_one_is_ignored(run_dir, record):
    paths = RunPaths(run_dir)
    metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    write_json(paths.metrics, {**metrics, "method_kept": "kmeans", "close_alternative": record})
    run = load_run(run_dir)
    assert run.close_alternative is None
    assert "scored nearly as well" not in report_html(run, per_cluster=0)
    good = {"method": "ward", "moved": 0.2}
    for kept in (["kmeans"], "<b>kmeans</b>"):  # the method kept must be one too
        write_json(paths.metrics, {**metrics, "method_kept": kept, "close_alternative": good})
        assert load_run(run_dir).close_alternative is None
    write_json(paths.metrics, {**metrics, "method_kept": "kmeans", "close_alternative": good})
    assert load_run(run_dir).close_alternative == ("ward", 0.2, "kmeans")
