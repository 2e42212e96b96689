"""Building an attempt on CVAT: account, task, images, job assignment. Every step is
idempotent and recorded, so a retry after a crash or a CVAT failure continues where it stopped
and nothing is created twice or left behind unknown to the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from config.env import Settings
from connection import AsyncCvatClient, CvatError, CvatNotFound, CvatTask
from create_users.db_operations import Candidate
from create_users.registration import ensure_cvat_account
from db import Database, DatabaseUnavailable
from tasks_generator.attempts import Attempt, get_attempt, mark_failed, mark_ready, record_step
from tasks_generator.task_set import TaskSet

logger = logging.getLogger(__name__)

ACCOUNT, TASK, IMAGES, READY = "account", "task", "images", "ready"
Progress = Callable[[str, int, int], Awaitable[None]]


@dataclass(frozen=True)
class Credentials:
    """What the candidate needs to start: where and how to log in."""

    url: str
    username: str
    password: str
    attempt_number: int
    images: int


async def _no_progress(stage: str, done: int, total: int) -> None:
    return None


async def _fresh_task(cvat: AsyncCvatClient, db: Database, attempt: Attempt) -> CvatTask:
    """The attempt's task, created if needed (found by its unique name after a lost answer)."""
    assert attempt.cvat_task_name is not None
    if attempt.cvat_task_id is not None:
        try:
            return await cvat.get_task(attempt.cvat_task_id)
        except CvatNotFound:
            logger.warning("task %s of attempt %s is gone from CVAT; creating it again",
                           attempt.cvat_task_id, attempt.id)
    task = await cvat.create_task(attempt.cvat_task_name)
    await record_step(db, attempt.id, cvat_task_id=task.id)
    return task


async def _task_with_images(
    cvat: AsyncCvatClient, db: Database, settings: Settings, task_set: TaskSet,
    attempt: Attempt, progress: Progress,
) -> CvatTask:
    task = await _fresh_task(cvat, db, attempt)
    expected = len(attempt.image_subset)
    if task.has_data and task.size == expected and task.jobs_count >= 1:
        return task
    if task.has_data:
        # Half-processed or broken by an earlier run: CVAT cannot attach data twice, so the
        # task is replaced (under the same unique name) rather than patched.
        logger.warning("task %s of attempt %s has unusable data; replacing it", task.id,
                       attempt.id)
        await cvat.delete_task(task.id)
        await record_step(db, attempt.id, cvat_task_id=None)
        task = await _fresh_task(cvat, db, await get_attempt(db, attempt.id))
    await progress(TASK, 1, 1)
    await progress(IMAGES, 0, expected)
    if settings.cvat_image_source == "share":
        paths = [f"{settings.cvat_share_dir.rstrip('/')}/{name}" for name in attempt.image_subset]
        rq_id = await cvat.attach_server_files(task.id, paths)
    else:
        files = await asyncio.to_thread(task_set.read_images, attempt.image_subset)

        async def uploaded(done: int, total: int) -> None:
            await progress(IMAGES, done, total)

        rq_id = await cvat.upload_images(task.id, files, on_progress=uploaded,
                                         on_progress_in_loop=True)
    # Polls start at 0.05 s and grow 1.5x: a small task is noticed ready soon after it is.
    return await cvat.wait_for_data(task.id, rq_id, expected_size=expected, poll=0.05)


async def build_attempt(
    db: Database,
    cvat: AsyncCvatClient,
    settings: Settings,
    task_set: TaskSet,
    candidate: Candidate,
    attempt: Attempt,
    progress: Progress = _no_progress,
) -> Credentials:
    """Run (or resume) every step; on a CVAT failure clean up the task and re-raise."""
    try:
        async with _heartbeat(db, attempt.id, timedelta(seconds=settings.build_lease_seconds)):
            candidate = await _build_steps(db, cvat, settings, task_set, candidate, attempt,
                                           progress)
    except CvatError as exc:
        await _give_up(db, cvat, attempt.id, exc)
        raise
    assert candidate.cvat_username is not None and candidate.cvat_password is not None
    return Credentials(settings.cvat_link, candidate.cvat_username, candidate.cvat_password,
                       attempt.number, len(attempt.image_subset))


@contextlib.asynccontextmanager
async def _heartbeat(db: Database, attempt_id: int, lease: timedelta) -> AsyncIterator[None]:
    """Keep the building lease alive while this process works on the attempt; if the process
    dies, the lease runs out and another (or the restarted) process takes the attempt over."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await record_step(db, attempt_id, lease)
            except DatabaseUnavailable as exc:
                logger.warning("lease of attempt %s not renewed: %s", attempt_id, exc)

    task = asyncio.create_task(beat(), name=f"lease-{attempt_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _build_steps(
    db: Database, cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
    candidate: Candidate, attempt: Attempt, progress: Progress,
) -> Candidate:
    """Account and task with images at the same time (neither needs the other), then the
    assignment; each step skipped when already done."""
    await progress(ACCOUNT, 0, 1)
    await progress(TASK, 0, 1)

    async def account() -> Candidate:
        made = await ensure_cvat_account(db, cvat, candidate, settings.cvat_email_domain)
        await progress(ACCOUNT, 1, 1)
        return made

    # Both run to the end even if one fails, so the clean-up sees every step's outcome.
    results = await asyncio.gather(
        account(), _task_with_images(cvat, db, settings, task_set, attempt, progress),
        return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    candidate, task = results  # type: ignore[assignment]
    await progress(IMAGES, task.size, task.size)
    job = (await cvat.list_jobs(task.id))[0]
    assert candidate.cvat_user_id is not None
    job = await cvat.assign_job(job.id, candidate.cvat_user_id)
    started = job.assignee_updated_date or datetime.now(UTC)
    await mark_ready(db, attempt.id, job.id, started)
    await progress(READY, 1, 1)
    return candidate


async def _give_up(db: Database, cvat: AsyncCvatClient, attempt_id: int, exc: CvatError) -> None:
    """Mark the attempt failed and delete its task from CVAT, if CVAT lets us now; if not, the
    task id stays recorded and start-up reconciliation deletes it later."""
    current = await get_attempt(db, attempt_id)
    deleted = current.cvat_task_id is None
    if current.cvat_task_id is not None:
        try:
            await cvat.delete_task(current.cvat_task_id)
            deleted = True
        except CvatError as cleanup_error:
            logger.warning("could not delete task %s of failed attempt %s now: %s",
                           current.cvat_task_id, attempt_id, cleanup_error)
    await mark_failed(db, attempt_id, f"{type(exc).__name__}: {exc}", task_deleted=deleted)
    logger.warning("attempt %s failed on CVAT: %s", attempt_id, exc)


async def clean_up_failed(db: Database, cvat: AsyncCvatClient, attempt: Attempt) -> bool:
    """Delete the task a failed attempt left on CVAT; True when nothing is left."""
    if attempt.cvat_task_id is None:
        return True
    try:
        await cvat.delete_task(attempt.cvat_task_id)
    except CvatError as exc:
        logger.warning("task %s of attempt %s still cannot be deleted: %s",
                       attempt.cvat_task_id, attempt.id, exc)
        return False
    await mark_failed(db, attempt.id, attempt.error or "cleaned up", task_deleted=True)
    return True
