"""The automatic choice of the number of clusters: the criterion over every k tried, the choice marked.

Shows a :class:`semclust.core.clustering.choose_k.KChoice` (``choose_k.json`` of a run): the combined score as a thick
line, each raw criterion that varies rescaled to 0..1 over the k tried as a thin one (their units
differ), a vertical line with a label at the chosen k, and rings round the ks that score nearly as
well (the images leave the number open there). The user can pick another k: a click on the
plot, or the spin box and its button under it, emits :attr:`ChooseKPlot.kPicked`; the window then
re-clusters with that k (the features, neighbours and curve are kept) and the k in use is marked.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from semclust.gui._core import KChoice, rescaled
from semclust.gui.panels.plots import titled

#: Pens of the raw criteria, in the order of :data:`semclust.core.clustering.choose_k.CURVES`.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#7f7f7f")

#: The criteria's names in the legend (a criterion not listed shows its own name).
CURVE_LABELS = {
    "modularity": "modularity",
    "agreement": "neighbour links inside clusters",
    "largest_share": "largest cluster's share",
}

__all__ = ["CURVE_LABELS", "ChooseKPlot", "rescaled"]


class ChooseKPlot(QWidget):
    """A plot of the label-free criteria over k with the chosen k marked.

    Attributes:
        plot: the pyqtgraph plot widget.
        score_curve: the combined score (rescaled to 0..1).
        near: rings round the ks that score nearly as well as the chosen one (none when it stands
            alone): there the images leave the number open.
        curves: one item per raw criterion that varies over k, by name (rescaled to 0..1).
        marker: the vertical line at the chosen k; ``marker.label`` reads ``k = best``.
        in_use: the vertical line at the k the clusters use, when the user picked another one.
        summary: a line of text under the plot.
        pick_box, pick_button: the keyboard's way to pick a k.

    Signals:
        kPicked(int): the user picked this k (one of the k tried) to cluster with.
    """

    kPicked = Signal(int)

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
        self.near = pg.ScatterPlotItem(size=14, pen=pg.mkPen("#d62728", width=2), brush=None)
        self.near.setZValue(11)
        self.plot.addItem(self.near)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.marker = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen("#d62728", width=2, style=Qt.PenStyle.DashLine),
            label="",
            labelOpts={"position": 0.92, "color": "#d62728", "fill": (255, 255, 255, 200)},
        )
        self.marker.setVisible(False)
        self.marker.setZValue(20)  # its label above the score curve (z 10), which peaks at this k
        self.plot.addItem(self.marker, ignoreBounds=True)
        self.in_use = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen("#2ca02c", width=3),
            label="",
            labelOpts={"position": 0.8, "color": "#2ca02c", "fill": (255, 255, 255, 200)},
        )
        self.in_use.setVisible(False)
        self.in_use.setZValue(20)
        self.plot.addItem(self.in_use, ignoreBounds=True)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        layout.addWidget(titled(self.plot, "Choosing the number of clusters")[0], 1)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        row = QHBoxLayout()
        self.pick_box = QSpinBox()
        self.pick_box.setPrefix("k = ")
        self.pick_button = QPushButton("Cluster with this k")
        self.pick_button.setToolTip(
            "Re-cluster with the k in the box (or click a k on the curve). The features, neighbours "
            "and this curve are kept, so it takes seconds; the run folder records the k picked."
        )
        self.pick_button.clicked.connect(lambda: self.kPicked.emit(self.pick_box.value()))
        row.addWidget(QLabel("Pick another number of clusters:"))
        row.addWidget(self.pick_box)
        row.addWidget(self.pick_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.choice: KChoice | None = None
        self.set_choice(None)

    def _on_click(self, event) -> None:
        """A left click on the plot picks the k tried nearest to it."""
        if self.choice is None or event.button() != Qt.MouseButton.LeftButton:
            return
        view = self.plot.getPlotItem().getViewBox()
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        x = view.mapSceneToView(event.scenePos()).x()
        k = min(self.choice.ks, key=lambda kk: abs(kk - x))
        self.pick_box.setValue(k)
        self.kPicked.emit(int(k))

    def set_in_use(self, k: int | None) -> None:
        """Marks the k the clusters use when it is not the chosen one (``None`` hides the mark)."""
        shown = self.choice is not None and k is not None and k != self.choice.best
        self.in_use.setVisible(shown)
        if shown:
            self.in_use.setPos(k)
            self.in_use.label.setFormat(f"in use: k = {k}")
            self.pick_box.setValue(k)

    def set_choice(self, choice: KChoice | None) -> None:
        """Shows ``choice`` (``None``: an empty plot saying that k was given, not chosen)."""
        self.choice = choice
        for item in self.curves.values():
            self.plot.removeItem(item)
            self.legend.removeItem(item)
        self.curves.clear()
        self.legend.removeItem(self.near)
        self.in_use.setVisible(False)
        for widget in (self.pick_box, self.pick_button):
            widget.setEnabled(choice is not None)
        if choice is None:
            self.score_curve.setData([], [])
            self.near.setData([], [])
            self.marker.setVisible(False)
            self.marker.label.setFormat("")
            self.summary.setText("The number of clusters was given, not chosen automatically.")
            return
        ks = np.asarray(choice.ks, dtype=float)
        criterion = choice.extra.get("criterion")  # the curve that is the score (newer runs)
        for i, (name, values) in enumerate(choice.curves.items()):
            if name == criterion or np.ptp(np.nan_to_num(np.asarray(values, dtype=float))) < 1e-12:
                continue  # drawn as the score; or a flat curve (no empty cluster at any k)
            pen = pg.mkPen(_COLOURS[i % len(_COLOURS)], width=1, style=Qt.PenStyle.DashLine)
            label = CURVE_LABELS.get(name, name)
            self.curves[name] = self.plot.plot(ks, rescaled(values), pen=pen, name=label)
        score_name = f"score: {CURVE_LABELS.get(criterion, criterion)}" if criterion else "score"
        self.legend.getLabel(self.score_curve).setText(score_name)
        self.legend.updateSize()
        self.score_curve.setData(ks, rescaled(choice.score))
        self.score_curve.setZValue(10)
        near = [i for i, k in enumerate(choice.ks) if k in choice.ties]
        self.near.setData(ks[near], rescaled(choice.score)[near])
        if near:
            self.legend.addItem(self.near, "nearly as well")
        self.pick_box.setRange(min(choice.ks), max(choice.ks))
        self.pick_box.setValue(choice.best)
        self.marker.setVisible(True)  # first: a hidden line's label ignores a new text
        self.marker.setPos(choice.best)
        self.marker.label.setFormat(f"k = {choice.best}")
        self.plot.setXRange(ks.min() - 0.5, ks.max() + 0.5, padding=0)
        self.plot.setYRange(-0.05, 1.05, padding=0)
        self.summary.setText(
            f"{choice.describe('the Range for auto')}, without labels, in {choice.seconds:.0f} s. "
            f"The thick line is the score{self._score_said(criterion)}; the thin ones are shown "
            "beside it; each is rescaled to 0..1. Click another k to cluster with it."
        )

    @staticmethod
    def _score_said(criterion: str | None) -> str:
        if criterion == "modularity":
            return (
                " (modularity: the share of neighbour links inside the clusters, above what their "
                "sizes alone would give)"
            )
        return f" ({criterion})" if criterion else ""
