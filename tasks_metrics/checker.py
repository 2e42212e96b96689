"""Completeness checks run when the candidate presses Submit.

Problems name the image and what is wrong with the candidate's own work; they never reveal the
answer key (how many cars or plates an image has, or where). Their wording, in every language,
is in media/texts ([checker]), keyed by the problem's code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tasks_metrics.types import (
    AREA_KINDS,
    CAR,
    CLASSES,
    ELLIPSE,
    MASK,
    PLATE,
    POLYGON,
    RECTANGLE,
    ImageAnnotations,
    Shape,
    TaskAnnotations,
)

NO_CAR = "no_car"
PLATE_WITHOUT_TEXT = "plate_without_text"
UNKNOWN_LABEL = "unknown_label"
UNSUPPORTED_SHAPE = "unsupported_shape"
DEGENERATE_SHAPE = "degenerate_shape"

@dataclass(frozen=True)
class Problem:
    """One completeness problem on one image."""

    image: str
    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        return hash((self.image, self.code, tuple(sorted(self.params.items()))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"image": self.image, "code": self.code, "params": dict(self.params)}


def _degenerate_reason(shape: Shape, image: ImageAnnotations) -> str | None:
    pts = shape.points
    if not all(math.isfinite(v) for v in (*pts, shape.rotation)):
        return "not_a_number"
    if shape.kind == POLYGON:
        distinct = {(pts[i], pts[i + 1]) for i in range(0, len(pts) - 1, 2)}
        if len(distinct) < 3:
            return "too_few_points"
        xs, ys = pts[0::2], pts[1::2]
        twice_area = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))
        if twice_area == 0:
            return "zero_area"
    elif shape.kind == RECTANGLE:
        if len(pts) != 4:
            return "zero_area"
        if pts[2] - pts[0] <= 0 or pts[3] - pts[1] <= 0:
            return "zero_area"
    elif shape.kind == ELLIPSE:
        if len(pts) != 4 or pts[2] <= 0 or pts[3] <= 0:
            return "zero_area"
    elif shape.kind == MASK:
        if len(pts) < 4 or pts[2] <= 0 or pts[3] <= 0:
            return "bad_mask"
        if sum(pts[4:]) != pts[2] * pts[3] or any(v < 0 for v in pts[4:]):
            return "bad_mask"
    # numpy (11 MB) loads with the first shape checked, in a grading process, not in the bot
    # (which imports this module for Problem).
    from tasks_metrics.differences import rasterize

    if rasterize(shape, image.width, image.height).empty:
        return "outside_image" if _outside(shape, image) else "zero_area"
    return None


def _outside(shape: Shape, image: ImageAnnotations) -> bool:
    from tasks_metrics.differences import shape_bbox

    x0, y0, x1, y1 = shape_bbox(shape)
    return x1 <= 0 or y1 <= 0 or x0 >= image.width or y0 >= image.height


def _anchor(shape: Shape) -> dict[str, int]:
    from tasks_metrics.differences import shape_bbox

    x0, y0, _, _ = shape_bbox(shape)
    if not (math.isfinite(x0) and math.isfinite(y0)):
        return {"x": 0, "y": 0}
    return {"x": round(x0), "y": round(y0)}


def check_image(image: ImageAnnotations) -> list[Problem]:
    """Problems on one image."""
    problems: list[Problem] = []
    cars = 0
    for shape in sorted(image.shapes, key=Shape.sort_key):
        if shape.label not in CLASSES:
            problems.append(Problem(image.name, UNKNOWN_LABEL, {"label": shape.label}))
            continue
        if shape.kind not in AREA_KINDS:
            problems.append(Problem(image.name, UNSUPPORTED_SHAPE,
                                    {"label": shape.label, "kind": shape.kind}))
            continue
        reason = _degenerate_reason(shape, image)
        if reason is not None:
            problems.append(Problem(image.name, DEGENERATE_SHAPE,
                                    {"label": shape.label, "kind": shape.kind, "reason": reason,
                                     **_anchor(shape)}))
            continue
        if shape.label == CAR:
            cars += 1
        elif shape.label == PLATE and not shape.text.strip():
            problems.append(Problem(image.name, PLATE_WITHOUT_TEXT, _anchor(shape)))
    if cars == 0:
        problems.insert(0, Problem(image.name, NO_CAR))
    return problems


def check_completeness(task: TaskAnnotations, image_names: Iterable[str]) -> list[Problem]:
    """Problems that keep a submission from being complete; empty when it can be graded."""
    problems: list[Problem] = []
    for name in sorted(set(image_names)):
        image = task.images.get(name)
        if image is None:
            problems.append(Problem(name, NO_CAR))
            continue
        problems.extend(check_image(image))
    return problems
