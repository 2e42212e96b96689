"""What HR do to candidates: find them, read their card (every attempt with its metrics, wrong
plates and error pictures), allow one more attempt, re-grade, delete the CVAT account, delete
the data. Deleting the account keeps the rows; deleting the data deletes or deactivates the
account (create_users.lifecycle). Every action goes to the action log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connection import AsyncCvatClient, CvatError
from db import Database
from log import record_action
from tasks_metrics.answer_key import current_key
from tasks_metrics.flags import Flag, flags_of
from tasks_metrics.grading_process import GradingProcesses
from tasks_metrics.pass_rule import Verdict
from tasks_metrics.submission import GradedAttempt, GradingError, grade_attempt

logger = logging.getLogger(__name__)

SEARCH_LIMIT = 200
MAX_PICTURES = 30

# Every candidate `c` with their latest graded attempt `l` (band, score, number): the lists,
# the search and the card all read candidates through this.
SUMMARY_FROM = """
FROM candidates c
LEFT JOIN LATERAL (
    SELECT m.band, m.score, a.number FROM attempts a JOIN metrics m ON m.attempt_id = a.id
    WHERE a.candidate_id = c.id ORDER BY a.number DESC LIMIT 1) l ON true
"""
SUMMARY_SQL = """
SELECT c.id, c.telegram_id, c.telegram_username, c.full_name, c.cvat_username, c.cvat_user_id,
       c.created_at, c.cvat_deleted_at, c.extra_attempts, l.band, l.score, l.number AS latest,
       c.cvat_deactivated_at, c.returned_after, c.previous_attempts, c.previously_tested_at
""" + SUMMARY_FROM


@dataclass(frozen=True)
class CandidateSummary:
    """A candidate as HR see them in lists and at the top of the card."""

    id: int
    telegram_id: int
    telegram_username: str | None
    full_name: str
    cvat_username: str | None
    cvat_user_id: int | None
    created_at: datetime
    cvat_deleted_at: datetime | None
    extra_attempts: int
    band: str | None = None
    score: float | None = None
    latest: int | None = None
    cvat_deactivated_at: datetime | None = None  # by the bot, after the test was over
    returned_after: datetime | None = None  # their data was deleted then; this is a new start
    previous_attempts: int = 0  # attempts used before that deletion
    previously_tested_at: datetime | None = None  # their last test before that deletion

    @property
    def has_cvat_account(self) -> bool:
        """An account was registered and not deleted by HR since."""
        return self.cvat_user_id is not None and self.cvat_deleted_at is None


@dataclass(frozen=True)
class AttemptCard:
    """One attempt on the card: progress, time, metrics and the wrong plates."""

    id: int
    number: int
    status: str
    images: int
    task_started: datetime | None
    task_ended: datetime | None
    submitted_at: datetime | None
    time_spent: timedelta | None
    metrics: dict[str, Any] | None
    wrong_plates: list[dict[str, Any]] = field(default_factory=list)
    has_work: bool = False
    verdict: Verdict | None = None
    grading_error: str | None = None
    cvat_task_id: int | None = None
    cvat_job_id: int | None = None
    key_version: int | None = None  # the answer key it was graded on
    flags: list[Flag] = field(default_factory=list)


@dataclass(frozen=True)
class CandidateCard:
    """The candidate and every attempt, oldest first."""

    candidate: CandidateSummary
    attempts: list[AttemptCard]


def summary_of(row: dict[str, Any]) -> CandidateSummary:
    return CandidateSummary(**{k: row[k] for k in CandidateSummary.__dataclass_fields__})


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_candidates(db: Database, query: str,
                            limit: int = SEARCH_LIMIT) -> list[CandidateSummary]:
    """Candidates by Telegram @username, CVAT username or Telegram id (exact matches); if none,
    by part of a username or name. Newest first."""
    text = query.strip()
    if not text:
        return []
    order = " ORDER BY c.created_at DESC, c.id DESC LIMIT %s"
    name = text.removeprefix("@")
    if text.lstrip("-").isdigit():
        rows = await db.fetchall(
            SUMMARY_SQL + " WHERE c.telegram_id = %s OR lower(c.cvat_username) = lower(%s)"
            + order, (int(text), text, limit))
    elif text.startswith("@"):
        rows = await db.fetchall(
            SUMMARY_SQL + " WHERE lower(c.telegram_username) = lower(%s)" + order,
            (name, limit))
    else:
        rows = await db.fetchall(
            SUMMARY_SQL + " WHERE lower(c.cvat_username) = lower(%s)"
            " OR lower(c.telegram_username) = lower(%s)" + order, (text, text, limit))
    if not rows and name:
        pattern = _like(name)
        rows = await db.fetchall(
            SUMMARY_SQL + " WHERE c.telegram_username ILIKE %s OR c.cvat_username ILIKE %s"
            " OR c.full_name ILIKE %s" + order, (pattern, pattern, pattern, limit))
    return [summary_of(row) for row in rows]


async def candidate_summary(db: Database, candidate_id: int) -> CandidateSummary | None:
    """One candidate by row id, or None (deleted)."""
    row = await db.fetchone(SUMMARY_SQL + " WHERE c.id = %s", (candidate_id,))
    return summary_of(row) if row else None


async def candidate_card(db: Database, candidate_id: int) -> CandidateCard | None:
    """The candidate with every attempt and its stored metrics, or None."""
    candidate = await candidate_summary(db, candidate_id)
    if candidate is None:
        return None
    rows = await db.fetchall(
        "SELECT a.id, a.number, a.status, cardinality(a.image_subset) AS images,"
        " a.task_started, a.task_ended, a.submitted_at,"
        " a.submitted_annotations IS NOT NULL AS has_work, m.attempt_id AS graded,"
        " m.car_iou, m.plate_iou, m.plate_accuracy, m.score, m.band, m.task_completed,"
        " m.car_precision, m.car_recall, m.car_matched_iou, m.car_missed, m.car_extra,"
        " m.plate_precision, m.plate_recall, m.plate_matched_iou, m.plate_missed,"
        " m.plate_extra, m.plate_cer, m.graded_at, m.report -> 'plates' AS plates, m.gates,"
        " m.rule_id, m.key_version, a.cvat_task_id, a.cvat_job_id,"
        " a.grading_error"
        " FROM attempts a LEFT JOIN metrics m ON m.attempt_id = a.id"
        " WHERE a.candidate_id = %s ORDER BY a.number", (candidate_id,))
    attempts = []
    flags = await flags_of(db, [row["id"] for row in rows])
    for row in rows:
        metrics = None
        if row["graded"] is not None:
            metrics = {k: row[k] for k in (
                "car_iou", "plate_iou", "plate_accuracy", "score", "band", "car_precision",
                "car_recall", "car_matched_iou", "car_missed", "car_extra", "plate_precision",
                "plate_recall", "plate_matched_iou", "plate_missed", "plate_extra", "plate_cer",
                "graded_at", "rule_id")}
        plates = row["plates"] if isinstance(row["plates"], list) else []
        spent = row["task_completed"]
        if spent is None and row["task_started"] and row["task_ended"]:
            spent = row["task_ended"] - row["task_started"]
        attempts.append(AttemptCard(
            id=row["id"], number=row["number"], status=row["status"], images=row["images"],
            task_started=row["task_started"], task_ended=row["task_ended"],
            submitted_at=row["submitted_at"], time_spent=spent, metrics=metrics,
            wrong_plates=[p for p in plates if isinstance(p, dict) and not p.get("correct")],
            has_work=row["has_work"],
            verdict=Verdict.from_stored(row["band"], row["gates"]) if metrics else None,
            grading_error=row["grading_error"] if row["status"] == "submitted" else None,
            cvat_task_id=row["cvat_task_id"], cvat_job_id=row["cvat_job_id"],
            key_version=row["key_version"], flags=flags.get(row["id"], [])))
    return CandidateCard(candidate, attempts)


# --- actions ---------------------------------------------------------------------------------


async def grant_extra_attempt(db: Database, actor_id: int, candidate_id: int) -> int | None:
    """One more attempt for the candidate; the new number of extra attempts, None if gone."""
    extra = await db.fetchval(
        "UPDATE candidates SET extra_attempts = extra_attempts + 1 WHERE id = %s"
        " RETURNING extra_attempts", (candidate_id,))
    await record_action(db, actor_id, "hr.extra_attempt", candidate_id,
                        {"extra_attempts": extra}, ok=extra is not None)
    return extra


async def regrade_candidate(db: Database, grader: GradingProcesses, actor_id: int,
                            candidate_id: int) -> list[tuple[int, GradedAttempt | None]]:
    """Grade again every submitted attempt from its stored copy: (number, result or None if
    it could not be graded; the reason is then on the attempt, for the card)."""
    rows = await db.fetchall(
        "SELECT id, number FROM attempts WHERE candidate_id = %s"
        " AND submitted_annotations IS NOT NULL AND status IN ('submitted', 'graded')"
        " ORDER BY number", (candidate_id,))
    results: list[tuple[int, GradedAttempt | None]] = []
    for row in rows:
        try:
            result: GradedAttempt | None = await grade_attempt(db, grader, row["id"])
        except GradingError as exc:
            logger.warning("attempt %s not re-graded: %s", row["id"], exc)
            result = None
        results.append((row["number"], result))
    await record_action(db, actor_id, "hr.regrade", candidate_id,
                        {"attempts": [{"number": n, "band": r.band if r else None}
                                      for n, r in results]},
                        ok=all(r is not None for _, r in results))
    return results


async def delete_cvat_account(db: Database, cvat: AsyncCvatClient, actor_id: int,
                              candidate_id: int) -> str:
    """Delete the candidate's CVAT account; their rows in the database stay.

    Returns "deleted", "already_gone" (CVAT no longer had it), "no_account" or "not_found";
    a CVAT failure is logged and raised.
    """
    candidate = await candidate_summary(db, candidate_id)
    if candidate is None:
        outcome = "not_found"
    elif not candidate.has_cvat_account:
        outcome = "no_account"
    else:
        assert candidate.cvat_user_id is not None
        try:
            deleted = await cvat.delete_user(candidate.cvat_user_id)
        except CvatError as exc:
            await record_action(db, actor_id, "hr.delete_cvat_account", candidate_id,
                                {"error": type(exc).__name__}, ok=False)
            raise
        await db.execute("UPDATE candidates SET cvat_deleted_at = now() WHERE id = %s",
                         (candidate_id,))
        outcome = "deleted" if deleted else "already_gone"
    await record_action(db, actor_id, "hr.delete_cvat_account", candidate_id,
                        {"outcome": outcome,
                         "cvat_username": candidate.cvat_username if candidate else None},
                        ok=outcome in ("deleted", "already_gone"))
    return outcome


async def error_pictures(db: Database, grader: GradingProcesses, attempt_id: int,
                         labels: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    """JPEG pictures of the errors of one submitted attempt, (image name, bytes), images with
    errors only, at most MAX_PICTURES; empty when there is nothing wrong or nothing stored.
    Drawn by a grading process (the stored work is the candidate's, and untrusted), which
    raises GradingFailed or AnnotationFormatError when it cannot."""
    row = await db.fetchone(
        "SELECT image_subset, task_set, submitted_annotations::text AS stored FROM attempts"
        " WHERE id = %s", (attempt_id,))
    if row is None or row["stored"] is None:
        return []
    key = await current_key(db, row["task_set"])
    return await grader.pictures(row["stored"].encode("utf-8"), row["image_subset"],
                                 MAX_PICTURES, labels, key.grading_key())
