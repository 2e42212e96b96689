"""The warm pool: CVAT accounts and tasks made before anyone asks for them.

A candidate who confirms their test task takes a ready account and a ready task in the same
transaction that opens their attempt (`attempts.open_attempt`), and waits only for the job
assignment (and, for an inactive account, its activation, sent at the same time). The keeper
here refills the pool in the background, on its own CVAT connections, so its calls never queue
in front of a candidate's:

- A pooled thing's row (with its name and password) is written before anything is created on
  CVAT, and new rows are only added under a lock while fewer than the pool's size exist: a crash
  leaves a row whose lease runs out and whose build is resumed (found by its name), never a
  second account or task, and never more than the size.
- Every `POOL_CHECK_INTERVAL_SECONDS` the ready ones are looked up on CVAT, in one list call
  for the accounts and one for the tasks' jobs; one deleted by hand or lost in a server reset
  loses its row and is replaced, and so does one that is no longer ours to give (another
  account or task under its id, one activated, logged into, assigned or changed since it was
  made ready): that one is left alone on CVAT. A hand-out that still meets a gone one (it went
  between two checks) makes a new one on demand instead (`generation._build_steps`).
- Each pooled task is on images drawn as an attempt's are (`TaskSet.draw`); a hand-out takes
  one with no image the candidate had before. Rows over the size (the setting was lowered, or
  set to 0) and tasks whose images are no draw of the set any more (another task set, other
  tags, another IMAGES_PER_TASK) are deleted from CVAT.
- Pooled task names carry this deployment's mark, and a build resumed after a crash takes a
  thing found on CVAT by its name only if it was made after the row that asked for it.
- One thing failing, whatever the error, never stops the others: it is logged with its row's id
  and tried again after a pause that doubles with each failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from config.env import Settings
from connection import (
    AsyncCvatClient,
    CvatError,
    CvatJob,
    CvatNotFound,
    CvatRejected,
    CvatUser,
    made_since,
)
from create_users.generation import make_email, make_password, make_pool_username
from create_users.registration import CANDIDATE_GROUPS, MAX_NAME_TRIES, name_taken
from db import Cursor, Database, DatabaseUnavailable
from log import register_secret
from tasks_generator.generation import heartbeat, task_with_images
from tasks_generator.repository import (
    PoolCounts,
    PoolRow,
    PoolStatus,
    PoolTable,
    drop_ready_pool_row,
    lease_pool_rows,
    let_pool_row_go,
    lock_pool,
    new_pool_account,
    new_pool_task,
    pool_account_ready,
    pool_account_registered,
    pool_account_vanished,
    pool_counts,
    pool_row_failed,
    pool_row_retired,
    pool_rows_checked,
    pool_task_created,
    pool_task_ready,
    pooled_task_name,
    ready_pool_rows,
    rename_pool_account,
    renew_pool_lease,
)
from tasks_generator.task_set import TaskSet

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the keeper looks whether the pool needs refilling
MAX_BACKOFF_SECONDS = 60.0
BUILD_CONCURRENCY = 4
RETRY_AFTER_FAILURE = timedelta(seconds=10)  # a failed build is tried again after this,
MAX_RETRY_AFTER_FAILURE = timedelta(hours=1)  # doubled with each failure up to this
# CVAT dates the steps of making a thing within this of each other: registering logs the new
# account in, processing makes a job and never touches it again. A later date means a person.
SAME_MOMENT = timedelta(seconds=5)
# pg_advisory_xact_lock keys: one writer at a time decides what each pool needs.
_LOCK_ACCOUNTS, _LOCK_TASKS = 0x706F6F6C01, 0x706F6F6C02
ACCOUNTS, TASKS = PoolTable.ACCOUNTS, PoolTable.TASKS
__all__ = ["PoolCounts", "PoolKeeper", "pool_counts", "pooled_task_name"]


@dataclass
class _Work:
    """Rows one refill pass took (under a lease) to make or to delete."""

    build: list[PoolRow]
    retire: list[PoolRow]


def _free(row: PoolRow, now: datetime) -> bool:
    """Nobody is working on the row now (no lease, or its lease ran out)."""
    return row.lease_until is None or row.lease_until < now


def _trim(live: list[PoolRow], size: int, now: datetime) -> tuple[list[PoolRow],
                                                                   list[int]]:
    """(rows kept, ids to delete): the newest beyond `size`, never one a build holds now."""
    spare = [r for r in reversed(live) if _free(r, now)][:max(0, len(live) - size)]
    return [r for r in live if r not in spare], [r.id for r in spare]


def _take_account_work(cur: Cursor, size: int, below: int, lease: timedelta) -> _Work:
    """Decide, under the pool's lock, which accounts to make (new rows, or builds a crash
    interrupted) and which to delete (over the size); lease them to this process."""
    now, rows = lock_pool(cur, _LOCK_ACCOUNTS, ACCOUNTS)
    retire = [r.id for r in rows if r.status == PoolStatus.RETIRING and _free(r, now)]
    live, spare = _trim([r for r in rows if r.status != PoolStatus.RETIRING], size, now)
    resume = [r.id for r in live if r.status == PoolStatus.CREATING and _free(r, now)]
    new: list[int] = []
    ready = sum(r.status == PoolStatus.READY for r in live)
    if ready < min(below, size) and len(live) < size:
        for _ in range(size - len(live)):
            new.append(new_pool_account(cur, make_pool_username(), make_password()))
    return _Work(build=lease_pool_rows(cur, ACCOUNTS, resume + new, lease, resumed=resume),
                 retire=lease_pool_rows(cur, ACCOUNTS, retire + spare, lease, PoolStatus.RETIRING))


def _take_task_work(cur: Cursor, task_set: TaskSet, size: int, below: int,
                    lease: timedelta) -> _Work:
    """The same for tasks, each on images drawn as an attempt's are: also deletes tasks whose
    images are not a draw of the set as it is now (the task set, its tags or IMAGES_PER_TASK
    changed)."""
    now, rows = lock_pool(cur, _LOCK_TASKS, TASKS)
    retire = [r.id for r in rows if r.status == PoolStatus.RETIRING and _free(r, now)]
    live: list[PoolRow] = []
    for row in rows:
        if row.status == PoolStatus.RETIRING:
            continue
        if row.task_set != task_set.name or not task_set.fits(row.image_subset):
            if _free(row, now):  # a build under way (an older configuration's) finishes first
                retire.append(row.id)
            continue
        live.append(row)
    live, spare = _trim(live, size, now)
    retire += spare
    resume = [r.id for r in live if r.status == PoolStatus.CREATING and _free(r, now)]
    ready = sum(r.status == PoolStatus.READY for r in live)
    new: list[int] = []
    if ready < min(below, size):
        for _ in range(size - len(live)):
            new.append(new_pool_task(cur, task_set.name, list(task_set.draw())))
    return _Work(build=lease_pool_rows(cur, TASKS, resume + new, lease, resumed=resume),
                 retire=lease_pool_rows(cur, TASKS, sorted(set(retire)), lease,
                                        PoolStatus.RETIRING))


class PoolKeeper:
    """Keeps the warm pool full, checked and within its size; one per bot process (several
    replicas share the work through the rows' leases)."""

    def __init__(self, db: Database, cvat: AsyncCvatClient, settings: Settings,
                 task_set: TaskSet) -> None:
        self.db = db
        self.cvat = cvat
        self.settings = settings
        self.task_set = task_set
        self.lease = timedelta(seconds=settings.build_lease_seconds)
        self._builds = asyncio.Semaphore(BUILD_CONCURRENCY)
        self._last_check = -float("inf")

    @property
    def enabled(self) -> bool:
        """Whether any part of the pool is switched on."""
        return bool(self.settings.pool_accounts or self.settings.pool_tasks)

    async def run(self) -> None:
        """Refill and check until cancelled; CVAT or the database being away only slows it.
        With the pool switched off it deletes what an earlier configuration left and stops."""
        failures = 0
        while True:
            try:
                if time.monotonic() - self._last_check >= \
                        self.settings.pool_check_interval_seconds:
                    await self.check()
                    self._last_check = time.monotonic()
                work = await self.refill()
                if not self.enabled and not work:
                    return
                if failures:
                    logger.info("the warm pool is being refilled again")
                failures = 0
            except (DatabaseUnavailable, CvatError) as exc:
                failures += 1
                if failures == 1:
                    logger.warning("the warm pool cannot be refilled now: %s", exc)
            except Exception:
                # A fault of ours or an answer nobody foresaw: the keeper slows down, says
                # so, and keeps the pool going.
                failures += 1
                logger.exception("the warm pool's keeper failed (tried again in %.0f s)",
                                 min(POLL_SECONDS * 2 ** failures, MAX_BACKOFF_SECONDS))
            await asyncio.sleep(min(POLL_SECONDS * 2 ** failures, MAX_BACKOFF_SECONDS)
                                if failures else POLL_SECONDS)

    async def refill(self) -> int:
        """One pass: make what the pool lacks, delete what it has too much of; the number of
        things worked on."""
        settings = self.settings
        accounts = await self.db.run(lambda cur: _take_account_work(
            cur, settings.pool_accounts, settings.pool_accounts_refill_below, self.lease))
        tasks = await self.db.run(lambda cur: _take_task_work(
            cur, self.task_set, settings.pool_tasks, settings.pool_tasks_refill_below,
            self.lease))
        jobs = ([self._guarded(ACCOUNTS, row, self._build_account) for row in accounts.build]
                + [self._guarded(TASKS, row, self._build_task) for row in tasks.build]
                + [self._guarded(ACCOUNTS, row, self._retire_account) for row in accounts.retire]
                + [self._guarded(TASKS, row, self._retire_task) for row in tasks.retire])
        if jobs:
            await asyncio.gather(*jobs)
        return len(jobs)

    async def _guarded(self, table: PoolTable, row: PoolRow, work: Any) -> None:
        """Run one build or deletion under its lease (renewed while it runs); on a failure log
        it and let the row be tried again a little later."""
        async def renew() -> None:
            await renew_pool_lease(self.db, table, row.id, self.lease)

        try:
            async with self._builds, heartbeat(renew, self.lease.total_seconds() / 3,
                                               f"{table} {row.id}"):
                await work(row)
        except Exception as exc:
            # Whatever one row raises (CVAT, the database, an answer nobody foresaw, a bug),
            # the others carry on; this one waits, longer after each failure.
            pause = min(RETRY_AFTER_FAILURE * 2 ** row.failures,
                        MAX_RETRY_AFTER_FAILURE)
            if isinstance(exc, CvatError | DatabaseUnavailable):
                logger.warning("%s row %s: %s (tried again in %.0f s)", table, row.id, exc,
                               pause.total_seconds())
            else:
                logger.exception("%s row %s failed (tried again in %.0f s)", table, row.id,
                                 pause.total_seconds())
            with contextlib.suppress(DatabaseUnavailable):
                await pool_row_failed(self.db, table, row.id, pause)
        except asyncio.CancelledError:
            # A clean stop: what this process was making is free for the next one at once
            # (after a crash the lease runs out instead).
            with contextlib.suppress(DatabaseUnavailable):
                await let_pool_row_go(self.db, table, row.id)
            raise

    # --------------------------------------------------------------------------- accounts

    async def _build_account(self, row: PoolRow) -> None:
        """Register (or find, after a crash) the account, make it a worker that cannot log in
        yet, and put it in the pool."""
        user_id, username, password = row.cvat_user_id, row.cvat_username, row.cvat_password
        register_secret(password)
        if user_id is None:
            resumed = row.resumed
            for _ in range(MAX_NAME_TRIES):
                try:
                    user = await self.cvat.register_user(
                        username, password,
                        make_email(username, self.settings.cvat_email_domain),
                        existing_ok=resumed, not_before=row.created_at)
                    if resumed and _given_out(user):
                        # Made for this row, but handed to a candidate since (in a timeline
                        # this database lost, restored from an older backup): not ours to give.
                        raise CvatRejected(f"CVAT account {username} is in use",
                                           details={"username": ["in use"]})
                    break
                except CvatRejected as exc:
                    if not name_taken(exc):
                        raise
                    logger.warning("CVAT name %s is taken; the pool picks another", username)
                    resumed = False
                    username, password = make_pool_username(), make_password()
                    register_secret(password)
                    await rename_pool_account(self.db, row.id, username, password)
            else:
                raise CvatRejected("CVAT refused every new account name", status=400)
            user_id = user.id
            await pool_account_registered(self.db, row.id, user_id)
        inactive = self.settings.pool_inactive_accounts
        try:
            await self.cvat.update_user(user_id, groups=list(CANDIDATE_GROUPS),
                                        is_active=not inactive)
        except CvatNotFound:
            logger.warning("pooled account %s vanished while being made; making another",
                           username)
            await pool_account_vanished(self.db, row.id)
            return
        await pool_account_ready(self.db, row.id, inactive)
        logger.info("pooled account %s (id %s) is ready", username, user_id)

    async def _retire_account(self, row: PoolRow) -> None:
        """Delete an account the pool no longer needs (found by name if its id was not
        recorded yet), then its row."""
        user_id = row.cvat_user_id
        if user_id is None:
            found = await self.cvat.find_user(row.cvat_username)
            ours = found is not None and made_since(found.date_joined, row.created_at)
            user_id = found.id if found and ours else None
        if user_id is not None:
            await self.cvat.delete_user(user_id)
        await pool_row_retired(self.db, ACCOUNTS, row.id)
        logger.info("pooled account %s deleted (the pool is smaller now)", row.cvat_username)

    # ------------------------------------------------------------------------------ tasks

    async def _build_task(self, row: PoolRow) -> None:
        """Create (or find, after a crash) the task, upload and process its images, and put it
        in the pool with its job unassigned."""

        async def remember(task_id: int | None) -> None:
            await pool_task_created(self.db, row.id, task_id)

        job = await task_with_images(
            self.cvat, self.settings, self.task_set, name=row.cvat_task_name,
            task_id=row.cvat_task_id, images=tuple(row.image_subset), remember=remember,
            not_before=row.created_at, resumed=row.resumed)
        if job.assignee_id is not None:
            await self.cvat.assign_job(job.id, None)
        await pool_task_ready(self.db, row.id, job.task_id, job.id)
        logger.info("pooled task %s (id %s) is ready", row.cvat_task_name, job.task_id)

    async def _retire_task(self, row: PoolRow) -> None:
        """Delete a task the pool no longer needs, then its row."""
        ids = [row.cvat_task_id] if row.cvat_task_id is not None else [
            t.id for t in await self.cvat.find_tasks(name=row.cvat_task_name)
            if made_since(t.created_date, row.created_at)]
        for task_id in ids:
            await self.cvat.delete_task(task_id)
        await pool_row_retired(self.db, TASKS, row.id)
        logger.info("pooled task %s deleted (no longer needed)", row.cvat_task_name)

    # ------------------------------------------------------------------------------ checks

    async def check(self) -> int:
        """Look every ready pooled thing up on CVAT (one list call for the accounts, one for
        the tasks' jobs); drop, and so replace, what is gone or no longer ours to give. The
        number dropped."""
        dropped = 0
        accounts = await ready_pool_rows(self.db, ACCOUNTS)
        if accounts:
            users = await self.cvat.users_by_id([r.cvat_user_id for r in accounts])
            dropped += await self._check_rows(ACCOUNTS, accounts, [
                _account_problem(row, users.get(row.cvat_user_id)) for row in accounts])
        tasks = await ready_pool_rows(self.db, TASKS)
        if tasks:
            jobs = await self.cvat.jobs_by_id([r.cvat_job_id for r in tasks])
            dropped += await self._check_rows(TASKS, tasks, [
                _task_problem(row, jobs.get(row.cvat_job_id)) for row in tasks])
        return dropped

    async def _check_rows(self, table: PoolTable, rows: list[PoolRow],
                          problems: list[str | None]) -> int:
        """Drop the rows with a problem, record the others as just seen; the number dropped."""
        dropped = 0
        for row, problem in zip(rows, problems, strict=True):
            if problem is not None:
                dropped += await self._drop(table, row.id, problem)
        await self._checked(table, [r.id for r, p in zip(rows, problems, strict=True)
                                    if p is None])
        return dropped

    async def _checked(self, table: PoolTable, ids: list[int]) -> None:
        """Record that these rows were just seen on CVAT (one statement for all)."""
        await pool_rows_checked(self.db, table, ids)

    async def _drop(self, table: PoolTable, row_id: int, why: str) -> int:
        done = await drop_ready_pool_row(self.db, table, row_id)
        if done:
            logger.warning("pooled %s on CVAT; replacing it", why)
        return int(done)


def _account_problem(row: PoolRow, user: CvatUser | None) -> str | None:
    """Why a ready pooled account may not be handed out, or None when it may (judged by CVAT's
    own dates only: its clock and the database's may differ)."""
    name = row.cvat_username
    if user is None:
        return f"account {name} is gone"
    if user.username != name:
        return f"account {name} (id {row.cvat_user_id}) is someone else's ({user.username})"
    if (row.inactive and user.is_active) or _given_out(user):
        return f"account {name} was activated or used since; it is left alone"
    return None


def _task_problem(row: PoolRow, job: CvatJob | None) -> str | None:
    """Why a ready pooled task may not be handed out, or None when it may."""
    name, task_id = row.cvat_task_name, row.cvat_task_id
    if job is None:
        return f"task {task_id} is gone"
    if job.task_id != task_id or job.task_name != name:
        return f"task {task_id} (job {job.id}) is someone else's ({job.task_name!r})"
    if job.assignee_id is not None or _later(job.updated_date, job.created_date):
        return f"task {task_id} was assigned or changed by hand; it is left alone"
    return None


def _given_out(user: CvatUser) -> bool:
    """Whether an account the pool registered was handed to a candidate: the pool names an
    account only when it hands it out, and nobody else logs into one before that."""
    return bool(user.first_name or user.last_name) or _later(user.last_login, user.date_joined)


def _later(changed: datetime | None, made: datetime | None) -> bool:
    """Whether CVAT dates a change after the thing's making was over."""
    return changed is not None and made is not None and changed > made + SAME_MOMENT
