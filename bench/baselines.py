"""Baselines: K-means on raw pixels, and ImageNet MobileNet features + K-means, Ward clustering or Deep
Embedded Clustering (DEC).

Each baseline takes decoded images (as :func:`bench.datasets.load_folder` returns them) and gives a
cluster per image plus the wall seconds of each of its stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans

from bench.timing import StageTimer

if TYPE_CHECKING:
    from semclust.core.clustering.dec import DECConfig, DECResult


@dataclass
class BaselineResult:
    """Cluster assignment of a baseline and its stage timings."""

    assignment: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)


def kmeans(features: np.ndarray, clusters: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """K-means (k-means++ init, best of ``n_init``) on rows of ``features``."""
    model = KMeans(n_clusters=clusters, n_init=n_init, random_state=seed)
    return model.fit_predict(np.asarray(features, dtype=np.float32))


def kmeans_pixels(images: np.ndarray, clusters: int, seed: int = 0) -> BaselineResult:
    """K-means on the raw pixels scaled to 0..1."""
    timer = StageTimer()
    with timer("cluster"):
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        assignment = kmeans(x, clusters, seed)
    return BaselineResult(assignment, timer.seconds)


def to_rgb_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, C) grey or RGB -> float32 (N, size, size, 3) in 0..255, bilinear resize."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images, dtype=tf.float32)
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    x = tf.image.resize(x, (size, size), method="bilinear")
    return x.numpy()


def mobilenet_features(
    images: np.ndarray, weights: str, image_size: int = 96, batch_size: int = 256
) -> np.ndarray:
    """Global-average-pooled ImageNet MobileNet v1 features (N, 1024).

    Args:
        images: uint8 (N, H, W, C) grey or RGB.
        weights: path of the local ``.weights.h5`` file, or ``"imagenet"`` to download.
        image_size: side the images are upscaled to (>= 32).
        batch_size: images per forward pass.
    """
    import keras

    model = keras.applications.MobileNet(
        include_top=False, weights=weights, input_shape=(image_size, image_size, 3), pooling="avg"
    )
    out = []
    for start in range(0, len(images), batch_size):
        x = to_rgb_batch(images[start : start + batch_size], image_size)
        x = keras.applications.mobilenet.preprocess_input(x)
        out.append(np.asarray(model(x, training=False)))
    return np.concatenate(out).astype(np.float32)


def mobilenet_baselines(
    images: np.ndarray,
    clusters: int,
    weights: str,
    seed: int = 0,
    image_size: int = 96,
    features: np.ndarray | None = None,
    feature_seconds: float | None = None,
) -> dict[str, BaselineResult]:
    """MobileNet features clustered by K-means and by agglomerative (Ward) clustering.

    The features are computed once (or passed in with their time) and shared by both clusterings; each
    result reports the feature time as its ``features`` stage. Ward is deterministic, so ``seed`` only
    changes K-means.
    """
    timer = StageTimer()
    if features is None:
        with timer("features"):
            features = mobilenet_features(images, weights, image_size)
        feature_seconds = timer.seconds["features"]
    with timer("kmeans"):
        km = kmeans(features, clusters, seed)
    with timer("ward"):
        ward = AgglomerativeClustering(n_clusters=clusters, linkage="ward").fit_predict(features)
    fs = float(feature_seconds or 0.0)
    return {
        "mobilenet+kmeans": BaselineResult(
            km, {"features": fs, "cluster": timer.seconds["kmeans"]}
        ),
        "mobilenet+agglomerative": BaselineResult(
            ward, {"features": fs, "cluster": timer.seconds["ward"]}
        ),
    }


def mobilenet_dec(
    features: np.ndarray,
    clusters: int,
    seed: int = 0,
    feature_seconds: float = 0.0,
    config: DECConfig | None = None,
) -> tuple[BaselineResult, DECResult]:
    """Deep Embedded Clustering (:func:`semclust.core.clustering.dec.train_dec`) of MobileNet features.

    Takes the features the K-means and Ward rows use (and their time, reported as the ``features``
    stage); the DEC stage covers the autoencoder, K-means on its embedding and the clustering phase.

    Returns:
        The baseline result and DEC's own result (iterations run, last fraction of changed assignments).
    """
    from semclust.core.clustering.dec import DECConfig, train_dec

    timer = StageTimer()
    with timer("dec"):
        result = train_dec(features, clusters, config or DECConfig(), seed)
    seconds = {"features": float(feature_seconds), "cluster": timer.seconds["dec"]}
    return BaselineResult(result.probabilities.argmax(axis=1), seconds), result


def dec_summary(config: DECConfig | None = None) -> dict:
    """The DEC settings a benchmark record lists (all of :class:`DECConfig`)."""
    import dataclasses

    from semclust.core.clustering.dec import DECConfig

    return dataclasses.asdict(config or DECConfig())
