"""The clustering registry (core/clustering/methods.py) and its label-free choice
(core/clustering/selection.py)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from semclust.core.clustering.methods import Inputs, cluster_candidates
from semclust.core.clustering.selection import (
    DIFFERS,
    NEAR_TIE,
    Candidate,
    Selection,
    knn_modularity,
    select,
)
from semclust.core.metrics import close_said, evaluate, moved_share
from semclust.core.neighbours import mine_neighbours


def _blobs(sizes, dim=16, spread=0.35, seed=0):
    """Unit-normalised Gaussian blobs of unequal sizes around random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return x.astype(np.float32), x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_knn_modularity_matches_networkx_directed_modularity():
    rng = np.random.default_rng(1)
    n, k = 60, 5
    neighbours = np.stack(
        [rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)]
    )
    assignment = rng.integers(0, 4, size=n)
    graph = nx.DiGraph([(i, int(j)) for i in range(n) for j in neighbours[i]])
    communities = [set(np.flatnonzero(assignment == c).tolist()) for c in range(4)]
    expected = nx.community.modularity(graph, [c for c in communities if c])
    assert knn_modularity(neighbours, assignment) == pytest.approx(expected, abs=1e-9)


def test_modularity_does_not_reward_one_big_cluster():
    _, emb, labels = _blobs([120, 40, 15])
    neighbours = mine_neighbours(emb, 10)
    one = np.zeros(len(labels), dtype=int)
    assert knn_modularity(neighbours, one) == pytest.approx(0.0, abs=1e-12)
    shares = np.bincount(labels) / len(labels)
    assert knn_modularity(neighbours, labels) > 0.95 * (1 - (shares**2).sum())  # its upper bound
    shuffled = np.random.default_rng(0).permutation(labels)
    assert knn_modularity(neighbours, shuffled) < 0.05


def test_select_prefers_candidates_that_use_every_cluster():
    probs_full = np.eye(3)[[0, 1, 2, 0]]
    probs_two = np.eye(3)[[0, 1, 1, 0]]
    cands = {
        "two": Candidate(probs_two, 0.0, {"modularity": 0.9, "clusters_used": 2.0}),
        "full": Candidate(probs_full, 0.0, {"modularity": 0.5, "clusters_used": 3.0}),
    }
    assert select(cands, 3) == "full"


def _moved_loop(a, b, k):
    """The reference: the fewest images placed differently over every one-to-one renumbering."""
    import itertools

    return min(np.mean(np.asarray(perm)[b] != a) for perm in itertools.permutations(range(k)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moved_share_matches_every_renumbering(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 50)
    b = np.where(rng.random(50) < 0.3, rng.integers(0, 4, 50), (a + seed) % 4)  # renumbered, noisy
    assert moved_share(a, b, 4) == pytest.approx(_moved_loop(a, b, 4), abs=1e-12)
    assert moved_share(a, (a + 1) % 4, 4) == 0.0  # the same clusters, numbered otherwise


def _selection(kept_score, others):
    """A selection that kept ``a`` (0..3, 40 images) over ``others``: name -> (assignment, score)."""
    a = np.arange(40) % 4
    cands = {"kept": Candidate(np.eye(4)[a], 0.0, {"modularity": kept_score, "clusters_used": 4.0})}
    for name, (assignment, score) in others.items():
        used = float(len(np.unique(assignment)))
        cands[name] = Candidate(
            np.eye(4)[assignment], 0.0, {"modularity": score, "clusters_used": used}
        )
    return Selection(cands, "kept"), a


def test_a_close_alternative_scores_nearly_as_well_and_differs():
    a = np.arange(40) % 4
    differs = a.copy()
    differs[:8] = (a[:8] + 1) % 4  # 8 of 40 images elsewhere: 20%
    relabelled = (a + 2) % 4  # the same clustering
    tiny = a.copy()
    tiny[:2] = (a[:2] + 1) % 4  # 5%: below DIFFERS
    top = 0.6
    near = top * (1 - NEAR_TIE / 2)
    sel, _ = _selection(
        top, {"same": (relabelled, top), "tiny": (tiny, top), "other": (differs, near)}
    )
    assert sel.close_alternative() == ("other", pytest.approx(0.2))
    assert sel.summary()["close"] == {"method": "other", "moved": 0.2}
    far = top * (1 - 2 * NEAR_TIE)  # scores clearly lower: no close call
    sel, _ = _selection(top, {"other": (differs, far), "same": (relabelled, top)})
    assert sel.close_alternative() is None and "close" not in sel.summary()
    three = np.minimum(differs, 2)  # uses 3 of the 4 clusters: never offered
    assert _selection(top, {"three": (three, top)})[0].close_alternative() is None
    assert 8 / 40 >= DIFFERS > 2 / 40


def test_the_close_alternative_is_said_with_the_methods_titles():
    said = close_said("ward_umap", 0.35, "kmeans")
    assert said.startswith("ward_umap scores nearly as well as kmeans, whose clusters were kept")
    assert "puts 35% of the images in other clusters" in said
    titles = {"ward_umap": "Ward on the map (unequal sizes)", "kmeans": "K-means (seconds)"}
    assert close_said("ward_umap", 0.35, "kmeans", titles).startswith(
        "Ward on the map scores nearly as well as K-means,"
    )


def test_auto_choice_finds_unbalanced_groups():
    features, emb, labels = _blobs([300, 60, 20], seed=3)
    neighbours = mine_neighbours(emb, 15)
    result = cluster_candidates(Inputs(features, emb, neighbours), 3, seed=0,
                                methods=("kmeans", "kmeans_features", "ward_embeddings", "umap_gmm",
                                         "ward_umap"))  # fmt: skip
    accs = {n: evaluate(labels, c.assignment, 3)["acc"] for n, c in result.candidates.items()}
    assert set(accs) == {"kmeans", "kmeans_features", "ward_embeddings", "umap_gmm", "ward_umap"}
    assert accs[result.chosen] >= max(accs.values()) - 0.02, (result.chosen, accs)
    assert accs[result.chosen] > 0.95
    summary = result.summary()
    assert summary["chosen"] == result.chosen
    assert set(summary["candidates"][result.chosen]) >= {"modularity", "seconds"}


def test_unknown_method_is_refused():
    features, emb, _ = _blobs([20, 20])
    with pytest.raises(ValueError, match="Unknown clustering methods"):
        cluster_candidates(Inputs(features, emb, mine_neighbours(emb, 5)), 2, methods=("nope",))


def test_condensed_distances_match_scipys_pdist():
    from scipy.spatial.distance import pdist

    from semclust.core.clustering.classic import condensed_distances

    x = np.random.default_rng(0).normal(size=(301, 40)).astype(np.float32) * 5
    np.testing.assert_allclose(
        condensed_distances(x, block=64), pdist(x.astype(np.float64)), atol=1e-9
    )


def test_wards_cuts_are_scikit_learns_ward_on_unbalanced_blobs():
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    from semclust.core.clustering.classic import ward_cut, ward_tree

    x, _, _ = _blobs([300, 120, 40, 15], dim=32, spread=0.9)  # overlapping: the merge order matters
    for k in (2, 4, 7):
        ours = ward_cut(ward_tree(x), k)
        theirs = AgglomerativeClustering(k, linkage="ward").fit_predict(x)
        assert len(np.unique(ours)) == k
        assert adjusted_rand_score(ours, theirs) == 1.0


def test_wards_tree_is_made_once_and_cut_for_every_number_of_clusters(monkeypatch):
    from semclust.core.clustering import methods
    from semclust.core.clustering.classic import ward_cut, ward_tree

    features, emb, _ = _blobs([120, 40, 15], seed=1)
    inputs = Inputs(features, emb, mine_neighbours(emb, 10))
    made = []
    tree = methods.ward_tree
    monkeypatch.setattr(methods, "ward_tree", lambda x: made.append(len(x)) or tree(x))
    for k in (2, 3, 5):
        probs = methods.METHODS["ward"](inputs, k, 0)
        np.testing.assert_array_equal(probs.argmax(1), ward_cut(ward_tree(features), k))
    assert made == [175]  # one tree, three cuts


def test_ward_umap_is_wards_clustering_of_the_shared_map():
    from sklearn.metrics import adjusted_rand_score

    from semclust.core.clustering.classic import ward_cut, ward_tree
    from semclust.core.clustering.methods import METHODS

    features, emb, _ = _blobs([120, 40, 15], seed=1)
    inputs = Inputs(features, emb, mine_neighbours(emb, 10))
    probs = METHODS["ward_umap"](inputs, 3, 0)
    assert probs.shape == (175, 3)
    assert adjusted_rand_score(probs.argmax(1), ward_cut(ward_tree(inputs.reduced), 3)) == 1.0


def test_kernel_probabilities_keep_the_clustering_and_grade_the_confidence():
    from semclust.core.clustering.classic import kernel_probabilities

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    weights = rng.dirichlet(np.ones(4), size=60).astype(np.float32)
    weights[:, 3] = 0.0  # a mixture component that holds no image
    neighbours = rng.integers(0, 60, size=(60, 5))
    probs = kernel_probabilities(x, weights, neighbours)
    # NumPy reference: half the arg-max, a quarter (1 + |x - mu_j|^2)^-1 normalised (mu_j weighted
    # means), a quarter the share of each image's 5 neighbours in each arg-max cluster
    mu = (weights / np.maximum(weights.sum(0), 1e-12)).T @ x
    q = 1.0 / (1.0 + ((x[:, None, :] - mu[None]) ** 2).sum(-1))
    hard = weights.argmax(1)
    shares = np.zeros((60, 4))
    for i, row in enumerate(neighbours):
        for j in row:
            shares[i, hard[j]] += 1 / 5
    expected = 0.5 * np.eye(4)[hard] + 0.25 * q / q.sum(1, keepdims=True) + 0.25 * shares
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)
    assert np.array_equal(probs.argmax(1), hard) and np.all(np.isfinite(probs))
    assert probs.max(1).min() >= 0.5


def test_neighbour_counts_in_blocks_as_at_once(monkeypatch):
    from semclust.core import metrics

    monkeypatch.setattr(metrics, "ROWS_PER_BLOCK", 7)
    rng = np.random.default_rng(1)
    assignment = rng.integers(0, 3, size=50)
    neighbours = rng.integers(0, 50, size=(50, 4))
    counts = metrics.neighbour_counts(assignment, neighbours, 3)
    assert counts.shape == (50, 3) and np.all(counts.sum(1) == 4)
    for i in (0, 13, 49):
        assert np.array_equal(counts[i], np.bincount(assignment[neighbours[i]], minlength=3))
    assert metrics.neighbour_counts(assignment, neighbours[:5], 3).shape == (5, 3)  # rows: its own


def test_the_mixtures_confidence_says_which_images_are_typical():
    """The mixture's posteriors are 1 for most images, so the most confident (the prototypes) were
    the first in file order; umap_gmm's confidences are graded, lower where an image's neighbours
    are in other clusters and, among the others, highest near its clusters' centres, and its clusters
    are the mixture's."""
    from semclust.core.clustering.methods import GMM_RESTARTS, METHODS, gmm_probabilities

    features, emb, labels = _blobs([150, 60, 20], spread=0.6, seed=2)
    inputs = Inputs(features, emb, mine_neighbours(emb, 10))
    posteriors = gmm_probabilities(inputs.reduced, inputs.neighbours, 3, 0, GMM_RESTARTS)
    probs = METHODS["umap_gmm"](inputs, 3, 0)
    assert np.array_equal(probs.argmax(1), posteriors.argmax(1))
    assert (posteriors.max(1) == 1.0).mean() > 0.5  # what the confidence was: ties
    confidence = probs.max(1)
    assert len(np.unique(confidence)) > 0.95 * len(confidence)
    c = probs.argmax(1)
    inside = (c[inputs.neighbours] == c[:, None]).all(axis=1)
    assert 0 < (~inside).sum() and confidence[~inside].max() < np.median(confidence[inside])
    centre = np.stack([inputs.reduced[c == j].mean(0) for j in range(3)])[c]
    distance = np.linalg.norm(inputs.reduced - centre, axis=1)
    r = np.corrcoef(distance[inside], confidence[inside])[0, 1]
    assert r < -0.5  # nearer the centre, more confident


def _pool_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info()}


def test_the_map_begun_beside_is_the_same_and_the_cores_come_back(monkeypatch):
    from semclust.core.clustering import methods

    monkeypatch.setattr(methods, "_cores", lambda: 2)
    features, emb, _ = _blobs([120, 40, 15], seed=1)
    neighbours = mine_neighbours(emb, 20)
    before = _pool_threads()
    beside = Inputs(features, emb, neighbours)
    assert beside.reduce_beside() is True
    assert _pool_threads() == {1}  # the caller's BLAS and OpenMP keep off the map's core
    assert beside.reduce_beside() is True  # one map, however often it is asked for
    reduced = beside.reduced
    assert _pool_threads() == before
    np.testing.assert_array_equal(reduced, Inputs(features, emb, neighbours).reduced)

    monkeypatch.setattr(methods, "_cores", lambda: 1)  # one core: the map is made where it is read
    alone = Inputs(features, emb, neighbours)
    assert alone.reduce_beside() is False and alone._beside is None


def test_a_map_abandoned_beside_stops_at_its_next_epoch(monkeypatch):
    """A run that ends without reading its map (cancelled, failed) releases it: the map's layout
    stops between two epochs instead of running to its end on a core of its own; read after all,
    the map is made where it is read, the same map."""
    from semclust.core import projection
    from semclust.core.clustering import methods

    monkeypatch.setattr(methods, "_cores", lambda: 2)
    epochs, stopped = [], []
    real_reduce = Inputs._reduce

    def spied(self):
        try:
            return real_reduce(self)
        except projection.LayoutStopped:
            stopped.append(len(epochs))
            raise

    monkeypatch.setattr(Inputs, "_reduce", spied)
    from umap import layouts

    projection.keep_umap_compiled()
    epoch = layouts._nb_optimize_layout_euclidean_single_epoch  # semclust's, checking for the stop
    monkeypatch.setattr(
        layouts,
        "_nb_optimize_layout_euclidean_single_epoch",
        lambda *a, **k: epochs.append(1) or epoch(*a, **k),
    )
    features, emb, _ = _blobs([600, 300, 100], seed=3)
    neighbours = mine_neighbours(emb, 20)
    before = _pool_threads()
    inputs = Inputs(features, emb, neighbours)
    assert inputs.reduce_beside() is True
    inputs.release()
    inputs._beside.join(timeout=60)
    assert not inputs._beside.is_alive() and len(stopped) == 1
    assert stopped[0] < 500  # stopped before UMAP's 500 epochs
    assert _pool_threads() == before
    reduced = inputs.reduced  # read after all: made here
    assert len(stopped) == 1 and inputs._beside is None
    np.testing.assert_array_equal(reduced, Inputs(features, emb, neighbours).reduced)


def test_a_map_made_in_place_stops_when_its_check_raises():
    """The run's cancel token reaches the clustering map made where it is read (one core, or above
    BESIDE_MAX images): the map stops between two epochs, with what the check raised."""
    from semclust.core.progress import Cancelled, CancelToken

    features, emb, _ = _blobs([60, 60], seed=4)
    token, calls = CancelToken(), []

    def check():
        calls.append(1)
        if len(calls) == 3:
            token.cancel()
        token.raise_if_cancelled()

    inputs = Inputs(features, emb, mine_neighbours(emb, 20), check=check)
    with pytest.raises(Cancelled):
        _ = inputs.reduced
    assert len(calls) == 3  # two epochs, then stopped


def test_a_map_that_fails_beside_fails_where_it_is_read(monkeypatch):
    from semclust.core.clustering import methods

    monkeypatch.setattr(methods, "_cores", lambda: 2)

    def broken(self):
        raise MemoryError("no room for the map")

    monkeypatch.setattr(Inputs, "_reduce", broken)
    features, emb, _ = _blobs([30, 30])
    before = _pool_threads()
    inputs = Inputs(features, emb, mine_neighbours(emb, 5))
    assert inputs.reduce_beside() is True
    with pytest.raises(MemoryError, match="no room"):
        _ = inputs.reduced
    assert _pool_threads() == before


def test_auto_leaves_the_map_out_of_a_folder_too_small_for_it():
    from semclust.core.clustering.methods import (
        AUTO_CANDIDATES,
        MAP_METHODS,
        MAP_MIN_IMAGES,
        auto_candidates,
        uses_map,
    )

    small, enough = MAP_MIN_IMAGES - 1, MAP_MIN_IMAGES
    assert set(MAP_METHODS) <= set(AUTO_CANDIDATES) == set(auto_candidates(enough))
    assert set(auto_candidates(small)) == set(AUTO_CANDIDATES) - set(MAP_METHODS) != set()
    assert uses_map("auto", enough) and not uses_map("auto", small)
    assert uses_map("umap_gmm", small)  # asked for by name, it runs on any folder
    assert not uses_map("kmeans", enough) and not uses_map("scan", enough)
