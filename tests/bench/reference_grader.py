"""A deliberately naive reference for the union IoU, the way the original design computed it.

For each image and class it renders the ground-truth and candidate class masks at full image
size, writes them to PNG files with OpenCV in a temporary directory, reads them back and counts
pixels. Slow on purpose: the benchmark compares it with ``tasks_metrics.grade`` for speed, and
both must agree within 0.005.

Same pixel rule as the grader (a pixel belongs to a shape when its centre is inside), reached
independently: boxes with ``cv2.rectangle`` on the pixel index range, polygons and rotated boxes
with an even-odd crossing test of every pixel centre of the image, ellipses with the ellipse
equation on every pixel centre. (``cv2.fillPoly`` also paints the pixels its edges pass through,
which inflates a 50x14 plate by about a pixel on each side and moves IoU by several percent.)
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import cv2
import numpy as np

from tasks_metrics.types import CLASSES, ELLIPSE, MASK, POLYGON, RECTANGLE, Shape, TaskAnnotations


def _corners(shape: Shape) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = shape.points
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = math.radians(shape.rotation)
    c, s = math.cos(a), math.sin(a)
    return [(cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy))
            for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]


def _centres(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = canvas.shape
    return np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)


def _fill(canvas: np.ndarray, points: list[tuple[float, float]]) -> None:
    px, py = _centres(canvas)
    inside = np.zeros(canvas.shape, dtype=bool)
    n = len(points)
    for k in range(n):
        (xa, ya), (xb, yb) = points[k], points[(k + 1) % n]
        if ya == yb:
            continue
        crosses = (ya <= py) != (yb <= py)
        x_at = xa + (py - ya) / (yb - ya) * (xb - xa)
        inside ^= crosses & (px < x_at)
    canvas[inside] = 255


def _draw(canvas: np.ndarray, shape: Shape) -> None:
    pts = shape.points
    if shape.kind == RECTANGLE and shape.rotation % 360 == 0:
        x0, x1 = math.ceil(pts[0] - 0.5), math.ceil(pts[2] - 0.5) - 1
        y0, y1 = math.ceil(pts[1] - 0.5), math.ceil(pts[3] - 0.5) - 1
        if x1 >= x0 and y1 >= y0:
            cv2.rectangle(canvas, (x0, y0), (x1, y1), 255, thickness=-1)
    elif shape.kind == RECTANGLE:
        _fill(canvas, _corners(shape))
    elif shape.kind == POLYGON:
        _fill(canvas, [(pts[i], pts[i + 1]) for i in range(0, len(pts) - 1, 2)])
    elif shape.kind == ELLIPSE:
        cx, cy, rx, ry = pts
        px, py = _centres(canvas)
        a = math.radians(shape.rotation)
        u = math.cos(a) * (px - cx) + math.sin(a) * (py - cy)
        v = -math.sin(a) * (px - cx) + math.cos(a) * (py - cy)
        canvas[(u / rx) ** 2 + (v / ry) ** 2 <= 1] = 255
    elif shape.kind == MASK:
        left, top, w, h = (int(v) for v in pts[:4])
        runs = [int(v) for v in pts[4:]]
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8) * 255
        tight = flat.reshape(h, w)
        region = canvas[top:top + h, left:left + w]
        np.maximum(region, tight[:region.shape[0], :region.shape[1]], out=region)


def reference_union_ious(
    ground_truth: TaskAnnotations, candidate: TaskAnnotations
) -> dict[str, float | None]:
    """Mean union IoU per class, rendering full-size masks through PNG files."""
    per_class: dict[str, list[float]] = {label: [] for label in CLASSES}
    with tempfile.TemporaryDirectory(prefix="reference-grader-") as tmp:
        folder = Path(tmp)
        for index, name in enumerate(sorted(ground_truth.images)):
            gt_image = ground_truth.images[name]
            cand_image = candidate.images.get(name)
            for label in CLASSES:
                masks = []
                for side, image in (("gt", gt_image), ("cand", cand_image)):
                    canvas = np.zeros((gt_image.height, gt_image.width), dtype=np.uint8)
                    for shape in image.shapes if image is not None else ():
                        if shape.label == label:
                            _draw(canvas, shape)
                    path = folder / f"{index}_{label}_{side}.png"
                    cv2.imwrite(str(path), canvas)
                    masks.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0)
                union = np.count_nonzero(masks[0] | masks[1])
                if union:
                    per_class[label].append(np.count_nonzero(masks[0] & masks[1]) / union)
    return {label: (sum(v) / len(v) if v else None) for label, v in per_class.items()}
