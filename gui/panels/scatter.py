"""The map: a UMAP scatter of every image, coloured by cluster or true label, with hover previews,
click to select one image and box or lasso selection of many.

In the spirit of Orange's scatter plot: ``reset_graph`` runs only when the run changes; a colour change
(``update_colors``) only regroups points. Each colour is one ``pg.ScatterPlotItem`` with a single brush,
which pyqtgraph draws from one cached symbol.

Level of detail (see ``map_lod``): a run of up to ``ScatterPanel.exact_limit`` images is drawn point by
point. A bigger one is drawn point by point only where the view holds at most that many points (zoomed
in), and as a density image of cached tiles otherwise, so that a frame costs about the same at 50,000
or 1,000,000 points. Hover and click use a k-d tree, box and lasso a grid index, both over every
point, so they are exact whatever is drawn.

Images added to the run afterwards (File > Add images…) are drawn over it as outlined triangles of their
cluster's colour (``added_points``), with a hover preview of their own; they cannot be selected.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from scipy.spatial import cKDTree

from semclust.gui import palette
from semclust.gui.panels.added_points import AddedPoints
from semclust.gui.panels.hover_card import HoverCard
from semclust.gui.panels.map_lod import (
    DensityItem,
    GridIndex,
    Rect,
    points_in_polygon,
    rect_contains,
)
from semclust.gui.session import Session
from semclust.gui.thumbnails import ThumbnailLoader

PAN, BOX, LASSO = "Pan and zoom", "Box select", "Lasso select"
BY_CLUSTER, BY_LABEL = "Cluster", "True label"
POINTS, DENSITY = "points", "density"

__all__ = ["BY_CLUSTER", "BY_LABEL", "ScatterPanel", "SelectViewBox", "points_in_polygon"]


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
    """The UMAP map of the session's run.

    Attributes:
        exact_limit: the most points drawn one by one; a view holding more shows the density image.
    """

    exact_limit = 20_000

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
        self.density = DensityItem()
        self.plot.addItem(self.density)
        self._layers: list[pg.ScatterPlotItem] = []
        self.added = AddedPoints(self.plot, self.session)  # shown once show_added gives its model
        self._hovered_added = -1
        self._xy: np.ndarray | None = None  # float64 copy of the run's UMAP, for exact queries
        self._tree: cKDTree | None = None
        self._index: GridIndex | None = None
        self._drawn = np.zeros(0, dtype=np.int64)  # the points drawn one by one (ascending)
        self._drawn_rect: Rect | None = None  # the area whose points are all in ``_drawn``
        self._label_codes: tuple[np.ndarray, list[str]] | None = None
        self._size = 6
        self.level = POINTS
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
        self.legend.setToolTip("Drag the legend to move it; View > Map legend hides it.")
        self.legend_action = QAction("Map legend", self, checkable=True, checked=True)
        self.legend_action.setStatusTip("Show or hide the map's legend, which may cover points.")
        self.legend_action.toggled.connect(self.legend.setVisible)

        self.preview = HoverCard(self.plot)
        self._hovered = -1
        self._hover_pos = QPoint(8, 8)  # where the mouse is, in the plot widget's coordinates
        self.plot.viewport().installEventFilter(self)  # the preview goes when the mouse leaves

        self.color_by.currentIndexChanged.connect(self.update_colors)
        self.mode.currentTextChanged.connect(self._set_mode)
        scene = self.plot.scene()
        self._move_proxy = pg.SignalProxy(
            scene.sigMouseMoved, rateLimit=60, slot=self._on_mouse_moved
        )
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self.view.sigPolygonSelected.connect(self._on_polygon)
        self.view.sigRangeChanged.connect(self.update_level)
        loader.loaded.connect(self._on_thumbnail)
        session.runChanged.connect(self.reset_graph)
        session.assignmentChanged.connect(self.update_colors)
        session.selectionChanged.connect(self.update_selection)
        session.currentChanged.connect(self.update_current)
        self.reset_graph()

    # -- drawing ----------------------------------------------------------------------------------
    def show_added(self, model) -> None:
        """Draws the images added to the run from ``model`` (:class:`gui.additions.AddedImages`),
        following its ``changed`` signal."""
        self.added.model = model
        model.changed.connect(self._on_added_changed)
        self._on_added_changed()

    def _on_added_changed(self) -> None:
        self.hide_preview()
        self._draw_added()
        self._update_legend()

    def _draw_added(self) -> None:
        self.added.redraw(self.color_by.currentText() == BY_CLUSTER, self._size)
        if self._xy is not None:
            m = len(self.added)
            more = f" + {m:,} added (triangles)" if m else ""
            self.info.setText(f"{len(self._xy):,} images{more}")

    def reset_graph(self) -> None:
        """Rebuilds the points and their indexes: only when the run changes."""
        run = self.session.run
        self._xy = None if run is None or run.umap is None else np.asarray(run.umap, dtype=float)
        self._label_codes = None
        self.color_by.blockSignals(True)
        self.color_by.clear()
        self.color_by.addItem(BY_CLUSTER)
        if self.session.has_labels:
            self.color_by.addItem(BY_LABEL)
        self.color_by.blockSignals(False)
        xy = self._xy
        self._drawn_rect = None
        if xy is None:
            self._tree = self._index = None
            self._drawn = np.zeros(0, dtype=np.int64)
            self.density.set_points(None)
            self._set_level(POINTS)
            self.update_colors()
            self.info.setText(
                "No map: this run has no UMAP projection." if self.session.run else ""
            )
            self.update_selection()
            self.update_current()
            return
        n = len(xy)
        self._size = 6 if n < 5000 else 4 if n < 20000 else 3
        self._tree = cKDTree(xy, balanced_tree=False, compact_nodes=False)
        self._index = GridIndex(xy)
        self.density.set_points(self._index)
        self._drawn = np.arange(n) if n <= self.exact_limit else np.zeros(0, dtype=np.int64)
        self.info.setText(f"{n:,} images")
        self.update_colors()
        self.update_selection()
        self.update_current()
        self.plot.autoRange()
        self.update_level()

    def n_points(self) -> int:
        """How many points are drawn one by one now."""
        return sum(len(layer.data) for layer in self._layers)

    def update_level(self, *_) -> None:
        """Draws the view point by point or as a density image, by how many points it holds."""
        xy, index = self._xy, self._index
        if xy is None or index is None:
            return
        if len(xy) <= self.exact_limit:
            self._set_level(POINTS)
            return
        vr = self.view.viewRect()
        view = (vr.left(), vr.top(), vr.right(), vr.bottom())
        # A margin against flicker: once drawn point by point, a view may hold a little more.
        limit = self.exact_limit * (1.2 if self.level == POINTS else 1.0)
        if index.count_in_rect(view) > limit:
            self._set_level(DENSITY)
            return
        if not rect_contains(self._drawn_rect, view):
            # Draw a margin around the view too, so that small pans redraw nothing.
            w, h = view[2] - view[0], view[3] - view[1]
            for margin in (0.25, 0.1, 0.0):
                area = (view[0] - margin * w, view[1] - margin * h,
                        view[2] + margin * w, view[3] + margin * h)  # fmt: skip
                if margin == 0 or index.count_in_rect(area) <= 1.5 * self.exact_limit:
                    break
            self._drawn = index.in_rect(area)
            self._drawn_rect = area
            self._draw_layers()
            self._update_selected_marker()
        self._set_level(POINTS)

    def _set_level(self, level: str) -> None:
        if level == self.level:
            return
        self.level = level
        self.density.set_active(level == DENSITY)
        if level == DENSITY:
            self._drawn = np.zeros(0, dtype=np.int64)
            self._drawn_rect = None
            self._draw_layers()
        self._update_selected_marker()

    def _codes(self) -> tuple[np.ndarray, list[str]]:
        """Colour index per image and the legend names."""
        s = self.session
        if self.color_by.currentText() == BY_LABEL and s.has_labels:
            if self._label_codes is None:  # true labels never change within a run: once per run
                labels = s.run.true_labels
                # Work on the distinct values (a few), not per image: 1M labels in ~0.15 s.
                names = sorted({str(t) for t in set(labels) if t is not None})
                lookup = {n: i for i, n in enumerate(names)}
                table = {t: lookup.get(str(t), len(names)) for t in set(labels)}
                codes = np.fromiter(
                    map(table.__getitem__, labels), dtype=np.int64, count=len(labels)
                )
                if (codes == len(names)).any():
                    names = names + ["(no label)"]
                self._label_codes = codes, names
            return self._label_codes
        return s.assignment, [s.cluster_name(c) for c in range(s.n_clusters)]

    def _draw_layers(self, codes: np.ndarray | None = None, n_colors: int = 0) -> None:
        """One scatter item per colour, each with one brush, for the points drawn one by one."""
        groups: list[np.ndarray] = []
        if self._xy is not None and len(self._drawn):
            if codes is None:
                codes, names = self._codes()
                n_colors = len(names)
            sub = codes[self._drawn]
            order = np.argsort(sub, kind="stable")
            bounds = np.searchsorted(sub[order], np.arange(n_colors + 1))
            groups = [self._drawn[order[bounds[c] : bounds[c + 1]]] for c in range(n_colors)]
        while len(self._layers) < len(groups):
            layer = pg.ScatterPlotItem(pen=None, antialias=False)
            self.plot.addItem(layer)
            self._layers.append(layer)
        brushes = palette.brushes(len(groups)) if groups else ()
        for c, layer in enumerate(self._layers):
            if c < len(groups) and len(groups[c]):
                layer.setData(pos=self._xy[groups[c]], size=self._size, pen=None, brush=brushes[c])
            else:
                layer.clear()

    def update_colors(self) -> None:
        """Cheap: regroups the drawn points by colour and recolours the density image; positions
        and the view stay."""
        self._draw_added()
        if self._xy is None:
            self._draw_layers()
            self._update_legend()
            return
        codes, names = self._codes()
        self._draw_layers(codes, len(names))
        if len(self._xy) > self.exact_limit:
            self.density.set_colors(codes, list(palette.colors(len(names))))
        self._update_legend()

    def _update_legend(self) -> None:
        self.legend.clear()
        if self._xy is None:
            return
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
        sample = self.added.legend_sample()
        if sample is not None:
            self.legend.addItem(*sample)

    def update_selection(self) -> None:
        xy, sel = self._xy, self.session.selection
        if xy is not None and len(xy) > self.exact_limit:
            self.density.set_selected(sel)
        self._update_selected_marker()

    def _update_selected_marker(self) -> None:
        """Rings the selected points among those drawn one by one (the density image shows the
        others darker)."""
        xy, sel = self._xy, self.session.selection
        if xy is None or not len(sel) or not len(self._drawn):
            self.selected_marker.clear()
            return
        if len(self._drawn) < len(xy):
            drawn = np.zeros(len(xy), dtype=bool)
            drawn[self._drawn] = True
            sel = sel[drawn[sel]]
        self.selected_marker.setData(pos=xy[sel])

    def update_current(self, *_) -> None:
        xy, i = self._xy, self.session.current
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

    def added_at(self, scene_pos: QPointF, radius_px: float = 8.0) -> int:
        """The added image (index into the added ones) nearest to a scene position, within
        ``radius_px``; else -1."""
        if not len(self.added) or not self.view.sceneBoundingRect().contains(scene_pos):
            return -1
        p = self.view.mapSceneToView(scene_pos)
        j, dist = self.added.nearest(p.x(), p.y())
        px_w, px_h = self.view.viewPixelSize()
        return j if dist / max(px_w, px_h, 1e-12) <= radius_px else -1

    def points_in(self, polygon: np.ndarray) -> np.ndarray:
        """Indices (ascending) of every image whose point lies inside ``polygon`` (M, 2)."""
        if self._index is None:
            return np.zeros(0, dtype=np.int64)
        return self._index.in_polygon(polygon)

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            i = self.point_at(ev.scenePos())
            if i >= 0:
                self.session.set_current(i)

    def _on_polygon(self, polygon: np.ndarray) -> None:
        if self._index is not None:
            self.session.set_selection(self.points_in(polygon))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's spelling)
        if event.type() == QEvent.Type.Leave and watched is self.plot.viewport():
            self.hide_preview()
        return False

    def hide_preview(self) -> None:
        self._hovered = self._hovered_added = -1
        self.preview.hide()

    def _on_mouse_moved(self, args) -> None:
        scene_pos = args[0]
        self._hover_pos = self.plot.mapFromScene(scene_pos) + self.plot.viewport().pos()
        j = self.added_at(scene_pos)  # drawn on top: found first
        if j >= 0:
            if j != self._hovered_added:
                self._hovered, self._hovered_added = -1, j
                self._show_added_preview()
            else:
                self.preview.place(self._hover_pos)
            return
        self._hovered_added = -1
        i = self.point_at(scene_pos)
        if i < 0:
            self.hide_preview()
        elif i != self._hovered:
            self._hovered = i
            self._show_preview()
        else:
            self.preview.place(self._hover_pos)

    def _on_thumbnail(self, i: int) -> None:
        if i == self._hovered:
            self._show_preview()

    def _show_added_preview(self) -> None:
        """The text of the added image under the mouse (no thumbnail: the loader's are the run's)."""
        self.preview.show_near(self._hover_pos, self.added.describe(self._hovered_added))

    def _show_preview(self) -> None:
        i, s = self._hovered, self.session
        if i < 0 or s.run is None:
            return
        label = s.true_label(i)
        text = f"{s.file_name(i)}\n{s.cluster_name(int(s.assignment[i]))}"
        if label is not None:
            text += f" · true: {label}"
        self.preview.show_near(self._hover_pos, text, self.loader.pixmap(i))
