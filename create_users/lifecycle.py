"""A candidate's CVAT account after the test, and deleting a candidate.

- The password is kept only while the bot may have to show it again: once every attempt the
  candidate is allowed is used and graded, it is forgotten (the candidate saw it in the chat).
- `CVAT_DEACTIVATE_AFTER_DAYS` after the last graded attempt the account is deactivated on CVAT
  (it can no longer log in, mint tokens or call the API); HR can reactivate it.
- Deleting a candidate's data deletes or deactivates the CVAT account first (HR choose), then
  every row about the person, and leaves a tombstone (a keyed hash of the Telegram id, when
  they were last tested and how many attempts they used), so a new start is a new candidate
  shown to HR as returning. Forgetting a person (HR's *Forget this person*, or
  `RETENTION_DAYS` after their last activity) deletes their CVAT account and tasks as well.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from config.env import Settings
from connection import AsyncCvatClient, CvatError, CvatNotFound
from create_users.db_operations import tombstone_hash_sql
from db import Cursor, Database, DatabaseUnavailable
from log import record_action

logger = logging.getLogger(__name__)

# Every allowed attempt used, and every attempt graded (or expired): the test is over for this
# candidate.
_FINISHED = (
    "(SELECT count(*) FROM attempts a WHERE a.candidate_id = c.id"
    "  AND a.status IN ('submitted', 'graded', 'expired'))"
    " >= %(max_attempts)s + c.extra_attempts"
    " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
    "  AND a.status NOT IN ('graded', 'expired'))"
)


async def forget_finished_passwords(db: Database, settings: Settings,
                                    candidate_id: int | None = None) -> int:
    """Forget the CVAT password of every candidate whose test is over (or of one, at once
    after their grading); how many. One statement: a grant of one more attempt (the same row)
    is never lost in between."""
    only = " AND c.id = %(candidate)s" if candidate_id is not None else ""
    return await db.execute(
        f"UPDATE candidates c SET cvat_password = NULL WHERE c.cvat_password IS NOT NULL"
        f" AND {_FINISHED}{only}",
        {"max_attempts": settings.max_attempts, "candidate": candidate_id})


async def deactivate_finished_accounts(db: Database, cvat: AsyncCvatClient,
                                       settings: Settings) -> int:
    """Deactivate on CVAT the accounts of candidates whose test has been over for
    CVAT_DEACTIVATE_AFTER_DAYS (counted from the last grading, or from HR's reactivation);
    how many. An account gone from CVAT is recorded as deleted."""
    rows = await db.fetchall(
        "SELECT c.id, c.cvat_user_id, c.cvat_username FROM candidates c"
        " WHERE c.cvat_user_id IS NOT NULL AND c.cvat_deleted_at IS NULL"
        f" AND c.cvat_deactivated_at IS NULL AND {_FINISHED}"
        " AND greatest((SELECT max(m.graded_at) FROM metrics m WHERE m.candidate_id = c.id),"
        "  (SELECT max(a.expired_at) FROM attempts a WHERE a.candidate_id = c.id),"
        "  c.cvat_reactivated_at) < now() - %(after)s ORDER BY c.id",
        {"max_attempts": settings.max_attempts,
         "after": timedelta(days=settings.cvat_deactivate_after_days)})
    done = 0
    for row in rows:
        try:
            await cvat.update_user(row["cvat_user_id"], is_active=False)
        except CvatNotFound:
            await db.execute("UPDATE candidates SET cvat_deleted_at = now() WHERE id = %s",
                             (row["id"],))
            continue
        await db.execute("UPDATE candidates SET cvat_deactivated_at = now() WHERE id = %s"
                         " AND cvat_user_id = %s", (row["id"], row["cvat_user_id"]))
        await record_action(db, None, "cvat.deactivated", row["id"],
                            {"cvat_username": row["cvat_username"]})
        done += 1
    return done


class AccountKeeper:
    """Forgets finished candidates' passwords and deactivates their accounts in time; one per
    bot process (every step is safe to run on several replicas at once)."""

    def __init__(self, db: Database, cvat: AsyncCvatClient, settings: Settings) -> None:
        self.db = db
        self.cvat = cvat
        self.settings = settings

    async def run(self) -> None:
        """Every RECONCILE_INTERVAL_SECONDS until cancelled; outages only postpone it."""
        while True:
            try:
                forgotten = await forget_finished_passwords(self.db, self.settings)
                deactivated = await deactivate_finished_accounts(self.db, self.cvat,
                                                                 self.settings)
                expired = await apply_retention(self.db, self.cvat, self.settings)
                if forgotten or deactivated or expired:
                    logger.info("finished candidates: %d passwords forgotten, %d CVAT accounts"
                                " deactivated, %d people forgotten after the retention period",
                                forgotten, deactivated, expired)
            except (DatabaseUnavailable, CvatError) as exc:
                logger.warning("finished candidates' accounts not looked after now: %s", exc)
            await asyncio.sleep(self.settings.reconcile_interval_seconds)


# --- HR actions ------------------------------------------------------------------------------


async def reactivate_cvat_account(db: Database, cvat: AsyncCvatClient, actor_id: int,
                                  candidate_id: int) -> str:
    """Let a deactivated account log in again (deactivated again CVAT_DEACTIVATE_AFTER_DAYS
    from now). "reactivated", "not_deactivated" or "gone" (not on CVAT any more); a CVAT
    failure is raised."""
    row = await db.fetchone(
        "SELECT cvat_user_id, cvat_username FROM candidates WHERE id = %s"
        " AND cvat_deactivated_at IS NOT NULL AND cvat_deleted_at IS NULL", (candidate_id,))
    if row is None:
        outcome = "not_deactivated"
    else:
        try:
            await cvat.update_user(row["cvat_user_id"], is_active=True)
            outcome = "reactivated"
        except CvatNotFound:
            outcome = "gone"
        await db.execute(
            "UPDATE candidates SET cvat_deactivated_at = NULL, cvat_reactivated_at = now()"
            + (", cvat_deleted_at = now()" if outcome == "gone" else "") + " WHERE id = %s",
            (candidate_id,))
    await record_action(db, actor_id, "hr.reactivate_cvat_account", candidate_id,
                        {"outcome": outcome}, ok=outcome == "reactivated")
    return outcome


KEEP_ACCOUNT, DELETE_ACCOUNT = "deactivate", "delete"


async def _delete_tasks(cvat: AsyncCvatClient, task_ids: list[int]) -> None:
    """Delete the candidate's CVAT tasks (one already gone is fine)."""
    for task_id in task_ids:
        try:
            await cvat.delete_task(task_id)
        except CvatNotFound:
            pass


async def delete_candidate_data(db: Database, cvat: AsyncCvatClient, actor_id: int | None,
                                candidate_id: int, account: str = KEEP_ACCOUNT) -> str:
    """Delete every row about the candidate, after deleting their CVAT account and tasks
    (`account="delete"`: forgetting the person) or deactivating the account; a tombstone
    remembers only that this Telegram account was deleted, when it was last tested, and how
    many attempts it had used.

    "deleted", "not_found", or "building" (a task is being built for them right now: nothing
    was done); a CVAT failure is raised before anything is deleted."""
    candidate = await db.fetchone(
        "SELECT c.telegram_id, c.cvat_user_id, c.cvat_deleted_at,"
        " EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
        "  AND a.status = 'creating' AND a.lease_until > now()) AS building"
        " FROM candidates c WHERE c.id = %s", (candidate_id,))
    if candidate is None:
        return "not_found"
    if candidate["building"]:
        return "building"
    try:
        if account == DELETE_ACCOUNT:
            tasks = await db.fetchall("SELECT cvat_task_id FROM attempts WHERE candidate_id = %s"
                                      " AND cvat_task_id IS NOT NULL", (candidate_id,))
            await _delete_tasks(cvat, [row["cvat_task_id"] for row in tasks])
        if candidate["cvat_user_id"] is not None and candidate["cvat_deleted_at"] is None:
            try:
                if account == DELETE_ACCOUNT:
                    await cvat.delete_user(candidate["cvat_user_id"])
                else:
                    await cvat.update_user(candidate["cvat_user_id"], is_active=False)
            except CvatNotFound:
                pass  # already gone from CVAT
    except CvatError as exc:
        await record_action(db, actor_id, "hr.delete_data", candidate_id,
                            {"error": type(exc).__name__}, ok=False)
        raise

    def forget(cur: Cursor) -> bool:
        cur.execute(
            "INSERT INTO deleted_candidates (telegram_hash, attempts_used, tested_at)"
            f" SELECT {tombstone_hash_sql('%(tid)s')},"
            "  count(*) FILTER (WHERE status IN ('submitted', 'graded', 'expired')),"
            "  max(submitted_at)"
            "  FROM attempts WHERE candidate_id = %(cid)s"
            " ON CONFLICT (telegram_hash) DO UPDATE SET deleted_at = now(),"
            " attempts_used = deleted_candidates.attempts_used + EXCLUDED.attempts_used,"
            " tested_at = coalesce(EXCLUDED.tested_at, deleted_candidates.tested_at),"
            " deletions = deleted_candidates.deletions + 1",
            {"tid": candidate["telegram_id"], "cid": candidate_id})
        cur.execute("DELETE FROM pool_accounts WHERE candidate_id = %s", (candidate_id,))
        cur.execute("DELETE FROM candidates WHERE id = %s", (candidate_id,))
        if cur.rowcount != 1:
            return False
        params: dict[str, Any] = {"tid": candidate["telegram_id"], "cid": candidate_id}
        cur.execute("DELETE FROM telegram_users WHERE telegram_id = %(tid)s", params)
        cur.execute("DELETE FROM fsm_storage WHERE user_id = %(tid)s", params)
        # What they did as a candidate (support messages, logins resent) goes; what HR did
        # about them stays, without the details that named them.
        cur.execute("DELETE FROM action_log WHERE actor_id = %(tid)s"
                    " AND action NOT LIKE 'hr.%%'", params)
        cur.execute("UPDATE action_log SET details = '{}'::jsonb WHERE candidate_id = %(cid)s",
                    params)
        return True

    deleted = await db.run(forget)
    await record_action(db, actor_id, "hr.delete_data", candidate_id, {"account": account},
                        ok=deleted)
    return "deleted" if deleted else "not_found"


# --- retention -------------------------------------------------------------------------------

# A candidate's last activity: their first request, any change to an attempt, a grading, or a
# message to the bot.
_LAST_ACTIVITY = (
    "greatest(c.created_at,"
    " (SELECT max(a.updated_at) FROM attempts a WHERE a.candidate_id = c.id),"
    " (SELECT max(a.submitted_at) FROM attempts a WHERE a.candidate_id = c.id),"
    " (SELECT max(m.graded_at) FROM metrics m WHERE m.candidate_id = c.id),"
    " (SELECT u.last_seen_at FROM telegram_users u WHERE u.telegram_id = c.telegram_id))"
)


async def apply_retention(db: Database, cvat: AsyncCvatClient, settings: Settings,
                          now: datetime | None = None) -> int:
    """Forget every candidate inactive for RETENTION_DAYS (data, CVAT account and tasks; the
    tombstone stays), and the bare visits of people who never asked for a task and are not
    HR; how many candidates. Off with RETENTION_DAYS=0. One candidate's CVAT failure is
    logged and tried again at the next pass."""
    if not settings.retention_days:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    rows = await db.fetchall(
        f"SELECT c.id FROM candidates c WHERE {_LAST_ACTIVITY} < %s ORDER BY c.id", (cutoff,))
    forgotten = 0
    for row in rows:
        try:
            outcome = await delete_candidate_data(db, cvat, None, row["id"], DELETE_ACCOUNT)
        except CvatError as exc:
            logger.warning("candidate %s not forgotten after the retention period now: %s",
                           row["id"], exc)
            continue
        if outcome == "deleted":
            await record_action(db, None, "retention.forgotten", row["id"],
                                {"days": settings.retention_days})
            forgotten += 1
    await db.execute(
        "DELETE FROM telegram_users u WHERE u.last_seen_at < %s AND NOT (u.telegram_id = ANY(%s))"
        " AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.telegram_id = u.telegram_id)"
        " AND NOT EXISTS (SELECT 1 FROM trainingdata_whitelist w"
        "  WHERE w.telegram_id = u.telegram_id)", (cutoff, sorted(settings.hr_admin_ids)))
    return forgotten
