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
from enum import StrEnum
from typing import Any

from config.env import Settings
from connection import (
    AsyncCvatClient,
    CvatError,
    CvatJob,
    CvatNotFound,
    CvatRejected,
    CvatTask,
    made_since,
)
from create_users.db_operations import (
    Candidate,
    forget_lost_account,
    mark_account_activated,
)
from create_users.registration import ensure_cvat_account
from db import Database, DatabaseUnavailable
from log import record_action
from tasks_generator.attempts import (
    Attempt,
    LeaseLost,
    forget_lost_task,
    lease_failed_attempt,
    mark_failed,
    mark_ready,
    record_step,
)
from tasks_generator.guide import guide_markdown
from tasks_generator.task_set import TaskSet

logger = logging.getLogger(__name__)

class Step(StrEnum):
    """A step of building a test task, as the candidate's progress message names it (a text
    key `progress.<step>`)."""

    ACCOUNT = "account"
    TASK = "task"
    IMAGES = "images"
    READY = "ready"


ACCOUNT, TASK, IMAGES, READY = Step.ACCOUNT, Step.TASK, Step.IMAGES, Step.READY
# Images go to CVAT in requests of about this size: a set's worth of small images in one, and
# on a slow link the progress message still moves (it changes at most once a second).
UPLOAD_BATCH_BYTES = 2 * 1024 * 1024
Progress = Callable[[Step, int, int], Awaitable[None]]


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


Remember = Callable[[int | None], Awaitable[None]]


async def task_with_images(
    cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet, *, name: str,
    task_id: int | None, images: tuple[str, ...], remember: Remember, not_before: datetime,
    resumed: bool, progress: Progress = _no_progress,
) -> CvatJob:
    """The annotation job of a task named `name` with `images` uploaded and processed: the task
    with id `task_id` when it still exists under that name; else, when `resumed` (an earlier
    build may have created it and lost the answer), one of that name made since `not_before`
    (the row that asked for it); else a new one. `remember` records the task's id (None when
    it was dropped) before anything else happens to it."""
    task = None
    if task_id is not None:
        try:
            task = await cvat.get_task(task_id)
        except CvatNotFound:
            logger.warning("task %s (%s) is gone from CVAT; creating it again", task_id, name)
        if task is not None and (task.name != name
                                 or not made_since(task.created_date, not_before)):
            # Not the task this row made (CVAT was reset and gave the id to another): leave
            # it alone.
            logger.warning("task %s on CVAT is %r now, not %r; creating ours again", task_id,
                           task.name, name)
            task = None
    if task is None:
        task = await cvat.create_task(name, existing_ok=resumed, not_before=not_before)
        await remember(task.id)
    expected = len(images)
    if task.has_data and task.size == expected and task.jobs_count >= 1:
        await _guide(cvat, task, task_set)
        return await cvat.annotation_job(task.id, expected)
    if task.has_data:
        # Half-processed or broken by an earlier run: CVAT cannot attach data twice, so the
        # task is replaced (under the same unique name) rather than patched.
        logger.warning("task %s (%s) has unusable data; replacing it", task.id, name)
        await remember(task.id)  # a fenced write: a builder that lost its lease stops here
        await cvat.delete_task(task.id)
        await remember(None)
        task = await cvat.create_task(name, existing_ok=False, not_before=not_before)
        await remember(task.id)
    await progress(TASK, 1, 1)
    # The guide goes in beside the upload: it costs the candidate no wait.
    job, _ = await _all(_images(cvat, settings, task_set, task, images, progress),
                        _guide(cvat, task, task_set))
    return job


async def _images(cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet, task: CvatTask,
                  images: tuple[str, ...], progress: Progress) -> CvatJob:
    """Upload (or attach from the share) a task's images and wait for its job."""
    expected = len(images)
    await progress(IMAGES, 0, expected)
    if settings.cvat_image_source == "share":
        paths = [f"{settings.cvat_share_dir.rstrip('/')}/{image}" for image in images]
        rq_id = await cvat.attach_server_files(task.id, paths)
    else:
        files = await asyncio.to_thread(task_set.read_images, images)

        async def uploaded(done: int, total: int) -> None:
            await progress(IMAGES, done, total)

        try:
            rq_id = await cvat.upload_images(task.id, files, batch_bytes=UPLOAD_BATCH_BYTES,
                                             on_progress=uploaded, on_progress_in_loop=True)
        except CvatRejected as exc:
            if exc.status != 409 or not isinstance(exc.details, dict):
                raise
            # The images of an earlier builder (taken over mid-way) are being processed: CVAT
            # takes no second upload meanwhile, so wait for that one.
            logger.info("task %s (%s): an earlier upload is being processed; waiting for it",
                        task.id, task.name)
            rq_id = str(exc.details.get("rq_id") or "") or None
    return await cvat.wait_for_job(task.id, rq_id, expected_size=expected)


async def _guide(cvat: AsyncCvatClient, task: CvatTask, task_set: TaskSet) -> None:
    """Put the candidates' guide in the task, unless it has one (a resumed build). Without it
    the candidate still has the guide in the chat, so a CVAT that refuses it is logged and
    the build goes on."""
    if task.guide_id is not None:
        return
    try:
        await cvat.add_task_guide(task.id, guide_markdown(task_set))
    except CvatRejected as exc:
        logger.warning("task %s has no guide: CVAT refused it: %s", task.id, exc)


async def _all(*steps: Awaitable[Any]) -> list[Any]:
    """Run steps together to the end (so none is left running unwatched); the first failure
    is raised."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def build_attempt(
    db: Database,
    cvat: AsyncCvatClient,
    settings: Settings,
    task_set: TaskSet,
    candidate: Candidate,
    attempt: Attempt,
    progress: Progress = _no_progress,
    *,
    resumed: bool = True,
) -> Credentials:
    """Run (or resume) every step; on a failure clean up the task and re-raise. Every write is
    fenced by the attempt's lease: a builder whose lease another took over gets LeaseLost and
    leaves the attempt, and its task, to the new one. Only a `resumed` build looks on CVAT for
    what an earlier one may have made unrecorded."""
    lease = timedelta(seconds=settings.build_lease_seconds)
    created: set[int] = set()  # tasks this builder made: the only ones its failure deletes

    async def renew() -> bool:
        try:
            await record_step(db, attempt.id, attempt.lease_owner, lease)
        except LeaseLost:
            return False
        return True

    async with heartbeat(renew, lease.total_seconds() / 3, f"attempt {attempt.id}"):
        try:
            candidate = await _build_steps(db, cvat, settings, task_set, candidate, attempt,
                                           progress, created, resumed)
        except LeaseLost:
            raise
        except Exception as exc:  # CVAT failing, or anything unforeseen: the attempt fails
            await _give_up(db, cvat, attempt, lease, created, exc)
            raise
    assert candidate.cvat_username is not None and candidate.cvat_password is not None
    return Credentials(settings.cvat_link, candidate.cvat_username, candidate.cvat_password,
                       attempt.number, len(attempt.image_subset))


@contextlib.asynccontextmanager
async def heartbeat(renew: Callable[[], Awaitable[bool | None]], every: float,
                    what: str) -> AsyncIterator[None]:
    """Renew a lease every `every` seconds while the body runs; if the process dies, the lease
    runs out and another (or the restarted) process takes the work over. When `renew` says
    the lease is someone else's now (False), the body is stopped with LeaseLost."""
    body = asyncio.current_task()
    lost = False

    async def beat() -> None:
        nonlocal lost
        while True:
            await asyncio.sleep(every)
            try:
                if await renew() is False:
                    logger.warning("lease of %s was taken over by another builder; this one "
                                   "stops", what)
                    lost = True
                    if body is not None:
                        body.cancel()
                    return
            except DatabaseUnavailable as exc:
                logger.warning("lease of %s not renewed: %s", what, exc)

    task = asyncio.create_task(beat(), name=f"lease-{what}")
    try:
        yield
    except asyncio.CancelledError:
        if not lost or body is None:
            raise
        body.uncancel()
        raise LeaseLost(what) from None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Lost(Exception):
    """A pooled account or task handed to this attempt is gone from CVAT."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


async def _build_steps(
    db: Database, cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
    candidate: Candidate, attempt: Attempt, progress: Progress, created: set[int],
    resumed: bool,
) -> Candidate:
    """Account and task at the same time (neither needs the other), and the assignment as soon
    as the task is ready and the account's id known; each step skipped when already done.

    With both taken from the warm pool that is one round trip: the activation of the account
    and the assignment of the job, in parallel. A pooled thing CVAT no longer has is forgotten
    and made again on demand, so it never reaches the candidate."""
    await progress(ACCOUNT, 0, 1)
    await progress(TASK, 0, 1)
    for _ in range(3):
        results = await _build_round(db, cvat, settings, task_set, candidate, attempt,
                                     progress, created, resumed)
        lost = {r.what for r in results if isinstance(r, _Lost)}
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _Lost):
                raise result
        if not lost:
            job = results[1]
            assert isinstance(job, CvatJob)
            started = job.assignee_updated_date or datetime.now(UTC)
            await mark_ready(db, attempt.id, attempt.lease_owner, job.id, started)
            await progress(READY, 1, 1)
            return results[0]  # type: ignore[return-value]
        if "account" in lost:
            logger.warning("the CVAT account %s given to candidate %s is gone; registering "
                           "a new one", candidate.cvat_username, candidate.id)
            candidate = await forget_lost_account(db, candidate.id)
        if "task" in lost:
            logger.warning("task %s given to attempt %s is gone from CVAT; creating a new one",
                           attempt.cvat_task_id, attempt.id)
            attempt = await forget_lost_task(db, attempt)
    raise CvatError("CVAT kept losing the account or the task while they were being handed "
                    "out; see the CVAT log")


async def _build_round(
    db: Database, cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
    candidate: Candidate, attempt: Attempt, progress: Progress, created: set[int],
    resumed: bool,
) -> list[Candidate | CvatJob | BaseException]:
    """One try at every step: [the candidate with their account, the assigned job], each an
    exception instead when it failed (both run to the end, so the clean-up sees everything)."""
    has_account = candidate.cvat_user_id is not None and candidate.cvat_deleted_at is None
    account = asyncio.create_task(_account(db, cvat, settings, candidate, progress))

    async def assigned() -> CvatJob:
        job_id = await _job(db, cvat, settings, task_set, attempt, progress, created, resumed)
        user_id = candidate.cvat_user_id if has_account else (await account).cvat_user_id
        assert user_id is not None
        try:
            return await cvat.assign_job(job_id, user_id)
        except CvatNotFound:
            raise _Lost("task") from None
        except CvatRejected as exc:
            if isinstance(exc.details, dict) and "assignee" in exc.details:
                raise _Lost("account") from None  # "Invalid pk": no such user
            raise

    return await asyncio.gather(account, assigned(), return_exceptions=True)


async def _account(db: Database, cvat: AsyncCvatClient, settings: Settings,
                   candidate: Candidate, progress: Progress) -> Candidate:
    """The candidate's account: registered now, or a pooled one activated (with their name).
    An account whose password was forgotten after the candidate's last graded attempt (HR
    allowed one more since) is deleted and replaced: its login can no longer be shown."""
    if candidate.password_forgotten:
        assert candidate.cvat_user_id is not None
        await cvat.delete_user(candidate.cvat_user_id)
        await record_action(db, None, "cvat.account_replaced", candidate.id,
                            {"old_cvat_username": candidate.cvat_username})
        candidate = await forget_lost_account(db, candidate.id)
    if candidate.cvat_user_id is not None and candidate.cvat_deleted_at is None:
        if candidate.cvat_activation_pending:
            first, _, last = candidate.full_name.partition(" ")
            try:
                await cvat.update_user(candidate.cvat_user_id, is_active=True,
                                       first_name=first, last_name=last)
            except CvatNotFound:
                raise _Lost("account") from None
            await mark_account_activated(db, candidate.id)
    else:
        candidate = await ensure_cvat_account(db, cvat, candidate, settings.cvat_email_domain)
    await progress(ACCOUNT, 1, 1)
    return candidate


async def _job(db: Database, cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
               attempt: Attempt, progress: Progress, created: set[int],
               resumed: bool) -> int:
    """The id of the attempt's annotation job, its task built first unless it came from the
    pool ready (then the job is known and nothing is asked of CVAT)."""
    expected = len(attempt.image_subset)
    if attempt.cvat_task_id is None or attempt.cvat_job_id is None:

        async def remember(task_id: int | None) -> None:
            await record_step(db, attempt.id, attempt.lease_owner, cvat_task_id=task_id)
            if task_id is not None:
                created.add(task_id)

        assert attempt.cvat_task_name is not None
        job = await task_with_images(cvat, settings, task_set, name=attempt.cvat_task_name,
                                     task_id=attempt.cvat_task_id,
                                     images=attempt.image_subset, remember=remember,
                                     not_before=attempt.created_at, resumed=resumed,
                                     progress=progress)
        job_id = job.id
    else:
        job_id = attempt.cvat_job_id
    await progress(TASK, 1, 1)
    await progress(IMAGES, expected, expected)
    return job_id


async def _give_up(db: Database, cvat: AsyncCvatClient, attempt: Attempt, lease: timedelta,
                   created: set[int], exc: Exception) -> None:
    """Mark the attempt failed and delete its task from CVAT if this builder made it and CVAT
    lets us now; a task it did not make (from the pool, or an earlier build), or one CVAT
    will not delete now, stays recorded, and reconciliation deletes it later. Fenced: a
    builder that lost its lease gets LeaseLost before it touches anything."""
    current = await record_step(db, attempt.id, attempt.lease_owner, lease)
    task_id = current.cvat_task_id
    deleted = task_id is None
    if task_id is not None and task_id in created:
        try:
            await cvat.delete_task(task_id)
            deleted = True
        except CvatError as cleanup_error:
            logger.warning("could not delete task %s of failed attempt %s now: %s",
                           task_id, attempt.id, cleanup_error)
    if not await mark_failed(db, attempt.id, attempt.lease_owner,
                             f"{type(exc).__name__}: {exc}", task_deleted=deleted):
        raise LeaseLost(f"attempt {attempt.id}")
    logger.warning("attempt %s failed: %s", attempt.id, exc)


async def clean_up_failed(db: Database, cvat: AsyncCvatClient, attempt: Attempt,
                          lease: timedelta) -> bool:
    """Delete the task a failed attempt left on CVAT, holding the attempt's lease meanwhile;
    True when nothing is left."""
    if attempt.cvat_task_id is None:
        return True
    owner = await lease_failed_attempt(db, attempt, lease)
    if owner is None:
        return False  # someone else is on it, or it was resumed meanwhile
    try:
        await cvat.delete_task(attempt.cvat_task_id)
    except CvatError as exc:
        logger.warning("task %s of attempt %s still cannot be deleted: %s",
                       attempt.cvat_task_id, attempt.id, exc)
        await mark_failed(db, attempt.id, owner, attempt.error or "cleaned up",
                          task_deleted=False, status="failed")
        return False
    return await mark_failed(db, attempt.id, owner, attempt.error or "cleaned up",
                             task_deleted=True, status="failed")
