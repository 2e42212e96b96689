"""CVAT XML and REST parsing, tracks, and the completeness checker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot_files.texts import Texts, problem_text
from tasks_metrics.checker import check_completeness
from tasks_metrics.cvat_xml import parse_cvat_xml, to_cvat_xml
from tasks_metrics.rest import from_cvat_rest
from tasks_metrics.tracks import Keyframe, expand_track
from tasks_metrics.types import AnnotationFormatError, ImageAnnotations, Shape, TaskAnnotations

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
RECORDED = Path(__file__).resolve().parent / "fixtures" / "cvat" / "cvat-2.73-recorded-flow.json"


def test_parse_fixture() -> None:
    task = parse_cvat_xml(FIXTURES / "gt.xml")
    assert sorted(task.images) == ["img_00.jpg", "img_01.jpg", "img_02.jpg"]
    img = task.images["img_00.jpg"]
    assert (img.width, img.height) == (320, 240)
    plate = img.of_label("plate")[0]
    assert plate.text == "А123ВС77" and plate.points == (80, 150, 130, 165)
    poly = task.images["img_01.jpg"].of_label("plate")[0]
    assert poly.kind == "polygon" and len(poly.points) == 8
    assert parse_cvat_xml((FIXTURES / "gt.xml").read_bytes()) == task
    assert parse_cvat_xml((FIXTURES / "gt.xml").read_text(encoding="utf-8")) == task


@pytest.mark.parametrize("name, message", [
    ("not_xml.xml", "not XML"),
    ("not_cvat.xml", "not a CVAT XML"),
    ("missing.xml", "not found"),
])
def test_parse_errors(name: str, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=message):
        parse_cvat_xml(FIXTURES / name)


def test_round_trip_fixture() -> None:
    task = parse_cvat_xml(FIXTURES / "gt.xml")
    xml = to_cvat_xml(task)
    assert xml.startswith(b"<?xml") and b"<version>1.1</version>" in xml
    assert b"<name>plate</name>" in xml
    assert parse_cvat_xml(xml) == task


def test_xml_track_in_image_task() -> None:
    xml = b"""<annotations><version>1.1</version>
      <image id="0" name="a.jpg" width="320" height="240"/>
      <image id="1" name="b.jpg" width="320" height="240"/>
      <image id="2" name="c.jpg" width="320" height="240"/>
      <image id="3" name="d.jpg" width="320" height="240"/>
      <track id="0" label="car" source="manual">
        <box frame="0" keyframe="1" outside="0" occluded="0" xtl="0" ytl="0" xbr="50" ybr="50"
             z_order="0"/>
        <box frame="2" keyframe="1" outside="0" occluded="0" xtl="20" ytl="20" xbr="70"
             ybr="70" z_order="0"/>
        <box frame="3" keyframe="1" outside="1" occluded="0" xtl="20" ytl="20" xbr="70"
             ybr="70" z_order="0"/>
      </track></annotations>"""
    task = parse_cvat_xml(xml)
    assert task.images["a.jpg"].shapes[0].points == (0, 0, 50, 50)
    assert task.images["b.jpg"].shapes[0].points == (10, 10, 60, 60)  # interpolated
    assert task.images["c.jpg"].shapes[0].points == (20, 20, 70, 70)
    assert task.images["d.jpg"].shapes == ()  # outside


def _recorded(call: str, note: str | None = None) -> dict:
    for entry in json.loads(RECORDED.read_text(encoding="utf-8")):
        if entry["call"] == call and (note is None or entry.get("note") == note):
            return entry["response"]
    raise LookupError(call)


@pytest.mark.skipif(not RECORDED.exists(), reason="recorded CVAT flow not available")
def test_rest_recorded_annotations() -> None:
    annotations = _recorded("GET /api/jobs/5/annotations", "read back")
    labels = _recorded("GET /api/labels?job_id=5")["results"]
    meta = _recorded("GET /api/jobs/5/data/meta")
    task = from_cvat_rest(annotations, labels, meta["frames"], meta["deleted_frames"],
                          meta["start_frame"])
    img0, img1, img2 = (task.images[f"img_0{i}.jpg"] for i in range(3))
    rotated = next(s for s in img0.shapes if s.rotation)
    assert rotated.label == "car" and rotated.rotation == 15.0
    assert img0.of_label("plate")[0].text == "А123ВС77"
    assert img1.of_label("plate")[0].kind == "polygon"
    # the track: keyframes on frames 0 and 2, interpolated on frame 1
    track_boxes = {name: [s.points for s in task.images[name].shapes if s.ref.startswith("track")]
                   for name in task.images}
    assert track_boxes["img_00.jpg"] == [(0, 0, 50, 50)]
    assert track_boxes["img_01.jpg"] == [(10, 10, 60, 60)]
    assert track_boxes["img_02.jpg"] == [(20, 20, 70, 70)]
    assert img2.width == 320


def test_rest_track_outside_persist_and_attributes() -> None:
    labels = [{"id": 10, "name": "plate", "attributes": [{"id": 5, "name": "plate"}]}]
    frames = [{"name": f"f{i}.jpg", "width": 100, "height": 100} for i in range(6)]
    annotations = {"shapes": [], "tags": [{"frame": 0, "label_id": 10}], "tracks": [{
        "id": 7, "label_id": 10, "frame": 0, "attributes": [{"spec_id": 5, "value": "AB12"}],
        "shapes": [
            {"type": "ellipse", "frame": 0, "points": [50, 50, 60, 40], "rotation": 350,
             "outside": False, "attributes": []},
            {"type": "ellipse", "frame": 2, "points": [50, 50, 60, 40], "rotation": 10,
             "outside": False, "attributes": []},
            {"type": "ellipse", "frame": 3, "points": [50, 50, 60, 40], "rotation": 10,
             "outside": True, "attributes": []},
            {"type": "ellipse", "frame": 4, "points": [10, 10, 20, 5], "rotation": 0,
             "outside": False, "attributes": []},
        ]}]}
    task = from_cvat_rest(annotations, labels, frames, deleted_frames=[5])
    assert task.images["f1.jpg"].shapes[0].rotation == pytest.approx(0.0)  # shorter arc
    assert task.images["f1.jpg"].shapes[0].points == (50, 50, 10, 10)  # REST -> cx cy rx ry
    assert task.images["f1.jpg"].shapes[0].text == "AB12"
    assert task.images["f3.jpg"].shapes == ()
    assert task.images["f4.jpg"].shapes[0].points == (10, 10, 10, 5)
    assert "f5.jpg" not in task.images  # deleted frame


def test_expand_track_persists_to_end_and_carries_attributes() -> None:
    keys = [Keyframe(0, "rectangle", (0, 0, 10, 10), attributes={"a": "1"}),
            Keyframe(2, "rectangle", (10, 0, 20, 10), attributes={"b": "2"})]
    out = expand_track(keys, end_frame=5)
    assert sorted(out) == [0, 1, 2, 3, 4]
    assert out[1].points == (5, 0, 15, 10)
    assert dict(out[4].attributes) == {"a": "1", "b": "2"}
    assert out[4].points == (10, 0, 20, 10)


def test_polygon_track_interpolates() -> None:
    square = (0, 0, 10, 0, 10, 10, 0, 10)
    moved = tuple(v + 10 for v in square)
    out = expand_track([Keyframe(0, "polygon", square), Keyframe(2, "polygon", moved)], 3)
    assert out[1].points == tuple(v + 5 for v in square)


def _img(name: str, *shapes: Shape) -> ImageAnnotations:
    return ImageAnnotations(name, 100, 100, shapes)


def test_checker() -> None:
    car = Shape("car", "rectangle", (0, 0, 50, 50))
    plate = Shape("plate", "rectangle", (5, 5, 20, 10), attributes={"plate": "A1"})
    nan_ellipse = Shape("car", "ellipse", (5, 5, float("nan"), 2))
    task = TaskAnnotations.from_images([
        _img("ok.jpg", car, plate),
        _img("nocar.jpg", Shape("plate", "rectangle", (5, 5, 20, 10), attributes={"plate": " "})),
        _img("bad.jpg", car, Shape("truck", "rectangle", (0, 0, 5, 5)),
             Shape("car", "polyline", (0, 0, 5, 5)), Shape("car", "polygon", (0, 0, 5, 5)),
             Shape("car", "rectangle", (5, 5, 5, 9)), nan_ellipse),
    ])
    problems = check_completeness(task, ["ok.jpg", "nocar.jpg", "bad.jpg", "absent.jpg"])
    codes = sorted((p.image, p.code) for p in problems)
    assert ("ok.jpg", "no_car") not in codes
    assert ("nocar.jpg", "no_car") in codes and ("nocar.jpg", "plate_without_text") in codes
    assert ("absent.jpg", "no_car") in codes
    assert ("bad.jpg", "unknown_label") in codes and ("bad.jpg", "unsupported_shape") in codes
    assert sum(1 for c in codes if c == ("bad.jpg", "degenerate_shape")) == 3
    for p in problems:
        for lang in ("en", "ru"):
            assert problem_text(Texts(lang), p.code, p.params)
    no_car = next(p for p in problems if p.code == "no_car")
    assert "машин" in problem_text(Texts("ru"), no_car.code, no_car.params)
    degenerate = next(p for p in problems if p.code == "degenerate_shape")
    assert "Redraw" in problem_text(Texts("en"), degenerate.code, degenerate.params)
    # never reveals the answer key: no counts of expected objects
    assert all("should" not in problem_text(Texts("en"), p.code, p.params) for p in problems)
