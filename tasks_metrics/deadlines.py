"""A test's deadline: one nudge before it, and at it the job locked and the attempt expired.

A candidate has TEST_DEADLINE_HOURS from the hand-over of their job (`task_started`). One
reminder goes TEST_REMINDER_HOURS before the deadline; at the deadline the job is unassigned
on CVAT, as Submit does (CVAT then refuses the candidate's edits), and the attempt is closed as
'expired', which counts as used. Every step is safe on several replicas at once: an attempt is
expired under the same claim a Submit takes (one at a time, whoever comes first), and each
message is claimed in its attempt's row by one UPDATE before it is sent, so one replica sends
it, once, and a restart never sends it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum

from config.env import Settings
from connection import AsyncCvatClient, CvatNotFound
from db import Database, DatabaseUnavailable
from log import record_action
from tasks_generator import repository as attempts_repo
from tasks_generator.attempts import READY, get_attempt
from tasks_generator.repository import Notice
from tasks_metrics.submission import claim_check, release_check

logger = logging.getLogger(__name__)

class NoticeKind(StrEnum):
    """A message about a deadline, named by the column that records it was claimed."""

    REMINDER = "reminded_at"
    EXPIRY = "expiry_notified_at"


def _windows(settings: Settings) -> dict[str, timedelta]:
    return {"deadline": timedelta(hours=settings.test_deadline_hours),
            "before": timedelta(hours=settings.test_reminder_hours)}


async def claim_reminders(db: Database, settings: Settings) -> list[Notice]:
    """Attempts in progress whose nudge is due, each claimed for this caller in one statement
    (a concurrent caller's UPDATE waits for the row and then finds it claimed)."""
    if not settings.test_deadline_hours or not settings.test_reminder_hours:
        return []
    return await attempts_repo.claim_reminders(db, **_windows(settings))


async def release_notice(db: Database, attempt_id: int, kind: NoticeKind) -> None:
    """The message could not be sent: the next pass claims it again."""
    await attempts_repo.release_notice(db, attempt_id, kind)


async def expire_overdue(db: Database, cvat: AsyncCvatClient, settings: Settings) -> int:
    """Lock the job and close every attempt past its deadline; how many. One attempt's
    failure (CVAT down, say) leaves it for the next pass and never stops the others."""
    if not settings.test_deadline_hours:
        return 0
    expired = 0
    for attempt_id in await attempts_repo.overdue_attempts(db, _windows(settings)["deadline"]):
        try:
            expired += await expire_attempt(db, cvat, attempt_id)
        except DatabaseUnavailable:
            raise
        except Exception:  # one attempt's fault must not stop the others
            logger.exception("attempt %s: expiry raised; the next pass tries again", attempt_id)
    return expired


async def expire_attempt(db: Database, cvat: AsyncCvatClient, attempt_id: int) -> bool:
    """Unassign the attempt's job (as Submit does) and mark it expired, under the claim a
    Submit takes; False when a Submit (or another replica) has it, or it is no longer open."""
    if not await claim_check(db, attempt_id):
        return False
    attempt = await get_attempt(db, attempt_id)
    closed = False
    try:
        if attempt.status != READY:
            return False
        if attempt.cvat_job_id is not None:
            try:
                await cvat.assign_job(attempt.cvat_job_id, None)
            except CvatNotFound:
                logger.info("job %s of expiring attempt %s is gone from CVAT",
                            attempt.cvat_job_id, attempt_id)
        closed = await attempts_repo.mark_expired(db, attempt_id)
    finally:
        if not closed:  # the job is still the candidate's (the unassign failed, or nothing)
            await release_check(db, attempt_id, job_open=True)
    await record_action(db, None, "attempt.expired", attempt.candidate_id,
                        {"attempt": attempt.number, "cvat_job_id": attempt.cvat_job_id})
    logger.info("attempt %s expired: job %s locked", attempt_id, attempt.cvat_job_id)
    return True


async def claim_expiry_notices(db: Database, settings: Settings) -> list[Notice]:
    """Expired attempts whose candidate has not been told yet, each claimed for this caller,
    with how many attempts the candidate has left."""
    return await attempts_repo.claim_expiry_notices(db, _windows(settings)["deadline"],
                                               settings.max_attempts)
