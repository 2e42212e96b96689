"""The naive reference grader agrees with ``grade`` on a random synthetic task."""

from __future__ import annotations

import random

import pytest

from tasks_metrics.metrics import grade
from tasks_metrics.types import ImageAnnotations, Shape, TaskAnnotations
from tests.bench.reference_grader import reference_union_ious


def synthetic_task(seed: int, images: int = 8) -> tuple[TaskAnnotations, TaskAnnotations]:
    rnd = random.Random(seed)
    gt: dict[str, ImageAnnotations] = {}
    cand: dict[str, ImageAnnotations] = {}
    for k in range(images):
        g: list[Shape] = []
        c: list[Shape] = []
        for _ in range(rnd.randint(1, 4)):
            x, y = rnd.uniform(0, 600), rnd.uniform(0, 450)
            w, h = rnd.uniform(60, 200), rnd.uniform(40, 150)
            g.append(Shape("car", "rectangle", (x, y, x + w, y + h)))
            dx, dy = rnd.uniform(-10, 10), rnd.uniform(-10, 10)
            c.append(Shape("car", "rectangle", (x + dx, y + dy, x + w + dx, y + h),
                           rotation=rnd.choice([0.0, 0.0, 5.0])))
            px, py = x + w / 3, y + h * 0.6
            g.append(Shape("plate", "rectangle", (px, py, px + 50, py + 14),
                           attributes={"plate": "A123BC"}))
            c.append(Shape("plate", "polygon",
                           (px + 1, py, px + 51, py + 1, px + 50, py + 15, px, py + 14),
                           attributes={"plate": "A123BC"}))
        if rnd.random() < 0.3:
            c.append(Shape("car", "ellipse", (400, 300, 60, 30), rotation=20))
        name = f"img_{k:02d}.jpg"
        gt[name] = ImageAnnotations(name, 800, 600, tuple(g))
        cand[name] = ImageAnnotations(name, 800, 600, tuple(c))
    return TaskAnnotations(gt), TaskAnnotations(cand)


@pytest.mark.parametrize("seed", [3, 11])
def test_reference_agrees(seed: int) -> None:
    gt, cand = synthetic_task(seed)
    report = grade(gt, cand)
    ref = reference_union_ious(gt, cand)
    assert report.car_iou is not None and ref["car"] is not None
    assert abs(report.car_iou - ref["car"]) < 0.005
    assert report.plate_iou is not None and ref["plate"] is not None
    assert abs(report.plate_iou - ref["plate"]) < 0.005
