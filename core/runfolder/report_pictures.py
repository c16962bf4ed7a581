"""The report's pictures: the 2-d map coloured by cluster and the curve of the choice of k as inline
SVG (plain text, no plotting library, no Qt: they scale with the page and print sharply), and the
images as small thumbnails embedded as ``data:`` URIs.

Every text placed in a picture is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import colorsys
import io
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np
from PIL import Image

from semclust.core.images import ImageError
from semclust.core.runfolder.artefacts import RunFolderError
from semclust.core.runfolder.results import RunData

#: Matplotlib's tab10/tab20, as the app's map uses (``gui/palette.py``): distinct for few clusters.
TAB20 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Side of the thumbnails, in pixels.
THUMB = 64
#: The grey square that stands in for an image that cannot be read.
PLACEHOLDER = (200, 200, 200)
#: Colours of the raw criteria of the k curve (as the app's plot).
CURVE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#7f7f7f")


def cluster_colours(n: int) -> list[str]:
    """``n`` distinct colours as ``#rrggbb``: tab20 up to 20 clusters, evenly spaced hues above."""
    if n <= len(TAB20):
        return list(TAB20[:n])
    return [
        "#{:02x}{:02x}{:02x}".format(*(int(v * 230) for v in colorsys.hsv_to_rgb(i / n, 0.75, 1)))
        for i in range(n)
    ]


def map_svg(
    points: np.ndarray,
    clusters: np.ndarray,
    n_clusters: int,
    size: int = 480,
    max_points: int = 5000,
) -> tuple[str, int]:
    """The map: one dot per image (a fixed random sample of ``max_points`` above that), coloured by
    cluster, the whole map fitted in a square of ``size`` px.

    Returns:
        the ``<svg>`` element and the number of dots drawn.
    """
    points = np.asarray(points, dtype=np.float64)
    clusters = np.asarray(clusters, dtype=int)
    shown = np.arange(len(points))
    if len(points) > max_points:
        shown = np.sort(np.random.default_rng(0).choice(len(points), max_points, replace=False))
    pad = 8
    low, high = points.min(axis=0), points.max(axis=0)
    scale = (size - 2 * pad) / max(float((high - low).max()), 1e-12)
    xy = (points[shown] - low) * scale + pad
    xy[:, 1] = size - xy[:, 1]  # y up, as in the app
    radius = 2.5 if len(shown) <= 1000 else 1.5
    colours = cluster_colours(n_clusters)
    groups = []
    for c in range(n_clusters):
        dots = "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}"/>' for x, y in xy[clusters[shown] == c]
        )
        if dots:
            groups.append(
                f'<g fill="{colours[c]}" fill-opacity="0.8"><title>cluster {c}</title>{dots}</g>'
            )
    svg = (
        f'<svg class="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'width="{size}" height="{size}" role="img" aria-label="map of the images, coloured by cluster">'
        f'<rect width="{size}" height="{size}" fill="#fff" stroke="#ccc"/>{"".join(groups)}</svg>'
    )
    return svg, len(shown)


def rescaled(values: Sequence[float]) -> np.ndarray:
    """``values`` mapped linearly onto 0..1 (a constant curve to 0.5; NaN kept as NaN): the k
    curve's criteria, in the report and in the app's k plot."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return v
    low, high = finite.min(), finite.max()
    return np.full_like(v, 0.5) if high - low < 1e-12 else (v - low) / (high - low)


def k_curve_svg(
    ks: Sequence[int],
    score: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    best: int,
    in_use: int | None = None,
    width: int = 560,
    height: int = 300,
) -> str:
    """The choice of k: the combined score (thick, black) and each raw criterion that varies (thin),
    each rescaled to 0..1 over the k tried (their units differ); a dashed red line at the k chosen,
    a green one at the k in use when the user picked another."""
    left, right, top, bottom = 40, 130, 12, 36
    k_low, k_high = min(ks), max(ks)
    span = max(k_high - k_low, 1)

    def x(k: float) -> float:
        return left + (k - k_low) / span * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v) * (height - top - bottom)

    def line(values, colour: str, stroke: float) -> str:
        pts = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in zip(ks, values) if np.isfinite(v))
        return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{stroke}"/>'

    parts = [f'<rect x="{left}" y="{top}" width="{width - left - right}" '
             f'height="{height - top - bottom}" fill="#fff" stroke="#ccc"/>']  # fmt: skip
    step = max(1, int(np.ceil(len(ks) / 15)))
    for k in list(ks)[::step]:
        parts.append(
            f'<text x="{x(k):.1f}" y="{height - bottom + 16}" text-anchor="middle">{int(k)}</text>'
        )
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" text-anchor="middle">'
                 "number of clusters k</text>")  # fmt: skip
    for v in (0, 0.5, 1):
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    legend = []
    for i, (name, values) in enumerate(curves.items()):
        r = rescaled(values)
        if (
            np.nanmax(np.asarray(values, dtype=float)) - np.nanmin(np.asarray(values, dtype=float))
            < 1e-12
        ):
            continue  # a criterion that does not vary says nothing
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        parts.append(line(r, colour, 1.5))
        legend.append((escape(str(name)), colour))
    parts.append(line(rescaled(score), "#000", 3))
    parts += [f'<circle cx="{x(k):.1f}" cy="{y(v):.1f}" r="3"/>' for k, v in zip(ks, rescaled(score))
              if np.isfinite(v)]  # fmt: skip
    marks = [(best, "#d62728", ' stroke-dasharray="6 4"', f"k = {best} chosen")]
    if in_use is not None and in_use != best:
        marks.append((in_use, "#2ca02c", "", f"k = {in_use} in use"))
    for i, (k, colour, dash, label) in enumerate(marks):
        parts.append(f'<line x1="{x(k):.1f}" x2="{x(k):.1f}" y1="{top}" y2="{height - bottom}" '
                     f'stroke="{colour}" stroke-width="2"{dash}/>')  # fmt: skip
        parts.append(
            f'<text x="{x(k) + 4:.1f}" y="{top + 14 + 14 * i}" fill="{colour}" '
            f'stroke="#fff" stroke-width="3" paint-order="stroke">{label}</text>'
        )
    legend.insert(0, ("score", "#000"))
    for i, (name, colour) in enumerate(legend):
        ly = top + 10 + 16 * i
        parts.append(f'<line x1="{width - right + 10}" x2="{width - right + 28}" y1="{ly}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{width - right + 32}" y="{ly + 4}">{name}</text>')  # fmt: skip
    return (
        f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-size="11" font-family="sans-serif" role="img" '
        f'aria-label="criteria over the number of clusters">{"".join(parts)}</svg>'
    )


def thumbnail(run: RunData, index: int, size: int = THUMB) -> tuple[str, str]:
    """Image ``index`` as a ``data:`` URI of a ``size`` px square (PNG or JPEG, whichever is smaller),
    and ``""``; a grey square and the reason when the image cannot be read (missing, corrupt, or a
    path leading outside the image folder)."""
    try:
        pixels = run.read_image(index, size)
        problem = ""
    except (ImageError, RunFolderError, OSError) as exc:
        pixels = np.full((size, size, 3), PLACEHOLDER, dtype=np.uint8)
        problem = str(exc) or type(exc).__name__
    return encode_image(pixels), problem


def encode_image(pixels: np.ndarray) -> str:
    """(H, W, 3) uint8 RGB as a ``data:`` URI: PNG, or JPEG when that is smaller (photos)."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    encoded = []
    for fmt, options in (("PNG", {"optimize": True}), ("JPEG", {"quality": 85})):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        encoded.append((len(buffer.getvalue()), fmt.lower(), buffer.getvalue()))
    _, fmt, data = min(encoded)
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"
