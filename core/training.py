"""What every training stage shares: seeding, the progress/cancel callback, prediction in batches."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

from semclust.core.progress import Cancelled, CancelToken, Progress, ProgressCallback


def quiet_backend() -> None:
    """Silences TensorFlow's Python-side warnings (retracing notices) that mean nothing to a user."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and the Keras backend; makes TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # noqa: BLE001 - older TF or already set
            pass


class StageCallback(keras.callbacks.Callback):
    """Adapts Keras training to the progress protocol, honours cancellation within one batch, and stops
    on a NaN loss.

    Args:
        stage: stage name for the events.
        epochs: epochs of this fit.
        steps_per_epoch: batches per epoch.
        progress: the progress callable.
        cancel: the cancel token, checked after every batch.
        every: report every ``every`` batches (and at each epoch end).
        on_epoch: optional ``f(epoch, logs) -> partial dict`` run at epoch end (partial results).
    """

    def __init__(
        self,
        stage: str,
        epochs: int,
        steps_per_epoch: int,
        progress: ProgressCallback,
        cancel: CancelToken | None,
        every: int = 1,
        on_epoch: Callable[[int, dict], dict | None] | None = None,
        initial_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.stage = stage
        self.total = epochs * steps_per_epoch
        self.steps_per_epoch = steps_per_epoch
        self.progress = progress
        self.cancel = cancel
        self.every = max(1, every)
        self.on_epoch = on_epoch
        self.epoch = initial_epoch
        self.cancelled = False
        self._reported = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = float(logs.get("loss", float("nan")))
        if not math.isfinite(loss):
            self.model.stop_training = True
            raise FloatingPointError(
                f"The {self.stage} loss became {loss} at epoch {self.epoch + 1}; try a lower learning rate."
            )
        # ``batch`` is the last step of a compiled call (several with ``steps_per_execution``)
        step = self.epoch * self.steps_per_epoch + batch + 1
        if step - self._reported >= self.every or batch == 0:
            self._reported = step
            self.progress(
                Progress(
                    self.stage,
                    "progress",
                    step,
                    self.total,
                    losses={"loss": loss},
                    message=f"epoch {self.epoch + 1}",
                )
            )
        if self.cancel is not None and self.cancel.cancelled:
            self.cancelled = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.cancelled:
            return
        logs = dict(logs or {})
        partial = self.on_epoch(epoch, logs) if self.on_epoch else None
        losses = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, np.floating))}
        self.progress(
            Progress(
                self.stage,
                "progress",
                (epoch + 1) * self.steps_per_epoch,
                self.total,
                losses=losses,
                message=f"epoch {epoch + 1} done",
                partial=partial,
            )
        )


def fit_stage(
    model: keras.Model,
    dataset: keras.utils.PyDataset,
    stage: str,
    epochs: int,
    progress: ProgressCallback,
    cancel: CancelToken | None,
    on_epoch: Callable[[int, dict], dict | None] | None = None,
    activity: str = "training",
) -> None:
    """Fits ``model`` on ``dataset`` reporting as ``stage`` (about five events an epoch).

    ``activity`` names the work in the cancel message ("Stopped by the user during <activity>.").

    Raises:
        Cancelled: the cancel token was set; training stopped after the current batch.
    """
    tracker = StageCallback(
        stage,
        epochs,
        len(dataset),
        progress,
        cancel,
        every=max(1, len(dataset) // 5),
        on_epoch=on_epoch,
    )
    model.fit(divisible(dataset), epochs=epochs, verbose=0, callbacks=[tracker])
    if tracker.cancelled:
        raise Cancelled(f"Stopped by the user during {activity}.")


def predict_batches(
    fn: Callable[[np.ndarray], np.ndarray],
    data: np.ndarray,
    batch_size: int = 256,
    cancel: CancelToken | None = None,
    out: np.ndarray | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Applies ``fn`` to ``data`` in batches; the results fill one array (``out`` when given, for
    example a memory-mapped file, else a new one of the first batch's dtype). ``on_batch(done,
    total)`` is called after each batch (progress).

    The data are cut into equal batches of at most ``batch_size`` rows, the last one padded to the
    same size (with fewer rows than there are batches), so that the backend compiles one batch shape
    only: JAX compiles once per shape, and TensorFlow's retrace of a backbone for a short last batch
    took seconds (EfficientNet-Lite2 at 192 px: a second trace of 285 photos' 29 last images). Over
    several devices (:func:`use_all_devices`) each batch is also padded to a multiple of their number.
    The padding's results are dropped.
    """
    multiple = device_count()
    size = max(1, math.ceil(len(data) / steps(len(data), batch_size)))  # equal batches
    for start in range(0, len(data), size):
        if cancel is not None:
            cancel.raise_if_cancelled()
        batch = data[start : start + size]
        result = np.asarray(fn(_pad(_pad(batch, size), multiple)))[: len(batch)]
        if out is None:
            out = np.empty((len(data), *result.shape[1:]), dtype=result.dtype)
        out[start : start + len(batch)] = result
        if on_batch is not None:
            on_batch(start + len(batch), len(data))
    return out


def use_all_devices() -> int:
    """Under the JAX backend with several local devices (GPUs, TPU cores), trains and predicts on all
    of them: every batch is split between them (``keras.distribution.DataParallel``, the weights
    replicated). Returns the number of devices in use; 1, and nothing changes, on other backends or one
    device. A distribution the caller has already set is kept.
    """
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is not None:
        return device_count()
    devices = keras.distribution.list_devices()
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return device_count()


def device_count() -> int:
    """Devices every batch is split between (1 without a distribution)."""
    dist = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    return 1 if dist is None else int(np.prod(dist.device_mesh.shape))


class DivisibleBatches(keras.utils.PyDataset):
    """``dataset`` with every batch padded (its first rows repeated) to a multiple of ``multiple``
    rows, as splitting a batch between devices needs."""

    def __init__(self, dataset: keras.utils.PyDataset, multiple: int):
        super().__init__()
        self.dataset, self.multiple = dataset, multiple

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return keras.tree.map_structure(lambda a: _pad(a, self.multiple), self.dataset[i])

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


def divisible(dataset: keras.utils.PyDataset) -> keras.utils.PyDataset:
    """``dataset`` as it can be split between the devices in use (unchanged on one)."""
    n = device_count()
    return dataset if n == 1 else DivisibleBatches(dataset, n)


def _pad(batch: np.ndarray, multiple: int) -> np.ndarray:
    extra = -len(batch) % multiple
    if extra == 0:
        return batch
    return np.concatenate([batch, np.resize(np.asarray(batch), (extra, *batch.shape[1:]))])


def steps(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))
