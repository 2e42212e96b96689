"""Hand-computed grading cases with exact expected values."""

from __future__ import annotations

import pytest

from tasks_metrics.metrics import classify_plate, grade, levenshtein
from tasks_metrics.pass_rule import Measure, PassRule
from tasks_metrics.types import AnnotationFormatError, ImageAnnotations, Shape, TaskAnnotations


def car(x0: float, y0: float, x1: float, y1: float, rotation: float = 0.0) -> Shape:
    return Shape("car", "rectangle", (x0, y0, x1, y1), rotation=rotation)


def plate(x0: float, y0: float, x1: float, y1: float, text: str | None = "A123BC") -> Shape:
    attrs = {} if text is None else {"plate": text}
    return Shape("plate", "rectangle", (x0, y0, x1, y1), attributes=attrs)


def task(**images: list[Shape]) -> TaskAnnotations:
    return TaskAnnotations({f"{k}.jpg": ImageAnnotations(f"{k}.jpg", 800, 600, tuple(v))
                            for k, v in images.items()})


def test_identical() -> None:
    t = task(a=[car(10, 10, 110, 60), plate(20, 20, 40, 30)])
    r = grade(t, t)
    assert (r.car_iou, r.plate_iou, r.plate_accuracy, r.score, r.band) == (1, 1, 1, 1, "pass")
    assert r.car.precision == r.car.recall == r.car.matched_iou == 1.0


def test_overlapping_gt_boxes_use_union() -> None:
    gt = task(a=[car(0, 0, 100, 100), car(50, 0, 150, 100)])
    cand = task(a=[car(0, 0, 150, 100)])
    r = grade(gt, cand)
    assert r.car_iou == 1.0  # union G is 150x100, exactly the candidate box
    # objects: IoU(G1, C) = 10000/15000, IoU(G2, C) = 10000/15000: one match, one missed
    assert r.car.tp == 1 and r.car.gt_count == 2 and r.car.candidate_count == 1
    assert r.car.matched_iou == pytest.approx(2 / 3)
    assert r.car.precision == 1.0 and r.car.recall == 0.5
    assert len(r.car.missed) == 1


def test_missed_car() -> None:
    gt = task(a=[car(0, 0, 100, 100), car(200, 0, 300, 100)])
    cand = task(a=[car(0, 0, 100, 100)])
    r = grade(gt, cand)
    assert r.car_iou == 0.5
    assert (r.car.tp, r.car.precision, r.car.recall) == (1, 1.0, 0.5)
    (missed,) = r.car.missed
    assert missed.image == "a.jpg" and missed.box == (200, 0, 300, 100)
    assert r.to_dict()["per_class"]["car"]["missed"] == 1


def test_extra_car() -> None:
    gt = task(a=[car(0, 0, 100, 100)])
    cand = task(a=[car(0, 0, 100, 100), car(300, 300, 400, 350)])
    r = grade(gt, cand)
    assert r.car_iou == pytest.approx(10000 / 15000)
    assert (r.car.precision, r.car.recall) == (0.5, 1.0)
    (extra,) = r.car.extra
    assert extra.box == (300, 300, 400, 350)


def test_partial_overlap_exact_iou() -> None:
    gt = task(a=[car(0, 0, 100, 100)])
    cand = task(a=[car(0, 0, 100, 50)])  # IoU exactly 0.5: still a match
    r = grade(gt, cand)
    assert r.car_iou == 0.5 and r.car.tp == 1 and r.car.matched_iou == 0.5
    r2 = grade(gt, task(a=[car(0, 0, 100, 49)]))
    assert r2.car.tp == 0 and r2.car_iou == pytest.approx(0.49)


def test_rotated_candidate_box() -> None:
    gt = task(a=[car(100, 100, 200, 200)])
    assert grade(gt, task(a=[car(100, 100, 200, 200, rotation=90)])).car_iou == 1.0
    r = grade(gt, task(a=[car(100, 100, 200, 200, rotation=45)]))
    assert r.car_iou == pytest.approx(0.7071, abs=0.01)  # octagon/(2 squares - octagon)


def test_polygon_plate_matches_its_box() -> None:
    poly = Shape("plate", "polygon", (20, 20, 40, 20, 40, 30, 20, 30), attributes={"plate": "X1"})
    gt = task(a=[car(0, 0, 100, 100), plate(20, 20, 40, 30, "X1")])
    r = grade(gt, task(a=[car(0, 0, 100, 100), poly]))
    assert r.plate_iou == 1.0 and r.plate_accuracy == 1.0


def test_image_without_plates_is_skipped_for_plate_iou() -> None:
    gt = task(a=[car(0, 0, 100, 100), plate(10, 10, 30, 20)], b=[car(0, 0, 100, 100)])
    cand = task(a=[car(0, 0, 100, 100), plate(10, 10, 30, 15)], b=[car(0, 0, 100, 100)])
    r = grade(gt, cand)
    assert r.plate_iou == 0.5  # image b has no plates on either side: skipped, not 0 or 1
    assert r.to_dict()["per_image"]["b.jpg"] == {"car": 1.0, "plate": None}


def test_empty_submission() -> None:
    gt = task(a=[car(0, 0, 100, 100), plate(10, 10, 30, 20)], b=[car(0, 0, 50, 50)])
    for cand in (task(a=[], b=[]), TaskAnnotations({})):
        r = grade(gt, cand)
        assert r.car_iou == 0.0 and r.plate_iou == 0.0 and r.plate_accuracy == 0.0
        assert r.car.recall == 0.0 and r.car.precision is None
        assert r.score == 0.0 and r.band == "fail"
        assert r.plates[0].reason == "missing"


def test_plate_reasons_and_accuracy() -> None:
    gt = task(a=[car(0, 0, 400, 400), plate(10, 10, 50, 20, "A123BC"),
                 plate(10, 100, 50, 110, "X001XX"), plate(10, 200, 50, 210, "K777MM"),
                 plate(10, 300, 50, 310, "E555EE"), plate(200, 10, 240, 20, "T1")])
    cand = task(a=[car(0, 0, 400, 400), plate(10, 10, 50, 20, " A123BC "),
                   plate(10, 100, 50, 110, "x001xx"), plate(10, 200, 50, 210, "K777МM"),
                   plate(10, 300, 50, 310, ""), plate(300, 300, 340, 310, "T1")])
    r = grade(gt, cand)
    by_expected = {p.expected: p for p in r.plates}
    assert by_expected["A123BC"].correct and by_expected["A123BC"].reason is None
    assert by_expected["X001XX"].reason == "case"
    look = by_expected["K777MM"]
    assert look.reason == "lookalike" and look.lookalikes == ((4, "М", "M"),)
    assert look.cer == pytest.approx(1 / 6)
    assert by_expected["E555EE"].reason == "empty" and by_expected["E555EE"].given == ""
    assert by_expected["T1"].reason == "missing" and by_expected["T1"].given is None
    assert r.plate_accuracy == pytest.approx(1 / 5)
    # CER overall: 0 + 3 (x, x, x) + 1 + 6 + 2 edits over 6+6+6+6+2 characters
    assert r.plate_cer == pytest.approx(12 / 26)


def test_cyrillic_ground_truth_and_latin_answer() -> None:
    assert classify_plate("А123ВС77", "A123BC77")[0] == "lookalike"
    assert classify_plate("ABC123", "ABC12З")[0] == "lookalike"
    assert classify_plate("ABC123", "ABC124")[0] == "other"
    assert classify_plate("abc", "ABC")[0] == "case"
    assert levenshtein("kitten", "sitting") == 3


def test_unknown_candidate_images_are_an_error() -> None:
    gt = task(a=[car(0, 0, 10, 10)])
    with pytest.raises(AnnotationFormatError, match=r"zzz\.jpg"):
        grade(gt, task(a=[], zzz=[]))


def test_bands_come_from_the_gates_not_the_score() -> None:
    gt = task(a=[car(0, 0, 100, 100)])
    loose = task(a=[car(0, 0, 100, 80)])  # one car, found, box fit 0.8
    report = grade(gt, loose)
    assert report.band == "borderline" and report.score == pytest.approx(0.8)
    (below,) = report.verdict.failing
    assert (below.measure, below.value, below.band) == ("car_fit", pytest.approx(0.8),
                                                        "borderline")
    assert grade(gt, loose, rule=PassRule.default().with_gate(
        Measure.CAR_FIT, (0.9, 0.85))).band == "fail"
    assert grade(gt, loose, rule=PassRule.default().with_gate(Measure.CAR_FIT, None)).band \
        == "pass"
    # Boxing every car twice leaves every overlap figure at 1.0 but halves the precision.
    twice = grade(gt, task(a=[car(0, 0, 100, 100), car(1, 1, 99, 99)]))
    assert twice.car_iou == 1.0 and twice.band == "fail"
    assert [g.measure for g in twice.verdict.failing] == ["car_precision"]


def test_to_dict_has_the_contract_keys() -> None:
    gt = task(a=[car(0, 0, 100, 100), plate(10, 10, 30, 20)])
    d = grade(gt, gt).to_dict()
    for key in ("car_iou", "plate_iou", "plate_accuracy", "score", "band", "per_class",
                "plates", "per_image", "image_fit", "plate_cer"):
        assert key in d
    for cls in ("car", "plate"):
        for key in ("precision", "recall", "matched_iou", "missed", "extra", "tp", "gt_count",
                    "candidate_count", "missed_objects", "extra_objects"):
            assert key in d["per_class"][cls]
    assert set(d["plates"][0]) >= {"image", "expected", "given", "correct", "reason", "cer"}
