"""Grading results stored per attempt in the real metrics table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db import Database
from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.db_operations import load_metrics, save_metrics
from tasks_metrics.metrics import grade
from tasks_metrics.timing import candidate_last_change
from tasks_metrics.types import ImageAnnotations, TaskAnnotations
from tests.bench.tasks import DEFAULT_SET_XML


async def _attempt(db: Database, number: int = 1) -> int:
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id) VALUES (77) ON CONFLICT (telegram_id)"
        " DO UPDATE SET telegram_id = EXCLUDED.telegram_id RETURNING id")
    return await db.fetchval(
        "INSERT INTO attempts (candidate_id, number, status) VALUES (%s, %s, 'submitted')"
        " RETURNING id", (candidate, number))


async def test_metrics_are_stored_and_a_regrade_replaces_them(db: Database) -> None:
    gt = parse_cvat_xml(DEFAULT_SET_XML)
    first = next(iter(gt.images.values()))
    # The candidate drew only the first image's cars, nothing else.
    partial = TaskAnnotations({first.name: ImageAnnotations(
        first.name, first.width, first.height,
        tuple(s for s in first.shapes if s.label == "car"))})
    attempt = await _attempt(db, number=2)
    started = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    report = grade(gt, partial)
    verdict = await save_metrics(db, attempt, report.metric_values(), report.to_dict(),
                                 task_started=started, task_ended=started + timedelta(minutes=37))
    assert verdict.band == "fail" and verdict.failing[0].measure == "car_recall"
    row = await load_metrics(db, attempt)
    assert row is not None
    assert row["car_iou"] == report.car_iou and row["plate_accuracy"] == 0.0
    assert row["times_attempted"] == 2
    assert row["task_completed"] == timedelta(minutes=37)
    assert row["car_missed"] == report.car.gt_count - sum(
        1 for s in first.shapes if s.label == "car")
    assert row["band"] == "fail" and row["report"]["band"] == "fail"
    assert row["gates"] == verdict.gates_dicts() == row["report"]["gates"]
    assert row["report"]["per_class"]["plate"]["recall"] == 0.0
    assert await db.fetchval("SELECT status FROM attempts WHERE id = %s", (attempt,)) == "graded"

    full = grade(gt, gt)
    await save_metrics(db, attempt, full.metric_values(), full.to_dict(), task_started=started,
                       task_ended=None)
    row = await load_metrics(db, attempt)
    assert row["car_iou"] == 1.0 and row["band"] == "pass" and row["task_completed"] is None
    assert await db.fetchval("SELECT count(*) FROM metrics") == 1


def test_last_change_ignores_the_bots_own_assignment() -> None:
    assigned = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert candidate_last_change(assigned + timedelta(seconds=1), assigned) is None
    edited = assigned + timedelta(minutes=25)
    assert candidate_last_change(edited, assigned) == edited
    assert candidate_last_change(None, assigned) is None
    assert candidate_last_change(edited, None) == edited

