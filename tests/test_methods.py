"""The quick alternatives to SCAN on a run's features: K-means (also the preview), Ward, DEC."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from semclust.core.clustering import classic
from semclust.core.clustering.methods import AUTO_CANDIDATES
from semclust.core.config import RunConfig
from semclust.core.metrics import evaluate
from semclust.core.runfolder.artefacts import RunPaths
from semclust.core.runfolder.results import load_run
from tests.conftest import MOBILENET_WEIGHTS


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=600, centers=6, n_features=16, cluster_std=1.5, random_state=3)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def blob_neighbours(blobs):
    from semclust.core.neighbours import mine_neighbours

    x = blobs[0]
    return mine_neighbours(x / np.linalg.norm(x, axis=1, keepdims=True), 10)


def test_student_t_matches_a_plain_reference():
    x = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    mu = np.array([[0.0, 0.0], [3.0, 0.0]], np.float32)
    q = classic.student_t(x, mu)
    # (1 + d^2)^-1, normalised: row 0 d^2 = 0, 9; row 1 d^2 = 25, 16
    ref = np.array([[1 / 1, 1 / 10], [1 / 26, 1 / 17]])
    assert np.allclose(q, ref / ref.sum(1, keepdims=True), atol=1e-6)


def test_kmeans_probabilities_follow_kmeans(blobs, blob_neighbours):
    x, y = blobs
    probs = classic.kmeans_probabilities(x, 6, blob_neighbours, seed=0)
    kmeans = KMeans(6, n_init=10, random_state=0).fit(x)
    labels = kmeans.labels_
    assert probs.shape == (600, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.array_equal(probs.argmax(1), labels)
    q = classic.student_t(x, kmeans.cluster_centers_)
    votes = np.stack([np.bincount(labels[row], minlength=6) / 10 for row in blob_neighbours])
    expected = 0.5 * np.eye(6)[labels] + 0.25 * q + 0.25 * votes  # half the cluster
    assert np.allclose(probs, expected, atol=1e-4)
    assert evaluate([str(v) for v in y], probs.argmax(1), 6)["acc"] > 0.95


def test_ward_probabilities_keep_wards_clusters(blobs, blob_neighbours):
    x, _ = blobs
    probs = classic.ward_probabilities(x, 6, blob_neighbours)
    labels = AgglomerativeClustering(6, linkage="ward").fit_predict(x)
    # the same clusters, maybe numbered otherwise
    assert adjusted_rand_score(probs.argmax(1), labels) == 1.0
    assert probs.max(1).min() >= 0.5 and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_ward_refuses_too_many_images(monkeypatch, blobs, blob_neighbours):
    monkeypatch.setattr(classic, "WARD_MAX_IMAGES", 100)
    with pytest.raises(ValueError, match="K-means or SCAN"):
        classic.ward_probabilities(blobs[0], 6, blob_neighbours)


def test_an_unknown_method_or_self_labelling_without_scan_is_refused():
    with pytest.raises(ValueError, match="Unknown method"):
        RunConfig(method="spectral").validate()
    with pytest.raises(ValueError, match="needs the scan or auto method"):
        RunConfig(method="kmeans").replace(**{"selflabel.enabled": True}).validate()


METHODS = ["kmeans", "ward", "umap_gmm", "ward_umap", "umap_gmm_merged", "dec"]


@pytest.mark.slow
def test_methods_in_a_run_reuse_the_representation(tmp_path, digits_folder):
    from semclust.core.run import run_pipeline

    base = RunConfig(clusters=10, seed=0).replace(
        **{"pretext.epochs": 3, "pretext.batch_size": 128, "neighbours.k": 10, "scan.epochs": 5}
    )
    out = tmp_path / "run"
    events = []
    run_pipeline(digits_folder, out, base, events.append, cache_dir=tmp_path / "cache")
    assert RunPaths(out).preview.is_file()
    order = [e.stage for e in events if e.kind == "started"]
    assert order.index("projection") < order.index("preview") < order.index("clustering")
    preview = load_run(out, preview=True)
    assert preview.preview and preview.probabilities.shape == (600, 10)
    # The default method, auto: SCAN's heads and the alternatives, one kept without labels.
    selection = json.loads(RunPaths(out).clustering_summary.read_text())["selection"]
    assert set(selection["candidates"]) == {"scan", *AUTO_CANDIDATES}
    best = max(selection["candidates"].items(), key=lambda kv: kv[1]["modularity"])[0]
    assert selection["chosen"] == best
    assert RunPaths(out).scan_weights.is_file()
    assert any("kept " + best in e.message for e in events if e.stage == "clustering")
    assert json.loads(RunPaths(out).metrics.read_text())["method_kept"] == best
    for method in METHODS:
        events = []
        run = run_pipeline(
            digits_folder, out, base.replace(method=method), events.append, cache_dir=tmp_path / "c"
        )
        skipped = {e.stage for e in events if e.kind == "skipped"}
        assert {"pretext", "neighbours", "projection", "preview"} <= skipped, method
        assert run.metrics["method"] == method
        assert run.metrics["clusters_used"] >= 8, method
        assert run.metrics["acc"] > 0.35, (method, run.metrics["acc"])  # chance: 0.1
        assert not RunPaths(out).scan_weights.exists()
    if "kmeans" in METHODS:
        kmeans = run_pipeline(digits_folder, out, base.replace(method="kmeans"))
        assert np.array_equal(kmeans.predicted, preview.predicted)
    # The preview's confidence reads the mined neighbours: mined again, it is made again.
    events = []
    fewer = base.replace(method="kmeans", **{"neighbours.k": 5})
    run_pipeline(digits_folder, out, fewer, events.append, cache_dir=tmp_path / "cache")
    ran = {e.stage for e in events if e.kind == "started"}
    assert {"neighbours", "preview", "clustering"} <= ran and "pretext" not in ran


@pytest.mark.slow
def test_clusters_auto_chooses_k_then_clusters_into_it(tmp_path, digits_folder):
    from semclust.core.run import run_pipeline

    config = RunConfig(clusters=4, auto_clusters=(4, 14), seed=0).replace(
        **{"pretext.epochs": 3, "pretext.batch_size": 128, "neighbours.k": 10, "scan.epochs": 5}
    )
    out = tmp_path / "run"
    run = run_pipeline(digits_folder, out, config, cache_dir=tmp_path / "cache")
    choice = run.k_choice
    assert choice is not None and choice["ks"] == list(range(4, 15))
    assert run.n_clusters == choice["best"] == run.config.clusters == run.metrics["clusters"]
    assert run.metrics["auto_clusters"] == {
        "range": [4, 14], "chosen": choice["best"], "picked": False,
    }  # fmt: skip
    assert choice["best"] == choice["extra"]["near_best"][0]
    events = []
    again = run_pipeline(digits_folder, out, config, events.append, cache_dir=tmp_path / "cache")
    assert "choose_k" in {e.stage for e in events if e.kind == "skipped"}
    assert again.n_clusters == choice["best"]

    # The user picks another k on the curve: the curve and everything before it are kept.
    other = 5 if choice["best"] != 5 else 6
    events.clear()
    picked = run_pipeline(digits_folder, out, config.replace(picked_clusters=other), events.append,
                          cache_dir=tmp_path / "cache")  # fmt: skip
    skipped = {e.stage for e in events if e.kind == "skipped"}
    assert {"pretext", "neighbours", "choose_k", "projection"} <= skipped
    assert "clustering" not in skipped
    assert picked.n_clusters == picked.probabilities.shape[1] == other
    assert picked.k_choice["best"] == choice["best"]  # the curve's own choice stays on record
    assert picked.metrics["auto_clusters"]["picked"] and picked.config.picked_clusters == other
    with pytest.raises(ValueError, match="range"):
        config.replace(picked_clusters=20).validate()
    with pytest.raises(ValueError, match="--clusters auto"):
        RunConfig(clusters=4, picked_clusters=5).validate()


def test_a_k_choice_cut_short_resumes_where_it_stopped(tmp_path, digits_folder, monkeypatch):
    """The scores of the ks tried are kept as they come; a rerun fits only the others, and chooses
    what an uninterrupted choice chooses."""
    import semclust.core.clustering.choose_k as choose_k
    from semclust.core.progress import Cancelled, CancelToken
    from semclust.core.run import run_pipeline

    config = RunConfig(clusters=4, auto_clusters=(2, 7), seed=0, method="kmeans").replace(
        **{"pretext.epochs": 0, "encoder.backbone": "mobilenet", "neighbours.k": 10}
    )
    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(f"needs the local MobileNet weights {MOBILENET_WEIGHTS}")
    config = config.replace(**{"encoder.weights": str(MOBILENET_WEIGHTS), "ingest.image_size": 64})
    fitted = []
    real = choose_k.gmm_probabilities
    monkeypatch.setattr(choose_k, "gmm_probabilities",
                        lambda r, nb, k, *a: fitted.append(k) or real(r, nb, k, *a))  # fmt: skip
    token = CancelToken()

    def cancel_after_three(p):
        if p.stage == "choose_k" and (p.partial or {}).get("k") == 4:
            token.cancel()

    out, cache = tmp_path / "run", tmp_path / "cache"
    with pytest.raises(Cancelled):
        run_pipeline(digits_folder, out, config, cancel_after_three, token, cache_dir=cache)
    assert fitted == [2, 3, 4] and RunPaths(out).choose_k_partial.is_file()
    fitted.clear()
    events = []
    run = run_pipeline(digits_folder, out, config, events.append, cache_dir=cache)
    assert fitted == [5, 6, 7]
    assert any("resuming: 3" in (e.message or "") for e in events if e.stage == "choose_k")
    assert not RunPaths(out).choose_k_partial.exists()
    fresh = run_pipeline(digits_folder, tmp_path / "fresh", config, cache_dir=cache)
    assert run.k_choice["best"] == fresh.k_choice["best"]
    np.testing.assert_allclose(run.k_choice["score"], fresh.k_choice["score"], atol=1e-9)
