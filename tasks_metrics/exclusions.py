"""What an answer key leaves out of grading: whole images, and single objects of the ground truth.

An object is named by its image and its place among that image's shapes in the annotations
file, counted from 1 (as the calibration sheet and the HR bot show it). A candidate's box on an
excluded object (the one of its label that overlaps it most, from IoU 0.5) is left out too, so
that drawing what the key wrongly had counts neither for nor against anyone. Pure functions:
the grading process runs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from tasks_metrics.differences import shape_bbox
from tasks_metrics.types import ImageAnnotations, Shape, TaskAnnotations

MATCH_IOU = 0.5


@dataclass(frozen=True)
class Exclusions:
    """Images and (image, object number) pairs graded by nobody."""

    images: frozenset[str] = frozenset()
    objects: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_lists(cls, images: Iterable[str], objects: Iterable[Iterable[object]],
                   ) -> Exclusions:
        """From stored lists (["a.jpg"], [["a.jpg", 3]])."""
        pairs = set()
        for pair in objects:
            name, number = list(pair)
            pairs.add((str(name), int(str(number))))
        return cls(frozenset(map(str, images)), frozenset(pairs))

    def __bool__(self) -> bool:
        return bool(self.images or self.objects)


def _box_iou(a: Shape, b: Shape) -> float:
    ax0, ay0, ax1, ay1 = shape_bbox(a)
    bx0, by0, bx1, by1 = shape_bbox(b)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def _without_objects(truth: ImageAnnotations, work: ImageAnnotations | None,
                     numbers: set[int]) -> tuple[ImageAnnotations, ImageAnnotations | None]:
    kept = tuple(s for i, s in enumerate(truth.shapes, 1) if i not in numbers)
    if work is None:
        return dataclasses.replace(truth, shapes=kept), None
    left = list(work.shapes)
    for i, excluded in enumerate(truth.shapes, 1):
        if i not in numbers:
            continue
        scored = [(_box_iou(excluded, s), k) for k, s in enumerate(left)
                  if s.label == excluded.label]
        best = max(scored, default=(0.0, -1))
        if best[0] >= MATCH_IOU:
            del left[best[1]]
    return (dataclasses.replace(truth, shapes=kept),
            dataclasses.replace(work, shapes=tuple(left)))


def apply_exclusions(truth: TaskAnnotations, work: TaskAnnotations,
                     exclusions: Exclusions) -> tuple[TaskAnnotations, TaskAnnotations]:
    """The ground truth and the candidate's work with the excluded images and objects left
    out."""
    if not exclusions:
        return truth, work
    by_image: dict[str, set[int]] = {}
    for name, number in exclusions.objects:
        by_image.setdefault(name, set()).add(number)
    kept_truth: dict[str, ImageAnnotations] = {}
    kept_work: dict[str, ImageAnnotations] = {}
    for name, image in truth.images.items():
        if name in exclusions.images:
            continue
        mine = work.images.get(name)
        if name in by_image:
            image, mine = _without_objects(image, mine, by_image[name])
        kept_truth[name] = image
        if mine is not None:
            kept_work[name] = mine
    return TaskAnnotations(kept_truth), TaskAnnotations(kept_work)
