"""A finished run as a model to share: one ``.keras`` file that ``keras.saving.load_model`` opens,
with the run's HTML card and a small JSON beside it, as model hubs expect.

A run may have kept any clustering method (SCAN heads, K-means, a Gaussian mixture on the UMAP map,
Ward, DEC), most of which are no Keras layer; and the user's corrections (moves, merges, new clusters)
are no model at all. So the exported model is a classifier that reproduces the run's clusters of now
(:attr:`RunData.assignment`):

- input: RGB pixels, 0..255 (float; ``uint8`` arrays are cast), of the run's square input size: each
  image decoded, its shorter side scaled to that size (bicubic) and centre-cropped, as the run read
  its own (:func:`semclust.core.images.load_image`);
- the run's encoder (:func:`semclust.core.stage_work.restore_encoder`), which carries its own input
  scaling (and resizing, for ViTs);
- l2-normalisation (``keras.layers.UnitNormalization``): the run's ``features.npy`` normalised;
- a ``Dense`` softmax head whose output ``c`` is the run's cluster ``c`` (the ``cluster`` column of
  ``labels.csv``): a multinomial logistic regression (scikit-learn) fitted on the run's normalised
  features to the run's clusters of now (an image the user moved weighing :data:`MOVED_WEIGHT`),
  its coefficients copied into the layer. A cluster left
  empty by the corrections keeps its output, with a bias that gives it no probability.

The model is built from Keras layers and ops only, so loading it needs ``keras`` alone (and
``keras_hub`` installed, which Keras imports itself, for the keras-hub backbones): the square root of
the ``mid`` features is written as ``keras.ops`` rather than semclust's own layer.

Beside ``NAME.keras`` go ``NAME.html`` (the run's card, :func:`~semclust.core.runfolder.report.write_report`)
and ``NAME.json``: the clusters' names by output index, the input size and preprocessing, what loading
needs, and the agreement of the model's arg-max with the run's clusters (on every image's stored
features; on a fifth of them for a head fitted on the others, which is what to expect of new images;
and on a sample of images read again and passed through the whole model). Nothing of the run folder
or of the image folder is written.

Example:
    >>> import keras, numpy as np
    >>> model = keras.saving.load_model("digits.keras")  # doctest: +SKIP
    >>> clusters = model.predict(pixels).argmax(axis=1)  # (N, S, S, 3), 0..255  # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from semclust import __version__
from semclust.core.images import ImageError, load_image
from semclust.core.runfolder.added import current_features, read_additions
from semclust.core.runfolder.artefacts import atomic_path, is_inside, write_json
from semclust.core.runfolder.report import check_report_path, write_report
from semclust.core.runfolder.results import RunData

#: Most images the head is fitted on (beyond, a seeded sample and every moved image): seconds, not
#: minutes, on a laptop.
MAX_FIT_IMAGES = 20_000
#: Images read again from the image folder and passed through the whole exported model, as a check.
CHECK_IMAGES = 64
#: Inverse regularisation of the head (on unit vectors, whose coordinates are small).
HEAD_C = 1000.0
#: Weight of an image the user moved (one of the others weighs 1): the user's word is the model's.
MOVED_WEIGHT = 10.0
#: How to load a model that holds one of semclust's own layers (registered when their module loads).
LOAD_WITH_SEMCLUST = "import semclust.core.representation.encoders; keras.saving.load_model(path)"
#: Bias of a cluster that has no image: softmax gives it (numerically) no probability.
EMPTY_BIAS = -1e4


@dataclass(frozen=True)
class ModelExport:
    """What :func:`export_model` wrote and measured.

    Attributes:
        model: the ``.keras`` file.
        card: the run's HTML card beside it.
        info: the JSON beside it (see the module docstring).
        agreement: share of the run's images whose cluster of now is the model's arg-max on their
            stored features.
        held_out: that share on a fifth of the images (seeded) for a head fitted on the other four
            fifths: what to expect of new images like the run's (None below 50 images).
        checked: images read again and passed through the whole model (0 when none could be read).
        checked_agreement: that share on those images (None when none were checked).
        cluster_names: the clusters' names, by output index.
        notes: lines worth showing.
        classifier: the Keras model as saved (in memory).
    """

    model: Path
    card: Path
    info: Path
    agreement: float
    held_out: float | None
    checked: int
    checked_agreement: float | None
    cluster_names: list[str]
    notes: list[str] = field(default_factory=list)
    classifier: Any = field(default=None, repr=False, compare=False)


def check_model_path(run: RunData, path: str | Path) -> Path:
    """The model's path, refused when it is not a ``.keras`` file name, names a folder, or lies in
    the image folder (the images are never written to), or when its card or JSON would.

    Raises:
        ValueError: with the reason; nothing is written.
    """
    path = Path(path).expanduser()
    if path.suffix != ".keras":
        raise ValueError(
            f"{path} does not end in .keras; Keras opens only .keras files (say model.keras)."
        )
    additions = read_additions(run)
    for root in [run.image_root, *(f.root for f in (additions.folders if additions else []))]:
        if is_inside(path.absolute().parent, root) or is_inside(path, root):
            raise ValueError(
                f"Choose a model file outside the image folder {root}: it is never written to."
            )
    for target in (path, path.with_suffix(".json")):
        if target.is_dir():
            raise ValueError(f"{target} is a folder; choose a file name for the model.")
    check_report_path(run, path.with_suffix(".html"))
    return path


def export_model(run: RunData, path: str | Path, check_images: int = CHECK_IMAGES) -> ModelExport:
    """Writes the run's clusters as a Keras classifier, with its card and JSON; see the module docstring.

    Args:
        run: a finished run (with the corrections to reproduce).
        path: the ``.keras`` file; ``NAME.html`` and ``NAME.json`` are written beside it.
        check_images: images read again and passed through the whole model to measure its
            agreement end to end (0: none).

    Raises:
        ValueError: the path is refused (:func:`check_model_path`); nothing is written.
        FileNotFoundError: the run keeps no current ``features.npy`` or ``encoder.weights.h5``.
        RunFolderError: a file of the run folder is damaged or inconsistent.
    """
    from semclust.core.representation.simclr import l2_normalise
    from semclust.core.stage_work import restore_encoder

    path = check_model_path(run, path)
    features = current_features(
        run, "its encoder cannot be exported"
    )  # memory-mapped: a million images' features are never all read
    assignment = np.asarray(run.assignment, dtype=np.int64)
    k, seed = run.n_clusters, run.config.seed
    moved = np.fromiter(run.corrections.moves, dtype=np.int64)
    weights = np.ones(len(assignment), dtype=np.float32)
    weights[moved] = MOVED_WEIGHT
    rows = fit_rows(len(assignment), moved, seed)
    unit = l2_normalise(features[rows])
    kernel, bias = fit_head(unit, assignment[rows], k, seed, weights[rows])
    agreement = _agreement(features, assignment, kernel, bias)
    held_out = held_out_agreement(unit, assignment[rows], k, seed, weights[rows])

    encoder = restore_encoder(run.config, run.paths)
    model, requires = build_classifier(encoder, kernel, bias, _model_name(run))
    checked, checked_agreement, notes = _check(run, model, assignment, check_images)
    if "semclust" in requires:  # a layer of ours that has no Keras equivalent
        notes.append(f"loading it needs semclust: {LOAD_WITH_SEMCLUST}")
    names = [run.cluster_name(c) for c in range(k)]

    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    card = write_report(run, path.with_suffix(".html"))
    info = path.with_suffix(".json")
    done = ModelExport(path, card, info, agreement, held_out, checked, checked_agreement, names,
                       notes, model)  # fmt: skip
    write_json(info, _info(run, done, assignment, requires))
    return done


def fit_rows(n: int, moved: np.ndarray, seed: int = 0) -> np.ndarray:
    """The images the head is fitted on: all, or beyond :data:`MAX_FIT_IMAGES` a seeded sample of
    them and every image the user moved (sorted)."""
    if n <= MAX_FIT_IMAGES:
        return np.arange(n)
    sample = np.random.default_rng(seed).choice(n, MAX_FIT_IMAGES, replace=False)
    return np.union1d(sample, moved)


def fit_head(
    unit: np.ndarray,
    assignment: np.ndarray,
    n_clusters: int,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression from unit feature vectors to clusters (each image weighing
    its ``weights``, default 1).

    Returns:
        ``(kernel, bias)`` of a Dense layer: (F, n_clusters) and (n_clusters,), float32. A cluster
        with no image gets a zero column and :data:`EMPTY_BIAS`.
    """
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(unit, dtype=np.float32), np.asarray(assignment)
    kernel = np.zeros((unit.shape[1], n_clusters), dtype=np.float32)
    bias = np.full(n_clusters, EMPTY_BIAS, dtype=np.float32)
    present = np.unique(y)
    if len(present) == 1:  # one cluster: it gets everything
        bias[present[0]] = 0.0
        return kernel, bias
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    head = LogisticRegression(C=HEAD_C, max_iter=2000, random_state=seed).fit(x, y, w)
    coef, intercept = head.coef_, head.intercept_
    if len(present) == 2:  # scikit-learn's binary form: one column for the second class
        coef, intercept = (
            np.vstack([-coef / 2, coef / 2]),
            np.array([-intercept[0], intercept[0]]) / 2,
        )
    kernel[:, head.classes_] = coef.T
    bias[head.classes_] = intercept
    return kernel, bias


def held_out_agreement(
    unit: np.ndarray,
    assignment: np.ndarray,
    n_clusters: int,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> float | None:
    """The agreement on a seeded fifth of the images of a head fitted on the other four fifths
    (None below 50 images)."""
    n = len(unit)
    if n < 50:
        return None
    order = np.random.default_rng(seed + 1).permutation(n)
    test, train = np.sort(order[: n // 5]), np.sort(order[n // 5 :])
    w = None if weights is None else weights[train]
    kernel, bias = fit_head(unit[train], assignment[train], n_clusters, seed, w)
    return float(np.mean(np.argmax(unit[test] @ kernel + bias, axis=1) == assignment[test]))


def build_classifier(encoder, kernel: np.ndarray, bias: np.ndarray, name: str = "semclust"):
    """The exported model: ``encoder``, l2-normalisation and a Dense softmax head of ``kernel`` and
    ``bias``; returns it with the packages its loading needs besides Keras."""
    import keras

    from semclust.core.representation.encoders import SquareRoot

    trunk, root = encoder, False
    last = encoder.layers[-1]
    if isinstance(last, SquareRoot):  # the mid features' square root, as ops: no semclust to load
        trunk, root = keras.Model(encoder.inputs, last.input, name=encoder.name), True
    inputs = keras.Input(tuple(encoder.input.shape[1:]), name="pixels")
    x = trunk(inputs)
    if root:
        x = keras.ops.sqrt(keras.ops.maximum(x, 0.0))
    x = keras.layers.UnitNormalization(name="l2_normalise")(x)
    head = keras.layers.Dense(len(bias), activation="softmax", name="clusters")
    outputs = head(x)
    head.set_weights([kernel, bias])
    model = keras.Model(inputs, outputs, name=name)
    return model, _requires(model)


def _requires(model) -> list[str]:
    """The packages (besides Keras) whose layers the model holds."""
    found = set()
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        package = type(layer).__module__.split(".")[0]
        if package != "keras":
            found.add(package)
        stack.extend(getattr(layer, "layers", None) or [])
    return sorted(found)


def _agreement(
    features: np.ndarray, assignment: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> float:
    """Share of the images whose cluster is the head's arg-max on their normalised features (read a
    chunk of rows at a time)."""
    from semclust.core.representation.simclr import l2_normalise

    same = 0
    for start in range(0, len(features), 65_536):
        unit = l2_normalise(features[start : start + 65_536])
        same += int(
            np.sum(np.argmax(unit @ kernel + bias, axis=1) == assignment[start : start + 65_536])
        )
    return same / max(len(features), 1)


def _check(
    run: RunData, model, assignment: np.ndarray, n: int
) -> tuple[int, float | None, list[str]]:
    """The whole model on up to ``n`` of the run's images read again (evenly spread)."""
    if n <= 0:
        return 0, None, []
    size, limit = run.config.ingest.image_size, run.config.ingest.max_image_pixels
    chosen = np.unique(np.linspace(0, len(assignment) - 1, min(n, len(assignment))).astype(int))
    images, kept = [], []
    for i in chosen:
        try:  # from the file, as a user's code would read it, not from semclust's cache
            images.append(load_image(run.absolute_path(int(i)), size, limit))
            kept.append(int(i))
        except (ImageError, OSError, ValueError):
            continue
    if not kept:
        return 0, None, [f"none of the run's images could be read again from {run.image_root}"]
    predicted = np.argmax(model.predict(np.stack(images), verbose=0), axis=1)
    return len(kept), float(np.mean(predicted == assignment[kept])), []


def _info(run: RunData, done: ModelExport, assignment: np.ndarray, requires: list[str]) -> dict:
    path, names = done.model, done.cluster_names
    size = run.config.ingest.image_size
    sizes = np.bincount(assignment, minlength=len(names))
    return {
        "model": path.name,
        "card": path.with_suffix(".html").name,
        "made_by": f"semclust {__version__}",
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": run.paths.root.name,
        "clusters": [
            {"index": c, "name": name, "images": int(sizes[c])} for c, name in enumerate(names)
        ],
        "cluster_names": names,
        "input": {
            "shape": [size, size, 3],
            "dtype": "float32",
            "range": [0, 255],
            "preprocessing": (
                f"RGB (grey repeated, transparency on white), shorter side scaled to {size} px "
                "(bicubic) and centre-cropped; pixel values 0..255, not scaled: the model scales them"
            ),
        },
        "output": "softmax over the clusters; the arg-max is the cluster index of `clusters`",
        "backbone": run.config.encoder.backbone,
        "load": {
            "code": LOAD_WITH_SEMCLUST
            if "semclust" in requires
            else "keras.saving.load_model(path)",
            "requires": ["keras", *requires],
        },
        "agreement": {
            "features": round(done.agreement, 6),
            "features_images": len(assignment),
            "held_out": None if done.held_out is None else round(done.held_out, 6),
            "images": None if done.checked_agreement is None else round(done.checked_agreement, 6),
            "images_checked": done.checked,
            "meaning": "share of the run's images whose cluster of now (with the corrections) is "
            "the model's arg-max: on the stored features; on a fifth of them for a head fitted on "
            "the others (what to expect of new images); on images read again from the folder",
        },
    }


def _model_name(run: RunData) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", run.paths.root.name)[:48].strip("_")
    return f"semclust_{name}" if name else "semclust"
