"""What HR do to candidates: find them, read their card (every attempt with its metrics, wrong
plates and error pictures), allow one more attempt, re-grade, delete the CVAT account, delete
the data. Deleting the account keeps the rows; deleting the data deletes or deactivates the
account (create_users.lifecycle). Every action goes to the action log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from connection import AsyncCvatClient, CvatError
from create_users.repository import account_gone, grant_attempt
from db import Cursor, Database
from log import record_action, record_action_in
from tasks_generator.repository import attempts_with_work, submitted_work
from tasks_metrics.answer_key import current_key
from tasks_metrics.grading_process import GradingProcesses
from tasks_metrics.hr_repository import (
    SUMMARY_FROM,
    SUMMARY_SQL,
    AttemptCard,
    CandidateSummary,
    candidate_summary,
    card_attempts,
    find_candidates,
    summary_of,
)
from tasks_metrics.submission import GradedAttempt, GradingError, grade_attempt

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_PICTURES",
    "SEARCH_LIMIT",
    "SUMMARY_FROM",
    "SUMMARY_SQL",
    "AccountDeleteOutcome",
    "AttemptCard",
    "CandidateCard",
    "CandidateSummary",
    "candidate_card",
    "candidate_summary",
    "delete_cvat_account",
    "error_pictures",
    "grant_extra_attempt",
    "regrade_candidate",
    "search_candidates",
    "summary_of",
]

SEARCH_LIMIT = 200
MAX_PICTURES = 30

@dataclass(frozen=True)
class CandidateCard:
    """The candidate and every attempt, oldest first."""

    candidate: CandidateSummary
    attempts: list[AttemptCard]


async def search_candidates(db: Database, query: str,
                            limit: int = SEARCH_LIMIT) -> list[CandidateSummary]:
    """Candidates by Telegram @username, CVAT username or Telegram id (exact matches); if none,
    by part of a username or name. Newest first."""
    text = query.strip()
    if not text:
        return []
    name = text.removeprefix("@")
    if text.lstrip("-").isdigit():
        found = await find_candidates(db, "id", text, limit)
    elif text.startswith("@"):
        found = await find_candidates(db, "telegram", name, limit)
    else:
        found = await find_candidates(db, "name", text, limit)
    if not found and name:
        found = await find_candidates(db, "part", name, limit)
    return found


async def candidate_card(db: Database, candidate_id: int) -> CandidateCard | None:
    """The candidate with every attempt and its stored metrics, or None."""
    candidate = await candidate_summary(db, candidate_id)
    if candidate is None:
        return None
    attempts = await card_attempts(db, candidate_id)
    return CandidateCard(candidate, attempts)


# --- actions ---------------------------------------------------------------------------------


async def grant_extra_attempt(db: Database, actor_id: int, candidate_id: int) -> int | None:
    """One more attempt for the candidate; the new number of extra attempts, None if gone."""
    def work(cur: Cursor) -> int | None:
        extra = grant_attempt(cur, candidate_id)
        record_action_in(cur, actor_id, "hr.extra_attempt", candidate_id,
                         {"extra_attempts": extra}, ok=extra is not None)
        return extra

    return await db.run(work)


async def regrade_candidate(db: Database, grader: GradingProcesses, actor_id: int,
                            candidate_id: int) -> list[tuple[int, GradedAttempt | None]]:
    """Grade again every submitted attempt from its stored copy: (number, result or None if
    it could not be graded; the reason is then on the attempt, for the card)."""
    results: list[tuple[int, GradedAttempt | None]] = []
    for attempt in await attempts_with_work(db, candidate_id):
        try:
            result: GradedAttempt | None = await grade_attempt(db, grader, attempt.id)
        except GradingError as exc:
            logger.warning("attempt %s not re-graded: %s", attempt.id, exc)
            result = None
        results.append((attempt.number, result))
    await record_action(db, actor_id, "hr.regrade", candidate_id,
                        {"attempts": [{"number": n, "band": r.band if r else None}
                                      for n, r in results]},
                        ok=all(r is not None for _, r in results))
    return results


class AccountDeleteOutcome(StrEnum):
    """What deleting a candidate's CVAT account did."""

    DELETED = "deleted"
    ALREADY_GONE = "already_gone"  # CVAT no longer had it
    NO_ACCOUNT = "no_account"
    NOT_FOUND = "not_found"


async def delete_cvat_account(db: Database, cvat: AsyncCvatClient, actor_id: int,
                              candidate_id: int) -> AccountDeleteOutcome:
    """Delete the candidate's CVAT account; their rows in the database stay.

    Returns "deleted", "already_gone" (CVAT no longer had it), "no_account" or "not_found";
    a CVAT failure is logged and raised.
    """
    candidate = await candidate_summary(db, candidate_id)
    if candidate is None:
        outcome = AccountDeleteOutcome.NOT_FOUND
    elif not candidate.has_cvat_account:
        outcome = AccountDeleteOutcome.NO_ACCOUNT
    else:
        assert candidate.cvat_user_id is not None
        try:
            deleted = await cvat.delete_user(candidate.cvat_user_id)
        except CvatError as exc:
            await record_action(db, actor_id, "hr.delete_cvat_account", candidate_id,
                                {"error": type(exc).__name__}, ok=False)
            raise
        await account_gone(db, candidate_id)
        outcome = AccountDeleteOutcome.DELETED if deleted else AccountDeleteOutcome.ALREADY_GONE
    await record_action(db, actor_id, "hr.delete_cvat_account", candidate_id,
                        {"outcome": outcome,
                         "cvat_username": candidate.cvat_username if candidate else None},
                        ok=outcome in (AccountDeleteOutcome.DELETED,
                                       AccountDeleteOutcome.ALREADY_GONE))
    return outcome


async def error_pictures(db: Database, grader: GradingProcesses, attempt_id: int,
                         labels: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    """JPEG pictures of the errors of one submitted attempt, (image name, bytes), images with
    errors only, at most MAX_PICTURES; empty when there is nothing wrong or nothing stored.
    Drawn by a grading process (the stored work is the candidate's, and untrusted), which
    raises GradingFailed or AnnotationFormatError when it cannot."""
    work = await submitted_work(db, attempt_id)
    if work is None or work.stored is None:
        return []
    key = await current_key(db, work.task_set)
    return await grader.pictures(work.stored.encode("utf-8"), work.image_subset,
                                 MAX_PICTURES, labels, key.grading_key())
