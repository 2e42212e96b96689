"""Submissions built to be expensive: the limits name what is over them, and the grading
processes (real subprocesses) end a job over its CPU or memory budget without harm to the
next; the offline grader answers any bad input with one line and exit code 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from config.env import PROJECT_DIR
from sandbox.candidate import TASK_SET
from tasks_metrics.cvat_xml import to_cvat_xml
from tasks_metrics.grading_process import GradingFailed, GradingProcesses
from tasks_metrics.limits import Limits, OverLimit
from tasks_metrics.submission import stored_copy
from tasks_metrics.types import AnnotationFormatError

SUBSET = list(TASK_SET.reference_images)
LABELS = [{"id": 1, "name": "car", "attributes": []},
          {"id": 2, "name": "plate", "attributes": [{"id": 3, "name": "plate"}]}]
META = {"start_frame": 0, "stop_frame": len(SUBSET) - 1,
        "frames": [{"name": n, "width": 800, "height": 600} for n in SUBSET]}


def honest_shapes() -> list[dict[str, Any]]:
    """The ground truth as CVAT's REST API holds it: complete work."""
    shapes = []
    for frame, name in enumerate(SUBSET):
        for shape in TASK_SET.ground_truth.images[name].shapes:
            plate = shape.label == "plate"
            shapes.append({"type": "rectangle", "frame": frame, "label_id": 2 if plate else 1,
                           "points": list(shape.points),
                           "attributes": [{"spec_id": 3, "value": shape.text}] if plate else []})
    return shapes


def payload(*extra: dict[str, Any], tracks: list[dict[str, Any]] | None = None) -> bytes:
    """GET /api/jobs/{id}/annotations as CVAT would send it."""
    return json.dumps({"version": 0, "tags": [], "shapes": [*honest_shapes(), *extra],
                       "tracks": tracks or []}).encode()


def circle(n: int, frame: int, radius: float = 250, squash: float = 1.0) -> dict[str, Any]:
    """A polygon of `n` vertices around the image's centre."""
    points = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        r = radius * (squash if i % 2 else 1.0)
        points += [400 + r * math.cos(angle), 300 + 0.9 * r * math.sin(angle)]
    return {"type": "polygon", "frame": frame, "label_id": 1, "points": points}


@pytest.fixture
async def grader() -> AsyncIterator[GradingProcesses]:
    processes = GradingProcesses(TASK_SET.folder, TASK_SET.images_per_task)
    yield processes
    await processes.close()


async def test_honest_work_is_checked_and_graded(grader: GradingProcesses) -> None:
    assert await grader.check(payload(), LABELS, META, SUBSET) == []
    graded = await grader.grade(stored_copy(payload(), LABELS, META), SUBSET)
    assert graded.values["car_recall"] == graded.values["plate_accuracy"] == 1.0
    assert graded.report["per_class"]["car"]["tp"] == graded.report["per_class"]["car"][
        "gt_count"]
    incomplete = json.dumps({"version": 0, "tags": [], "tracks": [],
                             "shapes": [s for s in honest_shapes() if s["frame"]]}).encode()
    problems = await grader.check(incomplete, LABELS, META, SUBSET)
    assert [(p.image, p.code) for p in problems] == [(SUBSET[0], "no_car")]
    assert grader.started == 1  # one process served all three


@pytest.mark.parametrize("extra, tracks, code, image, value", [
    ([circle(100_000, 0)], None, "points_per_shape", SUBSET[0], 100_000),
    ([{"type": "mask", "frame": 1, "label_id": 1,
       "points": [0, 20_000 * 20_000, 0, 0, 19_999, 19_999]}], None, "mask_size", SUBSET[1],
     "20000x20000"),
    ([], [{"frame": 0, "label_id": 1, "shapes": [
        {"type": "rectangle", "frame": 0, "points": [1, 1, 50, 50]},
        {"type": "rectangle", "frame": 1_000_000, "points": [1, 1, 50, 50]}]}],
     "frame_outside", None, 1_000_000),
    ([{"type": "ellipse", "frame": 2, "label_id": 1, "points": [400, 300, 1e200, 1]}], None,
     "coordinate", SUBSET[2], "1e+200"),
    ([{"type": "rectangle", "frame": 3, "label_id": 1, "points": [1, 1, 9, 9]}] * 101, None,
     "shapes_per_image", SUBSET[3], None),
], ids=["polygon", "mask", "keyframe", "coordinate", "crowded-image"])
async def test_work_over_a_limit_is_named_not_graded(
    grader: GradingProcesses, extra: list[dict[str, Any]], tracks: list[dict[str, Any]] | None,
    code: str, image: str | None, value: Any,
) -> None:
    with pytest.raises(OverLimit) as caught:
        await grader.check(payload(*extra, tracks=tracks), LABELS, META, SUBSET)
    assert (caught.value.code, caught.value.image) == (code, image)
    if value is not None:
        assert caught.value.value == value
    # The same process answers the next submission.
    assert await grader.check(payload(), LABELS, META, SUBSET) == []
    assert grader.started == 1


@pytest.mark.parametrize("blob", [b"{", b'{"shapes": [{"points": [NaN]}]}', b"[1, 2]",
                                  b'{"shapes": 5}', b"\xff\xfe"])
async def test_unreadable_work_is_an_error_the_bot_can_name(grader: GradingProcesses,
                                                            blob: bytes) -> None:
    with pytest.raises(AnnotationFormatError):
        await grader.check(blob, LABELS, META, SUBSET)


# Limits raised far enough that only the budgets of time and memory are left to stop a job.
GENEROUS = Limits(max_points_total=10_000_000)


async def test_a_job_over_its_cpu_time_ends_its_process_only() -> None:
    # 60 image-wide polygons of 1,000 vertices on each image: many seconds of CPU.
    heavy = payload(*(circle(1000, frame, 399, squash=0.3) for frame in range(len(SUBSET))
                      for _ in range(60)))
    grader = GradingProcesses(TASK_SET.folder, TASK_SET.images_per_task, limits=GENEROUS,
                              cpu_seconds=1)
    try:
        with pytest.raises(GradingFailed) as caught:
            await grader.grade(stored_copy(heavy, LABELS, META), SUBSET)
        assert caught.value.reason == "time"
        assert await grader.check(payload(), LABELS, META, SUBSET) == []
        assert grader.started == 2  # the slow job's process was replaced
    finally:
        await grader.close()


async def test_a_job_over_its_memory_ends_with_memory() -> None:
    crowded = payload(*(circle(200, frame, 399) for frame in range(len(SUBSET))
                        for _ in range(90)))
    grader = GradingProcesses(TASK_SET.folder, TASK_SET.images_per_task, limits=GENEROUS,
                              memory_mb=16)
    try:
        with pytest.raises(GradingFailed) as caught:
            await grader.grade(stored_copy(crowded, LABELS, META), SUBSET)
        assert caught.value.reason == "memory"
        assert await grader.check(payload(), LABELS, META, SUBSET) == []
    finally:
        await grader.close()


def test_limits_scale_with_the_task() -> None:
    assert Limits(max_shapes_per_image=100).objects_allowed(12) == 1200


# --- the offline grader --------------------------------------------------------------------

GT_XML = to_cvat_xml(TASK_SET.ground_truth_for(SUBSET[:2])).decode()


def _image(index: int, body: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    size = "" if "width" in attrs else ' width="800" height="600"'
    return (f'<image id="{index}" name="{SUBSET[index]}"{size}{extra}>{body}</image>')


def _xml(*images: str, tracks: str = "") -> str:
    return f"<annotations><version>1.1</version>{''.join(images)}{tracks}</annotations>"


BAD_INPUTS = {
    "rotation": (_xml(_image(0, '<box label="car" xtl="1" ytl="1" xbr="9" ybr="9" '
                               'rotation="abc"/>')), "rotation='abc' is not a number"),
    "infinite width": (_xml(_image(0, "", width="inf", height="600")),
                       "width='inf' is not a whole number"),
    "huge width": (_xml(_image(0, "", width="1e9", height="600")), "image_size"),
    "huge coordinate": (_xml(_image(0, '<ellipse label="car" cx="1" cy="1" rx="1e200" '
                                       'ry="1"/>')), "coordinate"),
    "infinite coordinate": (_xml(_image(0, '<box label="car" xtl="1" ytl="1" xbr="inf" '
                                           'ybr="9"/>')), "coordinate"),
    "long polygon": (_xml(_image(0, '<polygon label="car" points="' + ";".join(
        f"{i % 800},{i % 600}" for i in range(1001)) + '"/>')), "points_per_shape"),
    "far keyframe": (_xml(_image(0, ""), tracks='<track id="0" label="car">'
                          '<box frame="-3000000" xtl="1" ytl="1" xbr="9" ybr="9"/>'
                          '<box frame="0" xtl="1" ytl="1" xbr="9" ybr="9"/></track>'),
                     "frame_outside"),
    "huge mask": (_xml(_image(0, '<mask label="car" rle="0, 400000000" left="0" top="0" '
                                 'width="20000" height="20000"/>')), "mask_size"),
    "malformed": ("<annotations><image", "not XML"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_offline_grader_bad_input_is_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    candidate, message = BAD_INPUTS[name]
    (tmp_path / "gt.xml").write_text(GT_XML)
    (tmp_path / "candidate.xml").write_text(candidate)
    proc = subprocess.run([sys.executable, "-m", "tasks_metrics", str(tmp_path / "gt.xml"),
                           str(tmp_path / "candidate.xml"), "--json"], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
