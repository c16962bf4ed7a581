"""Deep Embedded Clustering: the soft assignment and target against hand-computed values, the clustering
layer's save/load round trip, and training end to end on separable blobs."""

import keras
import numpy as np
import pytest

from semclust.core.clustering.dec import (
    ClusteringLayer,
    DECConfig,
    normalise_features,
    soft_assignment,
    target_distribution,
    train_dec,
)
from semclust.core.metrics import evaluate
from semclust.core.progress import Cancelled, CancelToken

# Two embeddings, two centres. z0 sits on centre 0 and 2 away from centre 1: unnormalised q = 1, 1/(1+4);
# z1 is 1 away from both: q = 1/2, 1/2.
Z = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
CENTRES = np.array([[0.0, 0.0], [2.0, 0.0]], dtype=np.float32)
Q = np.array([[5 / 6, 1 / 6], [1 / 2, 1 / 2]])
# f = column sums = (4/3, 2/3); q^2 / f = (25/48, 2/48) and (3/16, 6/16); normalised per row:
P = np.array([[25 / 27, 2 / 27], [1 / 3, 2 / 3]])

# A small network so that the end-to-end tests take seconds.
SMALL = DECConfig(
    hidden=(64, 64),
    embedding_dim=4,
    pretrain_epochs=15,
    pretrain_batch_size=64,
    kmeans_restarts=5,
    batch_size=64,
    update_interval=20,
    max_iterations=200,
)


def _reference_q(z: np.ndarray, centres: np.ndarray, alpha: float) -> np.ndarray:
    d2 = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    q = (1 + d2 / alpha) ** (-(alpha + 1) / 2)
    return q / q.sum(axis=1, keepdims=True)


def _blobs(n_per: int = 80, k: int = 4, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 2.5
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def test_soft_assignment_matches_hand_computed_values():
    q = np.asarray(soft_assignment(Z, CENTRES, alpha=1.0))
    np.testing.assert_allclose(q, Q, rtol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_soft_assignment_matches_numpy_reference(alpha):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((7, 3)).astype(np.float32)
    centres = rng.standard_normal((4, 3)).astype(np.float32)
    q = np.asarray(soft_assignment(z, centres, alpha))
    np.testing.assert_allclose(q, _reference_q(z, centres, alpha), rtol=1e-5)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-6)


def test_target_distribution_matches_hand_computed_values():
    p = target_distribution(Q)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, P, rtol=1e-6)
    # Sharper than q where a row was confident; the frequent cluster 0 is discounted where it was not.
    assert p[0, 0] > Q[0, 0] and p[1, 1] > Q[1, 1]


def test_clustering_layer_round_trips_through_keras_file(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, ClusteringLayer(2, alpha=1.0, name="clustering")(inputs))
    model.get_layer("clustering").set_weights([CENTRES])
    np.testing.assert_allclose(model.predict_on_batch(Z), Q, rtol=1e-6)
    path = tmp_path / "dec.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    layer = again.get_layer("clustering")
    assert isinstance(layer, ClusteringLayer)
    assert layer.get_config()["n_clusters"] == 2 and layer.get_config()["alpha"] == 1.0
    np.testing.assert_allclose(again.predict_on_batch(Z), Q, rtol=1e-6)


def test_normalisations():
    x = np.random.default_rng(0).uniform(0, 5, (50, 8)).astype(np.float32)
    paper = normalise_features(x, "paper")
    assert np.mean(np.sum(paper**2, axis=1) / 8) == pytest.approx(1.0, rel=1e-5)
    std = normalise_features(x, "standardise")
    np.testing.assert_allclose(std.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std.std(axis=0), 1.0, rtol=1e-4)
    with pytest.raises(ValueError):
        DECConfig(normalise="l2")


def test_dec_separates_blobs_and_reports_progress():
    x, labels = _blobs()
    events = []
    result = train_dec(x, 4, SMALL, seed=0, progress=events.append)
    assert result.probabilities.shape == (len(x), 4) and result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.embedding.shape == (len(x), SMALL.embedding_dim)
    assert 0 < result.iterations <= SMALL.max_iterations
    assert result.changed < SMALL.tol or result.iterations == SMALL.max_iterations
    assert evaluate(labels, result.probabilities.argmax(axis=1))["acc"] > 0.95
    assert {e.stage for e in events} == {"dec"} and {e.kind for e in events} == {"progress"}
    assert [e.step for e in events] == sorted(e.step for e in events)
    assert sum(events[-1].partial["cluster_sizes"]) == len(x)
    assert len(result.losses["reconstruction"]) == SMALL.pretrain_epochs
    # The model maps (normalised) features to the returned probabilities.
    q = result.model.predict_on_batch(normalise_features(x, SMALL.normalise))
    np.testing.assert_allclose(q, result.probabilities, atol=1e-5)


@pytest.mark.slow  # three trainings: about 20 s on an idle CPU
def test_dec_is_deterministic_for_a_seed():
    x, _ = _blobs(n_per=25, seed=3)
    config = DECConfig(**{**SMALL.__dict__, "pretrain_epochs": 2, "max_iterations": 20})
    a = train_dec(x, 4, config, seed=5)
    b = train_dec(x, 4, config, seed=5)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
    assert a.iterations == b.iterations
    c = train_dec(x, 4, config, seed=6)
    assert not np.allclose(a.embedding, c.embedding, atol=1e-3)


def test_dec_cancelled_before_it_starts():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        train_dec(_blobs(n_per=10)[0], 4, SMALL, cancel=token)


@pytest.mark.parametrize("when", [1, 3])
def test_dec_cancels(when):
    """Cancelled during pretraining (after the first epoch's event) and during clustering (after the
    first target refresh)."""
    x, _ = _blobs(n_per=20)
    token = CancelToken()
    seen = []

    def progress(event):
        seen.append(event)
        if len(seen) == when:
            token.cancel()

    config = DECConfig(**{**SMALL.__dict__, "pretrain_epochs": 2, "update_interval": 5})
    with pytest.raises(Cancelled):
        train_dec(x, 4, config, seed=0, progress=progress, cancel=token)
    assert len(seen) == when  # stopped within one batch of the event that cancelled
    assert ("clustering" in seen[-1].message) == (when == 3)


def test_too_few_points():
    with pytest.raises(ValueError, match="clusters"):
        train_dec(np.zeros((3, 4), np.float32), 5, SMALL)


def test_benchmark_row_and_report(tmp_path):
    """The ``mobilenet+dec`` benchmark row: DEC on given features, recorded and shown in the report."""
    from bench.baselines import dec_summary, mobilenet_dec
    from bench.metrics import evaluate as bench_evaluate
    from bench.quality import METHODS, _record
    from bench.report import write_report

    assert "mobilenet+dec" in METHODS
    x, labels = _blobs(n_per=20)
    config = DECConfig(**{**SMALL.__dict__, "pretrain_epochs": 2, "max_iterations": 20})
    row, result = mobilenet_dec(x, 4, seed=0, feature_seconds=1.5, config=config)
    assert row.assignment.shape == labels.shape
    assert row.seconds["features"] == 1.5 and row.seconds["cluster"] > 0
    assert 0 < result.iterations <= 20
    rec = _record(
        "blobs",
        "mobilenet+dec",
        0,
        bench_evaluate(labels, row.assignment),
        row.seconds,
        dec={"iterations": result.iterations, "changed": result.changed},
        config=dec_summary(config),
    )
    text = write_report(
        tmp_path / "B.md",
        {"command": "bench", "date": "d", "records": [rec]},
        None,
        machine={"CPU": "test"},
    )
    assert any(line.startswith("| mobilenet+dec |") for line in text.splitlines())
    assert f"| blobs | 0 | {result.iterations} | {100 * result.changed:.2f}% |" in text
    assert "- mobilenet+dec: hidden=(64, 64), embedding_dim=4" in text
