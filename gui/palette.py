"""Cluster and label colours shared by every view."""

from __future__ import annotations

from functools import lru_cache

import pyqtgraph as pg
from PySide6.QtGui import QColor

# Matplotlib's tab10/tab20: distinct, colour-blind friendlier than evenly spaced hues for few classes.
_TAB20 = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip


@lru_cache(maxsize=64)
def colors(n: int) -> tuple[QColor, ...]:
    """``n`` distinct colours."""
    if n <= len(_TAB20):
        return tuple(QColor(c) for c in _TAB20[:n])
    return tuple(pg.intColor(i, hues=n, values=1, maxValue=230) for i in range(n))


def color(i: int, n: int) -> QColor:
    return colors(max(n, 1))[int(i) % max(n, 1)]


@lru_cache(maxsize=64)
def brushes(n: int) -> tuple:
    """One pyqtgraph brush per colour; reusing the same brush objects keeps scatter updates cheap."""
    return tuple(pg.mkBrush(c) for c in colors(n))
