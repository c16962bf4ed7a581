"""Self-labelling (SCAN section 2.3): fine-tune on the model's own confident predictions.

Images whose predicted probability exceeds a threshold (0.99) on a weak view become targets for a strongly
augmented view; the cross-entropy is weighted by inverse class frequency among the confident images of the
batch, so that large clusters do not swallow small ones.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from semclust.core.clustering.losses import EPS
from semclust.core.clustering.scan import STEPS_PER_CALL, ClusterHeads
from semclust.core.config import SelfLabelConfig
from semclust.core.progress import CancelToken, ProgressCallback, ignore_progress
from semclust.core.training import fit_stage, steps


def selflabel_loss(weak_probs, strong_probs, threshold: float = 0.99):
    """Class-balanced cross-entropy on confident samples (SCAN's ConfidenceBasedCE).

    Args:
        weak_probs: (B, K) probabilities of the weak view (targets; no gradient flows through them).
        strong_probs: (B, K) probabilities of the strong view.
        threshold: minimum max-probability for a sample to count.

    Returns:
        The weighted mean cross-entropy over confident samples, 0 when there are none.
    """
    weak_probs = ops.stop_gradient(weak_probs)
    k = ops.shape(weak_probs)[1]
    confident = ops.cast(ops.max(weak_probs, axis=1) > threshold, "float32")
    target = ops.one_hot(ops.argmax(weak_probs, axis=1), k)
    counts = ops.sum(target * confident[:, None], axis=0)
    n_conf = ops.sum(confident)
    class_weight = ops.where(counts > 0, n_conf / ops.maximum(counts, 1.0), 0.0)
    sample_weight = confident * ops.sum(target * class_weight, axis=1)
    ce = -ops.sum(target * ops.log(ops.maximum(strong_probs, EPS)), axis=1)
    return ops.sum(sample_weight * ce) / ops.maximum(ops.sum(sample_weight), EPS)


class SelfLabelModel(keras.Model):
    """Trains one head of :class:`ClusterHeads` on (weak input, strong input) pairs."""

    def __init__(
        self,
        heads: ClusterHeads,
        head: int,
        augment: keras.layers.Layer | None,
        threshold: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cluster_heads = heads
        self.head = head
        self.augment = augment
        self.threshold = threshold

    def call(self, pair, training=False):
        weak, strong = pair
        if training and self.augment is not None:
            strong = self.augment(strong, training=True)
        n = ops.shape(weak)[0]
        p = self.cluster_heads(ops.concatenate([weak, strong], axis=0), training=training)[
            :, self.head
        ]
        return ops.stack([p[:n], p[n:]], axis=0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return selflabel_loss(y_pred[0], y_pred[1], self.threshold)


class ViewDataset(keras.utils.PyDataset):
    """Batches of (clean input, one of several augmented inputs) for self-labelling.

    ``views`` is (V, N, ...) precomputed augmented features, or ``None`` to pair the data with itself
    (the model augments images on the fly).
    """

    def __init__(self, data: np.ndarray, views: np.ndarray | None, batch_size: int, seed: int):
        super().__init__()
        self.data, self.views, self.batch_size = data, views, batch_size
        self.rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        n = len(self.data)
        self.order = self.rng.permutation(n)
        self.view = (
            self.rng.integers(0, len(self.views), size=n) if self.views is not None else None
        )

    def __len__(self) -> int:
        return steps(len(self.data), self.batch_size)

    def __getitem__(self, i):
        idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        strong = self.data[idx] if self.views is None else self.views[self.view[idx], idx]
        strong = strong.astype(self.data.dtype, copy=False)
        return ((self.data[idx], strong),)

    def on_epoch_end(self) -> None:
        self._draw()


def train_selflabel(
    data: np.ndarray,
    heads: ClusterHeads,
    head: int,
    config: SelfLabelConfig,
    seed: int,
    views: np.ndarray | None = None,
    augment: keras.layers.Layer | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Fine-tunes ``heads``' head ``head`` and returns its (N, K) probabilities on clean data.

    Args:
        data: features (N, F) without a backbone, else images.
        views: (V, N, F) strongly augmented features (frozen backbone), or None.
        augment: strong augmentation applied to images on the fly (with a backbone).
    """
    dataset = ViewDataset(data, views, min(config.batch_size, len(data)), seed)
    model = SelfLabelModel(heads, head, augment, config.threshold)
    per_call = STEPS_PER_CALL if heads.backbone is None else 1  # as SCAN's: frozen features
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate), steps_per_execution=per_call
    )

    def on_epoch(epoch: int, logs: dict) -> dict:
        probs = heads.probabilities(data)[:, head]
        return {
            "cluster_sizes": np.bincount(probs.argmax(axis=1), minlength=heads.n_clusters).tolist(),
            "confident_fraction": float(np.mean(probs.max(axis=1) > config.threshold)),
        }

    fit_stage(
        model,
        dataset,
        "selflabel",
        config.epochs,
        progress,
        cancel,
        on_epoch,
        activity="self-labelling",
    )
    return heads.probabilities(data, cancel)[:, head]
