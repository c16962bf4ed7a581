"""Deep Embedded Clustering (Xie, Girshick & Farhadi 2016, "Unsupervised Deep Embedding for Clustering
Analysis", ICML).

Two phases, both on feature vectors (here: the frozen features of the run's backbone):

1. An autoencoder (the paper's ``d-500-500-2000-10``; ReLU, the embedding and the reconstruction linear) is
   trained to reconstruct its inputs, with dropout on the input as a denoising corruption.
2. Its encoder gets a Student-t clustering layer on top: the soft assignment of embedding ``z_i`` to centre
   ``mu_j`` is ``q_ij = (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2)``, normalised over ``j`` (alpha = 1).
   The centres start at K-means (20 restarts) on the embedding. Encoder and centres are trained together
   by minimising ``KL(P || Q)`` towards the sharpened target ``p_ij = (q_ij^2 / f_j)``, normalised over
   ``j``, with ``f_j = sum_i q_ij``. The target is recomputed from the whole data set every
   ``update_interval`` iterations; training stops when fewer than ``tol`` of the hard assignments changed
   since the last update (or after ``max_iterations``).

Differences from the paper, for speed on a CPU: the autoencoder is trained end to end with Adam (as the
common Keras reimplementations do), not greedily layer by layer with SGD for 50,000 + 100,000 iterations;
its default widths are narrower, and the clustering phase is capped sooner (see :class:`DECConfig`).

Example:
    >>> from semclust.core.clustering.dec import DECConfig, train_dec
    >>> result = train_dec(features, clusters=10, config=DECConfig(pretrain_epochs=20), seed=0)
    >>> labels = result.probabilities.argmax(axis=1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from semclust.core.clustering.losses import student_t
from semclust.core.progress import (
    Cancelled,
    CancelToken,
    Progress,
    ProgressCallback,
    ignore_progress,
)
from semclust.core.training import predict_batches, seed_everything, steps

STAGE = "dec"


@dataclass(frozen=True)
class DECConfig:
    """Deep Embedded Clustering settings: the paper's values, except where a CPU budget rules them out.

    The paper's encoder is ``d-500-500-2000-10``. On 1024-d frozen MobileNet features of the 1,797
    digits (one seed, 30 autoencoder epochs) it gave ACC 0.507 / NMI 0.555 / ARI 0.376, and
    ``d-256-256-1024-10`` gave 0.515 / 0.548 / 0.391 at a third of the arithmetic; the narrower one is
    the default so that 10,000 feature vectors take about a minute on two CPU cores.

    Attributes:
        hidden: widths of the encoder's hidden ReLU layers (paper: 500, 500, 2000); the decoder mirrors them.
        embedding_dim: size of the linear embedding that is clustered (paper: 10).
        alpha: degrees of freedom of the Student-t kernel (paper: 1).
        input_dropout: dropout on the input while pretraining, the denoising corruption (paper: 0.2).
        normalise: how features are scaled first: ``"paper"`` divides every feature vector by one
            constant so that ``|x|^2 / d`` is 1 on average (the paper's normalisation), ``"standardise"``
            gives every dimension zero mean and unit variance (worse on the digits above: ACC 0.421),
            ``"none"`` leaves them.
        pretrain_epochs: autoencoder epochs over the data (the paper's 150,000 SGD iterations are far
            beyond a CPU budget; Adam reaches a usable embedding in tens of epochs).
        pretrain_batch_size: autoencoder batch (paper: 256).
        pretrain_learning_rate: Adam's learning rate for the autoencoder.
        kmeans_restarts: K-means restarts for the initial centres (paper: 20).
        batch_size: clustering batch (paper: 256).
        learning_rate: SGD learning rate of the clustering phase (paper: 0.01).
        momentum: SGD momentum of the clustering phase (paper: 0.9).
        update_interval: iterations between target refreshes, T (140 in the authors' MNIST setting).
        max_iterations: cap on clustering iterations (the authors' code: 20,000; on the digits above
            the 0.1% tolerance was reached after about 1,900).
        tol: stop when fewer than this fraction of assignments changed between two refreshes (paper: 0.1%).
    """

    hidden: tuple[int, ...] = (256, 256, 1024)
    embedding_dim: int = 10
    alpha: float = 1.0
    input_dropout: float = 0.2
    normalise: str = "paper"
    pretrain_epochs: int = 20
    pretrain_batch_size: int = 256
    pretrain_learning_rate: float = 1e-3
    kmeans_restarts: int = 20
    batch_size: int = 256
    learning_rate: float = 0.01
    momentum: float = 0.9
    update_interval: int = 140
    max_iterations: int = 1000
    tol: float = 0.001

    def __post_init__(self) -> None:
        if self.normalise not in ("paper", "standardise", "none"):
            raise ValueError(
                f"normalise must be paper, standardise or none, not {self.normalise!r}"
            )
        if self.embedding_dim < 1 or any(w < 1 for w in self.hidden):
            raise ValueError("layer widths and the embedding size must be positive")


def soft_assignment(z, centres, alpha: float = 1.0):
    """Student-t soft assignment ``q`` (DEC eq. 1) of embeddings ``z`` (N, D) to ``centres`` (K, D)."""
    d2 = ops.sum(ops.square(ops.expand_dims(z, 1) - ops.expand_dims(centres, 0)), axis=2)
    return student_t(d2, alpha)


def target_distribution(q: np.ndarray) -> np.ndarray:
    """The sharpened target ``p`` (DEC eq. 3): ``q^2 / f`` with cluster frequencies ``f = sum_i q``,
    normalised per row."""
    q = np.asarray(q, dtype=np.float64)
    weight = q**2 / q.sum(axis=0)
    return (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)


@keras.saving.register_keras_serializable(package="semclust")
class ClusteringLayer(keras.layers.Layer):
    """DEC's clustering layer: trainable centres and the Student-t soft assignment to them.

    Input: embeddings (B, D). Output: (B, n_clusters) probabilities.

    Args:
        n_clusters: K.
        alpha: degrees of freedom of the Student-t kernel (DEC uses 1).

    Example:
        >>> layer = ClusteringLayer(10)
        >>> q = layer(np.zeros((4, 10), "float32"))    # (4, 10), rows sum to 1
        >>> layer.set_weights([kmeans_centres])        # (10, 10)
    """

    def __init__(self, n_clusters: int, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_clusters = n_clusters
        self.alpha = alpha

    def build(self, input_shape):
        self.centres = self.add_weight(
            shape=(self.n_clusters, input_shape[-1]),
            initializer="glorot_uniform",
            name="centres",
        )

    def call(self, z):
        return soft_assignment(z, self.centres, self.alpha)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_clusters)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_clusters": self.n_clusters, "alpha": self.alpha}


@dataclass
class DECResult:
    """What :func:`train_dec` returns.

    Attributes:
        probabilities: (N, K) float32 soft assignments q of the final model.
        embedding: (N, embedding_dim) float32 embeddings of the final encoder.
        iterations: clustering iterations run.
        changed: fraction of hard assignments that changed at the last target refresh.
        model: encoder + :class:`ClusteringLayer`, mapping normalised features to q.
        initial_assignment: (N,) K-means clusters of the pretrained embedding, where the clustering
            phase started (what the KL phase changed).
        losses: ``reconstruction`` per pretraining epoch and ``kl`` per target refresh.
    """

    probabilities: np.ndarray
    embedding: np.ndarray
    iterations: int
    changed: float
    model: keras.Model | None = None
    initial_assignment: np.ndarray | None = None
    losses: dict[str, list[float]] = field(default_factory=dict)


def normalise_features(features: np.ndarray, how: str) -> np.ndarray:
    """Scales features as :attr:`DECConfig.normalise` says; returns float32."""
    x = np.asarray(features, dtype=np.float32)
    if how == "paper":
        scale = np.sqrt(np.mean(np.sum(x.astype(np.float64) ** 2, axis=1)) / x.shape[1])
        return x / np.float32(scale if scale > 0 else 1.0)
    if how == "standardise":
        std = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0).astype(np.float32)
    return x


def _predict(model: keras.Model, x: np.ndarray, cancel: CancelToken | None) -> np.ndarray:
    """``model`` applied eagerly in chunks: no graph to trace, so no retracing for a short last chunk."""
    return predict_batches(lambda b: model(b, training=False), x, 4096, cancel)


def build_autoencoder(dim: int, config: DECConfig, seed: int) -> tuple[keras.Model, keras.Model]:
    """The denoising autoencoder and its encoder (sharing layers)."""

    def dense(width: int, i: int, activation: str | None, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed + i),
            name=name,
        )

    inputs = keras.Input((dim,), name="features")
    x = keras.layers.Dropout(config.input_dropout, seed=seed, name="corrupt")(inputs)
    for i, width in enumerate(config.hidden):
        x = dense(width, i, "relu", f"encoder_{i}")(x)
    z = dense(config.embedding_dim, len(config.hidden), None, "embedding")(x)
    x = z
    for i, width in enumerate(reversed(config.hidden)):
        x = dense(width, 100 + i, "relu", f"decoder_{i}")(x)
    out = dense(dim, 200, None, "reconstruction")(x)
    return keras.Model(inputs, out, name="autoencoder"), keras.Model(inputs, z, name="encoder")


def train_dec(
    features: np.ndarray,
    clusters: int,
    config: DECConfig = DECConfig(),
    seed: int = 0,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> DECResult:
    """Deep Embedded Clustering of feature vectors into ``clusters`` clusters.

    Reports ``Progress("dec", "progress", ...)`` events (one per pretraining epoch and one per target
    refresh, with cluster sizes as partial results); the caller reports the stage's start and end.

    Args:
        features: (N, F) feature vectors.
        clusters: K.
        config: the settings.
        seed: seeds Keras (``keras.utils.set_random_seed``), the weights, dropout, batches and K-means.
        progress: the progress callable.
        cancel: checked after every batch.

    Raises:
        Cancelled: the cancel token was set.
        ValueError: fewer feature vectors than clusters.
    """
    from sklearn.cluster import KMeans

    if cancel is not None:
        cancel.raise_if_cancelled()
    x = normalise_features(features, config.normalise)
    n = len(x)
    if n < clusters or clusters < 1:
        raise ValueError(f"Cannot make {clusters} clusters of {n} feature vectors.")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    autoencoder, encoder = build_autoencoder(x.shape[1], config, seed)
    autoencoder.compile(optimizer=keras.optimizers.Adam(config.pretrain_learning_rate), loss="mse")

    ae_batch = min(config.pretrain_batch_size, n)
    ae_steps = steps(n, ae_batch)
    total = config.pretrain_epochs * ae_steps + config.max_iterations
    losses: dict[str, list[float]] = {"reconstruction": [], "kl": []}

    def check() -> None:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Stopped by the user during deep embedded clustering.")

    for epoch in range(config.pretrain_epochs):
        order = rng.permutation(n)
        epoch_loss = 0.0
        for b in range(ae_steps):
            # Every batch full-sized (the last one overlaps the one before): one traced step only.
            idx = np.sort(order[min(b * ae_batch, n - ae_batch) :][:ae_batch])
            epoch_loss += float(np.asarray(autoencoder.train_on_batch(x[idx], x[idx])))
            check()
        losses["reconstruction"].append(epoch_loss / ae_steps)
        progress(
            Progress(
                STAGE,
                "progress",
                (epoch + 1) * ae_steps,
                total,
                losses={"reconstruction": losses["reconstruction"][-1]},
                message=f"autoencoder epoch {epoch + 1} of {config.pretrain_epochs}",
            )
        )
    done = config.pretrain_epochs * ae_steps

    embedding = _predict(encoder, x, cancel)
    km = KMeans(clusters, n_init=config.kmeans_restarts, random_state=seed).fit(embedding)
    layer = ClusteringLayer(clusters, config.alpha, name="clustering")
    model = keras.Model(encoder.input, layer(encoder.output), name="dec")
    layer.set_weights([km.cluster_centers_.astype(np.float32)])
    model.compile(
        optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
        loss=keras.losses.KLDivergence(),
    )

    batch = min(config.batch_size, n)
    previous = km.labels_
    changed = 1.0
    iteration = 0
    order = rng.permutation(n)
    cursor = 0
    kl = float("nan")
    while True:
        q = _predict(model, x, cancel)
        assignment = q.argmax(axis=1)
        changed = float(np.mean(assignment != previous))
        previous = assignment
        sizes = np.bincount(assignment, minlength=clusters).tolist()
        progress(
            Progress(
                STAGE,
                "progress",
                done + iteration,
                total,
                losses={"kl": kl} if iteration else {},
                message=f"clustering iteration {iteration}: {100 * changed:.2f}% of assignments changed",
                partial={"cluster_sizes": sizes},
            )
        )
        if (iteration > 0 and changed < config.tol) or iteration >= config.max_iterations:
            break
        target = target_distribution(q)
        interval_loss = []
        for _ in range(min(config.update_interval, config.max_iterations - iteration)):
            if cursor + batch > n:
                order, cursor = rng.permutation(n), 0
            idx = np.sort(order[cursor : cursor + batch])
            cursor += batch
            interval_loss.append(float(np.asarray(model.train_on_batch(x[idx], target[idx]))))
            iteration += 1
            check()
        kl = float(np.mean(interval_loss))
        losses["kl"].append(kl)

    embedding = _predict(encoder, x, cancel)
    return DECResult(
        probabilities=q.astype(np.float32),
        embedding=embedding.astype(np.float32),
        iterations=iteration,
        changed=changed,
        model=model,
        initial_assignment=km.labels_.astype(np.int64),
        losses=losses,
    )
