"""A task set: images plus their ground truth (CVAT for images 1.1 XML), split into subsets.

A set lives in a folder: `annotations.xml`, `images/`, and optionally `set.json`
({"name", "description", "images_per_task", "labels", and for the candidates' guide
"label_hints" {label: {language: text}} and "plate_rule" {language: text}}). HR can make one
by annotating images in CVAT, exporting "CVAT for images 1.1" and dropping the export and the
images into a new folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.types import TaskAnnotations

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# What a set without "labels" in its set.json is annotated with (connection.DEFAULT_LABELS).
DEFAULT_LABELS = ("car", "plate")
DEFAULT_TEXT_ATTRIBUTE = ("plate", "plate")


class TaskSetError(ValueError):
    """The task set folder is incomplete or inconsistent."""


@dataclass(frozen=True)
class TaskSet:
    """The images and ground truth a test task is made of."""

    name: str
    folder: Path
    ground_truth: TaskAnnotations
    image_names: tuple[str, ...]
    images_per_task: int
    labels: tuple[str, ...] = DEFAULT_LABELS
    # (label, attribute) whose text the candidate types, if any
    text_attribute: tuple[str, str] | None = DEFAULT_TEXT_ATTRIBUTE
    # per label, per language: what to box (set.json "label_hints")
    label_hints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # per language: the text rule in plain words (set.json "plate_rule")
    plate_rule: Mapping[str, str] = field(default_factory=dict)

    @property
    def subsets(self) -> tuple[tuple[str, ...], ...]:
        """Disjoint subsets of `images_per_task` images, in name order (images left over after
        the last full subset are not used)."""
        names, size = self.image_names, self.images_per_task
        count = max(1, len(names) // size)
        return tuple(names[i * size:(i + 1) * size] for i in range(count))

    def subset_for_attempt(self, number: int) -> tuple[str, ...]:
        """The images of the candidate's attempt `number` (1-based): attempt after attempt a
        different subset while there are several, then round again."""
        subsets = self.subsets
        return subsets[(number - 1) % len(subsets)]

    def image_path(self, name: str) -> Path:
        """The file of one image."""
        if name not in self.ground_truth.images:
            raise TaskSetError(f"{name!r} is not an image of task set {self.name!r}")
        return self.folder / "images" / name

    def read_images(self, names: tuple[str, ...] | list[str]) -> list[tuple[str, bytes]]:
        """(name, bytes) of the given images, for uploading (blocking: call in a thread)."""
        return [(name, self.image_path(name).read_bytes()) for name in names]

    def ground_truth_for(self, names: tuple[str, ...] | list[str]) -> TaskAnnotations:
        """The ground truth restricted to some images."""
        return TaskAnnotations({n: self.ground_truth.images[n] for n in names})


@cache
def load_task_set(folder: Path, images_per_task: int = 0) -> TaskSet:
    """Read and check a task set folder (cached: the set is read-only while the bot runs)."""
    xml = folder / "annotations.xml"
    if not xml.is_file():
        raise TaskSetError(f"task set {folder} has no annotations.xml")
    meta = {}
    if (folder / "set.json").is_file():
        meta = json.loads((folder / "set.json").read_text(encoding="utf-8"))
    ground_truth = parse_cvat_xml(xml)
    names = tuple(sorted(ground_truth.images))
    missing = [n for n in names if not (folder / "images" / n).is_file()]
    if missing:
        raise TaskSetError(f"task set {folder.name}: images listed in annotations.xml are "
                           f"missing from images/: {', '.join(missing[:5])}")
    if not names:
        raise TaskSetError(f"task set {folder.name} has no images")
    size = images_per_task or int(meta.get("images_per_task") or len(names))
    return TaskSet(
        name=str(meta.get("name") or folder.name),
        folder=folder,
        ground_truth=ground_truth,
        image_names=names,
        images_per_task=min(size, len(names)),
        **_guide_fields(meta),
    )


def _guide_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the candidates' guide needs from set.json: the labels, the attribute typed as text,
    and the plain-words hints and text rule."""
    fields: dict[str, Any] = {"label_hints": meta.get("label_hints") or {},
                              "plate_rule": meta.get("plate_rule") or {}}
    labels = meta.get("labels")
    if labels:
        fields["labels"] = tuple(str(label["name"]) for label in labels)
        fields["text_attribute"] = next(
            ((str(label["name"]), str(attribute["name"])) for label in labels
             for attribute in label.get("attributes") or ()
             if attribute.get("input_type") == "text"), None)
    return fields
