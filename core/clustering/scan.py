"""SCAN clustering (Van Gansbeke et al. 2020, "SCAN: Learning to Classify Images without Labels").

Several softmax heads are trained at once so that an image and one of its mined neighbours get the same
cluster (consistency: ``-log <p(anchor), p(neighbour)>``) while the batch-mean assignment keeps a high
entropy (``lambda * H(mean p)``, which stops every image falling into one cluster). The head with the
lowest SCAN loss over the whole data set is kept; no labels are used.

Unlike the keras.io example, the consistency term is the log of the dot product of two probability
vectors, never a binary cross-entropy that treats that dot product as a logit (which let the example
collapse into one cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from semclust.core.clustering.losses import entropy, log_similarity, scan_loss
from semclust.core.config import ScanConfig
from semclust.core.progress import CancelToken, ProgressCallback, ignore_progress
from semclust.core.training import fit_stage, predict_batches, steps


@keras.saving.register_keras_serializable(package="semclust")
class ClusterHeads(keras.Model):
    """Optional backbone, feature standardisation, an optional shared hidden layer, then ``n_heads``
    softmax heads of ``n_clusters``.

    Input: images (with a backbone) or feature vectors (without). Output: (B, n_heads, n_clusters).

    Args:
        hidden: width of a Dense-BatchNorm-ReLU layer shared by the heads (0: linear heads, as in SCAN,
            where the backbone itself is trained).
    """

    def __init__(
        self,
        n_clusters: int,
        n_heads: int = 1,
        backbone: keras.Model | None = None,
        seed: int = 0,
        hidden: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_clusters = n_clusters
        self.n_heads = n_heads
        self.backbone = backbone
        self.seed = seed
        self.hidden_units = hidden
        self.standardise = keras.layers.Normalization(axis=-1, name="standardise")
        self.hidden = (
            keras.Sequential(
                [
                    keras.layers.Dense(
                        hidden, kernel_initializer=keras.initializers.HeNormal(seed + 1000)
                    ),
                    keras.layers.BatchNormalization(),
                    keras.layers.ReLU(),
                ],
                name="hidden",
            )
            if hidden
            else None
        )
        self.heads = [
            keras.layers.Dense(
                n_clusters,
                kernel_initializer=keras.initializers.GlorotUniform(seed + h),
                name=f"head_{h}",
            )
            for h in range(n_heads)
        ]

    def adapt(self, features: np.ndarray, sample: int = 100_000) -> None:
        """Sets the standardisation from backbone features of the data set (a seeded sample of
        ``sample`` rows when there are more: Keras would hold all of them in memory at once)."""
        if len(features) > sample:
            features = features[
                np.sort(np.random.default_rng(0).choice(len(features), sample, replace=False))
            ]
        self.standardise.adapt(np.asarray(features, dtype=np.float32))

    def call(self, x, training=False):
        f = self.backbone(x, training=training) if self.backbone is not None else x
        f = self.standardise(f)
        if self.hidden is not None:
            f = self.hidden(f, training=training)
        return ops.stack([ops.softmax(h(f), axis=-1) for h in self.heads], axis=1)

    def get_config(self) -> dict:
        backbone = self.backbone
        return {
            **super().get_config(),
            "n_clusters": self.n_clusters,
            "n_heads": self.n_heads,
            "backbone": None if backbone is None else keras.saving.serialize_keras_object(backbone),
            "seed": self.seed,
            "hidden": self.hidden_units,
        }

    @classmethod
    def from_config(cls, config: dict) -> ClusterHeads:
        config = dict(config)
        if config.get("backbone") is not None:
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    def probabilities(self, data: np.ndarray, cancel: CancelToken | None = None) -> np.ndarray:
        """(N, n_heads, n_clusters) probabilities of un-augmented data."""
        return predict_batches(self.predict_on_batch, data, 256, cancel)


class ScanModel(keras.Model):
    """Trains :class:`ClusterHeads` on (anchor, neighbour) pairs with the SCAN loss, summed over heads."""

    def __init__(
        self,
        heads: ClusterHeads,
        augment: keras.layers.Layer | None,
        entropy_weight: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cluster_heads = heads
        self.augment = augment
        self.entropy_weight = entropy_weight

    def call(self, pair, training=False):
        anchors, neighbours = pair
        x = ops.concatenate([anchors, neighbours], axis=0)
        if training and self.augment is not None:
            x = self.augment(x, training=True)
        p = self.cluster_heads(x, training=training)
        n = ops.shape(anchors)[0]
        return ops.stack([p[:n], p[n:]], axis=0)  # (2, B, H, K)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total, _, _ = scan_loss(y_pred[0], y_pred[1], self.entropy_weight)  # (H,): one per head
        return ops.mean(total)


class PairDataset(keras.utils.PyDataset):
    """Batches of (anchor, random neighbour), reshuffled every epoch from a seeded generator.

    With ``views`` (V, N, ...), the anchor and the neighbour are each taken from a random view.
    """

    def __init__(
        self,
        data: np.ndarray,
        neighbours: np.ndarray,
        batch_size: int,
        seed: int,
        views: np.ndarray | None = None,
    ):
        super().__init__()
        self.data = data
        self.neighbours = neighbours
        self.batch_size = batch_size
        self.views = views
        self.rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        n, k = self.neighbours.shape
        self.order = self.rng.permutation(n)
        self.partner = self.neighbours[np.arange(n), self.rng.integers(0, k, size=n)]
        if self.views is not None:
            self.anchor_view = self.rng.integers(0, len(self.views), size=n)
            self.partner_view = self.rng.integers(0, len(self.views), size=n)

    def __len__(self) -> int:
        return steps(len(self.data), self.batch_size)

    def __getitem__(self, i):
        idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        partner = self.partner[idx]
        if self.views is None:
            return ((self.data[idx], self.data[partner]),)
        anchors = self.views[self.anchor_view[idx], idx].astype(np.float32)
        neighbours = self.views[self.partner_view[idx], partner].astype(np.float32)
        return ((anchors, neighbours),)

    def on_epoch_end(self) -> None:
        self._draw()


def head_losses(
    probs: np.ndarray, neighbours: np.ndarray, entropy_weight: float, chunk: int = 20_000
) -> dict[str, np.ndarray]:
    """SCAN loss of every head over the whole data set and all k neighbours (NumPy, label-free).

    Args:
        probs: (N, H, K) probabilities.
        neighbours: (N, k) neighbour indices.
    """
    log_sim = np.zeros(probs.shape[1])
    for start in range(0, len(probs), chunk):  # (chunk, k, H, K) gathers: bounded memory at 1M
        rows = slice(start, start + chunk)
        anchor = probs[rows][:, None]  # (n, 1, H, K) against (n, k, H, K)
        log_sim += log_similarity(anchor, probs[neighbours[rows]], np).sum(axis=(0, 1))
    consistency = -log_sim / neighbours.size
    spread = entropy(probs.mean(axis=0), np)
    return {
        "total": consistency - entropy_weight * spread,
        "consistency": consistency,
        "entropy": spread,
    }


@dataclass
class ScanResult:
    heads: ClusterHeads
    best_head: int
    probabilities: np.ndarray  # (N, K) of the best head
    losses: dict[str, list[float]]


def train_scan(
    data: np.ndarray,
    neighbours: np.ndarray,
    heads: ClusterHeads,
    config: ScanConfig,
    seed: int,
    augment: keras.layers.Layer | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    views: np.ndarray | None = None,
) -> ScanResult:
    """Trains the heads on (anchor, neighbour) pairs and keeps the head with the lowest SCAN loss.

    Args:
        data: features (N, F) when ``heads`` has no backbone, else images (N, S, S, 3).
        neighbours: (N, k) mined neighbours.
        heads: the model to train (its standardisation already adapted).
        augment: view augmentation of images (only with a backbone).
        views: (V, N, F) features of augmented views (clean features included) to draw pairs from.
    """
    dataset = PairDataset(data, neighbours, min(config.batch_size, len(data)), seed, views)
    model = ScanModel(heads, augment, config.entropy_weight)
    # On frozen features a step is a few small matrix products: run many per compiled call, not one
    # per Python round trip (a backbone's step is heavy enough on its own).
    per_call = STEPS_PER_CALL if heads.backbone is None else 1
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate), steps_per_execution=per_call
    )
    epochs = min(config.epochs, max(1, config.max_steps // len(dataset)))
    # Monitoring passes are cheap on features (a sample of a large set); with a backbone, a small one.
    sample = MONITOR_FEATURES if heads.backbone is None else MONITOR_IMAGES
    monitor = np.sort(np.random.default_rng(seed).permutation(len(data))[:sample])

    def on_epoch(epoch: int, logs: dict) -> dict:
        probs = heads.probabilities(data[monitor])
        sizes = np.bincount(
            probs.argmax(axis=2)[:, _best(probs, neighbours, monitor, config)],
            minlength=heads.n_clusters,
        )
        return {"cluster_sizes": (sizes * len(data) / len(monitor)).round().astype(int).tolist()}

    fit_stage(
        model, dataset, "clustering", epochs, progress, cancel, on_epoch, activity="clustering"
    )
    probs = heads.probabilities(data, cancel)
    losses = head_losses(probs, neighbours, config.entropy_weight)
    best = int(np.argmin(losses["total"]))
    return ScanResult(heads, best, probs[:, best], {k: v.tolist() for k, v in losses.items()})


#: Training steps per compiled call on frozen features (``steps_per_execution``).
STEPS_PER_CALL = 32
#: Images whose assignments are checked after every epoch (the cluster sizes shown while training).
MONITOR_FEATURES = 20_000
MONITOR_IMAGES = 2_000


def _best(
    probs: np.ndarray, neighbours: np.ndarray, monitor: np.ndarray, config: ScanConfig
) -> int:
    """Lowest-loss head on a monitoring subset (neighbours outside the subset are left out)."""
    if len(monitor) == len(neighbours):
        return int(np.argmin(head_losses(probs, neighbours, config.entropy_weight)["total"]))
    return int(np.argmax(entropy(probs.mean(axis=0), np)))


def scan_probabilities(
    features: np.ndarray,
    neighbours: np.ndarray,
    clusters: int,
    seed: int = 0,
    config: ScanConfig = ScanConfig(),
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """(N, clusters) probabilities of the best of SCAN's heads trained on frozen ``features``."""
    heads = ClusterHeads(clusters, config.heads, seed=seed, hidden=config.hidden)
    heads.adapt(features)
    heads(np.asarray(features[:2], dtype=np.float32))  # build
    return train_scan(
        features, neighbours, heads, config, seed, None, progress, cancel
    ).probabilities
