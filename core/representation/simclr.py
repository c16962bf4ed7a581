"""SimCLR representation learning (Chen et al. 2020, "A Simple Framework for Contrastive Learning").

Two augmented views of every image pass through the encoder and a projection head; the NT-Xent loss pulls
the two l2-normalised projections of one image together and pushes all others apart. Training saves a
checkpoint after every epoch so that an interrupted run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from semclust.core.config import PretextConfig
from semclust.core.progress import Cancelled, CancelToken, ProgressCallback, ignore_progress
from semclust.core.representation.augment import ViewAugment
from semclust.core.runfolder.artefacts import read_json, save_weights, write_json
from semclust.core.training import StageCallback, divisible, predict_batches, steps


def nt_xent_loss(z1, z2, temperature: float = 0.1):
    """Normalised temperature-scaled cross-entropy over 2N views (SimCLR eq. 1), mean over all 2N anchors.

    Args:
        z1, z2: (N, D) projections of the two views (normalised here).
        temperature: tau (SCAN uses 0.1).
    """
    z = ops.concatenate([z1, z2], axis=0)
    z = z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)
    n2 = ops.shape(z)[0]
    n = n2 // 2
    logits = ops.matmul(z, ops.transpose(z)) / temperature
    logits = logits - 1e9 * ops.eye(n2, dtype=logits.dtype)  # an image is not its own candidate
    idx = ops.arange(n2)
    positives = ops.where(idx < n, idx + n, idx - n)
    log_prob = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    picked = ops.take_along_axis(log_prob, ops.expand_dims(positives, 1), axis=1)
    return -ops.mean(picked)


@keras.saving.register_keras_serializable(package="semclust")
class SimCLRModel(keras.Model):
    """Encoder + projection head trained with NT-Xent on two augmented views.

    Args:
        encoder: images (0..255) -> features.
        augment: a layer producing one random view per call.
        projection_dim: output size of the projection head (MLP: Dense-BN-ReLU-Dense).
        temperature: NT-Xent temperature.
    """

    def __init__(
        self, encoder, augment, projection_dim: int = 128, temperature: float = 0.1, **kwargs
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.augment = augment
        self.projection_dim = projection_dim
        self.temperature = temperature
        width = encoder.output.shape[-1]
        self.projector = keras.Sequential(
            [
                keras.layers.Dense(width, use_bias=False),
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                keras.layers.Dense(projection_dim),
            ],
            name="projector",
        )

    def build(self, input_shape):
        self.projector.build((None, self.encoder.output.shape[-1]))
        self.built = True

    def call(self, images, training=False):
        if training:
            views = ops.concatenate(
                [self.augment(images, training=True), self.augment(images, training=True)], axis=0
            )
            return self.projector(self.encoder(views, training=True), training=True)
        return self.projector(self.encoder(images, training=False), training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        n = ops.shape(y_pred)[0] // 2
        return nt_xent_loss(y_pred[:n], y_pred[n:], self.temperature)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "augment": keras.saving.serialize_keras_object(self.augment),
            "projection_dim": self.projection_dim,
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config: dict) -> SimCLRModel:
        config = dict(config)
        for key in ("encoder", "augment"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def embed(
        self, images: np.ndarray, batch_size: int = 256, cancel: CancelToken | None = None
    ) -> np.ndarray:
        """l2-normalised projections of un-augmented images (what neighbours are mined on)."""
        z = predict_batches(self.predict_on_batch, images, batch_size, cancel)
        return l2_normalise(z)


@dataclass
class PretextResult:
    encoder: keras.Model
    embeddings: np.ndarray
    epochs_done: int


def train_simclr(
    images: np.ndarray,
    encoder: keras.Model,
    config: PretextConfig,
    grey: bool,
    seed: int,
    checkpoint: Path | None = None,
    checkpoint_state: Path | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> PretextResult:
    """Trains ``encoder`` with SimCLR on ``images`` (uint8, N x S x S x 3) and embeds them.

    With ``checkpoint`` set, weights are saved after each epoch (atomically) and training resumes from the
    last finished epoch.

    Raises:
        Cancelled: the cancel token was set (the last finished epoch is in the checkpoint).
        FloatingPointError: the loss became NaN.
    """
    model = SimCLRModel(
        encoder,
        ViewAugment(config.augment, grey=grey, seed=seed),
        config.projection_dim,
        config.temperature,
    )
    batch = min(config.batch_size, len(images))
    n_steps = steps(len(images), batch)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * n_steps
    )
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay))
    model.build(images.shape)
    model.optimizer.build(
        model.trainable_variables
    )  # so that a checkpoint restores its moments too

    initial_epoch = 0
    if checkpoint is not None and checkpoint.is_file() and checkpoint_state is not None:
        state = read_json(checkpoint_state, {}) or {}
        if state.get("epochs_total") == config.epochs:
            model.load_weights(checkpoint)
            initial_epoch = int(state.get("epoch", 0))

    callbacks: list[keras.callbacks.Callback] = []
    tracker = StageCallback(
        "pretext",
        config.epochs,
        n_steps,
        progress,
        cancel,
        every=max(1, n_steps // 10),
        initial_epoch=initial_epoch,
    )
    callbacks.append(tracker)
    if checkpoint is not None and checkpoint_state is not None:
        callbacks.append(
            _EpochCheckpoint(model, checkpoint, checkpoint_state, config.epochs, tracker)
        )
    if initial_epoch < config.epochs:
        # AdamW's step counter drives the cosine schedule: continue it where the checkpoint stopped.
        model.optimizer.iterations.assign(initial_epoch * n_steps)
        model.fit(
            divisible(ImageBatches(images, batch, seed, initial_epoch)),
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            verbose=0,
            callbacks=callbacks,
        )
    if tracker.cancelled:
        raise Cancelled("Stopped by the user during representation learning.")
    return PretextResult(
        encoder=encoder, embeddings=model.embed(images, cancel=cancel), epochs_done=config.epochs
    )


class _EpochCheckpoint(keras.callbacks.Callback):
    def __init__(
        self, model, path: Path, state_path: Path, epochs_total: int, tracker: StageCallback
    ):
        super().__init__()
        self._model_to_save = model
        self.path = path
        self.state_path = state_path
        self.epochs_total = epochs_total
        self.tracker = tracker

    def on_epoch_end(self, epoch, logs=None):
        if self.tracker.cancelled:  # the epoch did not finish
            return
        save_weights(self.path, self._model_to_save)
        write_json(self.state_path, {"epoch": epoch + 1, "epochs_total": self.epochs_total})


class ImageBatches(keras.utils.PyDataset):
    """Shuffled batches of images read from an array that may be memory-mapped (bounded memory).

    Each epoch's order comes from ``(seed, epoch)``, so a resumed run draws the batches the uninterrupted
    run would have drawn; a batch's rows are read in increasing order (sequential reads on disk).
    """

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, epoch: int = 0):
        super().__init__()
        self.images, self.batch_size, self.seed, self.epoch = images, batch_size, seed, epoch
        self._shuffle()

    def _shuffle(self) -> None:
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __len__(self) -> int:
        return steps(len(self.images), self.batch_size)

    def __getitem__(self, i: int):
        idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        return (np.asarray(self.images[idx]),)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()


def l2_normalise(x: np.ndarray, out: np.ndarray | None = None, chunk: int = 65_536) -> np.ndarray:
    """Rows scaled to unit length (float32), a chunk of rows at a time, into ``out`` when given."""
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, len(x), chunk):
        rows = np.asarray(x[start : start + chunk], dtype=np.float32)
        out[start : start + chunk] = rows / np.maximum(
            np.linalg.norm(rows, axis=1, keepdims=True), 1e-12
        )
    return out


def embed_frozen(
    encoder: keras.Model,
    images: np.ndarray,
    cancel: CancelToken | None = None,
    out: np.ndarray | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Backbone features (not normalised, float32) of un-augmented images, into ``out`` when given;
    ``on_batch(done, total)`` after each batch."""
    if out is None:
        out = np.empty((len(images), feature_size(encoder, images)), dtype=np.float32)
    return predict_batches(
        encoder.predict_on_batch, images, 256, cancel, out=out, on_batch=on_batch
    )


def feature_size(encoder: keras.Model, images: np.ndarray) -> int:
    """Length of the encoder's feature vector: its declared output shape, else from one image (a
    prediction on a shape of its own, which costs a second trace of the whole backbone)."""
    declared = getattr(encoder, "output_shape", None)
    if isinstance(declared, tuple) and declared and isinstance(declared[-1], int):
        return declared[-1]
    return int(predict_batches(encoder.predict_on_batch, images[:1]).shape[-1])
