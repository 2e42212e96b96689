"""Property tests: identity, disjointness, order independence, XML round trip."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_metrics.cvat_xml import parse_cvat_xml, to_cvat_xml
from tasks_metrics.metrics import grade
from tasks_metrics.types import ImageAnnotations, Shape, TaskAnnotations

W, H = 320, 240
# shapes stay inside the image: a shape without a pixel in the image can never be matched
xs = st.floats(min_value=35, max_value=250, allow_nan=False, allow_infinity=False)
ys = st.floats(min_value=35, max_value=170, allow_nan=False, allow_infinity=False)
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=10)


@st.composite
def shapes(draw: st.DrawFn, label: str | None = None) -> Shape:
    lab = label or draw(st.sampled_from(["car", "plate"]))
    kind = draw(st.sampled_from(["rectangle", "rectangle", "polygon", "ellipse", "mask"]))
    x, y = draw(xs), draw(ys)
    w = draw(st.floats(min_value=4, max_value=60))
    h = draw(st.floats(min_value=4, max_value=60))
    attrs = {"plate": draw(text)} if lab == "plate" else {}
    if kind == "rectangle":
        return Shape(lab, kind, (x, y, x + w, y + h),
                     rotation=draw(st.sampled_from([0.0, 0.0, 30.0, 90.0])), attributes=attrs)
    if kind == "polygon":
        return Shape(lab, kind, (x, y, x + w, y, x + w / 2, y + h), attributes=attrs)
    if kind == "ellipse":
        return Shape(lab, kind, (x, y, w / 2, h / 2), attributes=attrs)
    mw, mh = int(w) // 4 + 1, int(h) // 4 + 1
    runs = [0, mw * mh] if draw(st.booleans()) else [mw, mw * (mh - 1)]
    return Shape(lab, kind, (int(x), int(y), mw, mh, *runs), attributes=attrs)


@st.composite
def tasks(draw: st.DrawFn) -> TaskAnnotations:
    n = draw(st.integers(min_value=1, max_value=3))
    images = {}
    for k in range(n):
        name = f"img_{k}.jpg"
        images[name] = ImageAnnotations(name, W, H, tuple(draw(st.lists(shapes(), max_size=5))))
    return TaskAnnotations(images)


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(tasks())
def test_identical_annotations_score_one(task: TaskAnnotations) -> None:
    r = grade(task, task)
    for value in (r.car_iou, r.plate_iou, r.plate_accuracy):
        assert value is None or value == 1.0
    for cls in (r.car, r.plate):
        assert cls.recall in (None, 1.0) or cls.recall == cls.tp / cls.gt_count
    if r.score is not None:
        assert r.score == 1.0 or any(  # zero-pixel shapes cannot be matched
            o for c in (r.car, r.plate) for o in c.missed)


@FAST
@given(st.lists(shapes("car"), min_size=1, max_size=4), st.lists(shapes("car"), min_size=1,
                                                                  max_size=4))
def test_disjoint_annotations_score_zero(gt_shapes: list[Shape], cand: list[Shape]) -> None:
    # move the candidate's shapes far to the right on a wide image: no pixel can overlap
    def moved(s: Shape) -> Shape:
        pts = list(s.points)
        if s.kind in ("mask", "ellipse"):
            pts[0] += 1000
        else:
            for i in range(0, len(pts), 2):
                pts[i] += 1000
        return Shape(s.label, s.kind, pts, s.rotation, s.attributes)

    gt = TaskAnnotations({"a": ImageAnnotations("a", 2000, H, tuple(gt_shapes))})
    c = TaskAnnotations({"a": ImageAnnotations("a", 2000, H, tuple(moved(s) for s in cand))})
    r = grade(gt, c)
    assert r.car_iou in (0.0, None)
    assert r.car.tp == 0


@FAST
@given(tasks(), tasks(), st.randoms())
def test_order_does_not_matter(gt: TaskAnnotations, cand: TaskAnnotations,
                               rnd: random.Random) -> None:
    cand = TaskAnnotations({k: v for k, v in cand.images.items() if k in gt.images})

    def shuffled(task: TaskAnnotations) -> TaskAnnotations:
        names = list(task.images)
        rnd.shuffle(names)
        out = {}
        for name in names:
            img = task.images[name]
            sh = list(img.shapes)
            rnd.shuffle(sh)
            out[name] = ImageAnnotations(name, img.width, img.height, tuple(sh))
        return TaskAnnotations(out)

    assert grade(gt, cand).to_dict() == grade(shuffled(gt), shuffled(cand)).to_dict()


@FAST
@given(tasks())
def test_xml_round_trip(task: TaskAnnotations) -> None:
    assert parse_cvat_xml(to_cvat_xml(task)) == task
