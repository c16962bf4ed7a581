"""The images added to a run (File > Add images…) on the map: triangles of their cluster's colour,
outlined, over the run's own points; a k-d tree finds the one under the mouse for the hover preview.

They are few beside the run's images (a folder at a time), so they are always drawn one by one.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from scipy.spatial import cKDTree

from semclust.gui import palette

#: The brush of added images when the map is coloured by true label (they have none).
NO_LABEL = "#bbbbbb"


class AddedPoints:
    """One scatter item of the added images, drawn from an :class:`~gui.additions.AddedImages`.

    Args:
        plot: the map's ``pg.PlotWidget``.
        session: the window's :class:`~gui.session.Session` (cluster names, the run shown).
    """

    def __init__(self, plot: pg.PlotWidget, session) -> None:
        self.session = session
        self.model = None
        self.item = pg.ScatterPlotItem(symbol="t", pen=pg.mkPen("#222", width=1), antialias=True)
        self.item.setZValue(5)  # over the run's points, under the selection and current markers
        plot.addItem(self.item)
        self._tree: cKDTree | None = None

    def xy(self) -> np.ndarray | None:
        """(M, 2) places of the added images of the run shown, or ``None`` (none, or no map)."""
        m = self.model
        if m is None or m.run is None or m.run is not self.session.run or m.xy is None:
            return None
        return m.xy if len(m.xy) else None

    def __len__(self) -> int:
        xy = self.xy()
        return 0 if xy is None else len(xy)

    def redraw(self, by_cluster: bool, size: int) -> None:
        """Places and colours; ``by_cluster`` False: grey (the map is coloured by true label)."""
        xy = self.xy()
        if xy is None:
            self.item.clear()
            self._tree = None
            return
        if by_cluster:
            n = max(self.session.n_clusters, 1)
            table = palette.brushes(n)
            brush = [table[int(c) % n] for c in self.model.cluster]
        else:
            brush = pg.mkBrush(NO_LABEL)
        self.item.setData(pos=xy, brush=brush, size=size + 4)
        self._tree = cKDTree(xy)

    def legend_sample(self) -> tuple[pg.ScatterPlotItem, str] | None:
        if not len(self):
            return None
        sample = pg.ScatterPlotItem(symbol="t", pen=pg.mkPen("#222", width=1),
                                    brush=pg.mkBrush("w"), size=10)  # fmt: skip
        return sample, f"added images ({len(self):,})"

    def nearest(self, x: float, y: float) -> tuple[int, float]:
        """The added image nearest to a map position and its distance (-1, inf: none)."""
        if self._tree is None:
            return -1, float("inf")
        dist, j = self._tree.query([x, y])
        return (int(j), float(dist)) if np.isfinite(dist) else (-1, float("inf"))

    def describe(self, j: int) -> str:
        """The hover preview's text of added image ``j``."""
        m, s = self.model, self.session
        path, cluster = m.paths[j], int(m.cluster[j])
        return (
            f"{path.name} (added)\n{s.cluster_name(cluster)} · "
            f"{m.confidence[j]:.0%} of its nearest images agree\n{path.parent}"
        )
