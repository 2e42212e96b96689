"""What a submission may hold, so that checking and grading it has a bound.

A candidate's annotations are untrusted input: CVAT lets a worker save any number of shapes,
polygons of any length, a mask box of any size and keyframes at any frame. Every cost of
checking, grading and drawing grows with one of these, so each has a limit. Work over a
limit is not graded: the candidate is told which image and which limit, and can fix it.

An honest test task of the default set holds about 50 boxes of 4 numbers each (20 KB); the
limits are two to three orders of magnitude above that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks_metrics.types import AnnotationFormatError

# Codes of OverLimit, each with a text in media/texts ([limits]).
PAYLOAD = "payload"
OBJECTS = "objects"
SHAPES_PER_IMAGE = "shapes_per_image"
POINTS_PER_SHAPE = "points_per_shape"
POINTS_TOTAL = "points_total"
COORDINATE = "coordinate"
MASK_SIZE = "mask_size"
FRAME_OUTSIDE = "frame_outside"
IMAGE_SIZE = "image_size"
TIME = "time"
MEMORY = "memory"


@dataclass(frozen=True)
class Limits:
    """Bounds on one submission (the defaults are the settings' defaults)."""

    max_bytes: int = 10 * 1024 * 1024
    max_shapes_per_image: int = 100
    max_points_per_shape: int = 1000
    max_points_total: int = 100_000
    max_coordinate: float = 100_000.0
    max_image_side: int = 20_000

    def objects_allowed(self, frames: int) -> int:
        """Shapes and track keyframes a submission of `frames` images may hold in all."""
        return self.max_shapes_per_image * max(frames, 1)


class OverLimit(AnnotationFormatError):
    """The work is over one of the limits: `code` says which, `image` where (when known),
    `value` what was found and `limit` what is allowed."""

    def __init__(self, code: str, *, image: str | None = None, value: Any = None,
                 limit: Any = None, detail: str = "") -> None:
        where = f"{image}: " if image else ""
        super().__init__(f"{where}over the {code} limit ({value} > {limit}){detail}")
        self.code = code
        self.image = image
        self.value = value
        self.limit = limit

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the grading process reports)."""
        return {"code": self.code, "image": self.image, "value": self.value,
                "limit": self.limit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OverLimit:
        """Back from `to_dict`."""
        return cls(str(data.get("code")), image=data.get("image"), value=data.get("value"),
                   limit=data.get("limit"))


class PointBudget:
    """Counts the vertices of a whole submission against the limits while it is read."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0

    def check(self, kind: str, points: Any, image: str | None) -> None:
        """One shape or keyframe: its vertex count and coordinates within the limits (for a
        mask, `points` is its box: the runs are measured against the box)."""
        limits = self.limits
        if kind != "mask":
            vertices = len(points) // 2
            if vertices > limits.max_points_per_shape:
                raise OverLimit(POINTS_PER_SHAPE, image=image, value=vertices,
                                limit=limits.max_points_per_shape)
            self.total += vertices
            if self.total > limits.max_points_total:
                raise OverLimit(POINTS_TOTAL, value=self.total, limit=limits.max_points_total)
        bound = limits.max_coordinate
        for value in points:
            number = float(value)
            if number > bound or number < -bound:
                raise OverLimit(COORDINATE, image=image, value=f"{number:.6g}",
                                limit=f"{bound:g}")

    def check_mask(self, width: float, height: float, image_width: int, image_height: int,
                   image: str | None) -> None:
        """A mask's box is at most the image's size (CVAT never makes a larger one)."""
        if width > image_width or height > image_height:
            raise OverLimit(MASK_SIZE, image=image, value=f"{width:.0f}x{height:.0f}",
                            limit=f"{image_width}x{image_height}")
