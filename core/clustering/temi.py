"""TEMI clustering on frozen features (Adaloglou et al. 2023, "Exploring the Limits of Deep Image
Clustering using Pretrained Models", BMVC).

A student and a teacher, each ``heads`` small MLP heads over the standardised features, see an image
and one of its mined neighbours. The student is trained to raise the ``beta``-tempered pointwise mutual
information of its assignment of one with the teacher's assignment of the other, divided by the
teacher's running mean assignment (which stops everything falling into one cluster without asking for
equal sizes), weighted by how much the teacher's heads agree on the pair
(:func:`semclust.core.clustering.losses.temi_loss`). The teacher is an exponential moving average of the
student's weights. The head with the lowest TEMI loss over the whole data set (every image and all its
neighbours) is kept, and its teacher gives the clusters; no labels are used.

Defaults follow the authors' code (``HHU-MMBS/TEMI-official-BMVC2023``) where a 2-core CPU allows it:
heads of Linear-GELU-Linear to a 256-d l2-normalised bottleneck and a weight-normalised last layer
without bias, beta 0.6, student and teacher temperatures 0.1 (their code's default; its help text quotes
DINO's 0.04), teacher momentum 0.996, marginal momentum 0.9, AdamW with weight decay 1e-4, a linear
learning-rate warm-up over the first fifth of training. Narrower heads, fewer of them (8, not 16) and
far fewer steps than their 100 epochs, to fit about a minute on 2 CPU cores: see :class:`TemiConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops
from scipy.special import softmax

from semclust.core.clustering.losses import temi_loss
from semclust.core.clustering.scan import STEPS_PER_CALL, PairDataset
from semclust.core.progress import CancelToken, ProgressCallback, ignore_progress
from semclust.core.training import fit_stage, predict_batches, seed_everything


@dataclass(frozen=True)
class TemiConfig:
    """TEMI's hyper-parameters (the paper's code's defaults unless said).

    Attributes:
        heads: heads trained at once (paper: 16); the lowest-loss one is kept.
        hidden, bottleneck: widths of each head's hidden layer and l2-normalised bottleneck (paper:
            512 and 256; here 128 and 64, a quarter of the cost of a step on a CPU).
        beta: the exponent of the joint probability in the PMI (0.6).
        student_temperature, teacher_temperature: softmax temperatures (0.1 and 0.1; DINO's teacher
            0.04 gave ACC 0.69 against 0.75 on the digits, one seed).
        teacher_momentum: EMA of the student's weights that gives the teacher (0.996).
        marginal_momentum: EMA of the teacher's batch-mean assignment (0.9).
        learning_rate: AdamW's rate after warm-up (paper: 1e-4 per 256 images of a batch, over 50 times
            more steps; on the 1,797 digits, one seed, 1,000 steps: 3e-4 gave ACC 0.72, 1e-3 0.75,
            3e-3 0.77).
        weight_decay: AdamW's (1e-4).
        warmup: share of the steps over which the learning rate rises linearly (paper: 20 of 100 epochs).
        batch_size: pairs per step (paper: 1024 on CIFAR's 50,000 images; here SCAN's 128).
        epochs, max_steps: at most ``epochs`` passes and ``max_steps`` steps in all: 1,000 steps of 128
            pairs whatever the size (13 epochs of 10,000 images, 71 of the 1,797 digits), 30-60 s on 2
            shared CPU cores. The paper's 100 epochs of 1,024 on CIFAR are about 5,000 steps.
    """

    heads: int = 8
    hidden: int = 128
    bottleneck: int = 64
    beta: float = 0.6
    student_temperature: float = 0.1
    teacher_temperature: float = 0.1
    teacher_momentum: float = 0.996
    marginal_momentum: float = 0.9
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup: float = 0.2
    batch_size: int = 128
    epochs: int = 1_000
    max_steps: int = 1_000


class TemiHeads(keras.layers.Layer):
    """``n_heads`` heads, each Dense-GELU-Dense to an l2-normalised bottleneck, then a weight-normalised
    Dense without bias (DINO's head). Input (B, F) standardised features; output (B, H, K) logits.

    The heads' first layers are one (F, H * hidden) matrix product and the others batched over heads.
    """

    def __init__(
        self, n_clusters: int, n_heads: int, hidden: int, bottleneck: int, seed: int, **kw
    ):
        super().__init__(**kw)
        self.n_clusters, self.n_heads = n_clusters, n_heads
        self.hidden_units, self.bottleneck, self.seed = hidden, bottleneck, seed

    def build(self, input_shape):
        f, h, d, e, k = (
            input_shape[-1],
            self.n_heads,
            self.hidden_units,
            self.bottleneck,
            self.n_clusters,
        )
        normal = keras.initializers.TruncatedNormal  # the authors' trunc_normal(std=0.02), bias 0
        self.w1 = self.add_weight((f, h * d), normal(stddev=0.02, seed=self.seed), name="w1")
        self.b1 = self.add_weight((h * d,), "zeros", name="b1")
        self.w2 = self.add_weight((h, d, e), normal(stddev=0.02, seed=self.seed + 1), name="w2")
        self.b2 = self.add_weight((h, 1, e), "zeros", name="b2")
        bound = 1.0 / np.sqrt(e)  # PyTorch's Linear default for the direction v
        uniform = keras.initializers.RandomUniform(-bound, bound, seed=self.seed + 2)
        self.v = self.add_weight((h, e, k), uniform, name="v")
        self.g = self.add_weight((h, 1, k), "ones", name="g")

    def call(self, x):
        b = ops.shape(x)[0]
        hidden = keras.activations.gelu(ops.matmul(x, self.w1) + self.b1, approximate=False)
        hidden = ops.transpose(ops.reshape(hidden, (b, self.n_heads, self.hidden_units)), (1, 0, 2))
        z = ops.matmul(hidden, self.w2) + self.b2  # (H, B, e)
        z = z / ops.maximum(ops.norm(z, axis=-1, keepdims=True), 1e-12)
        w = self.g * self.v / ops.maximum(ops.norm(self.v, axis=1, keepdims=True), 1e-12)
        return ops.transpose(ops.matmul(z, w), (1, 0, 2))  # (B, H, K)


class TemiModel(keras.Model):
    """A student and an EMA teacher of :class:`TemiHeads` trained on (image, neighbour) pairs.

    In a training call the teacher's running mean assignment and then the teacher's weights are moved
    towards this batch's (a non-trainable variable's ``assign``, as BatchNormalization does: any backend).
    """

    def __init__(self, student: TemiHeads, teacher: TemiHeads, config: TemiConfig, **kwargs):
        super().__init__(**kwargs)
        self.student, self.teacher, self.config = student, teacher, config
        teacher.trainable = False
        self.marginal = self.add_weight(
            (student.n_heads, student.n_clusters),
            keras.initializers.Constant(1.0 / student.n_clusters),
            trainable=False,
            name="marginal",
        )

    def call(self, pair, training=False):
        anchors, neighbours = pair
        x = ops.concatenate([anchors, neighbours], axis=0)
        c = self.config
        teacher = ops.softmax(ops.stop_gradient(self.teacher(x)) / c.teacher_temperature, axis=-1)
        student = ops.softmax(self.student(x) / c.student_temperature, axis=-1)
        marginal = self.marginal.value
        if training:
            m = c.marginal_momentum
            marginal = m * marginal + (1 - m) * ops.mean(teacher, axis=0)
            self.marginal.assign(marginal)
            t = c.teacher_momentum
            for tv, sv in zip(self.teacher.weights, self.student.weights):
                tv.assign(t * tv.value + (1 - t) * ops.stop_gradient(sv.value))
        n = ops.shape(anchors)[0]
        return student[:n], student[n:], teacher[:n], teacher[n:], marginal

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        s_a, s_b, t_a, t_b, marginal = y_pred
        return ops.mean(temi_loss(s_a, s_b, t_a, t_b, marginal, self.config.beta))


def head_losses(
    student: np.ndarray,
    teacher: np.ndarray,
    neighbours: np.ndarray,
    beta: float,
    chunk: int = 5_000,
) -> np.ndarray:
    """(H,) TEMI loss of every head over the whole data set: every image with each of its k neighbours,
    the marginal the teacher's mean assignment over the data set (NumPy, label-free).

    Args:
        student, teacher: (N, H, K) probabilities.
        neighbours: (N, k) neighbour indices.
    """
    marginal = teacher.mean(axis=0)
    n, k = neighbours.shape
    total = np.zeros(student.shape[1])
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        a = np.repeat(rows, k)
        b = neighbours[rows].ravel()
        total += len(a) * temi_loss(
            student[a], student[b], teacher[a], teacher[b], marginal, beta, np
        )
    return total / (n * k)


def temi_probabilities(
    features: np.ndarray,
    neighbours: np.ndarray,
    clusters: int,
    seed: int = 0,
    config: TemiConfig = TemiConfig(),
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """(N, clusters) float32 probabilities of the teacher's lowest-loss head, trained on frozen
    ``features`` (N, F) and their mined ``neighbours`` (N, k). Seeds the backend with ``seed`` (the
    heads' seeded initialisers alone gave different weights from one call to the next)."""
    seed_everything(seed)
    x = np.asarray(features, dtype=np.float32)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)  # the authors' --embed_norm
    x = np.ascontiguousarray(x, dtype=np.float32)
    c = config
    student = TemiHeads(clusters, c.heads, c.hidden, c.bottleneck, seed, name="student")
    teacher = TemiHeads(clusters, c.heads, c.hidden, c.bottleneck, seed, name="teacher")
    model = TemiModel(student, teacher, c)
    model((x[:2], x[:2]))  # build
    teacher.set_weights(student.get_weights())  # the teacher starts as the student

    dataset = PairDataset(x, neighbours, min(c.batch_size, len(x)), seed)
    epochs = max(1, min(c.epochs, c.max_steps // len(dataset)))
    total = epochs * len(dataset)
    rate = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total - int(c.warmup * total)),
        alpha=1.0,  # no decay after the warm-up (the paper's min_lr equals its lr)
        warmup_target=c.learning_rate,
        warmup_steps=int(c.warmup * total),
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(rate, weight_decay=c.weight_decay),
        steps_per_execution=STEPS_PER_CALL,
    )
    fit_stage(model, dataset, "clustering", epochs, progress, cancel, activity="clustering")

    def logits(batch):
        return ops.convert_to_numpy(ops.stack([student(batch), teacher(batch)], axis=1))

    both = predict_batches(logits, x, 1024, cancel)  # (N, 2, H, K)
    s = softmax(both[:, 0] / c.student_temperature, axis=-1)
    t = softmax(both[:, 1] / c.teacher_temperature, axis=-1)
    best = int(np.argmin(head_losses(s, t, np.asarray(neighbours), c.beta)))
    return t[:, best].astype(np.float32)
