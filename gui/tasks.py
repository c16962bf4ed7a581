"""Short background jobs (surveying a folder, copying an export) on a shared pool.

The callbacks run on the GUI thread: the job reports through a QObject that lives there, so the
connections are queued.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from semclust.gui.thumbnails import _POOLS

_pool: QThreadPool | None = None
_alive: set[_Relay] = set()


def pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(1)
        _POOLS.add(_pool)
    return _pool


class _Relay(QObject):
    result = Signal(object)
    error = Signal(object)


class _Job(QRunnable):
    def __init__(self, relay: _Relay, fn: Callable, args: tuple) -> None:
        super().__init__()
        self.relay, self.fn, self.args = relay, fn, args

    def run(self) -> None:
        try:
            value = self.fn(*self.args)
        except Exception as exc:  # noqa: BLE001 - handed to on_error on the GUI thread
            exc.__traceback_text__ = traceback.format_exc()
            self.relay.error.emit(exc)
        else:
            self.relay.result.emit(value)


def run_in_background(fn: Callable, *args: Any, on_result: Callable[[Any], None],
                      on_error: Callable[[Exception], None]) -> None:  # fmt: skip
    """Runs ``fn(*args)`` on the pool; ``on_result(value)`` or ``on_error(exc)`` on the GUI thread."""
    relay = _Relay()  # created on the GUI thread: its signals are delivered there
    _alive.add(relay)

    def finish(callback, value):
        _alive.discard(relay)
        callback(value)

    relay.result.connect(lambda v: finish(on_result, v))
    relay.error.connect(lambda e: finish(on_error, e))
    pool().start(_Job(relay, fn, args))
