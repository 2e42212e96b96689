"""SQL for the `metrics` table: one row per graded attempt (a re-grade replaces it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from db import Database
from tasks_metrics.metrics import GradeReport

_COLUMNS = (
    "car_iou", "plate_iou", "plate_accuracy", "score", "band",
    "car_precision", "car_recall", "car_matched_iou", "car_missed", "car_extra",
    "plate_precision", "plate_recall", "plate_matched_iou", "plate_missed", "plate_extra",
    "plate_cer",
)


def metric_values(report: GradeReport) -> dict[str, Any]:
    """The report's headline and object-level figures under their column names."""
    values: dict[str, Any] = {
        "car_iou": report.car_iou, "plate_iou": report.plate_iou,
        "plate_accuracy": report.plate_accuracy, "score": report.score, "band": report.band,
        "plate_cer": report.plate_cer,
    }
    for label, figures in report.per_class.items():
        values[f"{label}_precision"] = figures.precision
        values[f"{label}_recall"] = figures.recall
        values[f"{label}_matched_iou"] = figures.matched_iou
        values[f"{label}_missed"] = len(figures.missed)
        values[f"{label}_extra"] = len(figures.extra)
    return values


async def save_metrics(
    db: Database,
    attempt_id: int,
    report: GradeReport,
    *,
    task_started: datetime | None,
    task_ended: datetime | None,
) -> None:
    """Store (or replace, on a re-grade) the metrics of one attempt."""
    values = metric_values(report)
    columns = ", ".join(_COLUMNS)
    placeholders = ", ".join(f"%({c})s" for c in _COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS)
    await db.execute(
        f"INSERT INTO metrics (attempt_id, candidate_id, times_attempted, task_started,"
        f" task_ended, report, {columns})"
        f" SELECT a.id, a.candidate_id, a.number, %(task_started)s, %(task_ended)s,"
        f" %(report)s::jsonb, {placeholders} FROM attempts a WHERE a.id = %(attempt_id)s"
        f" ON CONFLICT (attempt_id) DO UPDATE SET task_started = EXCLUDED.task_started,"
        f" task_ended = EXCLUDED.task_ended, report = EXCLUDED.report, graded_at = now(),"
        f" {updates}",
        {**values, "attempt_id": attempt_id, "task_started": task_started,
         "task_ended": task_ended, "report": json.dumps(report.to_dict(), ensure_ascii=False)},
    )


async def load_metrics(db: Database, attempt_id: int) -> dict[str, Any] | None:
    """The stored metrics row of an attempt, or None."""
    return await db.fetchone("SELECT * FROM metrics WHERE attempt_id = %s", (attempt_id,))
