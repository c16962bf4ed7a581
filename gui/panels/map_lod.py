"""Level of detail for the map: exact spatial queries over every point, and a density image for views
that hold too many points to draw one by one.

The map of a million images cannot draw a million pyqtgraph spots per frame (measured: 0.4 s of CPU
a frame, 1.5 s on a busy machine). Zoomed out, :class:`DensityItem` draws the points as an image of
bins about 2.5 screen pixels wide, in cached tiles: each bin shows how many points it holds (as colour
strength) and the colour of one of them, drawn in a fixed shuffled order, the way an overplotted
scatter would show it. Zoomed in, when the view holds few enough points, the panel draws those points
one by one. Hover, click, box and lasso never look at what is drawn: :class:`GridIndex` (and the
panel's k-d tree) answer them exactly from the full coordinates."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, QRectF
from PySide6.QtGui import QColor, QImage

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in data coordinates, inclusive


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the points ``xy`` (N, 2) inside ``polygon`` (M, 2), exactly.

    Even-odd ray casting with every vertex of the polygon. The points are sorted by y once, so that
    each edge only visits the points within its own y-span: the work is close to linear in N
    whatever M, instead of N x M.

    Args:
        xy: point coordinates.
        polygon: the vertices, in order; the polygon is closed implicitly.

    Returns:
        Indices into ``xy``, ascending.
    """
    polygon = np.asarray(polygon, dtype=float).reshape(-1, 2)
    if len(polygon) < 3 or len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    x, y = np.asarray(xy[:, 0], dtype=float), np.asarray(xy[:, 1], dtype=float)
    order = np.argsort(y)
    ys, xs = y[order], x[order]
    inside = np.zeros(len(order), dtype=bool)
    ax, ay = polygon[:, 0], polygon[:, 1]
    bx, by = np.roll(ax, 1), np.roll(ay, 1)
    # An edge crosses the horizontal ray of a point at height y when min(ay, by) <= y < max(ay, by).
    lo = np.searchsorted(ys, np.minimum(ay, by), side="left")
    hi = np.searchsorted(ys, np.maximum(ay, by), side="left")
    for e in np.flatnonzero(hi > lo):
        s = slice(lo[e], hi[e])
        xc = (bx[e] - ax[e]) * (ys[s] - ay[e]) / (by[e] - ay[e]) + ax[e]
        inside[s] ^= xs[s] < xc
    mask = np.zeros(len(order), dtype=bool)
    mask[order[inside]] = True
    return np.flatnonzero(mask)


def _concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])``, without the loop."""
    lens = np.maximum(ends - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lens) - lens
    return np.repeat(starts - offsets, lens) + np.arange(total)


class GridIndex:
    """The points bucketed into a square grid of cells over their bounding box.

    Points of one cell are contiguous in ``order`` (cells column by column, points within a cell in
    a fixed random order), so the points of any rectangle of cells are a few slices. Range counts and
    queries are exact: cells wholly inside a rectangle are counted from a summed-area table, only the
    border cells' points are tested. ``order`` is also the density image's drawing order: the point
    that shows in a crowded pixel is a random one, not always the last image of the folder.

    Args:
        xy: (N, 2) coordinates; kept by reference.
        per_cell: the average number of points per cell the grid aims at.
        seed: the seed of the order within cells.
    """

    def __init__(self, xy: np.ndarray, per_cell: int = 16, seed: int = 0) -> None:
        self.xy = xy
        n = len(xy)
        self.g = g = int(np.clip(math.sqrt(max(n, 1) / per_cell), 1, 1024))
        if n:
            lo, hi = xy.min(axis=0).astype(float), xy.max(axis=0).astype(float)
        else:
            lo, hi = np.zeros(2), np.ones(2)
        self.lo = lo
        self.hi = hi
        self.cell = np.maximum(hi - lo, 1e-12) / g
        ix, iy = self._cell_of(xy[:, 0], 0), self._cell_of(xy[:, 1], 1)
        cell_id = ix * g + iy
        rank = np.random.default_rng(seed).permutation(n)
        self.order = np.argsort(cell_id * max(n, 1) + rank)  # unique keys: any sort is the same
        counts = np.bincount(cell_id, minlength=g * g)
        self.start = np.concatenate([[0], np.cumsum(counts)])
        sat = np.zeros((g + 1, g + 1), dtype=np.int64)
        sat[1:, 1:] = counts.reshape(g, g).cumsum(0).cumsum(1)
        self._sat = sat

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def bounds(self) -> Rect:
        """The bounding box of the points."""
        return (float(self.lo[0]), float(self.lo[1]), float(self.hi[0]), float(self.hi[1]))

    def _cell_of(self, v: np.ndarray | float, axis: int) -> np.ndarray:
        c = np.floor((np.asarray(v, dtype=float) - self.lo[axis]) / self.cell[axis])
        return np.clip(c, 0, self.g - 1).astype(np.int64)

    def _block(self, rect: Rect) -> tuple[int, int, int, int] | None:
        """Inclusive cell ranges (cx0, cx1, cy0, cy1) overlapping ``rect``; None when none can."""
        x0, y0, x1, y1 = rect
        if (
            not len(self)
            or x1 < self.lo[0]
            or y1 < self.lo[1]
            or x0 > self.hi[0]
            or y0 > self.hi[1]
        ):
            return None
        if x1 < x0 or y1 < y0:
            return None
        cx0, cx1 = (int(c) for c in self._cell_of([x0, x1], 0))
        cy0, cy1 = (int(c) for c in self._cell_of([y0, y1], 1))
        return cx0, cx1, cy0, cy1

    def _positions(self, cx0: int, cx1: int, cy0: int, cy1: int) -> np.ndarray:
        """Positions in ``order`` of the points in the cells [cx0, cx1] x [cy0, cy1], ascending."""
        if cx1 < cx0 or cy1 < cy0:
            return np.zeros(0, dtype=np.int64)
        cols = np.arange(cx0, cx1 + 1) * self.g
        return _concat_ranges(self.start[cols + cy0], self.start[cols + cy1 + 1])

    def _gather(self, cx0: int, cx1: int, cy0: int, cy1: int) -> np.ndarray:
        """Indices of the points in the cells [cx0, cx1] x [cy0, cy1]."""
        return self.order[self._positions(cx0, cx1, cy0, cy1)]

    def positions_near(self, rect: Rect) -> np.ndarray:
        """Positions in ``order`` (ascending, so in drawing order) of the points in every cell that
        overlaps ``rect``: all the points in it, and some around it."""
        block = self._block(rect)
        return np.zeros(0, dtype=np.int64) if block is None else self._positions(*block)

    def _inside(self, idx: np.ndarray, rect: Rect) -> np.ndarray:
        x, y = self.xy[idx, 0], self.xy[idx, 1]
        return (x >= rect[0]) & (x <= rect[2]) & (y >= rect[1]) & (y <= rect[3])

    def _sat_count(self, cx0: int, cx1: int, cy0: int, cy1: int) -> int:
        if cx1 < cx0 or cy1 < cy0:
            return 0
        s = self._sat
        return int(s[cx1 + 1, cy1 + 1] - s[cx0, cy1 + 1] - s[cx1 + 1, cy0] + s[cx0, cy0])

    def count_in_rect(self, rect: Rect) -> int:
        """The exact number of points with x0 <= x <= x1 and y0 <= y <= y1."""
        block = self._block(rect)
        if block is None:
            return 0
        cx0, cx1, cy0, cy1 = block
        if self._sat_count(cx0, cx1, cy0, cy1) == 0:
            return 0
        # Cells strictly between the first and last row and column lie wholly inside the rectangle.
        inner = self._sat_count(cx0 + 1, cx1 - 1, cy0 + 1, cy1 - 1)
        border = [self._gather(cx0, cx0, cy0, cy1)]
        if cx1 > cx0:
            border.append(self._gather(cx1, cx1, cy0, cy1))
        border.append(self._gather(cx0 + 1, cx1 - 1, cy0, cy0))
        if cy1 > cy0:
            border.append(self._gather(cx0 + 1, cx1 - 1, cy1, cy1))
        idx = np.concatenate(border)
        return inner + int(np.count_nonzero(self._inside(idx, rect)))

    def in_rect(self, rect: Rect) -> np.ndarray:
        """Indices (ascending) of the points with x0 <= x <= x1 and y0 <= y <= y1."""
        block = self._block(rect)
        if block is None:
            return np.zeros(0, dtype=np.int64)
        idx = self._gather(*block)
        idx = idx[self._inside(idx, rect)]
        if len(idx) > len(self) // 16:  # a mask is cheaper than sorting many indices
            mask = np.zeros(len(self), dtype=bool)
            mask[idx] = True
            return np.flatnonzero(mask)
        return np.sort(idx)

    def in_polygon(self, polygon: np.ndarray) -> np.ndarray:
        """Indices (ascending) of the points inside ``polygon`` (M, 2), exactly."""
        polygon = np.asarray(polygon, dtype=float).reshape(-1, 2)
        if len(polygon) < 3:
            return np.zeros(0, dtype=np.int64)
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        cand = self.in_rect((lo[0], lo[1], hi[0], hi[1]))
        return cand[points_in_polygon(self.xy[cand], polygon)]


LATTICE_BITS = 16  # level 0 has 2**16 bins across the data's longer side
TILE_BITS = 8  # a tile is 256 x 256 bins


def density_strength(
    n_levels: int = 32, max_count: int = 1024, full: int = 16, floor: float = 0.75
) -> np.ndarray:
    """Colour strength index (0 .. n_levels - 1) of a bin holding 0 .. max_count points.

    Log-scaled: one point gets ``floor`` of the full colour, ``full`` points or more all of it.
    """
    c = np.arange(max_count + 1, dtype=float)
    level = floor + (1 - floor) * np.log(np.maximum(c, 1)) / math.log(full)
    level = np.clip(level, 0, 1)
    level[0] = 0
    return np.rint(level * (n_levels - 1)).astype(np.intp)


def color_table(colors: list[QColor], n_levels: int = 32) -> np.ndarray:
    """Premultiplied ARGB32 pixels, shape (2, K + 1, n_levels): [selected?, colour, strength].

    Colour K is empty (transparent). A strength blends the colour with white; a selected pixel is
    darkened, so a selection stays visible in the density image.
    """
    rgb = np.array([[c.red(), c.green(), c.blue()] for c in colors], dtype=float).reshape(-1, 3)
    a = np.linspace(0, 1, n_levels)[None, :, None]
    plain = 255 + (rgb[:, None, :] - 255) * a  # (K, L, 3)
    dark = plain * 0.5
    table = np.zeros((2, len(rgb) + 1, n_levels), dtype=np.uint32)
    for s, shade in enumerate((plain, dark)):
        px = np.clip(np.rint(shade), 0, 255).astype(np.uint32)
        table[s, : len(rgb)] = 0xFF000000 | (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]
    return table


def bin_tile(
    bx: np.ndarray,
    by: np.ndarray,
    codes: np.ndarray,
    tx: int,
    ty: int,
    empty: int,
    selected: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Bins the points that fall in one tile; points of other tiles are ignored.

    Args:
        bx, by: integer bin coordinates of the points at the tile's level, in drawing order (a later
            point's colour covers an earlier one's).
        codes: the colour index of each point.
        tx, ty: the tile (bins ``tx * 256 .. tx * 256 + 255`` along x, the same along y).
        empty: the colour index given to bins without points.
        selected: optional boolean mask of selected points.

    Returns:
        counts (256, 256) of points per bin, top (256, 256) colour of the last point binned there,
        and the count of selected points per bin (or None); row 0 is the top (largest y).
    """
    size = 1 << TILE_BITS
    mask = size - 1
    keep = ((bx >> TILE_BITS) == tx) & ((by >> TILE_BITS) == ty)
    pix = (mask - (by[keep] & mask)) * size + (bx[keep] & mask)
    counts = np.bincount(pix, minlength=size * size).reshape(size, size)
    top = np.full(size * size, empty, dtype=np.int32)
    top[pix] = codes[keep]  # repeated bins: the last point written wins, as when drawing in order
    sel = None
    if selected is not None:
        selected = selected[keep]
        if selected.any():
            sel = np.bincount(pix[selected], minlength=size * size).reshape(size, size)
    return counts, top.reshape(size, size), sel


class DensityItem(pg.GraphicsObject):
    """The points as a density image, in cached tiles, as a web map draws its map.

    The data's bounding box is divided into a lattice of 2**16 bins along its longer side (level 0);
    level k merges 2**k x 2**k of them. A paint picks the level whose bins are about ``bin_px``
    screen pixels wide and draws the visible 256 x 256-bin tiles of that level, binning a tile's
    points only the first time it is shown. So panning bins only newly exposed tiles and zooming
    rebins only when the level changes; a change of colours or selection clears the tiles.

    Args:
        bin_px: the on-screen width of a bin aimed at (between 0.7 and 1.4 times it is drawn).
        max_tiles: how many tiles are kept (a 256 x 256 tile takes 256 KiB).
    """

    def __init__(self, bin_px: float = 2.5, max_tiles: int = 96) -> None:
        super().__init__()
        self.bin_px = bin_px
        self.max_tiles = max_tiles
        self._index: GridIndex | None = None
        self._active = False
        self._qx = self._qy = np.zeros(0, dtype=np.int32)
        self._codes = np.zeros(0, dtype=np.int32)
        self._selected: np.ndarray | None = None
        self._table = color_table([])
        self._strength = density_strength()
        self._origin = (0.0, 0.0)
        self._unit = 1.0  # the width of a level-0 bin in data units
        self._bounds = QRectF()
        self._tiles: OrderedDict[tuple[int, int, int], tuple[QImage, np.ndarray]] = OrderedDict()
        self.renders = 0  # how many tiles were binned (for tests and profiling)

    def set_points(self, index: GridIndex | None) -> None:
        """The points, through their grid index (whose ``order`` is the drawing order)."""
        self.prepareGeometryChange()
        self._index = index
        if index is None or not len(index):
            self._qx = self._qy = np.zeros(0, dtype=np.int32)
            self._bounds = QRectF()
        else:
            x0, y0, x1, y1 = index.bounds
            self._origin = (x0, y0)
            self._unit = max(x1 - x0, y1 - y0, 1e-9) / (1 << LATTICE_BITS)
            self._qx, self._qy = self.bin_of(index.xy[index.order], 0)
            self._bounds = QRectF(x0, y0, max(x1 - x0, 1e-9), max(y1 - y0, 1e-9))
        self._codes = np.zeros(len(self._qx), dtype=np.int32)
        self._selected = None
        self.invalidate()

    def set_colors(self, codes: np.ndarray, colors: list[QColor]) -> None:
        """The colour index of every point (in image order) and the colours."""
        if self._index is not None:
            self._codes = np.asarray(codes, dtype=np.int32)[self._index.order]
        self._table = color_table(colors, n_levels=int(self._strength.max()) + 1)
        self.invalidate()

    def set_selected(self, selection: np.ndarray) -> None:
        """The selected images (indices)."""
        self._selected = None
        if self._index is not None and len(selection):
            mask = np.zeros(len(self._qx), dtype=bool)
            mask[selection] = True
            self._selected = mask[self._index.order]
        self.invalidate()

    def set_active(self, active: bool) -> None:
        """Draws the image (active) or nothing; either way the item keeps the data's bounds, so
        that auto-range shows every point whatever is drawn."""
        if active != self._active:
            self._active = active
            self.update()

    @property
    def active(self) -> bool:
        return self._active

    def invalidate(self) -> None:
        """Forgets every tile (new points, colours or selection)."""
        self._tiles.clear()
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)

    # -- tiles ------------------------------------------------------------------------------------
    def bin_of(self, xy: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Integer bin coordinates (x, y) of points at level ``k``; bin i spans
        ``origin + [i, i + 1) * 2**k * unit``."""
        top = (1 << LATTICE_BITS) - 1
        qx = np.clip((xy[:, 0] - self._origin[0]) / self._unit, 0, top).astype(np.int32)
        qy = np.clip((xy[:, 1] - self._origin[1]) / self._unit, 0, top).astype(np.int32)
        return qx >> k, qy >> k

    def level_for(self, px_per_unit: float) -> int:
        """The level whose bins are about ``bin_px`` screen pixels wide."""
        if px_per_unit <= 0:
            return LATTICE_BITS
        k = round(math.log2(max(self.bin_px / (px_per_unit * self._unit), 1e-30)))
        return int(np.clip(k, 0, LATTICE_BITS))

    def _edge(self, axis: int, k: int, t: int) -> float:
        """Data coordinate of the lower edge of tile ``t`` of level ``k`` along ``axis``."""
        return self._origin[axis] + t * (1 << (k + TILE_BITS)) * self._unit

    def tiles_in(self, rect: QRectF, k: int) -> list[tuple[int, int]]:
        """The tiles (tx, ty) of level ``k`` that overlap ``rect`` and hold data."""
        visible = rect.intersected(self._bounds.adjusted(-1e-9, -1e-9, 1e-9, 1e-9))
        if visible.isEmpty() or not len(self._qx):
            return []
        span = (1 << (k + TILE_BITS)) * self._unit
        last = (1 << (LATTICE_BITS - k - TILE_BITS)) - 1 if k + TILE_BITS < LATTICE_BITS else 0
        ox, oy = self._origin

        def rng(lo: float, hi: float, o: float) -> range:
            a = int(np.clip(math.floor((lo - o) / span), 0, last))
            b = int(np.clip(math.floor((hi - o) / span), 0, last))
            return range(a, b + 1)

        xs, ys = rng(visible.left(), visible.right(), ox), rng(visible.top(), visible.bottom(), oy)
        return [(tx, ty) for tx in xs for ty in ys]

    def tile(self, k: int, tx: int, ty: int) -> QImage:
        """The image of one tile (row 0 at the top), binned on first use."""
        return self._tile(k, tx, ty)[0]

    def tile_pixels(self, k: int, tx: int, ty: int) -> np.ndarray:
        """The premultiplied ARGB32 pixels (256, 256) of one tile, row 0 at the top."""
        return self._tile(k, tx, ty)[1]

    def _tile(self, k: int, tx: int, ty: int) -> tuple[QImage, np.ndarray]:
        key = (k, tx, ty)
        if key in self._tiles:
            self._tiles.move_to_end(key)
            return self._tiles[key]
        margin = 2 * self._unit
        rect = (self._edge(0, k, tx) - margin, self._edge(1, k, ty) - margin,
                self._edge(0, k, tx + 1) + margin, self._edge(1, k, ty + 1) + margin)  # fmt: skip
        pos = self._index.positions_near(rect)
        selected = None if self._selected is None else self._selected[pos]
        counts, top, sel = bin_tile(self._qx[pos] >> k, self._qy[pos] >> k, self._codes[pos],
                                    tx, ty, self._table.shape[1] - 1, selected)  # fmt: skip
        strength = self._strength[np.minimum(counts, len(self._strength) - 1)]
        flat = self._table.reshape(-1)
        index = top * self._table.shape[2] + strength
        if sel is not None:
            index += (sel > 0) * (self._table.shape[1] * self._table.shape[2])
        pixels = np.ascontiguousarray(flat[index])
        size = 1 << TILE_BITS
        image = QImage(pixels.data, size, size, size * 4, QImage.Format.Format_ARGB32_Premultiplied)
        self._tiles[key] = (image, pixels)  # the array backs the image: keep it alive
        while len(self._tiles) > self.max_tiles:
            self._tiles.popitem(last=False)
        self.renders += 1
        return image, pixels

    def paint(self, p, *args) -> None:
        vb = self.getViewBox()
        if not self._active or vb is None:
            return
        t = p.transform()
        k = self.level_for(math.hypot(t.m11(), t.m12()))
        tiles = self.tiles_in(vb.viewRect(), k)
        p.resetTransform()
        for tx, ty in tiles:
            image = self.tile(k, tx, ty)
            # Edges are rounded to whole device pixels from the same coordinates, so tiles abut.
            a = t.map(QPointF(self._edge(0, k, tx), self._edge(1, k, ty + 1)))
            b = t.map(QPointF(self._edge(0, k, tx + 1), self._edge(1, k, ty)))
            left, top, right, bottom = round(a.x()), round(a.y()), round(b.x()), round(b.y())
            p.drawImage(QRect(left, top, right - left, bottom - top), image)


def rect_contains(outer: Rect | None, inner: Rect) -> bool:
    """Whether the rectangle ``outer`` holds the whole of ``inner``."""
    return outer is not None and (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )
