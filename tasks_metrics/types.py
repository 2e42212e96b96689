"""Immutable annotation model shared by the parsers, the checker and the grader.

Geometry layouts (``Shape.points``), all in image pixels, x to the right, y down:

* ``rectangle``: ``(xtl, ytl, xbr, ybr)`` of the un-rotated box; ``rotation`` in degrees,
  clockwise on screen around the box centre (CVAT's convention).
* ``polygon`` / ``polyline`` / ``points``: ``(x0, y0, x1, y1, ...)``.
* ``ellipse``: ``(cx, cy, rx, ry)`` (centre and radii, as in CVAT XML); ``rotation`` as above.
* ``mask``: ``(left, top, width, height, run0, run1, ...)``: run lengths over the
  ``width x height`` box flattened row-major, alternating 0-runs and 1-runs, starting with a
  0-run (CVAT's RLE).
* any other kind (``cuboid``, ``skeleton``, ...): the numbers as found; kept so the
  completeness checker can name them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

RECTANGLE = "rectangle"
POLYGON = "polygon"
ELLIPSE = "ellipse"
MASK = "mask"
AREA_KINDS: frozenset[str] = frozenset({RECTANGLE, POLYGON, ELLIPSE, MASK})

CAR = "car"
PLATE = "plate"
PLATE_TEXT_ATTRIBUTE = "plate"
CLASSES: tuple[str, str] = (CAR, PLATE)


class AnnotationFormatError(ValueError):
    """Input annotations cannot be read or do not fit the task."""


def _frozen_mapping(
    value: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
) -> Mapping[str, Any]:
    """Copy ``value`` into a read-only mapping."""
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Shape:
    """One annotated object on one image (a track already expanded to this frame)."""

    label: str
    kind: str
    points: tuple[float, ...]
    rotation: float = 0.0
    attributes: Mapping[str, str] = field(default_factory=dict)
    z_order: int = 0
    occluded: bool = False
    # Where the shape came from ("shape 12", "track 3", "xml #4"); for reports only.
    ref: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(float(v) for v in self.points))
        object.__setattr__(self, "rotation", float(self.rotation))
        attrs = {str(k): str(v) for k, v in dict(self.attributes).items()}
        object.__setattr__(self, "attributes", _frozen_mapping(attrs))
        object.__setattr__(self, "z_order", int(self.z_order))
        object.__setattr__(self, "occluded", bool(self.occluded))

    def __hash__(self) -> int:
        return hash((self.label, self.kind, self.points, self.rotation,
                     tuple(sorted(self.attributes.items())), self.z_order, self.occluded))

    @property
    def text(self) -> str:
        """The plate transcription (the ``plate`` attribute), or an empty string."""
        return self.attributes.get(PLATE_TEXT_ATTRIBUTE, "")

    def sort_key(self) -> tuple[Any, ...]:
        """A total order on shapes that ignores where they came from."""
        pts = tuple(-math.inf if math.isnan(v) else v for v in self.points)
        rot = -math.inf if math.isnan(self.rotation) else self.rotation
        return (self.label, self.kind, pts, rot, tuple(sorted(self.attributes.items())),
                self.z_order, self.occluded)


@dataclass(frozen=True)
class ImageAnnotations:
    """The shapes on one image, with the image's own size."""

    name: str
    width: int
    height: int
    shapes: tuple[Shape, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def of_label(self, label: str) -> tuple[Shape, ...]:
        """Shapes with the given label."""
        return tuple(s for s in self.shapes if s.label == label)


@dataclass(frozen=True)
class TaskAnnotations:
    """All images of a task by file name."""

    images: Mapping[str, ImageAnnotations] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", _frozen_mapping(self.images))

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.images.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskAnnotations):
            return NotImplemented
        return dict(self.images) == dict(other.images)

    def __iter__(self) -> Iterator[ImageAnnotations]:
        return iter(self.images[name] for name in sorted(self.images))

    def __len__(self) -> int:
        return len(self.images)

    def named_as(self, names: Iterable[str]) -> TaskAnnotations:
        """The same images under the given names, matched exactly or else by file name alone:
        CVAT names frames from its share by their path there ("set/images/a.jpg")."""
        wanted = list(names)
        by_base = {PurePosixPath(n).name: n for n in wanted}
        renamed: dict[str, ImageAnnotations] = {}
        for name, image in self.images.items():
            target = name if name in wanted else by_base.get(PurePosixPath(name).name, name)
            renamed[target] = dataclasses.replace(image, name=target)
        return TaskAnnotations(renamed)

    @classmethod
    def from_images(cls, images: Iterable[ImageAnnotations]) -> TaskAnnotations:
        """Build a task from images; duplicate names are an error."""
        by_name: dict[str, ImageAnnotations] = {}
        for image in images:
            if image.name in by_name:
                raise AnnotationFormatError(f"image {image.name!r} appears twice")
            by_name[image.name] = image
        return cls(by_name)
