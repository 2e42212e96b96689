"""Calibration of a task set from the graded attempts: for each image, how many candidates had
it and their mean box fit; for each object, how often it was missed and (plates) misread.

An object that most strong candidates (their band not fail) missed, or a plate most of them
read otherwise than the key, is flagged as a probable error in the key: HR or the maintainer
look at it and may exclude it (`tasks_metrics.answer_key`).
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from db import Database
from tasks_generator.task_set import TaskSet
from tasks_metrics.answer_key import KeyVersion, current_key
from tasks_metrics.repository import calibration_rows
from tasks_metrics.types import CLASSES, PLATE, TaskAnnotations

SUSPECT_SHARE = 0.5  # more than this share of strong candidates missed or misread it
SUSPECT_MIN_STRONG = 3  # fewer strong candidates say nothing
BOX_TOLERANCE = 0.05


@dataclass
class ObjectStats:
    """One object of the key on one image."""

    image: str
    number: int
    label: str
    text: str
    excluded: bool = False
    had: int = 0
    missed: int = 0
    misread: int = 0
    strong: int = 0
    strong_missed: int = 0
    strong_misread: int = 0

    @property
    def suspect(self) -> bool:
        """Most strong candidates missed or misread it: a probable error in the key."""
        if self.excluded or self.strong < SUSPECT_MIN_STRONG:
            return False
        return max(self.strong_missed, self.strong_misread) > SUSPECT_SHARE * self.strong


@dataclass
class ImageStats:
    """One image: who had it, their mean box fit, its objects."""

    image: str
    tags: tuple[str, ...]
    excluded: bool
    candidates: int = 0
    fits: list[float] = field(default_factory=list)
    objects: list[ObjectStats] = field(default_factory=list)

    @property
    def mean_fit(self) -> float | None:
        """The mean over candidates of the image's box fit (mean IoU of matched pairs)."""
        return math.fsum(self.fits) / len(self.fits) if self.fits else None


def _same_box(a: Iterable[float], b: Iterable[float]) -> bool:
    return all(abs(float(x) - float(y)) <= BOX_TOLERANCE for x, y in zip(a, b, strict=True))


def _find(image: ImageStats, label: str, box: list[float], truth: TaskAnnotations,
          ) -> ObjectStats | None:
    from tasks_metrics.differences import shape_bbox

    shapes = truth.images[image.image].shapes
    for stats in image.objects:
        if stats.label == label and _same_box(shape_bbox(shapes[stats.number - 1]), box):
            return stats
    return None


def _count(image: ImageStats, report: dict[str, Any], strong: bool,
           truth: TaskAnnotations) -> None:
    """Add one attempt's report on this image."""
    image.candidates += 1
    fit = (report.get("image_fit") or {}).get(image.image)
    if fit is not None:
        image.fits.append(float(fit))
    missed: set[int] = set()
    for label in CLASSES:
        for obj in report.get("per_class", {}).get(label, {}).get("missed_objects", []):
            if obj.get("image") == image.image:
                found = _find(image, label, obj.get("box") or [], truth)
                if found is not None:
                    missed.add(found.number)
    misread: set[int] = set()
    for plate in report.get("plates", []):
        if plate.get("image") == image.image and plate.get("given") is not None \
                and not plate.get("correct"):
            found = _find(image, PLATE, plate.get("box") or [], truth)
            if found is not None:
                misread.add(found.number)
    for stats in image.objects:
        if stats.excluded:
            continue
        stats.had += 1
        stats.missed += stats.number in missed
        stats.misread += stats.number in misread
        if strong:
            stats.strong += 1
            stats.strong_missed += stats.number in missed
            stats.strong_misread += stats.number in misread


def calibrate(task_set: TaskSet, key: KeyVersion,
              attempts: Iterable[tuple[list[str], str | None, dict[str, Any]]],
              ) -> list[ImageStats]:
    """Per image and object, from (images, band, report) of graded attempts (blocking)."""
    truth = key.truth(task_set)
    excluded_objects = set(key.excluded_objects)
    images = {name: ImageStats(name, task_set.tags.get(name, ()),
                               name in key.excluded_images, objects=[
                                   ObjectStats(name, number, shape.label, shape.text,
                                               (name, number) in excluded_objects)
                                   for number, shape in enumerate(truth.images[name].shapes, 1)])
              for name in task_set.image_names}
    for subset, band, report in attempts:
        for name in subset:
            if name in images and not images[name].excluded:
                _count(images[name], report, band not in (None, "fail"), truth)
    return list(images.values())


async def calibration(db: Database, task_set: TaskSet) -> tuple[KeyVersion, list[ImageStats]]:
    """The key in force and the calibration of the set from every graded attempt on it."""
    key = await current_key(db, task_set.name)
    # Only what is counted (missed objects, misread plates, box fit): a few hundred bytes an
    # attempt rather than the whole report.
    rows = await calibration_rows(db, task_set.name)
    stats = await asyncio.to_thread(
        calibrate, task_set, key, [(r.image_subset, r.band, r.report) for r in rows])
    return key, stats


def suspects(stats: list[ImageStats]) -> list[ObjectStats]:
    """Probable errors in the key, the most missed first."""
    found = [o for image in stats for o in image.objects if o.suspect]
    return sorted(found, key=lambda o: (-max(o.strong_missed, o.strong_misread) / o.strong,
                                        o.image, o.number))


HEADERS = ("image", "tags", "image excluded", "candidates", "mean box fit", "object", "label",
           "plate text", "object excluded", "missed", "missed %", "misread", "misread %",
           "strong candidates", "missed by strong", "misread by strong", "probable key error")


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def table(stats: list[ImageStats]) -> list[tuple[Any, ...]]:
    """One row per object (HEADERS)."""
    rows = []
    for image in stats:
        fit = None if image.mean_fit is None else round(image.mean_fit, 3)
        for o in image.objects:
            rows.append((image.image, " ".join(image.tags), image.excluded, image.candidates,
                         fit, o.number, o.label, o.text, o.excluded, o.missed,
                         _share(o.missed, o.had), o.misread, _share(o.misread, o.had),
                         o.strong, o.strong_missed, o.strong_misread, o.suspect))
    return rows


def xlsx(stats: list[ImageStats], title: str) -> bytes:
    """The calibration as an XLSX sheet (blocking: run in a thread)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in table(stats):
        sheet.append(row)
    sheet.freeze_panes = "B2"
    sheet.auto_filter.ref = sheet.dimensions
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def text_report(key: KeyVersion, stats: list[ImageStats]) -> str:
    """The calibration as the command line prints it."""
    lines = [f"task set {key.task_set}, answer key version {key.version}",
             f"{'image':<16} {'tags':<26} {'cand':>4} {'fit':>6}  objects (missed%/misread%)"]
    for image in stats:
        fit = "-" if image.mean_fit is None else f"{image.mean_fit:.3f}"
        objects = " ".join(
            f"#{o.number}{o.label[0]}" + ("x" if o.excluded else
                                          f"{_share(o.missed, o.had) or 0:.0f}"
                                          f"/{_share(o.misread, o.had) or 0:.0f}"
                                          + ("!" if o.suspect else ""))
            for o in image.objects)
        name = image.image + (" (excluded)" if image.excluded else "")
        lines.append(f"{name:<16} {' '.join(image.tags):<26} {image.candidates:>4} {fit:>6}"
                     f"  {objects}")
    found = suspects(stats)
    lines.append(f"probable key errors: {len(found)}")
    lines += [f"  {o.image} #{o.number} {o.label} {o.text}: missed by {o.strong_missed}, "
              f"misread by {o.strong_misread} of {o.strong} strong candidates" for o in found]
    return "\n".join(lines)
