"""A task set: a pool of images with their ground truth (CVAT for images 1.1 XML) and tags,
from which every attempt draws its own images.

A set lives in a folder: `annotations.xml`, `images/`, and optionally `set.json`
({"name", "description", "images_per_task", "labels", "plate_regex", "tags": {image: [tag,
...]}, and for the candidates' guide "label_hints" {label: {language: text}} and "plate_rule"
{language: text}}). `python -m tasks_generator.import_set` makes one from a CVAT export.

The draw: images with the same tags form a stratum; every draw takes the same number from each
stratum (its share of the set, rounded by largest remainder), at random, so every draw is
equally hard by tag; images the candidate already had are taken only when a stratum has no
other left.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.types import TaskAnnotations

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# What a set without "labels" in its set.json is annotated with (connection.DEFAULT_LABELS).
DEFAULT_LABELS = ("car", "plate")
DEFAULT_TEXT_ATTRIBUTE = ("plate", "plate")
# The plate rule of a set without one of its own (Russian plates typed in Latin).
DEFAULT_PLATE_REGEX = r"^[ABCEHKMOPTXY][0-9]{3}[ABCEHKMOPTXY]{2}[0-9]{2}$"
Stratum = tuple[str, ...]  # the sorted tags of its images ("()" = no tag)


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
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    plate_regex: str = DEFAULT_PLATE_REGEX

    @property
    def reference_images(self) -> tuple[str, ...]:
        """The first `images_per_task` images by name: a fixed selection for figures measured
        offline (the pass rule's table) and for tests that need known images."""
        return self.image_names[:self.images_per_task]

    @cached_property
    def strata(self) -> dict[Stratum, tuple[str, ...]]:
        """The images by their tags."""
        groups: dict[Stratum, list[str]] = {}
        for name in self.image_names:
            groups.setdefault(tuple(sorted(self.tags.get(name, ()))), []).append(name)
        return {key: tuple(names) for key, names in sorted(groups.items())}

    @cached_property
    def quotas(self) -> dict[Stratum, int]:
        """How many images every draw takes from each stratum: its share of the set, the
        remainders rounded largest first (ties by the stratum's tags), summing to
        `images_per_task`."""
        total, size = len(self.image_names), self.images_per_task
        exact = {key: len(names) * size / total for key, names in self.strata.items()}
        quotas = {key: math.floor(share) for key, share in exact.items()}
        left = size - sum(quotas.values())
        for key in sorted(exact, key=lambda k: (quotas[k] - exact[k], k))[:left]:
            quotas[key] += 1
        return quotas

    def tag_counts(self, images: Collection[str]) -> dict[str, int]:
        """How many of these images carry each tag."""
        counts = {tag: 0 for key in self.strata for tag in key}
        for name in images:
            for tag in self.tags.get(name, ()):
                counts[tag] += 1
        return counts

    def draw(self, seen: Collection[str] = (), rng: random.Random | None = None,
             ) -> tuple[str, ...]:
        """The images of a new attempt, in name order: each stratum's quota at random, from
        images not in `seen` while the stratum has any (a candidate who had every image of a
        stratum gets some again). `rng` defaults to the system's randomness: a draw must not
        be guessable."""
        chooser = rng or random.SystemRandom()
        had = set(seen)
        chosen: list[str] = []
        for key, quota in self.quotas.items():
            names = self.strata[key]
            fresh = [n for n in names if n not in had]
            picked = chooser.sample(fresh, min(quota, len(fresh)))
            if len(picked) < quota:
                again = [n for n in names if n in had]
                picked += chooser.sample(again, quota - len(picked))
            chosen += picked
        return tuple(sorted(chosen))

    def fits(self, images: Collection[str]) -> bool:
        """Whether these images are a draw of this set as it is now (a pooled task drawn
        before the set, its tags or IMAGES_PER_TASK changed is not)."""
        names = list(images)
        if len(set(names)) != len(names) or not set(names) <= set(self.image_names):
            return False
        counts: dict[Stratum, int] = dict.fromkeys(self.quotas, 0)
        for name in names:
            counts[tuple(sorted(self.tags.get(name, ())))] += 1
        return counts == self.quotas

    def plate_text_ok(self, text: str) -> bool:
        """Whether a plate text follows the set's rule."""
        return re.fullmatch(self.plate_regex, text) is not None

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
    tags = meta.get("tags") or {}
    if not isinstance(tags, dict):
        raise TaskSetError(f"task set {folder.name}: set.json \"tags\" is not an object")
    return TaskSet(
        name=str(meta.get("name") or folder.name),
        folder=folder,
        ground_truth=ground_truth,
        image_names=names,
        images_per_task=min(size, len(names)),
        **_guide_fields(meta),
        tags={str(name): tuple(str(t) for t in value) for name, value in tags.items()
              if name in ground_truth.images and isinstance(value, list)},
        plate_regex=str(meta.get("plate_regex") or DEFAULT_PLATE_REGEX),
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
