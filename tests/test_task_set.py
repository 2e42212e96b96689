"""Tests for the default task set and the script that makes it."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import pytest

from tasks_generator import make_task_set as mts

ROOT = Path(__file__).resolve().parents[1]
SET_DIR = ROOT / "media" / "task_sets" / "default"
PLATE_RE = re.compile(r"^[ABCEHKMOPTXY][0-9]{3}[ABCEHKMOPTXY]{2}[0-9]{2}$")
MAX_BYTES = 6 * 1024 * 1024

Rect = tuple[float, float, float, float]


def _files(folder: Path) -> dict[str, bytes]:
    """Map relative path -> content for every file under folder."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rect(box: ET.Element) -> Rect:
    """Return (xtl, ytl, xbr, ybr) of a <box> element."""
    return tuple(float(box.attrib[k]) for k in ("xtl", "ytl", "xbr", "ybr"))  # type: ignore[return-value]


def _inside(inner: Rect, outer: Rect) -> bool:
    """Tell whether inner lies within outer."""
    return (
        inner[0] >= outer[0] and inner[1] >= outer[1]
        and inner[2] <= outer[2] and inner[3] <= outer[3]
    )


def _overlap(a: Rect, b: Rect) -> bool:
    """Tell whether two rectangles share some area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


@pytest.fixture(scope="module")
def root() -> ET.Element:
    """The parsed ground-truth XML."""
    return ET.parse(SET_DIR / "annotations.xml").getroot()


@pytest.fixture(scope="module")
def images(root: ET.Element) -> list[ET.Element]:
    """The <image> elements in document order."""
    return root.findall("image")


def test_regenerated_set_is_byte_identical(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "default"
    mts.main(["--out", str(out), "--count", "96", "--seed", "2026"])
    printed = capsys.readouterr().out
    assert "images=96" in printed and "bytes=" in printed
    fresh, committed = _files(out), _files(SET_DIR)
    assert sorted(fresh) == sorted(committed)
    differing = [name for name in fresh if fresh[name] != committed[name]]
    assert differing == []


def test_xml_has_cvat_1_1_structure(root: ET.Element) -> None:
    raw = (SET_DIR / "annotations.xml").read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>')
    assert root.tag == "annotations"
    assert root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task is not None
    assert task.findtext("mode") == "annotation"
    assert int(task.findtext("size") or 0) == len(root.findall("image"))
    labels = {lab.findtext("name"): lab for lab in task.findall("labels/label")}
    assert set(labels) == {"car", "plate"}
    for lab in labels.values():
        assert lab.findtext("type") == "rectangle"
    assert labels["car"].findall("attributes/attribute") == []
    (attr,) = labels["plate"].findall("attributes/attribute")
    assert [child.tag for child in attr] == [
        "name", "mutable", "input_type", "default_value", "values",
    ]
    assert attr.findtext("name") == "plate"
    assert attr.findtext("input_type") == "text"
    assert attr.findtext("mutable") == "False"


def test_boxes_are_written_as_cvat_does(root: ET.Element) -> None:
    text = (SET_DIR / "annotations.xml").read_text(encoding="utf-8")
    box_line = re.compile(
        r'<box label="(car|plate)" source="manual" occluded="[01]" xtl="\d+\.\d\d" '
        r'ytl="\d+\.\d\d" xbr="\d+\.\d\d" ybr="\d+\.\d\d" z_order="0">'
    )
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("<box")]
    assert lines and all(box_line.fullmatch(line) for line in lines)
    for image in root.findall("image"):
        assert list(image.attrib) == ["id", "name", "width", "height"]
        for box in image.findall("box"):
            if box.attrib["label"] == "plate":
                assert [a.attrib for a in box.findall("attribute")] == [{"name": "plate"}]
            else:
                assert box.findall("attribute") == []


def test_images_exist_with_xml_sizes(images: list[ET.Element]) -> None:
    assert len(images) >= 96
    assert [int(im.attrib["id"]) for im in images] == list(range(len(images)))
    names = [im.attrib["name"] for im in images]
    assert len(set(names)) == len(names)
    on_disk = sorted(p.name for p in (SET_DIR / "images").iterdir())
    assert on_disk == sorted(names)
    for image in images:
        data = cv2.imread(str(SET_DIR / "images" / image.attrib["name"]))
        assert data is not None
        height, width = data.shape[:2]
        assert (width, height) == (int(image.attrib["width"]), int(image.attrib["height"]))


def test_boxes_inside_image_and_plates_inside_cars(images: list[ET.Element]) -> None:
    for image in images:
        frame = (0.0, 0.0, float(image.attrib["width"]), float(image.attrib["height"]))
        cars = [_rect(b) for b in image.findall("box") if b.attrib["label"] == "car"]
        plates = [_rect(b) for b in image.findall("box") if b.attrib["label"] == "plate"]
        assert 1 <= len(cars) <= 3
        for rect in cars + plates:
            assert rect[0] < rect[2] and rect[1] < rect[3]
            assert _inside(rect, frame)
        for plate in plates:
            assert any(_inside(plate, car) for car in cars), image.attrib["name"]
            width, height = plate[2] - plate[0], plate[3] - plate[1]
            assert 110 <= width <= 140 and 26 <= height <= 34


def test_plate_texts_unique_and_well_formed(root: ET.Element) -> None:
    texts = [a.text or "" for a in root.iter("attribute") if a.attrib.get("name") == "plate"]
    assert texts
    assert all(PLATE_RE.fullmatch(t) for t in texts), texts
    assert len(set(texts)) == len(texts)


def test_each_half_has_the_required_mix(images: list[ET.Element]) -> None:
    size = 12
    for start in range(0, len(images) - len(images) % size, size):
        chunk = images[start : start + size]
        three_car_images = 0
        cars_without_plate = 0
        overlapping = 0
        for image in chunk:
            cars = [_rect(b) for b in image.findall("box") if b.attrib["label"] == "car"]
            plates = [_rect(b) for b in image.findall("box") if b.attrib["label"] == "plate"]
            three_car_images += len(cars) == 3
            cars_without_plate += sum(
                not any(_inside(p, car) for p in plates) for car in cars
            )
            overlapping += any(
                _overlap(a, b) for i, a in enumerate(cars) for b in cars[i + 1 :]
            )
        assert three_car_images >= 2
        assert cars_without_plate >= 2
        assert overlapping >= 1


def test_total_size_and_metadata() -> None:
    total = sum(len(content) for content in _files(SET_DIR).values())
    assert total < MAX_BYTES
    meta = json.loads((SET_DIR / "set.json").read_text(encoding="utf-8"))
    assert meta["name"] == "default"
    assert meta["images_per_task"] == 12
    assert meta["description"]
    assert [lab["name"] for lab in meta["labels"]] == ["car", "plate"]
    readme = (SET_DIR / "README.md").read_text(encoding="utf-8")
    assert "--count 96 --seed 2026" in readme
    tags = meta["tags"]
    assert set(tags) <= {f"scene_{i:03d}.jpg" for i in range(1, 97)}
    counts = {tag: sum(tag in names for names in tags.values())
              for tag in ("night", "occluded", "plateless")}
    assert counts["night"] == 24 and counts["occluded"] >= 24 and counts["plateless"] >= 12


def test_night_scenes_are_darker_and_the_first_24_are_day(root: ET.Element) -> None:
    meta = json.loads((SET_DIR / "set.json").read_text(encoding="utf-8"))
    night = {name for name, tags in meta["tags"].items() if "night" in tags}
    assert min(night) > "scene_024.jpg"
    brightness = {name: float(cv2.imread(str(SET_DIR / "images" / name)).mean())
                  for name in ("scene_026.jpg", "scene_027.jpg")}
    assert "scene_027.jpg" in night and "scene_026.jpg" not in night
    assert brightness["scene_027.jpg"] < 0.6 * brightness["scene_026.jpg"]


def test_random_plate_matches_format() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    assert all(PLATE_RE.fullmatch(mts.random_plate(rng)) for _ in range(200))
