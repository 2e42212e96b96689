"""Rasterisation of shapes and IoU, in memory and cropped to the shapes involved.

Pixel semantics: pixel (column i, row j) belongs to a shape when its centre (i + 0.5, j + 0.5)
lies inside the shape; left/top edges are inclusive, right/bottom edges exclusive, so two boxes
that share an edge never share a pixel. Only pixels of the image (``0 <= i < width``,
``0 <= j < height``) count.

Axis-aligned rectangles (rotation a multiple of 90 degrees) are index ranges (numpy slicing, and
an exact analytic intersection for box pairs). Rotated rectangles and polygons use an exact
vectorised scan-line fill (even-odd rule), ellipses an exact per-row solution of the ellipse
equation, masks their RLE. ``cv2.fillPoly`` is not used: it always paints the pixels its
(rounded) edges pass through, so an integer 10x10 box becomes 11x11 pixels and the centre rule
above cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tasks_metrics.types import ELLIPSE, MASK, POLYGON, RECTANGLE, Shape

_EPS_DEG = 1e-9


@dataclass(frozen=True)
class Raster:
    """A shape's pixels: box ``[x0, x1) x [y0, y1)`` and a mask of it (None means all set)."""

    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        """True when the raster has no pixel."""
        return self.area == 0

    @property
    def area(self) -> int:
        """Number of pixels set."""
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            return 0
        if self.mask is None:
            return (self.x1 - self.x0) * (self.y1 - self.y0)
        return int(np.count_nonzero(self.mask))

    def bbox(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the raster's box."""
        return (self.x0, self.y0, self.x1, self.y1)

    def window(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """The raster as a boolean array over the window ``[x0, x1) x [y0, y1)``."""
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        self.paint(out, x0, y0)
        return out

    def paint(self, canvas: np.ndarray, ox: int, oy: int) -> None:
        """OR the raster into ``canvas`` whose top-left pixel is ``(ox, oy)``."""
        h, w = canvas.shape
        ax0, ay0 = max(self.x0, ox), max(self.y0, oy)
        ax1, ay1 = min(self.x1, ox + w), min(self.y1, oy + h)
        if ax1 <= ax0 or ay1 <= ay0:
            return
        target = canvas[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
        if self.mask is None:
            target[...] = True
        else:
            target |= self.mask[ay0 - self.y0:ay1 - self.y0, ax0 - self.x0:ax1 - self.x0]


_EMPTY = Raster(0, 0, 0, 0)


def _pixel_range(lo: float, hi: float) -> tuple[int, int]:
    """Pixel indices whose centres lie in ``[lo, hi)``."""
    return math.ceil(lo - 0.5), math.ceil(hi - 0.5)


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def axis_aligned_box(shape: Shape) -> tuple[float, float, float, float] | None:
    """The box of a rectangle whose rotation is a multiple of 90 degrees, else None."""
    if shape.kind != RECTANGLE or len(shape.points) != 4 or not _finite(shape.points):
        return None
    if not math.isfinite(shape.rotation):
        return None
    x0, y0, x1, y1 = shape.points
    quarter = (shape.rotation % 360.0) / 90.0
    nearest = round(quarter)
    if abs(quarter - nearest) > _EPS_DEG:
        return None
    if nearest % 2 == 0:
        return (x0, y0, x1, y1)
    # A quarter turn about the centre swaps width and height.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
    return (cx - hh, cy - hw, cx + hh, cy + hw)


def rotated_corners(shape: Shape) -> list[tuple[float, float]]:
    """The four corners of a rectangle after CVAT's clockwise rotation about its centre."""
    x0, y0, x1, y1 = shape.points[:4]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = math.radians(shape.rotation)
    c, s = math.cos(a), math.sin(a)
    return [
        (cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy))
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    ]


def ellipse_outline(shape: Shape, n: int = 64) -> list[tuple[float, float]]:
    """Points on an ellipse's outline (for drawing)."""
    cx, cy, rx, ry = shape.points[:4]
    a = math.radians(shape.rotation)
    c, s = math.cos(a), math.sin(a)
    out = []
    for k in range(n):
        t = 2 * math.pi * k / n
        u, v = rx * math.cos(t), ry * math.sin(t)
        out.append((cx + c * u - s * v, cy + s * u + c * v))
    return out


def _rows_to_raster(
    starts: np.ndarray, ends: np.ndarray, row0: int, width: int, height: int
) -> Raster:
    """Raster from per-row spans; ``starts``/``ends`` are (rows, k) pixel ranges (empty if e<=s)."""
    if starts.shape[0] == 0:
        return _EMPTY
    starts = np.clip(starts, 0, width)
    ends = np.clip(ends, 0, width)
    valid = ends > starts
    if not valid.any():
        return _EMPTY
    rows_any = valid.any(axis=1)
    top = int(np.argmax(rows_any))
    bottom = rows_any.size - int(np.argmax(rows_any[::-1]))
    starts, ends, valid = starts[top:bottom], ends[top:bottom], valid[top:bottom]
    x0 = int(starts[valid].min())
    x1 = int(ends[valid].max())
    if starts.shape[1] == 1:  # one span a row (every convex shape): a single comparison
        cols = np.arange(x0, x1)[None, :]
        mask = (cols >= starts) & (cols < ends)
        return Raster(x0, row0 + top, x1, row0 + bottom, mask)
    # Each span adds +1 at its start and -1 at its end; a running sum along the row is then
    # above zero exactly on the pixels some span covers. O(rows x (spans + width)), where
    # painting span after span over the whole row was O(rows x spans x width).
    rows, cols = np.nonzero(valid)
    edges = np.zeros((bottom - top, x1 - x0 + 1), dtype=np.int32)
    np.add.at(edges, (rows, starts[rows, cols] - x0), 1)
    np.add.at(edges, (rows, ends[rows, cols] - x0), -1)
    mask = np.cumsum(edges[:, :-1], axis=1) > 0
    return Raster(x0, row0 + top, x1, row0 + bottom, mask)


def _ceil_half(x: np.ndarray) -> np.ndarray:
    """``ceil(x - 0.5)`` after snapping to 1e-9 px, so rounding noise cannot flip a tie."""
    return np.ceil(np.round(x - 0.5, 9))


def _row_centres(ymin: float, ymax: float, height: int) -> tuple[int, np.ndarray]:
    r0, r1 = _pixel_range(ymin, ymax)
    r0, r1 = max(r0, 0), min(r1 + 1, height)
    return r0, np.arange(r0, max(r1, r0), dtype=np.float64) + 0.5


def polygon_raster(xy: Sequence[tuple[float, float]], width: int, height: int) -> Raster:
    """Exact scan-line fill (even-odd) of a polygon under the pixel-centre rule."""
    if len(xy) < 3:
        return _EMPTY
    pts = np.asarray(xy, dtype=np.float64)
    if not np.isfinite(pts).all():
        return _EMPTY
    xa, ya = pts[:, 0], pts[:, 1]
    xb, yb = np.concatenate((xa[1:], xa[:1])), np.concatenate((ya[1:], ya[:1]))
    row0, cy = _row_centres(float(ya.min()), float(ya.max()), height)
    if cy.size == 0:
        return _EMPTY
    c = cy[:, None]
    crosses = (ya[None, :] <= c) != (yb[None, :] <= c)
    dy = np.where(yb == ya, 1.0, yb - ya)
    xi = xa[None, :] + (c - ya[None, :]) / dy[None, :] * (xb - xa)[None, :]
    xi = np.where(crosses, xi, np.inf)
    xi.sort(axis=1)
    n = xi.shape[1] - (xi.shape[1] % 2)
    left, right = xi[:, 0:n:2], xi[:, 1:n:2]
    ok = np.isfinite(left) & np.isfinite(right)
    starts = np.where(ok, _ceil_half(np.where(ok, left, 0)), 0).astype(np.int64)
    ends = np.where(ok, _ceil_half(np.where(ok, right, 0)), 0).astype(np.int64)
    return _rows_to_raster(starts, ends, row0, width, height)


def _ellipse_raster(shape: Shape, width: int, height: int) -> Raster:
    cx, cy, rx, ry = shape.points[:4]
    if not (_finite(shape.points[:4]) and rx > 0 and ry > 0 and math.isfinite(shape.rotation)):
        return _EMPTY
    a = math.radians(shape.rotation)
    c, s = math.cos(a), math.sin(a)
    half_h = math.sqrt((rx * s) ** 2 + (ry * c) ** 2)
    row0, yc = _row_centres(cy - half_h, cy + half_h, height)
    if yc.size == 0:
        return _EMPTY
    dy = yc - cy
    qa = c * c / rx**2 + s * s / ry**2
    qb = 2 * dy * c * s * (1 / rx**2 - 1 / ry**2)
    qc = dy * dy * (s * s / rx**2 + c * c / ry**2) - 1
    disc = qb * qb - 4 * qa * qc
    ok = disc >= 0
    root = np.sqrt(np.where(ok, disc, 0))
    lo = cx + (-qb - root) / (2 * qa)
    hi = cx + (-qb + root) / (2 * qa)
    starts = np.where(ok, _ceil_half(lo), 0).astype(np.int64)[:, None]
    ends = np.where(ok, _ceil_half(hi), 0).astype(np.int64)[:, None]
    return _rows_to_raster(starts, ends, row0, width, height)


def decode_rle(runs: Sequence[float], width: int, height: int) -> np.ndarray:
    """Decode CVAT's row-major RLE (starting with a 0-run) into a ``height x width`` bool array."""
    counts = np.asarray([round(v) for v in runs], dtype=np.int64)
    total = width * height
    if (counts < 0).any():
        raise ValueError("negative run length in mask RLE")
    if counts.sum() != total:
        raise ValueError(f"mask RLE covers {int(counts.sum())} pixels, expected {total}")
    values = np.arange(counts.size) % 2 == 1
    return np.repeat(values, counts).reshape(height, width)


def encode_rle(mask: np.ndarray) -> list[int]:
    """Encode a bool array as CVAT's row-major RLE starting with a 0-run."""
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1])
    runs = np.diff(np.concatenate(([-1], change, [flat.size - 1]))).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(v) for v in runs]


def _mask_raster(shape: Shape, width: int, height: int) -> Raster:
    pts = shape.points
    if len(pts) < 4 or not _finite(pts):
        return _EMPTY
    left, top, w, h = (round(v) for v in pts[:4])
    if w <= 0 or h <= 0:
        return _EMPTY
    try:
        tight = decode_rle(pts[4:], w, h)
    except ValueError:
        return _EMPTY
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, width), min(top + h, height)
    if x1 <= x0 or y1 <= y0:
        return _EMPTY
    return Raster(x0, y0, x1, y1, tight[y0 - top:y1 - top, x0 - left:x1 - left])


def rasterize(shape: Shape, width: int, height: int) -> Raster:
    """The pixels of ``shape`` on a ``width x height`` image (empty for non-area kinds)."""
    box = axis_aligned_box(shape)
    if box is not None:
        x0, x1 = _pixel_range(box[0], box[2])
        y0, y1 = _pixel_range(box[1], box[3])
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            return _EMPTY
        return Raster(x0, y0, x1, y1)
    if shape.kind == RECTANGLE:
        if len(shape.points) != 4 or not _finite(shape.points) or not math.isfinite(shape.rotation):
            return _EMPTY
        return polygon_raster(rotated_corners(shape), width, height)
    if shape.kind == POLYGON:
        pts = shape.points
        return polygon_raster(
            [(pts[i], pts[i + 1]) for i in range(0, len(pts) - 1, 2)], width, height
        )
    if shape.kind == ELLIPSE:
        return _ellipse_raster(shape, width, height)
    if shape.kind == MASK:
        return _mask_raster(shape, width, height)
    return _EMPTY


def _intersection(a: Raster, b: Raster) -> int:
    x0, y0 = max(a.x0, b.x0), max(a.y0, b.y0)
    x1, y1 = min(a.x1, b.x1), min(a.y1, b.y1)
    if x1 <= x0 or y1 <= y0:
        return 0
    if a.mask is None and b.mask is None:
        return (x1 - x0) * (y1 - y0)
    if a.mask is None:
        return int(np.count_nonzero(b.mask[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]))
    if b.mask is None:
        return int(np.count_nonzero(a.mask[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]))
    return int(np.count_nonzero(
        a.mask[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
        & b.mask[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]
    ))


def pair_iou(a: Raster, b: Raster) -> float:
    """IoU of two rasters (0 when both are empty)."""
    inter = _intersection(a, b)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def iou_matrix(gt: Sequence[Raster], cand: Sequence[Raster]) -> np.ndarray:
    """Pairwise IoU, shape ``(len(gt), len(cand))``."""
    out = np.zeros((len(gt), len(cand)), dtype=np.float64)
    if not gt or not cand:
        return out
    gt_area = [r.area for r in gt]
    cand_area = [r.area for r in cand]
    for i, g in enumerate(gt):
        if not gt_area[i]:
            continue
        for j, c in enumerate(cand):
            if not cand_area[j]:
                continue
            inter = _intersection(g, c)
            if inter:
                out[i, j] = inter / (gt_area[i] + cand_area[j] - inter)
    return out


def _bounds(rasters: Sequence[Raster]) -> tuple[int, int, int, int] | None:
    live = [r for r in rasters if not r.empty]
    if not live:
        return None
    return (min(r.x0 for r in live), min(r.y0 for r in live),
            max(r.x1 for r in live), max(r.y1 for r in live))


def union_counts(gt: Sequence[Raster], cand: Sequence[Raster]) -> tuple[int, int, int, int]:
    """``(|G|, |C|, |G and C|, |G or C|)`` for the unions of two raster sets."""
    bounds = _bounds([*gt, *cand])
    if bounds is None:
        return (0, 0, 0, 0)
    x0, y0, x1, y1 = bounds
    g = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    c = np.zeros_like(g)
    for r in gt:
        r.paint(g, x0, y0)
    for r in cand:
        r.paint(c, x0, y0)
    g_count, c_count = int(np.count_nonzero(g)), int(np.count_nonzero(c))
    g &= c
    inter = int(np.count_nonzero(g))
    return (g_count, c_count, inter, g_count + c_count - inter)


def union_iou(gt: Sequence[Raster], cand: Sequence[Raster]) -> float | None:
    """IoU of the union of ``gt`` with the union of ``cand``; None when both are empty."""
    _, _, inter, union = union_counts(gt, cand)
    if union == 0:
        return None
    return inter / union


def shape_bbox(shape: Shape) -> tuple[float, float, float, float]:
    """Geometric bounding box ``(x0, y0, x1, y1)`` of a shape (for reports and drawing)."""
    pts = shape.points
    if shape.kind == RECTANGLE and len(pts) == 4:
        xs, ys = zip(*rotated_corners(shape), strict=True) if shape.rotation % 360 else (
            (pts[0], pts[2]), (pts[1], pts[3]))
    elif shape.kind == ELLIPSE and len(pts) >= 4:
        xs, ys = zip(*ellipse_outline(shape, 128), strict=True)
    elif shape.kind == MASK and len(pts) >= 4:
        return (pts[0], pts[1], pts[0] + pts[2], pts[1] + pts[3])
    elif len(pts) >= 2:
        xs, ys = pts[0::2], pts[1::2]
    else:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))
