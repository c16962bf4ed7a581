"""Choosing the number of clusters without labels (``--clusters auto``).

SCAN clustering heads for every candidate k are trained together on the frozen features with a short
schedule (:class:`MultiKHeads`: one matrix product, one Keras fit, SCAN's loss of
:mod:`semclust.core.clustering.scan` summed over the heads), then each k is scored without labels. Curves recorded
per k (:func:`score_assignment`):

- ``consistency``: SCAN's consistency term of the kept (lowest-loss) head, ``-mean log <p(i), p(j)>``
  over every image and its mined neighbours (lower: neighbours agree more);
- ``agreement``: share of (image, neighbour) pairs whose most likely clusters are the same;
- ``confidence``: mean largest probability;
- ``entropy``: entropy of the mean assignment divided by ``log k`` (1: all clusters used evenly);
- ``stability``: mean adjusted Rand index between the hard assignments of the heads, trained from
  different initialisations (clustering stability, Ben-Hur et al. 2002; Lange et al. 2004);
- ``silhouette``: cosine silhouette of the hard assignment on a subsample (Rousseeuw 1987);
- ``empty``: clusters holding (almost) no image; they count against k.

The choice is made by :func:`combined_score` (the agreement's rise above its trend in log k, less
empty clusters); its docstring gives the measurements behind it.

Example:
    >>> choice = choose_clusters(features, neighbours, (2, 30))  # doctest: +SKIP
    >>> choice.best, write_json(paths.root / "choose_k.json", choice.to_dict())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from semclust.core.clustering.k_choice import CURVES, KChoice
from semclust.core.clustering.losses import entropy, log_similarity, scan_loss
from semclust.core.clustering.scan import PairDataset, head_losses
from semclust.core.config import ScanConfig
from semclust.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from semclust.core.training import fit_stage, predict_batches, steps

STAGE = "choose_k"


@dataclass(frozen=True)
class ChooseKConfig:
    """How candidate k are tried and scored.

    Attributes:
        scan: SCAN's settings for the trial heads (batch size, learning rate, entropy weight, number of
            heads; ``epochs`` and ``hidden`` are not used: the heads are linear and train ``steps``).
        steps: parameter updates of the heads of every k (trained together).
        min_epochs: at least this many passes over the data.
        steps_per_epoch: updates between two progress reports with partial results; an epoch of Keras
            is this many batches however many images there are (a small set would otherwise pay
            Keras's per-epoch overhead at every step).
        silhouette_points: the silhouette is computed on a fixed random subsample of at most this many
            images (it costs the square of their number).
        dims: when above 0, the heads see only the standardised features' first ``dims`` principal
            components (fewer multiplications). Off: with 128 components of the 1,797 digits' MobileNet
            features the heads fitted worse (consistency at k=10 1.03 against 0.57) and the search
            took 103 s against 250 s under the same load, not enough gain for the loss.
        min_cluster_fraction: a cluster holding fewer than this share of ``N / k`` images counts as empty.
    """

    scan: ScanConfig = ScanConfig(batch_size=256, heads=4)
    steps: int = 400
    min_epochs: int = 3
    steps_per_epoch: int = 50
    dims: int = 0
    silhouette_points: int = 3000
    min_cluster_fraction: float = 0.1


def candidate_ks(k_range: tuple[int, int], n_images: int) -> tuple[int, ...]:
    """The candidates of ``k_range`` (inclusive) that the data allow: at least 2, fewer than the images.

    Raises:
        ValueError: no candidate is left (fewer than three images, or an empty range).
    """
    low, high = int(k_range[0]), int(k_range[1])
    ks = tuple(k for k in range(max(2, low), high + 1) if k < n_images)
    if not ks:
        raise ValueError(
            f"No number of clusters in {low}..{high} can be tried on {n_images} images "
            "(k must be at least 2 and below the number of images)."
        )
    return ks


def score_assignment(
    probs: np.ndarray,
    neighbours: np.ndarray,
    features_sample: np.ndarray,
    sample: np.ndarray,
    best_head: int,
    min_cluster_fraction: float,
) -> dict[str, float]:
    """The raw, label-free criteria of one trained set of heads.

    Args:
        probs: (N, H, K) probabilities of every head.
        neighbours: (N, k) mined neighbours.
        features_sample: the rows of the features at ``sample`` (for the silhouette).
        sample: indices of the silhouette subsample.
        best_head: the head with the lowest SCAN loss.
        min_cluster_fraction: clusters below this share of ``N / K`` images count as empty.
    """
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    n, n_heads, k = probs.shape
    hard = probs.argmax(axis=2)  # (N, H)
    p = probs[:, best_head]
    labels = hard[:, best_head]
    consistency = float(-np.mean(log_similarity(p[:, None], p[neighbours], np)))
    agreement = float(np.mean(labels[neighbours] == labels[:, None]))
    confidence = float(np.mean(p.max(axis=1)))
    spread = float(entropy(p.mean(axis=0), np) / np.log(k))
    pairs = [(a, b) for a in range(n_heads) for b in range(a + 1, n_heads)]
    stability = (
        float(np.mean([adjusted_rand_score(hard[:, a], hard[:, b]) for a, b in pairs]))
        if pairs
        else float("nan")
    )
    sizes = np.bincount(labels, minlength=k)
    empty = float(np.sum(sizes < min_cluster_fraction * n / k))
    sample_labels = labels[sample]
    used = len(np.unique(sample_labels))
    silhouette = (
        float(silhouette_score(features_sample, sample_labels, metric="cosine"))
        if 2 <= used < len(sample)
        else -1.0
    )
    return {
        "consistency": consistency,
        "agreement": agreement,
        "confidence": confidence,
        "entropy": spread,
        "stability": stability,
        "silhouette": silhouette,
        "empty": empty,
    }


def combined_score(ks: tuple[int, ...], curves: Mapping[str, tuple[float, ...]]) -> np.ndarray:
    """One criterion per k (higher is better): how far the neighbour agreement lies above its trend in
    log k, less the share of empty clusters.

    The share of (image, neighbour) pairs put in the same cluster falls as k grows, roughly linearly in
    log k (each doubling of k cuts about the same share of pairs). Up to the number of groups the
    features hold, SCAN can add a cluster by separating whole groups and the agreement stays above that
    trend; beyond it, every new cluster has to cut a group and the agreement falls below it. So the
    choice is the k whose agreement lies furthest above the least-squares line through
    (log k, agreement) of all candidates: a knee finder for a curve without a sharp knee.

    Measured on frozen ImageNet MobileNet features, k = 2..30, seeds 0/1/2: it chose 11/11/11 for the
    1,797 digits (10 classes), 9/9/10 for MNIST-5k (10), 4/4/4 for the GCompris photos (4), 7/7/4 for
    the food photos (7), and 15/14 (seeds 0/1) for the 10k animal shapes (10; their curve is nearly flat
    from 5 to 20); on EfficientNet-Lite2 features of the digits 9/11/9. The animal shapes were measured
    after the criterion was fixed on the other sets. On their own, the other curves did worse: the
    silhouette's maximum was at 2-3 on the photo sets, the stability of the heads at 13 on the digits and 3 on
    MNIST-5k (heads of a short training are noisy); the consistency's residual chose as the agreement's
    but for the animals (17); the entropy of the mean assignment stays at 0.98-1.00 for every k (SCAN's
    entropy term keeps it there).

    Args:
        ks: the candidates, ascending.
        curves: at least ``agreement`` and ``empty``, one value per k.
    """
    log_k = np.log(np.asarray(ks, dtype=float))
    agreement = np.asarray(curves["agreement"], dtype=float)
    if len(ks) > 2:
        agreement = agreement - np.polyval(np.polyfit(log_k, agreement, 1), log_k)
    return agreement - np.asarray(curves["empty"], dtype=float) / np.exp(log_k)


@keras.saving.register_keras_serializable(package="semclust")
class MultiKHeads(keras.Model):
    """SCAN clustering heads for several k at once on frozen features.

    For every k in ``ks``, ``n_heads`` linear softmax heads of k clusters on prepared features (see
    :func:`choose_clusters`), computed as one matrix product (every output column belongs to exactly one
    head, so the heads stay independent: the SCAN losses are summed, and Adam updates per parameter).

    Output: (B, n_heads * sum(ks)) probabilities, the heads of each k in one block; :meth:`split` turns
    it into one (B, n_heads, k) array per k.
    """

    def __init__(self, ks: tuple[int, ...], n_heads: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.ks = tuple(int(k) for k in ks)
        self.n_heads = n_heads
        self.logits = keras.layers.Dense(
            n_heads * sum(self.ks),
            # A head's own Glorot limit would depend on its k; fan-in scaling is the same for all.
            kernel_initializer=keras.initializers.VarianceScaling(
                1.0, "fan_in", "uniform", seed=seed
            ),
            name="logits",
        )

    def blocks(self, logits):
        """Per k, the (B, n_heads, k) softmax of its block of ``logits``."""
        out, start = [], 0
        for k in self.ks:
            block = logits[:, start : start + self.n_heads * k]
            out.append(ops.softmax(ops.reshape(block, (-1, self.n_heads, k)), axis=-1))
            start += self.n_heads * k
        return out

    def call(self, x, training=False):
        logits = self.logits(x)
        return ops.concatenate(
            [ops.reshape(p, (-1, self.n_heads * k)) for p, k in zip(self.blocks(logits), self.ks)],
            axis=1,
        )

    def split(self, probs: np.ndarray) -> list[np.ndarray]:
        """(N, n_heads * sum(ks)) -> one (N, n_heads, k) array per k."""
        out, start = [], 0
        for k in self.ks:
            out.append(probs[:, start : start + self.n_heads * k].reshape(-1, self.n_heads, k))
            start += self.n_heads * k
        return out


class JointScan(keras.Model):
    """Trains :class:`MultiKHeads` on (anchor, neighbour) pairs: SCAN's loss summed over every head."""

    def __init__(self, heads: MultiKHeads, entropy_weight: float, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.entropy_weight = entropy_weight

    def call(self, pair, training=False):
        anchors, neighbours = pair
        return self.heads.logits(ops.concatenate([anchors, neighbours], axis=0))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        n = ops.shape(y_pred)[0] // 2
        total = 0.0
        for p in self.heads.blocks(y_pred):  # (2B, H, k)
            loss, _, _ = scan_loss(p[:n], p[n:], self.entropy_weight)  # (H,)
            total = total + ops.mean(loss)
        return total


def choose_clusters(
    features: np.ndarray,
    neighbours: np.ndarray,
    k_range: tuple[int, int] = (2, 30),
    config: ChooseKConfig = ChooseKConfig(),
    seed: int = 0,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> KChoice:
    """Tries every k of ``k_range`` with a short SCAN training on frozen features and picks one.

    The heads of every candidate k are trained together (:class:`MultiKHeads`), then each k is scored
    without labels (:func:`score_assignment`) and the scores are combined (:func:`combined_score`).

    Args:
        features: (N, F) frozen backbone features.
        neighbours: (N, k) mined neighbours of every image (as the SCAN stage uses them).
        k_range: smallest and largest k to try (inclusive); k of 1 or at least N is skipped.
        config: trial schedule and scoring settings.
        seed: seeds the heads, the pair sampling and the silhouette subsample.
        progress: receives ``Progress("choose_k", ...)`` events; after each k is scored, ``partial``
            holds that k and its criteria.
        cancel: checked between batches; raises :class:`~semclust.core.progress.Cancelled`.

    Returns:
        The :class:`KChoice` with every curve and the chosen k.

    Raises:
        ValueError: no k of the range can be tried on this many images.
    """
    start = time.perf_counter()
    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    ks = candidate_ks(k_range, n)
    cfg = config.scan
    batch = min(cfg.batch_size, n)
    inputs = _principal_components(features, config.dims, seed)
    pairs = _Pairs(inputs, neighbours, batch, seed, config.steps_per_epoch)
    epochs = max(
        -(-config.steps // config.steps_per_epoch),
        -(-config.min_epochs * steps(n, batch) // config.steps_per_epoch),
    )
    train_total = epochs * config.steps_per_epoch
    unit = max(1, train_total // (2 * len(ks)))  # progress weight of scoring one k
    total = train_total + unit * len(ks)
    progress(Progress(STAGE, "started", 0, total, message=f"trying k = {ks[0]}..{ks[-1]}"))

    keras.utils.set_random_seed(seed)
    heads = MultiKHeads(ks, cfg.heads, seed=seed)
    heads(inputs[:2])
    model = JointScan(heads, cfg.entropy_weight)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
    fit_stage(
        model,
        pairs,
        STAGE,
        epochs,
        _relabel(progress, total),
        cancel,
        activity="choosing the number of clusters",
    )
    per_k = heads.split(predict_batches(heads.predict_on_batch, inputs, 512, cancel))
    trained = time.perf_counter()

    sample = np.sort(np.random.default_rng(seed).permutation(n)[: config.silhouette_points])
    raw: dict[str, list[float]] = {name: [] for name in CURVES}
    for i, (k, probs) in enumerate(zip(ks, per_k)):
        if cancel is not None:
            cancel.raise_if_cancelled()
        best_head = int(np.argmin(head_losses(probs, neighbours, cfg.entropy_weight)["total"]))
        scores = score_assignment(
            probs, neighbours, features[sample], sample, best_head, config.min_cluster_fraction
        )
        for name in CURVES:
            raw[name].append(scores[name])
        progress(
            Progress(
                STAGE,
                "progress",
                train_total + (i + 1) * unit,
                total,
                message=f"k = {k} scored",
                partial={"k": k, **scores},
            )
        )
    curves = {name: tuple(values) for name, values in raw.items()}
    score = combined_score(ks, curves)
    best = ks[int(np.nanargmax(score))]
    progress(Progress(STAGE, "finished", total, total, message=f"chose k = {best}"))
    end = time.perf_counter()
    timing = {
        "train_seconds": trained - start,
        "score_seconds": end - trained,
        "steps": train_total,
    }
    return KChoice(ks, curves, tuple(float(s) for s in score), best, end - start, timing)


def _principal_components(features: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Standardised ``features`` projected onto their first ``dims`` principal components (at most one
    fewer than the images; the standardised features themselves when ``dims`` is 0 or not below their
    width).

    The components are not whitened: the heads' own standardisation is then left nearly as it was on
    the whole features, where whitening (every component, noise included, at unit variance) left the
    heads of the 1,797 digits unable to agree (mean ARI between heads 0.02-0.19, against 0.3-0.6).
    """
    x = features - features.mean(axis=0)
    x = x / np.maximum(x.std(axis=0), 1e-6)
    n, width = x.shape
    if dims <= 0 or dims >= width or n < 3:
        return x.astype(np.float32)
    from sklearn.decomposition import PCA

    pca = PCA(min(dims, n - 1), svd_solver="randomized", random_state=seed)
    z = pca.fit_transform(x)
    # One scale for all components: a mean variance of 1, as the standardised features had.
    return (z / np.sqrt(np.mean(z.var(axis=0)))).astype(np.float32)


class _Pairs(PairDataset):
    """SCAN's (anchor, neighbour) batches, ``per_epoch`` to an epoch: whole passes over the data are
    chained, each in a new random order."""

    def __init__(self, data, neighbours, batch_size: int, seed: int, per_epoch: int) -> None:
        super().__init__(data, neighbours, batch_size, seed)
        self.per_epoch = per_epoch
        self.passes = super().__len__()
        self.position = 0

    def __len__(self) -> int:
        return self.per_epoch

    def __getitem__(self, i):
        if self.position == self.passes:
            self._draw()
            self.position = 0
        self.position += 1
        return super().__getitem__(self.position - 1)

    def on_epoch_end(self) -> None:
        pass


def _relabel(progress: ProgressCallback, total: int) -> ProgressCallback:
    """Passes the training's events on with the whole search's total (training comes first)."""

    def report(event: Progress) -> None:
        progress(dataclasses.replace(event, total=total))

    return report
