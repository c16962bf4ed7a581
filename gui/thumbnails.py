"""Thumbnails read off the GUI thread, cached, and a grid view of images that uses them.

:class:`ThumbnailLoader` reads with the run's ``read_image`` (its decoded images in semclust's cache,
else the file decoded again) in a small ``QThreadPool``; the newest
request runs first (what the user looks at now), finished images come back as ``QImage`` through a
queued signal and are turned into cached ``QPixmap`` on the GUI thread.
:class:`ThumbnailGrid` is a ``QListView`` in icon mode over a list of image indices.
"""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import shiboken6
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle

#: Every pool created here; tests wait for them and assert they are idle.
_POOLS: weakref.WeakSet[QThreadPool] = weakref.WeakSet()


def live_pools() -> list[QThreadPool]:
    """Pools created here whose C++ object still exists."""
    return [p for p in list(_POOLS) if shiboken6.isValid(p)]


def busy_pools() -> list[QThreadPool]:
    return [p for p in live_pools() if p.activeThreadCount() > 0]


def to_qimage(array: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB -> QImage that owns its pixels."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    h, w, _ = array.shape
    return QImage(array.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class _Signals(QObject):
    done = Signal(int, int, QImage)  # generation, image index, image
    error = Signal(int, int, str)


class _LoadJob(QRunnable):
    def __init__(self, signals: _Signals, generation: int, index: int,
                 read: Callable[[int, int], np.ndarray], size: int):  # fmt: skip
        super().__init__()
        self.signals, self.generation, self.index, self.read, self.size = (
            signals, generation, index, read, size)  # fmt: skip

    def run(self) -> None:  # on a pool thread: no widgets here
        try:  # the path too: a run folder's path that leads outside its image folder is refused
            image = to_qimage(self.read(self.index, self.size))
        except Exception as exc:  # noqa: BLE001 - a bad file must not kill the pool
            self.signals.error.emit(self.generation, self.index, str(exc))
        else:
            self.signals.done.emit(self.generation, self.index, image)


class ThumbnailLoader(QObject):
    """Loads and caches thumbnails by image index.

    Signals:
        loaded(int): the thumbnail of this image index is now in the cache (or failed for good).
    """

    loaded = Signal(int)

    def __init__(self, size: int = 96, capacity: int = 3000, threads: int = 2,
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.size = size
        self.capacity = capacity
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        _POOLS.add(self._pool)
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_done)
        self._signals.error.connect(self._on_error)
        self._cache: OrderedDict[int, QPixmap] = OrderedDict()
        self._failed: dict[int, str] = {}
        self._pending: set[int] = set()
        self._read: Callable[[int, int], np.ndarray] | None = None
        self._generation = 0
        self._priority = itertools.count()
        self.placeholder = QPixmap(size, size)
        self.placeholder.fill(QColor("#e6e6e6"))
        self.broken = QPixmap(size, size)
        self.broken.fill(QColor("#f2c4c4"))

    def set_source(self, read: Callable[[int, int], np.ndarray] | None) -> None:
        """What decodes image ``i`` at a size (a run's ``read_image``); clears the cache (a new run)."""
        self._generation += 1
        self._pool.clear()
        self._cache.clear()
        self._failed.clear()
        self._pending.clear()
        self._read = read

    def cached(self, index: int) -> QPixmap | None:
        pix = self._cache.get(index)
        if pix is not None:
            self._cache.move_to_end(index)
        return pix

    def error(self, index: int) -> str | None:
        return self._failed.get(index)

    def pixmap(self, index: int) -> QPixmap:
        """The thumbnail if cached; otherwise asks for it and returns a placeholder."""
        pix = self.cached(index)
        if pix is not None:
            return pix
        if index in self._failed:
            return self.broken
        self.request(index)
        return self.placeholder

    def request(self, index: int) -> None:
        if self._read is None or index in self._pending or index in self._cache:
            return
        self._pending.add(index)
        job = _LoadJob(self._signals, self._generation, index, self._read, self.size)
        # Newest first: the images the user looks at now jump the queue.
        self._pool.start(job, next(self._priority) % 2_000_000_000)

    def wait(self, msecs: int = 5000) -> bool:
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        self._pool.clear()
        self._pool.waitForDone(10_000)

    def _on_done(self, generation: int, index: int, image: QImage) -> None:
        if generation != self._generation:
            return
        self._pending.discard(index)
        self._cache[index] = QPixmap.fromImage(image)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.loaded.emit(index)

    def _on_error(self, generation: int, index: int, reason: str) -> None:
        if generation != self._generation:
            return
        self._pending.discard(index)
        self._failed[index] = reason
        self.loaded.emit(index)


IndexRole = Qt.ItemDataRole.UserRole + 1


class ThumbnailModel(QAbstractListModel):
    """A list of image indices shown as thumbnails with a caption and a tint."""

    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loader = loader
        self._items = np.zeros(0, dtype=int)
        self._row_of: dict[int, int] = {}
        self.caption: Callable[[int], str] = str
        self.tooltip: Callable[[int], str] = str
        self.tint: Callable[[int], QColor | None] = lambda i: None
        loader.loaded.connect(self._on_loaded)

    def set_items(self, items: Sequence[int]) -> None:
        self.beginResetModel()
        self._items = np.asarray(items, dtype=int).ravel()
        self._row_of = {int(i): r for r, i in enumerate(self._items)}
        self.endResetModel()

    def items(self) -> np.ndarray:
        return self._items

    def refresh(self) -> None:
        """Captions or tints changed (a correction)."""
        if len(self._items):
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1))

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        i = int(self._items[index.row()])
        if role == Qt.ItemDataRole.DecorationRole:
            return self._loader.pixmap(i)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.caption(i)
        if role == Qt.ItemDataRole.ToolTipRole:
            err = self._loader.error(i)
            return self.tooltip(i) + (f"\nCould not read: {err}" if err else "")
        if role == Qt.ItemDataRole.BackgroundRole:
            c = self.tint(i)
            if c is not None:
                c = QColor(c)
                c.setAlpha(70)
            return c
        if role == IndexRole:
            return i
        return None

    def _on_loaded(self, image: int) -> None:
        row = self._row_of.get(image)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])


class ThumbnailGrid(QListView):
    """A scrolling grid of thumbnails.

    Signals:
        activated_image(int): an image was clicked.
        selected_images(object): the selected image indices (numpy array) changed.
    """

    activated_image = Signal(int)
    selected_images = Signal(object)

    def __init__(self, loader: ThumbnailLoader, multi: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.grid_model = ThumbnailModel(loader, self)
        self.setModel(self.grid_model)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setIconSize(QSize(loader.size, loader.size))
        self.setGridSize(QSize(loader.size + 14, loader.size + 34))
        self.setWordWrap(True)
        self.setSpacing(2)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setSelectionMode(
            QAbstractItemView.SelectionMode.ExtendedSelection
            if multi
            else QAbstractItemView.SelectionMode.SingleSelection
        )
        self.clicked.connect(lambda idx: self.activated_image.emit(int(idx.data(IndexRole))))
        self.selectionModel().selectionChanged.connect(self._emit_selection)

    def size_for(self, columns: int, rows: int) -> QSize:
        """The widget size that shows ``columns`` x ``rows`` thumbnails whole, with a scroll bar."""
        cell = self.gridSize()
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        frame = 2 * self.frameWidth()
        gap = 2 * self.spacing()
        return QSize(
            columns * (cell.width() + gap) + bar + frame + gap,
            rows * (cell.height() + gap) + bar + frame + gap,
        )

    def set_items(self, items: Sequence[int]) -> None:
        self.grid_model.set_items(items)

    def items(self) -> np.ndarray:
        return self.grid_model.items()

    def _emit_selection(self, *_) -> None:
        rows = [ix.row() for ix in self.selectionModel().selectedIndexes()]
        self.selected_images.emit(self.grid_model.items()[sorted(rows)])
