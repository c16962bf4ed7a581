"""The map: a UMAP scatter of every image, coloured by cluster or true label, with hover previews,
click to select one image and box or lasso selection of many.

In the spirit of Orange's scatter plot: ``reset_graph`` runs only when the run changes; a colour change
(``update_colors``) only regroups points. Each colour is one ``pg.ScatterPlotItem`` with a single brush,
which pyqtgraph draws from one cached symbol: a per-point brush array of 50,000 entries makes every
recolour cost hundreds of milliseconds and pyqtgraph's own hover test does a full scan per mouse move,
so hover and click use a k-d tree instead (one lookup: microseconds).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from scipy.spatial import cKDTree

from semclust.gui import palette
from semclust.gui.session import Session
from semclust.gui.thumbnails import ThumbnailLoader

PAN, BOX, LASSO = "Pan and zoom", "Box select", "Lasso select"
BY_CLUSTER, BY_LABEL = "Cluster", "True label"


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the points ``xy`` (N, 2) inside ``polygon`` (M, 2), by ray casting."""
    if len(polygon) < 3 or len(xy) == 0:
        return np.zeros(0, dtype=int)
    if len(polygon) > 256:
        polygon = polygon[np.linspace(0, len(polygon) - 1, 256).astype(int)]
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    cand = np.flatnonzero(np.all((xy >= lo) & (xy <= hi), axis=1))
    x, y = xy[cand, 0], xy[cand, 1]
    inside = np.zeros(len(cand), dtype=bool)
    px, py = polygon[:, 0], polygon[:, 1]
    j = len(polygon) - 1
    for i in range(len(polygon)):
        crosses = (py[i] > y) != (py[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = (px[j] - px[i]) * (y - py[i]) / (py[j] - py[i]) + px[i]
        inside ^= crosses & (x < xc)
        j = i
    return cand[inside]


class SelectViewBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a selection box or lasso instead of panning, by mode."""

    sigPolygonSelected = Signal(object)  # (M, 2) array in data coordinates

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mode = PAN
        self._outline = pg.PlotCurveItem(pen=pg.mkPen("#333", width=1, style=Qt.PenStyle.DashLine))
        self._outline.setZValue(1000)
        self._points: list[QPointF] = []

    def mouseDragEvent(self, ev, axis=None) -> None:
        if self.mode == PAN or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        pos = self.mapToView(ev.pos())
        if ev.isStart():
            start = self.mapToView(ev.buttonDownPos())
            self._points = [start]
            if self._outline.scene() is None:
                self.addItem(self._outline, ignoreBounds=True)
        if self.mode == LASSO:
            self._points.append(pos)
            poly = np.array([[p.x(), p.y()] for p in self._points])
        else:
            a = self._points[0]
            poly = np.array(
                [[a.x(), a.y()], [pos.x(), a.y()], [pos.x(), pos.y()], [a.x(), pos.y()]]
            )
        closed = np.vstack([poly, poly[:1]])
        self._outline.setData(closed[:, 0], closed[:, 1])
        if ev.isFinish():
            self._outline.setData([], [])
            self.sigPolygonSelected.emit(poly)


class ScatterPanel(QWidget):
    """The UMAP map of the session's run."""

    def __init__(self, session: Session, loader: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.loader = loader
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.color_by = QComboBox()
        self.color_by.addItem(BY_CLUSTER)
        self.color_by.setToolTip("Colour the points by cluster or, when known, by true label.")
        self.mode = QComboBox()
        self.mode.addItems([PAN, BOX, LASSO])
        self.mode.setToolTip("Left-drag pans, or selects images inside a box or a free-hand lasso.")
        self.info = QLabel("")
        bar.addWidget(QLabel("Colour by:"))
        bar.addWidget(self.color_by)
        bar.addWidget(QLabel("Mouse:"))
        bar.addWidget(self.mode)
        bar.addStretch(1)
        bar.addWidget(self.info)
        layout.addLayout(bar)

        self.view = SelectViewBox()
        self.plot = pg.PlotWidget(viewBox=self.view)
        self.plot.setBackground("w")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(True)
        layout.addWidget(self.plot, 1)
        self._layers: list[pg.ScatterPlotItem] = []
        self._tree: cKDTree | None = None
        self._size = 6
        self.selected_marker = pg.ScatterPlotItem(
            pen=pg.mkPen("k", width=1.5), brush=None, size=9, antialias=False)  # fmt: skip
        self.current_marker = pg.ScatterPlotItem(
            pen=pg.mkPen("#e00", width=3), brush=None, size=16, symbol="o")  # fmt: skip
        for item in (self.selected_marker, self.current_marker):
            self.plot.addItem(item)
            item.setZValue(10)
        self.legend = pg.LegendItem(
            offset=(-10, 10), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 200))  # fmt: skip
        self.legend.setParentItem(self.plot.getPlotItem().vb)

        self.preview = QFrame(self.plot)
        self.preview.setObjectName("preview")
        self.preview.setStyleSheet(
            "#preview { background: rgba(255,255,255,235); border: 1px solid #888; }"
        )
        box = QVBoxLayout(self.preview)
        box.setContentsMargins(4, 4, 4, 4)
        self.preview_image = QLabel()
        self.preview_text = QLabel()
        box.addWidget(self.preview_image)
        box.addWidget(self.preview_text)
        self.preview.hide()
        self._hovered = -1

        self.color_by.currentIndexChanged.connect(self.update_colors)
        self.mode.currentTextChanged.connect(self._set_mode)
        scene = self.plot.scene()
        self._move_proxy = pg.SignalProxy(
            scene.sigMouseMoved, rateLimit=60, slot=self._on_mouse_moved
        )
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self.view.sigPolygonSelected.connect(self._on_polygon)
        loader.loaded.connect(self._on_thumbnail)
        session.runChanged.connect(self.reset_graph)
        session.assignmentChanged.connect(self.update_colors)
        session.selectionChanged.connect(self.update_selection)
        session.currentChanged.connect(self.update_current)
        self.reset_graph()

    # -- drawing ----------------------------------------------------------------------------------
    def _xy(self) -> np.ndarray | None:
        run = self.session.run
        return None if run is None or run.umap is None else np.asarray(run.umap, dtype=float)

    def reset_graph(self) -> None:
        """Rebuilds the points: only when the run changes."""
        xy = self._xy()
        self.color_by.blockSignals(True)
        self.color_by.clear()
        self.color_by.addItem(BY_CLUSTER)
        if self.session.has_labels:
            self.color_by.addItem(BY_LABEL)
        self.color_by.blockSignals(False)
        if xy is None:
            self._tree = None
            self._draw_layers()
            self.info.setText(
                "No map: this run has no UMAP projection." if self.session.run else ""
            )
            self.update_selection()
            self.update_current()
            return
        n = len(xy)
        self._size = 6 if n < 5000 else 4 if n < 20000 else 3
        self._tree = cKDTree(xy)
        self._draw_layers()
        self.info.setText(f"{n:,} images")
        self.update_selection()
        self.update_current()
        self.plot.autoRange()

    def n_points(self) -> int:
        return sum(len(layer.data) for layer in self._layers)

    def _codes(self) -> tuple[np.ndarray, list[str]]:
        """Colour index per image and the legend names."""
        s = self.session
        if self.color_by.currentText() == BY_LABEL and s.has_labels:
            names = s.class_names()
            lookup = {n: i for i, n in enumerate(names)}
            codes = np.array([lookup.get(str(t), len(names)) for t in s.run.true_labels])
            if (codes == len(names)).any():
                names = names + ["(no label)"]
            return codes, names
        return s.assignment, [s.cluster_name(c) for c in range(s.n_clusters)]

    def _draw_layers(self) -> None:
        """One scatter item per colour, each with one brush."""
        xy = self._xy()
        groups: list[np.ndarray] = []
        if xy is not None:
            codes, names = self._codes()
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
            groups = [order[bounds[c] : bounds[c + 1]] for c in range(len(names))]
        while len(self._layers) < len(groups):
            layer = pg.ScatterPlotItem(pen=None, antialias=False)
            self.plot.addItem(layer)
            self._layers.append(layer)
        brushes = palette.brushes(len(groups)) if groups else ()
        for c, layer in enumerate(self._layers):
            if c < len(groups) and len(groups[c]):
                layer.setData(pos=xy[groups[c]], size=self._size, pen=None, brush=brushes[c])
            else:
                layer.clear()
        self._update_legend()

    def update_colors(self) -> None:
        """Cheap: regroups the points by colour; positions and the view stay."""
        self._draw_layers()

    def _update_legend(self) -> None:
        self.legend.clear()
        codes, names = self._codes()
        counts = np.bincount(codes, minlength=len(names)) if len(codes) else np.zeros(len(names))
        shown = [i for i in range(len(names)) if counts[i] > 0]
        for i in shown[:20]:
            sample = pg.ScatterPlotItem(pen=None, brush=palette.brushes(len(names))[i], size=10)
            self.legend.addItem(sample, f"{names[i]} ({counts[i]:,})")
        if len(shown) > 20:
            self.legend.addItem(
                pg.ScatterPlotItem(pen=None, brush=None), f"… {len(shown) - 20} more"
            )

    def update_selection(self) -> None:
        xy, sel = self._xy(), self.session.selection
        if xy is None or not len(sel):
            self.selected_marker.clear()
            return
        self.selected_marker.setData(pos=xy[sel])

    def update_current(self, *_) -> None:
        xy, i = self._xy(), self.session.current
        if xy is None or i < 0:
            self.current_marker.clear()
            return
        self.current_marker.setData(pos=xy[i : i + 1])

    # -- interaction ------------------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        self.view.mode = mode

    def point_at(self, scene_pos: QPointF, radius_px: float = 8.0) -> int:
        """The image whose point is nearest to a scene position, within ``radius_px``; else -1."""
        if self._tree is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return -1
        p = self.view.mapSceneToView(scene_pos)
        dist, i = self._tree.query([p.x(), p.y()])
        px_w, px_h = self.view.viewPixelSize()
        if not np.isfinite(dist) or dist / max(px_w, px_h, 1e-12) > radius_px:
            return -1
        return int(i)

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            i = self.point_at(ev.scenePos())
            if i >= 0:
                self.session.set_current(i)

    def _on_polygon(self, polygon: np.ndarray) -> None:
        xy = self._xy()
        if xy is not None:
            self.session.set_selection(points_in_polygon(xy, polygon))

    def _on_mouse_moved(self, args) -> None:
        i = self.point_at(args[0])
        if i < 0:
            self._hovered = -1
            self.preview.hide()
        elif i != self._hovered:
            self._hovered = i
            self._show_preview()

    def _on_thumbnail(self, i: int) -> None:
        if i == self._hovered:
            self._show_preview()

    def _show_preview(self) -> None:
        i, s = self._hovered, self.session
        if i < 0 or s.run is None:
            return
        label = s.true_label(i)
        text = f"{s.file_name(i)}\n{s.cluster_name(int(s.assignment[i]))}"
        if label is not None:
            text += f" · true: {label}"
        self.preview_image.setPixmap(self.loader.pixmap(i))
        self.preview_text.setText(text)
        self.preview.adjustSize()
        self.preview.move(8, 8)
        self.preview.show()
        self.preview.raise_()
