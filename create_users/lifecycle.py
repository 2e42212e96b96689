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
from enum import StrEnum

from config.env import Settings
from connection import AsyncCvatClient, CvatError, CvatNotFound
from create_users import repository
from db import Cursor, Database, DatabaseUnavailable
from log import forget_actions, record_action, record_action_in
from tasks_generator.repository import forget_pool_accounts

logger = logging.getLogger(__name__)

async def forget_finished_passwords(db: Database, settings: Settings,
                                    candidate_id: int | None = None) -> int:
    """Forget the CVAT password of every candidate whose test is over (or of one, at once
    after their grading); how many."""
    return await repository.forget_finished_passwords_sql(db, settings.max_attempts,
                                                          candidate_id)


async def deactivate_finished_accounts(db: Database, cvat: AsyncCvatClient,
                                       settings: Settings) -> int:
    """Deactivate on CVAT the accounts of candidates whose test has been over for
    CVAT_DEACTIVATE_AFTER_DAYS (counted from the last grading, or from HR's reactivation);
    how many. An account gone from CVAT is recorded as deleted."""
    accounts = await repository.accounts_to_deactivate(
        db, settings.max_attempts, timedelta(days=settings.cvat_deactivate_after_days))
    done = 0
    for account in accounts:
        try:
            await cvat.update_user(account.cvat_user_id, is_active=False)
        except CvatNotFound:
            await repository.account_gone(db, account.candidate_id)
            continue
        await repository.account_deactivated(db, account)
        await record_action(db, None, "cvat.deactivated", account.candidate_id,
                            {"cvat_username": account.cvat_username})
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


class ReactivateOutcome(StrEnum):
    """What HR's reactivation of an account did."""

    REACTIVATED = "reactivated"
    NOT_DEACTIVATED = "not_deactivated"
    GONE = "gone"  # not on CVAT any more


async def reactivate_cvat_account(db: Database, cvat: AsyncCvatClient, actor_id: int,
                                  candidate_id: int) -> ReactivateOutcome:
    """Let a deactivated account log in again (deactivated again CVAT_DEACTIVATE_AFTER_DAYS
    from now). "reactivated", "not_deactivated" or "gone" (not on CVAT any more); a CVAT
    failure is raised."""
    account = await repository.deactivated_account(db, candidate_id)
    if account is None:
        outcome = ReactivateOutcome.NOT_DEACTIVATED
    else:
        try:
            await cvat.update_user(account.cvat_user_id, is_active=True)
            outcome = ReactivateOutcome.REACTIVATED
        except CvatNotFound:
            outcome = ReactivateOutcome.GONE
        await repository.account_reactivated(db, candidate_id,
                                             gone=outcome == ReactivateOutcome.GONE)
    await record_action(db, actor_id, "hr.reactivate_cvat_account", candidate_id,
                        {"outcome": outcome}, ok=outcome == ReactivateOutcome.REACTIVATED)
    return outcome


class AccountChoice(StrEnum):
    """What deleting a candidate's data does to their CVAT account."""

    KEEP = "deactivate"
    DELETE = "delete"


class DeleteOutcome(StrEnum):
    """What deleting a candidate's data did."""

    DELETED = "deleted"
    NOT_FOUND = "not_found"
    BUILDING = "building"  # a task is being built for them right now: nothing was done


KEEP_ACCOUNT, DELETE_ACCOUNT = AccountChoice.KEEP, AccountChoice.DELETE


async def _delete_tasks(cvat: AsyncCvatClient, task_ids: list[int]) -> None:
    """Delete the candidate's CVAT tasks (one already gone is fine)."""
    for task_id in task_ids:
        try:
            await cvat.delete_task(task_id)
        except CvatNotFound:
            pass


async def delete_candidate_data(db: Database, cvat: AsyncCvatClient, actor_id: int | None,
                                candidate_id: int, account: str = KEEP_ACCOUNT) -> DeleteOutcome:
    """Delete every row about the candidate, after deleting their CVAT account and tasks
    (`account="delete"`: forgetting the person) or deactivating the account; a tombstone
    remembers only that this Telegram account was deleted, when it was last tested, and how
    many attempts it had used.

    "deleted", "not_found", or "building" (a task is being built for them right now: nothing
    was done); a CVAT failure is raised before anything is deleted."""
    candidate = await repository.candidate_to_delete(db, candidate_id)
    if candidate is None:
        return DeleteOutcome.NOT_FOUND
    if candidate.building:
        return DeleteOutcome.BUILDING
    try:
        if account == DELETE_ACCOUNT:
            await _delete_tasks(cvat, candidate.cvat_task_ids)
        if candidate.cvat_user_id is not None and candidate.account_live:
            try:
                if account == DELETE_ACCOUNT:
                    await cvat.delete_user(candidate.cvat_user_id)
                else:
                    await cvat.update_user(candidate.cvat_user_id, is_active=False)
            except CvatNotFound:
                pass  # already gone from CVAT
    except CvatError as exc:
        await record_action(db, actor_id, "hr.delete_data", candidate_id,
                            {"error": type(exc).__name__}, ok=False)
        raise

    def forget(cur: Cursor) -> bool:
        # One transaction over every table that knows the person, the action log included.
        repository.leave_tombstone(cur, candidate_id, candidate.telegram_id)
        forget_pool_accounts(cur, candidate_id)
        deleted = repository.delete_candidate_rows(cur, candidate_id, candidate.telegram_id)
        if deleted:
            forget_actions(cur, candidate.telegram_id, candidate_id)
        record_action_in(cur, actor_id, "hr.delete_data", candidate_id, {"account": account},
                         ok=deleted)
        return deleted

    deleted = await db.run(forget)
    return DeleteOutcome.DELETED if deleted else DeleteOutcome.NOT_FOUND


# --- retention -------------------------------------------------------------------------------

async def apply_retention(db: Database, cvat: AsyncCvatClient, settings: Settings,
                          now: datetime | None = None) -> int:
    """Forget every candidate inactive for RETENTION_DAYS (data, CVAT account and tasks; the
    tombstone stays), and the bare visits of people who never asked for a task and are not
    HR; how many candidates. Off with RETENTION_DAYS=0. One candidate's CVAT failure is
    logged and tried again at the next pass."""
    if not settings.retention_days:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    forgotten = 0
    for candidate_id in await repository.inactive_candidates(db, cutoff):
        try:
            outcome = await delete_candidate_data(db, cvat, None, candidate_id, DELETE_ACCOUNT)
        except CvatError as exc:
            logger.warning("candidate %s not forgotten after the retention period now: %s",
                           candidate_id, exc)
            continue
        if outcome == DeleteOutcome.DELETED:
            await record_action(db, None, "retention.forgotten", candidate_id,
                                {"days": settings.retention_days})
            forgotten += 1
    await repository.forget_bare_visitors(db, cutoff, sorted(settings.hr_admin_ids))
    return forgotten
