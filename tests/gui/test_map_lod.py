"""The map's level of detail: exact queries against numpy references, the density tiles, and the
switch between the density image and points as the view zooms, with hover, click, box, lasso and
recolouring exact at every level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from semclust.core.config import RunConfig
from semclust.core.runfolder.artefacts import RunPaths
from semclust.core.runfolder.results import RunData
from semclust.gui import palette
from semclust.gui.panels.map_lod import (
    TILE_BITS,
    DensityItem,
    GridIndex,
    bin_tile,
    color_table,
    points_in_polygon,
)
from semclust.gui.panels.scatter import BY_LABEL, DENSITY, POINTS, ScatterPanel
from semclust.gui.session import Session
from semclust.gui.thumbnails import ThumbnailLoader


def clustered(n: int, k: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(k, 2))
    labels = rng.integers(0, k, n)
    xy = centres[labels] + rng.normal(0, 1.5, size=(n, 2))
    return xy.astype(np.float32).astype(float), labels


def even_odd(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Plain even-odd ray casting over every point and every edge: the reference."""
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), dtype=bool)
    px, py = polygon[:, 0], polygon[:, 1]
    j = len(polygon) - 1
    for i in range(len(polygon)):
        crosses = (py[i] > y) != (py[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = (px[j] - px[i]) * (y - py[i]) / (py[j] - py[i]) + px[i]
        inside ^= crosses & (x < xc)
        j = i
    return np.flatnonzero(inside)


def lasso(centre, radius: float, n: int, rng) -> np.ndarray:
    """A wobbly free-hand loop, sometimes crossing itself."""
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * (0.6 + 0.4 * rng.random(n))
    return np.c_[centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)]


# -- exact queries ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_vertices", [3, 4, 50, 2000])
def test_points_in_polygon_matches_references(n_vertices):
    rng = np.random.default_rng(n_vertices)
    xy, _ = clustered(20_000)
    for _ in range(5):
        poly = lasso(xy[rng.integers(len(xy))], rng.uniform(2, 20), n_vertices, rng)
        got = points_in_polygon(xy, poly)
        assert np.array_equal(got, even_odd(xy, poly))
        if n_vertices == 4:
            skimage_measure = pytest.importorskip("skimage.measure")
            assert np.array_equal(got, np.flatnonzero(skimage_measure.points_in_poly(xy, poly)))


def test_points_in_polygon_edge_cases():
    xy = np.random.default_rng(0).uniform(0, 1, size=(100, 2))
    assert len(points_in_polygon(xy, np.array([[0, 0], [1, 1]]))) == 0  # not a polygon
    assert len(points_in_polygon(np.zeros((0, 2)), np.array([[0, 0], [1, 0], [0, 1]]))) == 0
    square = np.array([[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]])
    expected = np.flatnonzero(np.all((xy > 0.2) & (xy < 0.8), axis=1))
    assert np.array_equal(points_in_polygon(xy, square), expected)
    assert np.array_equal(points_in_polygon(xy, square[::-1]), expected)  # either winding


@pytest.mark.parametrize("per_cell", [1, 16, 10**9])
def test_grid_index_counts_and_queries_match_numpy(per_cell):
    xy, _ = clustered(30_000)
    xy[:500] = xy[500:1000]  # duplicate points
    index = GridIndex(xy, per_cell=per_cell)
    assert sorted(index.order) == list(range(len(xy)))
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    rng = np.random.default_rng(1)
    rects = [tuple(lo) + tuple(hi), (lo[0] - 5, lo[1] - 5, hi[0] + 5, hi[1] + 5),
             (hi[0] + 1, hi[1] + 1, hi[0] + 2, hi[1] + 2), (0.0, 0.0, -1.0, -1.0),
             (xy[7, 0], xy[7, 1], xy[7, 0], xy[7, 1])]  # fmt: skip
    for _ in range(40):
        a, b = rng.uniform(lo - 3, hi + 3), rng.uniform(lo - 3, hi + 3)
        rects.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
    for _ in range(10):  # edges exactly on points: both are inclusive
        i, j = rng.integers(len(xy), size=2)
        rects.append((min(xy[i, 0], xy[j, 0]), min(xy[i, 1], xy[j, 1]),
                      max(xy[i, 0], xy[j, 0]), max(xy[i, 1], xy[j, 1])))  # fmt: skip
    for r in rects:
        inside = np.flatnonzero(
            (xy[:, 0] >= r[0]) & (xy[:, 0] <= r[2]) & (xy[:, 1] >= r[1]) & (xy[:, 1] <= r[3])
        )
        assert index.count_in_rect(r) == len(inside), r
        assert np.array_equal(index.in_rect(r), inside), r
    poly = lasso(xy.mean(axis=0), 12, 300, rng)
    assert np.array_equal(index.in_polygon(poly), even_odd(xy, poly))


def test_grid_index_of_no_points():
    index = GridIndex(np.zeros((0, 2)))
    assert index.count_in_rect((-1, -1, 1, 1)) == 0
    assert len(index.in_rect((-1, -1, 1, 1))) == 0
    assert len(index.in_polygon(np.array([[0, 0], [1, 0], [0, 1]]))) == 0


# -- density tiles ------------------------------------------------------------------------------
def test_bin_tile_counts_and_colours_against_numpy():
    rng = np.random.default_rng(2)
    bx, by = rng.integers(0, 600, 50_000), rng.integers(0, 600, 50_000)
    codes = rng.integers(0, 5, 50_000)
    selected = rng.random(50_000) < 0.1
    size = 1 << TILE_BITS
    total = 0
    for tx in range(3):
        for ty in range(3):
            counts, top, sel = bin_tile(bx, by, codes, tx, ty, empty=5, selected=selected)
            total += counts.sum()
            mine = np.flatnonzero((bx // size == tx) & (by // size == ty))
            rows, cols = size - 1 - by[mine] % size, bx[mine] % size
            ref = np.zeros((size, size), dtype=int)
            np.add.at(ref, (rows, cols), 1)
            assert np.array_equal(counts, ref)
            ref_sel = np.zeros((size, size), dtype=int)
            np.add.at(ref_sel, (rows[selected[mine]], cols[selected[mine]]), 1)
            assert np.array_equal(sel, ref_sel)
            last = np.full((size, size), 5)
            for i in mine:  # in drawing order: the last point of a bin gives its colour
                last[size - 1 - by[i] % size, bx[i] % size] = codes[i]
            assert np.array_equal(top, last)
    assert total == len(bx)  # every point in exactly one tile


def test_density_tiles_match_a_numpy_reference(qtbot):
    xy, labels = clustered(20_000)
    index = GridIndex(xy)
    item = DensityItem()
    item.set_points(index)
    colors = list(palette.colors(8))
    item.set_colors(labels, colors)
    table = color_table(colors, n_levels=item._table.shape[2])
    size = 1 << TILE_BITS
    for k in (8, 6):
        bx, by = item.bin_of(xy, k)
        # A point's bin contains it (up to float rounding at the bin's edge).
        width = (1 << k) * item._unit
        x0, y0 = item._origin
        assert np.all(np.abs(xy[:, 0] - (x0 + (bx + 0.5) * width)) <= 0.5 * width + 1e-6)
        assert np.all(np.abs(xy[:, 1] - (y0 + (by + 0.5) * width)) <= 0.5 * width + 1e-6)
        seen = 0
        for tx, ty in item.tiles_in(item.boundingRect(), k):
            pixels = item.tile_pixels(k, tx, ty)
            ref = np.zeros((size, size), dtype=np.uint32)
            counts = np.zeros((size, size), dtype=int)
            last = np.zeros((size, size), dtype=int)
            for i in index.order:  # the drawing order: the last point of a bin gives its colour
                if bx[i] >> TILE_BITS == tx and by[i] >> TILE_BITS == ty:
                    r, c = size - 1 - (by[i] & (size - 1)), bx[i] & (size - 1)
                    counts[r, c] += 1
                    last[r, c] = labels[i]
            seen += counts.sum()
            filled = counts > 0
            strength = item._strength[np.minimum(counts, len(item._strength) - 1)]
            ref[filled] = table[0, last[filled], strength[filled]]
            assert np.array_equal(pixels, ref)
        assert seen == len(xy)  # every point in exactly one tile


def test_density_pixel_has_the_colour_of_a_point_in_it(qtbot):
    xy = np.array([[0.0, 0.0], [10.0, 10.0], [10.0, 10.0], [5.0, 2.0]])
    index = GridIndex(xy)
    item = DensityItem()
    item.set_points(index)
    colors = list(palette.colors(3))
    item.set_colors(np.array([0, 1, 1, 2]), colors)
    table = color_table(colors, n_levels=item._table.shape[2])
    pixels = item.tile_pixels(8, 0, 0)
    bx, by = item.bin_of(xy, 8)
    size = 1 << TILE_BITS
    for i, code in enumerate([0, 1, 1, 2]):
        px = pixels[size - 1 - by[i], bx[i]]
        assert px in set(table[0, code])  # its own colour: the point alone in its bin
    assert (pixels != 0).sum() == 3
    # Two points in a bin are drawn stronger than one.
    strength = {int(v): s for s, v in enumerate(table[0, 1])}
    one = item._strength[1]
    assert strength[int(pixels[size - 1 - by[1], bx[1]])] > one
    item.set_selected(np.array([3]))
    selected = item.tile_pixels(8, 0, 0)
    assert selected[size - 1 - by[3], bx[3]] in set(table[1, 2])  # darker when selected
    assert selected[size - 1 - by[0], bx[0]] == pixels[size - 1 - by[0], bx[0]]


# -- the panel ----------------------------------------------------------------------------------
def make_run(tmp_path: Path, n: int, k: int = 8) -> RunData:
    xy, labels = clustered(n, k)
    prob = np.full((n, k), 0.1 / (k - 1))
    prob[np.arange(n), labels] = 0.9
    truth = (labels + (np.arange(n) % 7 == 0)) % k  # labels that differ from the clusters a bit
    return RunData(paths=RunPaths(tmp_path / "run"), config=RunConfig(clusters=k),
                   image_root=tmp_path, image_paths=[f"{i}.png" for i in range(n)],
                   true_labels=[f"class {c}" for c in truth], probabilities=prob,
                   umap=xy.astype(np.float32))  # fmt: skip


@pytest.fixture
def panel(qtbot, tmp_path):
    (tmp_path / "run").mkdir()
    session = Session()
    loader = ThumbnailLoader()
    p = ScatterPanel(session, loader)
    p.exact_limit = 2_000
    qtbot.addWidget(p)
    p.resize(800, 600)
    p.show()
    session.set_run(make_run(tmp_path, 20_000))
    p.plot.grab()
    yield p
    loader.shutdown()


def visible(p: ScatterPanel) -> tuple[tuple[float, float, float, float], np.ndarray]:
    r = p.view.viewRect()
    rect = (r.left(), r.top(), r.right(), r.bottom())
    xy = p.session.run.umap.astype(float)
    inside = (
        (xy[:, 0] >= rect[0])
        & (xy[:, 0] <= rect[2])
        & (xy[:, 1] >= rect[1])
        & (xy[:, 1] <= rect[3])
    )
    return rect, np.flatnonzero(inside)


def drawn(p: ScatterPanel) -> np.ndarray:
    """The points drawn one by one, recovered from the scatter items' coordinates."""
    pos = [np.c_[layer.data["x"], layer.data["y"]] for layer in p._layers if len(layer.data)]
    return np.concatenate(pos) if pos else np.zeros((0, 2))


def zoom_to(p: ScatterPanel, centre, half: float) -> None:
    p.view.setRange(xRange=(centre[0] - half, centre[0] + half),
                    yRange=(centre[1] - half, centre[1] + half), padding=0)  # fmt: skip
    p.plot.grab()


def test_zoomed_out_is_density_zoomed_in_is_every_visible_point(panel):
    p = panel
    assert p.level == DENSITY and p.density.active and p.n_points() == 0
    assert p.density.renders > 0
    xy = p.session.run.umap.astype(float)
    zoom_to(p, xy[0], 0.8)
    _, inside = visible(p)
    assert len(inside) <= p.exact_limit
    assert p.level == POINTS and not p.density.active
    shown = {tuple(v) for v in drawn(p)}
    assert {tuple(v) for v in xy[inside]} <= shown  # every visible point, exactly placed
    assert p.n_points() == len(shown) <= 1.5 * p.exact_limit
    # A small pan stays within the drawn margin: nothing is rebuilt.
    before = p._drawn
    p.view.translateBy(x=0.05)
    assert p._drawn is before
    # A long pan leaves it: the points now in view are drawn.
    p.view.translateBy(x=3 * p.view.viewRect().width())
    _, inside = visible(p)
    assert 0 < len(inside) <= p.exact_limit and p.level == POINTS
    assert {tuple(v) for v in xy[inside]} <= {tuple(v) for v in drawn(p)}
    # Zoomed out again: the density image, no points drawn one by one.
    p.plot.autoRange()
    assert p.level == DENSITY and p.n_points() == 0
    _, inside = visible(p)
    assert len(inside) > p.exact_limit


def test_small_run_draws_every_point_at_every_zoom(qtbot, tmp_path):
    (tmp_path / "run").mkdir()
    session = Session()
    p = ScatterPanel(session, ThumbnailLoader())
    qtbot.addWidget(p)
    p.resize(800, 600)
    p.show()
    session.set_run(make_run(tmp_path, 3_000))
    assert p.level == POINTS and p.n_points() == 3_000
    zoom_to(p, session.run.umap[0], 0.5)
    assert p.level == POINTS and p.n_points() == 3_000


@pytest.mark.parametrize("zoomed_in", [False, True])
def test_hover_and_click_are_exact_at_every_level(panel, qtbot, zoomed_in):
    p = panel
    xy = p.session.run.umap.astype(float)
    if zoomed_in:
        zoom_to(p, xy[5], 0.8)
    assert p.level == (POINTS if zoomed_in else DENSITY)
    rng = np.random.default_rng(3)
    _, inside = visible(p)
    px = max(p.view.viewPixelSize())
    for i in rng.choice(inside, 30, replace=False):
        target = xy[i] + rng.normal(0, 2 * px, 2)
        got = p.point_at(p.view.mapViewToScene(QPointF(*target)))
        d = np.hypot(*(xy - target).T)
        if d.min() <= 8 * px * 0.999:
            assert got >= 0 and d[got] == d.min()  # the nearest image, not a drawn stand-in
    far = xy.max(axis=0) + 1000 * px
    assert p.point_at(p.view.mapViewToScene(QPointF(*far))) == -1
    # A real click on the plot selects the nearest image.
    i = int(inside[0])
    widget_pos = p.plot.mapFromScene(p.view.mapViewToScene(QPointF(*xy[i])))
    qtbot.mouseClick(p.plot.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    clicked = p.session.current
    assert clicked >= 0
    scene_xy = p.view.mapSceneToView(p.plot.mapToScene(widget_pos))
    d = np.hypot(xy[:, 0] - scene_xy.x(), xy[:, 1] - scene_xy.y())
    assert d[clicked] == d.min()


@pytest.mark.parametrize("zoomed_in", [False, True])
def test_box_and_lasso_select_exactly_at_every_level(panel, zoomed_in):
    p = panel
    xy = p.session.run.umap.astype(float)
    if zoomed_in:
        zoom_to(p, xy[9], 0.8)
    rng = np.random.default_rng(4)
    poly = lasso(xy[9], 1.0 if zoomed_in else 8.0, 400, rng)
    p.view.sigPolygonSelected.emit(poly)
    assert np.array_equal(p.session.selection, even_odd(xy, poly))
    assert len(p.session.selection) > 0
    lo, hi = xy[9] - 0.5, xy[9] + 0.7
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    p.view.sigPolygonSelected.emit(box)
    expected = np.flatnonzero(np.all((xy > lo) & (xy < hi), axis=1))
    assert np.array_equal(p.session.selection, expected)
    ringed = {tuple(v) for v in np.c_[p.selected_marker.data["x"], p.selected_marker.data["y"]]}
    if zoomed_in:  # the selection is ringed where points are drawn; the density image shades it
        assert ringed == {tuple(v) for v in xy[expected]}
    else:
        assert not ringed
        assert p.density._selected is not None


def test_recolour_and_corrections_reach_the_density_image(panel):
    p = panel
    s = p.session
    layers_before = [id(layer) for layer in p._layers]
    renders = p.density.renders
    p.color_by.setCurrentIndex(p.color_by.findText(BY_LABEL))
    p.plot.grab()
    assert p.density.renders > renders  # the visible tiles were re-binned with the new colours
    assert p.n_points() == 0  # nothing was drawn point by point
    codes, names = p._codes()
    assert names == s.class_names()
    assert np.array_equal(codes, [names.index(t) for t in s.run.true_labels])
    # A correction (every image to cluster 0) recolours the density image.
    p.color_by.setCurrentIndex(0)
    s.move(np.arange(s.n_images), 0)
    p.plot.grab()
    colour0 = set(color_table(list(palette.colors(s.n_clusters)), 32)[0, 0].ravel())
    k = p.density.level_for(1 / max(p.view.viewPixelSize()))
    tiles = p.density.tiles_in(p.view.viewRect(), k)
    assert tiles
    for tx, ty in tiles:
        pixels = p.density.tile_pixels(k, tx, ty)
        assert set(np.unique(pixels[pixels != 0])) <= colour0
    # Zoomed in, the points drawn one by one follow the correction too.
    zoom_to(p, s.run.umap[0], 0.8)
    assert p.level == POINTS
    assert sum(len(layer.data) for layer in p._layers[1:]) == 0
    assert len(p._layers[0].data) == p.n_points() > 0
    assert [id(layer) for layer in p._layers][: len(layers_before)] == layers_before
