"""Tasks for the benchmark and the tests: the shipped default set and synthetic ones."""

from __future__ import annotations

import random

from config.env import PROJECT_DIR
from tasks_metrics.types import ImageAnnotations, Shape, TaskAnnotations

DEFAULT_SET_XML = PROJECT_DIR / "media" / "task_sets" / "default" / "annotations.xml"


def _car(x0: float, y0: float, x1: float, y1: float, rotation: float = 0.0) -> Shape:
    return Shape("car", "rectangle", (x0, y0, x1, y1), rotation=rotation)


def _plate(x0: float, y0: float, x1: float, y1: float, text: str) -> Shape:
    return Shape("plate", "rectangle", (x0, y0, x1, y1), attributes={"plate": text})


def synthetic_task(
    seed: int, images: int = 20, cars_per_image: int = 3
) -> tuple[TaskAnnotations, TaskAnnotations]:
    """A ground truth and a plausible candidate: 800x600 images, a car and its plate per pair,
    candidate cars shifted (some rotated), candidate plates as polygons, some look-alike text."""
    rnd = random.Random(seed)
    gt: dict[str, ImageAnnotations] = {}
    cand: dict[str, ImageAnnotations] = {}
    for k in range(images):
        g: list[Shape] = []
        c: list[Shape] = []
        for _ in range(cars_per_image):
            x, y = rnd.uniform(0, 600), rnd.uniform(0, 450)
            w, h = rnd.uniform(60, 200), rnd.uniform(40, 150)
            g.append(_car(x, y, x + w, y + h))
            c.append(_car(x + rnd.uniform(-5, 5), y + rnd.uniform(-5, 5), x + w, y + h,
                          rotation=rnd.choice([0, 0, 7.5])))
            px, py = x + w / 3, y + h * 0.7
            g.append(_plate(px, py, px + 40, py + 12, "A123BC"))
            c.append(Shape("plate", "polygon", (px, py, px + 41, py, px + 40, py + 12, px, py + 11),
                           attributes={"plate": rnd.choice(["A123BC", "А123ВС"])}))
        name = f"img_{k:02d}.jpg"
        gt[name] = ImageAnnotations(name, 800, 600, tuple(g))
        cand[name] = ImageAnnotations(name, 800, 600, tuple(c))
    return TaskAnnotations(gt), TaskAnnotations(cand)
