"""Checks of a task set's ground truth (CVAT for images 1.1 XML): what a new set's import and
a replaced answer key must pass. Every offending entry is listed, never just the first."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field

from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.types import CLASSES, PLATE, AnnotationFormatError, TaskAnnotations

MAX_LISTED = 20  # offending entries listed per kind; the rest are counted


@dataclass
class SetReport:
    """What a check found: the parsed ground truth (when it parsed), the image-level tags
    (CVAT `<tag>` elements), and the problems."""

    truth: TaskAnnotations | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, entries: list[str]) -> None:
        """One kind of problem with its offending entries."""
        if not entries:
            return
        shown = ", ".join(entries[:MAX_LISTED])
        more = f" and {len(entries) - MAX_LISTED} more" if len(entries) > MAX_LISTED else ""
        self.problems.append(f"{what} ({len(entries)}): {shown}{more}")


def _meta_labels(root: ET.Element) -> list[str]:
    return [name.text or "" for name in root.iterfind(".//meta//labels/label/name")]


def check_ground_truth(xml: bytes, plate_regex: str,
                       image_files: Collection[str] | None = None) -> SetReport:
    """Parse and check an annotations file: labels are car and plate only, every plate's text
    follows `plate_regex`, and (with `image_files`) every image file has an entry and every
    entry a file."""
    report = SetReport()
    try:
        root = ET.fromstring(xml)
        report.truth = parse_cvat_xml(xml)
    except (ET.ParseError, AnnotationFormatError, ValueError) as exc:
        report.problems.append(f"the annotations cannot be read: {exc}")
        return report
    truth = report.truth
    labels = set(_meta_labels(root)) | {s.label for im in truth for s in im.shapes}
    report.add("labels other than car and plate", sorted(labels - set(CLASSES)))
    rule = re.compile(plate_regex)
    report.add(f"plate texts that do not follow {plate_regex}", [
        f"{image.name} #{number} {shape.text!r}"
        for image in truth for number, shape in enumerate(image.shapes, 1)
        if shape.label == PLATE and not rule.fullmatch(shape.text.strip())])
    for element in root.iterfind("image"):
        names = [tag.get("label", "") for tag in element.iterfind("tag")]
        if names:
            report.tags[element.get("name", "")] = sorted(set(names))
    if image_files is not None:
        files = set(image_files)
        report.add("images without an annotation entry", sorted(files - set(truth.images)))
        report.add("annotation entries without an image", sorted(set(truth.images) - files))
    return report
