"""Submit: check the candidate's work is complete, lock the job, keep a copy, grade it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from config.env import Settings
from connection import AsyncCvatClient
from create_users.db_operations import get_candidate
from db import Cursor, Database
from tasks_generator.attempts import (
    CREATING,
    FAILED,
    GRADED,
    SUBMITTED,
    Attempt,
    count_used,
    get_attempt,
    latest_attempt,
)
from tasks_generator.task_set import TaskSet
from tasks_metrics.checker import Problem, check_completeness
from tasks_metrics.db_operations import save_metrics
from tasks_metrics.metrics import GradeReport, grade
from tasks_metrics.rest import from_cvat_rest
from tasks_metrics.timing import candidate_last_change
from tasks_metrics.types import TaskAnnotations

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitOutcome:
    """What pressing Submit led to.

    kind: "no_task", "not_ready" (still being built), "already_submitted", "incomplete"
    (see `problems`; the attempt stays open), "graded" (see `report`).
    """

    kind: str
    attempt: Attempt | None = None
    problems: tuple[Problem, ...] = ()
    report: GradeReport | None = None
    attempts_left: int = 0


@dataclass(frozen=True)
class Work:
    """The candidate's annotations as read from CVAT, with what is needed to read them again."""

    annotations: dict[str, Any]
    labels: list[dict[str, Any]]
    meta: dict[str, Any]

    def as_task(self, image_names: Iterable[str]) -> TaskAnnotations:
        """Per-image annotations under the task set's image names (blocking: CPU work)."""
        task = from_cvat_rest(self.annotations, self.labels, self.meta["frames"],
                              self.meta.get("deleted_frames") or (),
                              self.meta.get("start_frame") or 0)
        return task.named_as(image_names)

    def to_json(self) -> str:
        """The stored copy (attempts.submitted_annotations)."""
        return json.dumps({"annotations": self.annotations, "labels": self.labels,
                           "meta": self.meta}, ensure_ascii=False)

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Work:
        """Back from the stored copy."""
        return cls(stored["annotations"], stored["labels"], stored["meta"])


async def read_work(cvat: AsyncCvatClient, job_id: int) -> Work:
    """Annotations, labels and frame names of a job, fetched in parallel."""
    annotations, labels, meta = await asyncio.gather(
        cvat.get_job_annotations(job_id), cvat.get_labels(job_id=job_id),
        cvat.get_job_meta(job_id))
    return Work(annotations, labels, meta)


async def _attempts_left(db: Database, settings: Settings, attempt: Attempt) -> int:
    extra = await db.fetchval("SELECT extra_attempts FROM candidates WHERE id = %s",
                              (attempt.candidate_id,))
    used = await count_used(db, attempt.candidate_id)
    return max(0, settings.max_attempts + (extra or 0) - used)


async def submit_work(
    db: Database, cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
    telegram_id: int,
) -> SubmitOutcome:
    """The whole Submit: completeness first (nothing is used up while work is missing), then
    the job is closed (unassigned: CVAT then refuses the candidate's edits), the final work is
    stored, and graded."""
    candidate = await get_candidate(db, telegram_id)
    attempt = await latest_attempt(db, candidate.id) if candidate else None
    if attempt is None or attempt.status == FAILED:
        return SubmitOutcome("no_task", attempt)
    if attempt.status == CREATING:
        return SubmitOutcome("not_ready", attempt)
    if attempt.status in (SUBMITTED, GRADED):
        return SubmitOutcome("already_submitted", attempt,
                             attempts_left=await _attempts_left(db, settings, attempt))
    assert attempt.cvat_job_id is not None
    job = await cvat.get_job(attempt.cvat_job_id)
    work = await read_work(cvat, attempt.cvat_job_id)
    candidate_task = await asyncio.to_thread(work.as_task, attempt.image_subset)
    problems = await asyncio.to_thread(check_completeness, candidate_task, attempt.image_subset)
    if problems:
        if job.assignee_id is None and candidate is not None and candidate.cvat_user_id:
            # An earlier Submit closed the job and then failed: open it again for the fixes.
            await cvat.assign_job(attempt.cvat_job_id, candidate.cvat_user_id)
        return SubmitOutcome("incomplete", attempt, tuple(problems))

    ended = candidate_last_change(job.updated_date, job.assignee_updated_date) or job.updated_date
    await cvat.assign_job(attempt.cvat_job_id, None)  # from here on the work cannot change
    final = await read_work(cvat, attempt.cvat_job_id)

    def record(cur: Cursor) -> bool:
        cur.execute(
            "UPDATE attempts SET status = 'submitted', submitted_at = now(), task_ended = %s,"
            " submitted_annotations = %s::jsonb, updated_at = now()"
            " WHERE id = %s AND status = 'ready'",
            (ended, final.to_json(), attempt.id))
        return cur.rowcount == 1

    if not await db.run(record):
        return SubmitOutcome("already_submitted", attempt)  # a parallel press got there first
    report = await grade_attempt(db, settings, task_set, attempt.id)
    graded = await get_attempt(db, attempt.id)
    return SubmitOutcome("graded", graded, report=report,
                         attempts_left=await _attempts_left(db, settings, graded))


async def grade_attempt(
    db: Database, settings: Settings, task_set: TaskSet, attempt_id: int
) -> GradeReport:
    """Grade the stored copy of a submitted attempt and store the metrics (also a re-grade)."""
    attempt = await get_attempt(db, attempt_id)
    stored = await db.fetchval("SELECT submitted_annotations FROM attempts WHERE id = %s",
                               (attempt_id,))
    if stored is None:
        raise ValueError(f"attempt {attempt_id} has no submitted work to grade")
    work = Work.from_stored(stored)
    ground_truth = task_set.ground_truth_for(attempt.image_subset)

    def compute() -> GradeReport:
        return grade(ground_truth, work.as_task(attempt.image_subset),
                     pass_score=settings.pass_score,
                     borderline_score=settings.borderline_score)

    report = await asyncio.to_thread(compute)
    await save_metrics(db, attempt.id, report, task_started=attempt.task_started,
                       task_ended=attempt.task_ended)
    await db.execute("UPDATE attempts SET status = %s, updated_at = now() WHERE id = %s",
                     (GRADED, attempt.id))
    logger.info("attempt %s graded: score %s, band %s", attempt.id, report.score, report.band)
    return report


async def regrade_interrupted(db: Database, settings: Settings, task_set: TaskSet,
                             older_than: timedelta = timedelta(minutes=2)) -> int:
    """Grade attempts stored at Submit whose grading did not finish (a crash), leaving alone
    those submitted so recently that their grading may still be running; return how many."""
    rows = await db.fetchall("SELECT id FROM attempts WHERE status = %s"
                             " AND updated_at < now() - %s ORDER BY id", (SUBMITTED, older_than))
    for row in rows:
        await grade_attempt(db, settings, task_set, row["id"])
    return len(rows)

