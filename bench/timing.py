"""Wall-time and memory measurement helpers."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue as queue_module
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


class StageTimer:
    """Collects wall seconds per named stage.

    Example:
        >>> timer = StageTimer()
        >>> with timer("features"):
        ...     pass
        >>> sorted(timer.seconds)
        ['features']
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return float(sum(self.seconds.values()))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, which starts afresh in a new program; the
    ``ru_maxrss`` fallback is carried over by Linux from a forking parent through ``exec``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _child(queue: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    try:
        value = fn(*args, **kwargs)
        queue.put(("ok", value, peak_rss_mb()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}", 0.0))


def run_isolated(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Runs ``fn(*args, **kwargs)`` in a fresh (spawned) process, so that its peak RSS is its own.

    ``fn`` must be a module-level function returning something picklable; it may measure finer things
    itself (see :func:`peak_rss_mb`).

    Returns:
        (fn's value, peak RSS of the child process in MiB, interpreter and imports included).

    Raises:
        RuntimeError: ``fn`` raised; the message names the exception.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args, kwargs))
    proc.start()
    try:
        while True:
            try:
                status, value, peak = queue.get(timeout=1.0)
                break
            except queue_module.Empty:
                if not proc.is_alive():
                    raise RuntimeError(
                        f"the child process died (exit code {proc.exitcode})"
                    ) from None
    finally:
        proc.join()
    if status != "ok":
        raise RuntimeError(value)
    return value, peak
