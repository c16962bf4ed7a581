"""The automatic choice of the number of clusters: the criterion over every k tried, the choice marked.

Shows a :class:`semclust.core.clustering.choose_k.KChoice` (``choose_k.json`` of a run): the combined score as a thick
line, each raw criterion that varies rescaled to 0..1 over the k tried as a thin one (their units
differ), and a vertical line with a label at the chosen k.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from semclust.gui._core import KChoice
from semclust.gui.panels.plots import titled

#: Pens of the raw criteria, in the order of :data:`semclust.core.clustering.choose_k.CURVES`.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#7f7f7f")

__all__ = ["ChooseKPlot", "rescaled"]


def rescaled(values) -> np.ndarray:
    """``values`` mapped linearly onto 0..1 (a constant curve to 0.5; NaN kept as NaN)."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return v
    low, high = finite.min(), finite.max()
    return np.full_like(v, 0.5) if high - low < 1e-12 else (v - low) / (high - low)


class ChooseKPlot(QWidget):
    """A plot of the label-free criteria over k with the chosen k marked.

    Attributes:
        plot: the pyqtgraph plot widget.
        score_curve: the combined score (rescaled to 0..1).
        curves: one item per raw criterion that varies over k, by name (rescaled to 0..1).
        marker: the vertical line at the chosen k; ``marker.label`` reads ``k = best``.
        summary: a line of text under the plot.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "number of clusters k")
        self.plot.setLabel("left", "criterion (0: worst k tried, 1: best)")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.score_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#000", width=3), symbol="o", symbolSize=6, name="score"
        )
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.marker = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen("#d62728", width=2, style=Qt.PenStyle.DashLine),
            label="",
            labelOpts={"position": 0.92, "color": "#d62728", "fill": (255, 255, 255, 200)},
        )
        self.marker.setVisible(False)
        self.plot.addItem(self.marker, ignoreBounds=True)
        layout.addWidget(titled(self.plot, "Choosing the number of clusters")[0], 1)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.choice: KChoice | None = None
        self.set_choice(None)

    def set_choice(self, choice: KChoice | None) -> None:
        """Shows ``choice`` (``None``: an empty plot saying that k was given, not chosen)."""
        self.choice = choice
        for item in self.curves.values():
            self.plot.removeItem(item)
            self.legend.removeItem(item)
        self.curves.clear()
        if choice is None:
            self.score_curve.setData([], [])
            self.marker.setVisible(False)
            self.marker.label.setFormat("")
            self.summary.setText("The number of clusters was given, not chosen automatically.")
            return
        ks = np.asarray(choice.ks, dtype=float)
        for i, (name, values) in enumerate(choice.curves.items()):
            if np.ptp(np.nan_to_num(np.asarray(values, dtype=float))) < 1e-12:
                continue  # a flat curve (no empty cluster at any k) says nothing here
            pen = pg.mkPen(_COLOURS[i % len(_COLOURS)], width=1, style=Qt.PenStyle.DashLine)
            self.curves[name] = self.plot.plot(ks, rescaled(values), pen=pen, name=name)
        self.score_curve.setData(ks, rescaled(choice.score))
        self.score_curve.setZValue(10)
        self.marker.setPos(choice.best)
        self.marker.label.setFormat(f"k = {choice.best}")
        self.marker.setVisible(True)
        self.plot.setXRange(ks.min() - 0.5, ks.max() + 0.5, padding=0)
        self.plot.setYRange(-0.05, 1.05, padding=0)
        self.summary.setText(
            f"Chosen k = {choice.best}, from k = {choice.ks[0]}..{choice.ks[-1]} tried without "
            f"labels in {choice.seconds:.0f} s. The thick line is the combined score; the thin ones "
            "are its criteria, each rescaled to 0..1."
        )
