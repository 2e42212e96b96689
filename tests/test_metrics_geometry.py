"""Rasterisation: pixel-centre rule, rotation, ellipses, masks (REST and XML layouts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks_metrics.cvat_xml import parse_cvat_xml, to_cvat_xml
from tasks_metrics.differences import (
    decode_rle,
    encode_rle,
    iou_matrix,
    pair_iou,
    rasterize,
    union_iou,
)
from tasks_metrics.rest import model_points_to_rest, rest_points_to_model
from tasks_metrics.types import ImageAnnotations, Shape, TaskAnnotations

W, H = 800, 600


def box(x0: float, y0: float, x1: float, y1: float, rotation: float = 0.0,
        label: str = "car") -> Shape:
    return Shape(label, "rectangle", (x0, y0, x1, y1), rotation=rotation)


def test_integer_box_has_exact_pixel_count() -> None:
    r = rasterize(box(10, 20, 200, 180), W, H)
    assert r.area == 190 * 160
    assert r.bbox() == (10, 20, 200, 180)


def test_fractional_box_uses_pixel_centres() -> None:
    # centres 10.5 .. 19.5 lie inside [10.2, 19.7): 10 columns; 11.5 .. 18.5 in [10.6, 19.4)
    assert rasterize(box(10.2, 10.2, 19.7, 19.7), W, H).area == 100
    assert rasterize(box(10.6, 10.6, 19.4, 19.4), W, H).area == 64
    assert rasterize(box(10.5, 10, 11.5, 11), W, H).area == 1  # left edge inclusive


def test_box_is_clipped_to_the_image() -> None:
    assert rasterize(box(-50, -50, 10, 10), W, H).area == 100
    assert rasterize(box(790, 590, 900, 700), W, H).area == 100
    assert rasterize(box(900, 10, 950, 20), W, H).empty


def test_polygon_rectangle_equals_box() -> None:
    poly = Shape("car", "polygon", (10.2, 10.2, 19.7, 10.2, 19.7, 19.7, 10.2, 19.7))
    assert pair_iou(rasterize(poly, W, H), rasterize(box(10.2, 10.2, 19.7, 19.7), W, H)) == 1.0


def test_polygon_triangle_area() -> None:
    tri = Shape("plate", "polygon", (0, 0, 100, 0, 0, 100))
    # row j (centre y = j + 0.5) keeps columns with centre x < 100 - y: 99 - j of them
    assert rasterize(tri, W, H).area == sum(99 - j for j in range(100))


def test_square_rotated_90_degrees_equals_itself() -> None:
    a = rasterize(box(100, 100, 200, 200), W, H)
    for angle in (90, 180, 270, 90.0 + 360):
        b = rasterize(box(100, 100, 200, 200, rotation=angle), W, H)
        assert pair_iou(a, b) == 1.0


def test_rectangle_rotated_90_swaps_sides() -> None:
    r = rasterize(box(10, 10, 30, 20, rotation=90), W, H)
    assert r.bbox() == (15, 5, 25, 25)
    assert r.area == 200


def test_square_rotated_45_degrees() -> None:
    r = rasterize(box(100, 100, 200, 200, rotation=45), W, H)
    assert r.area == pytest.approx(100 * 100, rel=0.01)
    # the left corner is at x = 150 - 50*sqrt(2) = 79.29, on the row boundary y = 150; the
    # nearest pixel rows (centres 149.5, 150.5) start at x = 79.79, so column 80 comes first
    assert r.bbox() == (80, 80, 220, 220)
    # IoU of a square and itself rotated by 45 degrees: octagon / (2 * square - octagon)
    octagon = 2 * (math.sqrt(2) - 1) * 100 * 100
    expected = octagon / (2 * 100 * 100 - octagon)
    iou = pair_iou(r, rasterize(box(100, 100, 200, 200), W, H))
    assert iou == pytest.approx(expected, abs=0.01)


def test_rotated_rectangle_rotates_clockwise() -> None:
    # a 60x10 bar rotated 30 degrees clockwise: its right end goes down on screen
    r = rasterize(box(100, 95, 160, 105, rotation=30), W, H)
    assert r.mask is not None
    right_col = r.mask[:, -1]
    rows = np.flatnonzero(right_col) + r.y0
    assert rows.mean() > 100


def test_ellipse_area_and_rotation() -> None:
    e = rasterize(Shape("car", "ellipse", (300, 300, 100, 50)), W, H)
    assert e.area == pytest.approx(math.pi * 100 * 50, rel=0.005)
    assert e.bbox() == (200, 250, 400, 350)
    turned = rasterize(Shape("car", "ellipse", (300, 300, 100, 50), rotation=90), W, H)
    assert turned.bbox() == (250, 200, 350, 400)
    circle = rasterize(Shape("car", "ellipse", (300, 300, 40, 40)), W, H)
    circle_r = rasterize(Shape("car", "ellipse", (300, 300, 40, 40), rotation=33), W, H)
    assert pair_iou(circle, circle_r) > 0.99


def test_rle_round_trip() -> None:
    mask = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    assert encode_rle(mask) == [0, 2, 3, 1]
    assert (decode_rle([0, 2, 3, 1], 3, 2) == mask).all()
    assert encode_rle(np.zeros((2, 2), bool)) == [4]
    with pytest.raises(ValueError):
        decode_rle([1, 2], 3, 2)


def test_mask_rest_layout() -> None:
    # REST: runs then inclusive left, top, right, bottom -> a 3x2 box at (10, 20)
    rest = [0, 2, 3, 1, 10, 20, 12, 21]
    model = rest_points_to_model("mask", rest)
    assert model == (10, 20, 3, 2, 0, 2, 3, 1)
    assert model_points_to_rest("mask", model) == rest
    r = rasterize(Shape("car", "mask", model), W, H)
    assert r.area == 3
    full = r.window(0, 0, 20, 30)
    assert full[20, 10] and full[20, 11] and not full[20, 12] and full[21, 12]


def test_mask_xml_layout() -> None:
    xml = b"""<annotations><version>1.1</version>
      <image id="0" name="a.jpg" width="40" height="30">
        <mask label="car" source="manual" occluded="0" rle="0, 2, 3, 1"
              left="10" top="20" width="3" height="2" z_order="0"/>
      </image></annotations>"""
    task = parse_cvat_xml(xml)
    shape = task.images["a.jpg"].shapes[0]
    assert shape.kind == "mask"
    assert shape.points == (10, 20, 3, 2, 0, 2, 3, 1)
    assert parse_cvat_xml(to_cvat_xml(task)) == task
    assert b'rle="0, 2, 3, 1"' in to_cvat_xml(task)


def test_ellipse_rest_and_xml_layouts() -> None:
    # REST: [cx, cy, cx + rx, cy - ry]; XML: cx cy rx ry
    assert rest_points_to_model("ellipse", [300, 300, 400, 250]) == (300, 300, 100, 50)
    xml = b"""<annotations><image id="0" name="a.jpg" width="800" height="600">
      <ellipse label="car" occluded="0" cx="300" cy="300" rx="100" ry="50" rotation="90"
       z_order="0"/></image></annotations>"""
    shape = parse_cvat_xml(xml).images["a.jpg"].shapes[0]
    assert shape.points == (300, 300, 100, 50) and shape.rotation == 90


def test_union_iou_overlapping_gt_is_union_not_sum() -> None:
    g = [rasterize(box(0, 0, 10, 10), W, H), rasterize(box(5, 0, 15, 10), W, H)]
    c = [rasterize(box(0, 0, 15, 10), W, H)]
    assert union_iou(g, c) == 1.0
    assert union_iou([], []) is None


def test_iou_matrix_matches_raster_for_boxes() -> None:
    g = [rasterize(box(0, 0, 10, 10), W, H)]
    c = [rasterize(box(5, 0, 15, 10), W, H), rasterize(box(50, 50, 60, 60), W, H)]
    m = iou_matrix(g, c)
    assert m[0, 0] == pytest.approx(50 / 150)
    assert m[0, 1] == 0.0


def test_image_task_equality_and_immutability() -> None:
    t1 = TaskAnnotations({"a": ImageAnnotations("a", 1, 1, (box(0, 0, 1, 1),))})
    t2 = TaskAnnotations({"a": ImageAnnotations("a", 1, 1, (box(0, 0, 1, 1),))})
    assert t1 == t2
    with pytest.raises(TypeError):
        t1.images["b"] = t1.images["a"]  # type: ignore[index]
    with pytest.raises(TypeError):
        t1.images["a"].shapes[0].attributes["plate"] = "x"  # type: ignore[index]
