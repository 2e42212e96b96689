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
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from config.env import Settings
from connection import AsyncCvatClient, CvatNotFound
from db import Database, DatabaseUnavailable
from log import record_action
from tasks_generator.attempts import READY, USED_SQL, get_attempt
from tasks_metrics.submission import claim_check, release_check

logger = logging.getLogger(__name__)

class NoticeKind(StrEnum):
    """A message about a deadline, named by the column that records it was claimed."""

    REMINDER = "reminded_at"
    EXPIRY = "expiry_notified_at"


@dataclass(frozen=True)
class Notice:
    """A message to send a candidate about one attempt's deadline (claimed: send it once)."""

    attempt_id: int
    telegram_id: int
    number: int
    language: str | None
    deadline: datetime
    now: datetime
    attempts_left: int = 0

    @property
    def hours_left(self) -> int:
        """Whole hours until the deadline (at least 1)."""
        return max(1, round((self.deadline - self.now).total_seconds() / 3600))


def _windows(settings: Settings) -> dict[str, timedelta]:
    return {"deadline": timedelta(hours=settings.test_deadline_hours),
            "before": timedelta(hours=settings.test_reminder_hours)}


_NOTICE_COLUMNS = (
    "a.id AS attempt_id, c.telegram_id, a.number, u.language,"
    " a.task_started + %(deadline)s AS deadline, now() AS now"
)


async def claim_reminders(db: Database, settings: Settings) -> list[Notice]:
    """Attempts in progress whose nudge is due, each claimed for this caller in one statement
    (a concurrent caller's UPDATE waits for the row and then finds it claimed)."""
    if not settings.test_deadline_hours or not settings.test_reminder_hours:
        return []
    rows = await db.fetchall(
        "UPDATE attempts a SET reminded_at = now()"
        " FROM candidates c LEFT JOIN telegram_users u ON u.telegram_id = c.telegram_id"
        " WHERE c.id = a.candidate_id AND a.status = 'ready' AND a.reminded_at IS NULL"
        " AND a.task_started + %(deadline)s - %(before)s <= now()"
        " AND a.task_started + %(deadline)s > now()"
        f" RETURNING {_NOTICE_COLUMNS}", _windows(settings))
    return [Notice(**row) for row in rows]


async def release_notice(db: Database, attempt_id: int, kind: NoticeKind) -> None:
    """The message could not be sent: the next pass claims it again."""
    await db.execute(f"UPDATE attempts SET {kind} = NULL WHERE id = %s", (attempt_id,))


async def expire_overdue(db: Database, cvat: AsyncCvatClient, settings: Settings) -> int:
    """Lock the job and close every attempt past its deadline; how many. One attempt's
    failure (CVAT down, say) leaves it for the next pass and never stops the others."""
    if not settings.test_deadline_hours:
        return 0
    rows = await db.fetchall(
        "SELECT id FROM attempts WHERE status = 'ready' AND task_started + %(deadline)s <= now()"
        " AND (checking_until IS NULL OR checking_until < now()) ORDER BY id",
        _windows(settings))
    expired = 0
    for row in rows:
        try:
            expired += await expire_attempt(db, cvat, row["id"])
        except DatabaseUnavailable:
            raise
        except Exception:  # one attempt's fault must not stop the others
            logger.exception("attempt %s: expiry raised; the next pass tries again", row["id"])
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
        closed = await db.execute(
            "UPDATE attempts SET status = 'expired', expired_at = now(), checking_until = NULL,"
            " updated_at = now() WHERE id = %s AND status = 'ready'", (attempt_id,)) == 1
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
    rows = await db.fetchall(
        "UPDATE attempts a SET expiry_notified_at = now()"
        " FROM candidates c LEFT JOIN telegram_users u ON u.telegram_id = c.telegram_id"
        " WHERE c.id = a.candidate_id AND a.status = 'expired' AND a.expiry_notified_at IS NULL"
        f" RETURNING {_NOTICE_COLUMNS},"
        " greatest(0, %(max_attempts)s + c.extra_attempts - (SELECT count(*) FROM attempts x"
        f"  WHERE x.candidate_id = c.id AND x.status IN {USED_SQL})) AS attempts_left",
        {**_windows(settings), "max_attempts": settings.max_attempts})
    return [Notice(**row) for row in rows]
