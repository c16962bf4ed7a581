"""Plots that scale to the width they are given.

A pyqtgraph title is a label inside the plot's scene, and its length sets the scene's minimum width:
in a narrower widget the plot's right part is cut off (the accuracy tab lost its last clusters that
way). Titles here are Qt labels above the plot, which wrap; tick labels are elided.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

#: The longest tick label, in characters, before it is elided.
TICK_CHARS = 16


def elide(text: str, chars: int = TICK_CHARS) -> str:
    """``text`` cut to ``chars`` characters with an ellipsis."""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def titled(plot: pg.PlotWidget, title: str) -> tuple[QWidget, QLabel]:
    """``plot`` under a wrapping ``title``; returns the widget holding both, and the title."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    label = QLabel(title)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet("QLabel { color: #555; }")
    plot.setMinimumWidth(0)
    layout.addWidget(label)
    layout.addWidget(plot, 1)
    return box, label
