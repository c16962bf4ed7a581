"""The keras.io "Semantic Image Clustering" recipe (Salama, 2021), re-implemented for Keras 3.

Reference: https://keras.io/examples/vision/semantic_image_clustering/ , an implementation of SCAN
(Van Gansbeke et al. 2020) on CIFAR-10. Kept as published, so that semclust is compared with what a user
of that example gets:

- preprocessing: resize to ``target_size`` (32) and feature-wise normalisation adapted on the data;
- augmentation: random translation (+-0.2), horizontal flip, rotation (0.15), zoom (-0.3..0.1);
- encoder: ResNet50V2 from scratch (``weights=None``, average pooling) + Dense(512);
- representation learning: 2 views, projection head Dropout(0.1)-Dense(128, no bias)-BN-ReLU,
  temperature 0.1, **no** l2 normalisation, AdamW(weight decay 1e-4) with cosine decay from 1e-3
  (500 steps, alpha 0.1), batch 512. The loss keeps the recipe's two quirks: the log-max shift subtracts
  the row maxima along the last axis (a per-column shift, as ``logits - reduce_max(logits, axis=1)``
  broadcasts), and each view's own similarity counts as a positive (targets are tiled identities);
- neighbours: k=5 by dot product of l2-normalised encoder outputs;
- clustering: encoder frozen, augmentation on, Dense(clusters, softmax); consistency loss = binary
  cross-entropy with target 1 on the anchor-neighbour probability dot products used as logits; entropy
  loss = log(K) - H(mean assignment) with weight 5; AdamW lr 5e-4; no self-labelling.

The published example trains 50 + 50 epochs; here each phase also stops when its wall-time budget is spent
(checked after every batch), so the recipe can be compared with semclust at equal time.

Example:
    >>> result = run_recipe(images, clusters=10, pretext_seconds=60, cluster_seconds=20)  # doctest: +SKIP
    >>> result.assignment.shape  # doctest: +SKIP
    (1797,)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers, ops

from semclust.core.neighbours import mine_neighbours


@dataclass(frozen=True)
class RecipeConfig:
    """Hyper-parameters of the keras.io recipe (its published values)."""

    target_size: int = 32
    representation_dim: int = 512
    projection_units: int = 128
    num_augmentations: int = 2
    temperature: float = 0.1
    dropout_rate: float = 0.1
    l2_normalize: bool = False
    learning_rate: float = 1e-3
    decay_steps: int = 500
    decay_alpha: float = 0.1
    weight_decay: float = 1e-4
    batch_size: int = 512
    pretext_epochs: int = 50
    k_neighbours: int = 5
    cluster_learning_rate: float = 5e-4
    cluster_epochs: int = 50
    entropy_weight: float = 5.0
    tune_encoder_during_clustering: bool = False


def make_augmentation(seed: int = 0) -> keras.Sequential:
    """The recipe's augmentation: translate, flip, rotate, zoom (all with nearest fill)."""
    return keras.Sequential(
        [
            layers.RandomTranslation((-0.2, 0.2), (-0.2, 0.2), fill_mode="nearest", seed=seed),
            layers.RandomFlip("horizontal", seed=seed + 1),
            layers.RandomRotation(0.15, fill_mode="nearest", seed=seed + 2),
            layers.RandomZoom((-0.3, 0.1), (-0.3, 0.1), fill_mode="nearest", seed=seed + 3),
        ],
        name="augmentation",
    )


def make_preprocessing(data: np.ndarray, target_size: int) -> keras.Sequential:
    """Resizing to ``target_size`` then a Normalization layer adapted on ``data``."""
    norm = layers.Normalization()
    pre = keras.Sequential([layers.Resizing(target_size, target_size), norm], name="preprocessing")
    resized = ops.convert_to_numpy(
        layers.Resizing(target_size, target_size)(data[:5000].astype("float32"))
    )
    norm.adapt(resized)
    return pre


def make_encoder(input_size: int, representation_dim: int) -> keras.Sequential:
    """ResNet50V2 from scratch with average pooling, then Dense(representation_dim)."""
    return keras.Sequential(
        [
            keras.Input((input_size, input_size, 3)),
            keras.applications.ResNet50V2(include_top=False, weights=None, pooling="avg"),
            layers.Dense(representation_dim),
        ],
        name="encoder",
    )


def contrastive_loss(feature_vectors, batch_size: int, temperature: float, l2_normalize: bool):
    """The recipe's contrastive loss (see the module docstring for its two quirks), mean over rows."""
    n = ops.shape(feature_vectors)[0]
    views = n // batch_size
    if l2_normalize:
        feature_vectors = feature_vectors / ops.maximum(
            ops.norm(feature_vectors, axis=-1, keepdims=True), 1e-12
        )
    logits = ops.matmul(feature_vectors, ops.transpose(feature_vectors)) / temperature
    logits = logits - ops.max(logits, axis=1)  # broadcasts over the last axis, as published
    targets = ops.tile(ops.eye(batch_size), (views, views))
    loss = keras.losses.categorical_crossentropy(targets, logits, from_logits=True)
    return ops.mean(loss)


class RepresentationLearner(keras.Model):
    """Encoder + projection head trained with the recipe's contrastive loss on augmented views."""

    def __init__(
        self, encoder, preprocessing, augmentation, config: RecipeConfig = RecipeConfig(), **kwargs
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self.config = config
        self.projector = keras.Sequential(
            [
                layers.Dropout(config.dropout_rate),
                layers.Dense(config.projection_units, use_bias=False),
                layers.BatchNormalization(),
                layers.ReLU(),
            ],
            name="projector",
        )

    def call(self, inputs, training=False):
        x = self.preprocessing(inputs)
        views = [
            self.augmentation(x, training=training) for _ in range(self.config.num_augmentations)
        ]
        features = self.encoder(ops.concatenate(views, axis=0), training=training)
        return self.projector(features, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        batch = ops.shape(y_pred)[0] // self.config.num_augmentations
        return contrastive_loss(y_pred, batch, self.config.temperature, self.config.l2_normalize)


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the batch during which ``deadline`` (``time.perf_counter``) passed."""

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline
        self.batches = 0
        self.stopped_early = False

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.model.stop_training = True
            self.stopped_early = True


def consistency_loss(_, similarity):
    """Binary cross-entropy with target 1 on the probability dot products, used as logits."""
    return ops.mean(
        keras.losses.binary_crossentropy(ops.ones_like(similarity), similarity, from_logits=True)
    )


def entropy_loss(_, probabilities):
    """log(K) minus the entropy of the mean cluster assignment of the batch."""
    k = ops.cast(ops.shape(probabilities)[-1], "float32")
    mean = ops.clip(ops.mean(probabilities, axis=0), 1e-8, 1.0)
    return ops.log(k) - (-ops.sum(mean * ops.log(mean)))


@dataclass
class RecipeResult:
    """What a budgeted run of the recipe produced."""

    assignment: np.ndarray
    probabilities: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    pretext_epochs: float = 0.0
    cluster_epochs: float = 0.0
    pretext_images_per_second: float = 0.0


def to_recipe_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1|3) -> float32 (N, H, W, 3) 0..255, at the images' own size."""
    x = images.astype("float32")
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def run_recipe(
    images: np.ndarray,
    clusters: int,
    seed: int = 0,
    pretext_seconds: float | None = None,
    cluster_seconds: float | None = None,
    config: RecipeConfig = RecipeConfig(),
) -> RecipeResult:
    """Runs the recipe on uint8 images (N, H, W, C), each phase within its wall-time budget.

    Args:
        images: decoded images at their own size; the recipe resizes inside its model.
        clusters: number of clusters (the recipe uses 20 on CIFAR-10; benchmarks use the class count).
        seed: seeds Keras, NumPy and the augmentation layers.
        pretext_seconds: budget of representation learning (model building included); None: epochs only.
        cluster_seconds: budget of neighbour mining + clustering; None: epochs only.
        config: recipe hyper-parameters.
    """
    keras.utils.set_random_seed(seed)
    x = to_recipe_input(images)
    n, h, w, _ = x.shape
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    deadline = start + pretext_seconds if pretext_seconds is not None else None
    preprocessing = make_preprocessing(x, config.target_size)
    augmentation = make_augmentation(seed)
    encoder = make_encoder(config.target_size, config.representation_dim)
    learner = RepresentationLearner(encoder, preprocessing, augmentation, config)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.decay_steps, alpha=config.decay_alpha
    )
    learner.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay))
    batch = min(config.batch_size, n)
    budget = TimeBudget(deadline)
    fit_start = time.perf_counter()
    learner.fit(x, batch_size=batch, epochs=config.pretext_epochs, verbose=0, callbacks=[budget])
    fit_seconds = time.perf_counter() - fit_start
    steps_per_epoch = -(-n // batch)
    seconds["pretext"] = time.perf_counter() - start
    pretext_epochs = budget.batches / steps_per_epoch
    images_per_second = min(n, budget.batches * batch) / fit_seconds if fit_seconds else 0.0

    start = time.perf_counter()
    deadline = start + cluster_seconds if cluster_seconds is not None else None
    features = _predict(lambda b: encoder(preprocessing(b), training=False), x)
    neighbours = mine_neighbours(features, config.k_neighbours)
    seconds["neighbours"] = time.perf_counter() - start

    cstart = time.perf_counter()
    for layer in encoder.layers:
        layer.trainable = config.tune_encoder_during_clustering
    inputs = keras.Input((h, w, 3))
    z = encoder(augmentation(preprocessing(inputs)))
    clustering = keras.Model(
        inputs, layers.Dense(clusters, activation="softmax")(z), name="clustering"
    )
    anchor = keras.Input((h, w, 3), name="anchors")
    neigh = keras.Input((config.k_neighbours, h, w, 3), name="neighbours")
    anchor_p = clustering(anchor)
    neigh_p = ops.reshape(
        clustering(ops.reshape(neigh, (-1, h, w, 3))), (-1, config.k_neighbours, clusters)
    )
    similarity = ops.squeeze(ops.einsum("bij,bkj->bik", ops.expand_dims(anchor_p, 1), neigh_p), 1)
    learner2 = keras.Model([anchor, neigh], [similarity, anchor_p], name="clustering_learner")
    learner2.compile(
        optimizer=keras.optimizers.AdamW(
            config.cluster_learning_rate, weight_decay=config.weight_decay
        ),
        loss=[consistency_loss, entropy_loss],
        loss_weights=[1.0, config.entropy_weight],
    )
    budget2 = TimeBudget(deadline)
    y = np.ones((n,), dtype="float32")
    learner2.fit(
        {"anchors": x, "neighbours": x[neighbours]},
        [y, y],
        batch_size=batch,
        epochs=config.cluster_epochs,
        verbose=0,
        callbacks=[budget2],
    )
    probabilities = _predict(lambda b: clustering(b, training=False), x)
    seconds["cluster"] = time.perf_counter() - cstart
    return RecipeResult(
        assignment=probabilities.argmax(1),
        probabilities=probabilities,
        seconds=seconds,
        pretext_epochs=pretext_epochs,
        cluster_epochs=budget2.batches / steps_per_epoch,
        pretext_images_per_second=images_per_second,
    )


def _predict(fn, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    return np.concatenate(
        [ops.convert_to_numpy(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    )
