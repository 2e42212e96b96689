"""What the handlers use from tasks_generator: asking for a test task, the candidate's stage,
their credentials, and start-up reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from config.env import Settings
from connection import AsyncCvatClient, CvatError
from create_users.db_operations import get_candidate, get_candidate_by_id
from db import Database, DatabaseUnavailable
from log import logged_action, record_action
from tasks_generator.attempts import (
    EXPIRED,
    FAILED,
    GRADED,
    READY,
    SUBMITTED,
    Attempt,
    LeaseLost,
    OpeningKind,
    StageKind,
    TaskRequestKind,
    attempts_left,
    interrupted_attempts,
    latest_attempt,
    open_attempt,
    stage_of,
    stage_row,
    visit_row,
)
from tasks_generator.generation import (
    ACCOUNT,
    IMAGES,
    TASK,
    Credentials,
    Progress,
    build_attempt,
    clean_up_failed,
)
from tasks_generator.generation import READY as READY_STAGE
from tasks_generator.guide import guide_text
from tasks_generator.pool import PoolCounts, PoolKeeper, pool_counts
from tasks_generator.task_set import TaskSet, load_task_set

logger = logging.getLogger(__name__)

__all__ = [
    "ACCOUNT",
    "EXPIRED",
    "IMAGES",
    "READY_STAGE",
    "TASK",
    "Credentials",
    "PoolCounts",
    "PoolKeeper",
    "Progress",
    "Stage",
    "StageKind",
    "TaskRequest",
    "TaskRequestKind",
    "TaskSet",
    "Visitor",
    "candidate_stage",
    "guide_text",
    "load_task_set",
    "next_attempt_at",
    "pool_counts",
    "reconcile",
    "request_test_task",
    "resend_credentials",
    "visit",
]


@dataclass(frozen=True)
class TaskRequest:
    """The answer to "give me a test task" (see TaskRequestKind): `credentials` when it was
    created now or is ready, `available_at` in a cooldown."""

    kind: TaskRequestKind
    attempt: Attempt | None = None
    credentials: Credentials | None = None
    used: int = 0
    allowed: int = 0
    available_at: datetime | None = None

    @property
    def attempts_left(self) -> int:
        """How many attempts the candidate may still start."""
        return attempts_left(self.allowed, self.used)


async def request_test_task(
    db: Database,
    cvat: AsyncCvatClient,
    settings: Settings,
    task_set: TaskSet,
    *,
    telegram_id: int,
    username: str | None,
    full_name: str,
    progress: Progress,
    new_attempt: bool = False,
) -> TaskRequest:
    """Find or build the candidate's test task; raises CvatError when CVAT fails (the attempt
    is then marked failed, its task removed, and the next request resumes it)."""
    opening = await open_attempt(
        db, telegram_id=telegram_id, username=username, full_name=full_name,
        max_attempts=settings.max_attempts,
        cooldown=timedelta(minutes=settings.attempt_cooldown_minutes),
        task_set=task_set.name, draw=task_set.draw, new_attempt=new_attempt,
        lease=timedelta(seconds=settings.build_lease_seconds),
        pooled_accounts=settings.pool_accounts > 0, pooled_tasks=settings.pool_tasks > 0,
    )
    common = {"attempt": opening.attempt, "used": opening.used, "allowed": opening.allowed}
    if opening.kind == OpeningKind.BUILD:
        assert opening.attempt is not None
        try:
            credentials = await build_attempt(db, cvat, settings, task_set, opening.candidate,
                                              opening.attempt, progress,
                                              resumed=opening.resumed)
        except LeaseLost:
            # This process was cut off for longer than the lease; the builder that took over
            # sends the login.
            logger.warning("attempt %s was taken over by another builder", opening.attempt.id)
            return TaskRequest(TaskRequestKind.TAKEN_OVER, **common)
        await record_action(db, telegram_id, "task.created", opening.candidate.id,
                            {"attempt": opening.attempt.number,
                             "cvat_task_name": opening.attempt.cvat_task_name})
        return TaskRequest(TaskRequestKind.CREATED, credentials=credentials, **common)
    if opening.kind == OpeningKind.READY:
        return TaskRequest(TaskRequestKind.READY,
                           credentials=await _credentials(db, settings, telegram_id), **common)
    return TaskRequest(TaskRequestKind(opening.kind), available_at=opening.available_at,
                       **common)


async def _credentials(db: Database, settings: Settings, telegram_id: int) -> Credentials | None:
    candidate = await get_candidate(db, telegram_id)
    if candidate is None or candidate.cvat_username is None or candidate.cvat_password is None:
        return None
    attempt = await latest_attempt(db, candidate.id)
    if attempt is None or attempt.status not in (READY, SUBMITTED, GRADED):
        return None
    if candidate.cvat_deleted_at is not None:
        return None
    return Credentials(settings.cvat_link, candidate.cvat_username, candidate.cvat_password,
                       attempt.number, len(attempt.image_subset))


@logged_action("credentials.resend")
async def resend_credentials(db: Database, actor_id: int, settings: Settings) -> Credentials | None:
    """The candidate's own login again (recorded in the action log); None without a task."""
    return await _credentials(db, settings, actor_id)


@dataclass(frozen=True)
class Stage:
    """Where a candidate is; the number of their latest attempt (0 before the first) and how
    many attempts they have left."""

    kind: StageKind
    attempts_left: int
    number: int = 0
    candidate_id: int | None = None

    @property
    def opens_new_attempt(self) -> bool:
        """Whether asking for a task now starts a new attempt (not the first one, nor a
        rebuild of one whose build failed)."""
        return self.kind not in (StageKind.NEW, StageKind.FAILED)


@dataclass(frozen=True)
class Visitor:
    """Who is writing, as the menus need it: language, candidate stage, HR or not."""

    language: str | None
    stage: Stage
    hr: bool


def _stage(row: dict[str, Any], settings: Settings) -> Stage:
    left = attempts_left(settings.max_attempts + (row["extra_attempts"] or 0), row["used"] or 0)
    number = row["attempt_number"] or 0
    return Stage(stage_of(row["attempt_status"]), left, number, row["candidate_id"])


async def visit(db: Database, settings: Settings, *, telegram_id: int, username: str | None,
                full_name: str, first_language: str) -> Visitor:
    """Record the visit (and, at first contact, the language) and read what the menus need,
    in one database round trip."""
    row = await visit_row(db, telegram_id, username, full_name, first_language)
    return Visitor(row["language"], _stage(row, settings),
                   bool(row["whitelisted"]) or telegram_id in settings.hr_admin_ids)


async def next_attempt_at(db: Database, settings: Settings,
                          candidate_id: int) -> datetime | None:
    """When the cooldown after the latest submission lets the next attempt start, if that is
    still to come (None: no cooldown, or it has passed)."""
    if not settings.attempt_cooldown_minutes:
        return None
    latest = await latest_attempt(db, candidate_id)
    if latest is None or latest.submitted_at is None:
        return None
    available = latest.submitted_at + timedelta(minutes=settings.attempt_cooldown_minutes)
    return available if available > datetime.now(UTC) else None


async def candidate_stage(db: Database, settings: Settings, telegram_id: int) -> Stage:
    """The candidate's stage now (after a change made while handling the update)."""
    return _stage(await stage_row(db, telegram_id), settings)


Deliver = Callable[[int, Credentials], Awaitable[None]]


async def reconcile(db: Database, cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
                    deliver: Deliver,
                    leave: Callable[[Attempt], Awaitable[bool]] | None = None) -> dict[str, int]:
    """Finish attempts whose builder stopped (a crash: its lease ran out) and send their
    credentials, and delete tasks that failed attempts left on CVAT. Run at start and then
    periodically; safe on every replica (taking over an attempt is one locked transaction).
    Attempts `leave` names are left to whoever else resumes them.
    An attempt that raises anything unexpected is marked failed with the error (the
    candidate's next press rebuilds it) and the others go on."""
    counts = {"resumed": 0, "cleaned": 0, "failed": 0}
    for attempt in await interrupted_attempts(db):
        if leave is not None and await leave(attempt):
            continue  # its own job resumes it
        try:
            outcome = await _reconcile_one(db, cvat, settings, task_set, deliver, attempt)
        except DatabaseUnavailable:
            raise
        except Exception:  # one attempt's fault must not stop the others
            # A build that raised has marked its attempt failed with the error (fenced by its
            # lease): the candidate's next press rebuilds it.
            logger.exception("attempt %s: reconciliation raised", attempt.id)
            outcome = "failed"
        if outcome:
            counts[outcome] += 1
    return counts


async def _reconcile_one(db: Database, cvat: AsyncCvatClient, settings: Settings,
                         task_set: TaskSet, deliver: Deliver, attempt: Attempt) -> str | None:
    """One interrupted attempt: "resumed", "cleaned", "failed" or None (nothing done)."""
    if attempt.status == FAILED:
        cleaned = await clean_up_failed(db, cvat, attempt,
                                        timedelta(seconds=settings.build_lease_seconds))
        return "cleaned" if cleaned else None
    candidate = await get_candidate_by_id(db, attempt.candidate_id)
    if candidate is None:
        return None  # deleted by HR meanwhile
    opening = await open_attempt(
        db, telegram_id=candidate.telegram_id, username=candidate.telegram_username,
        full_name=candidate.full_name, max_attempts=settings.max_attempts,
        cooldown=timedelta(0), task_set=task_set.name,
        draw=task_set.draw, new_attempt=False,
        lease=timedelta(seconds=settings.build_lease_seconds),
        pooled_accounts=settings.pool_accounts > 0, pooled_tasks=settings.pool_tasks > 0)
    if opening.kind != OpeningKind.BUILD or opening.attempt is None:
        return None  # another replica took it over meanwhile
    try:
        credentials = await build_attempt(db, cvat, settings, task_set, opening.candidate,
                                          opening.attempt, resumed=opening.resumed)
    except CvatError as exc:
        logger.warning("interrupted attempt %s could not be finished: %s", attempt.id, exc)
        return "failed"
    except LeaseLost:
        return None  # another replica took it over in turn
    await deliver(candidate.telegram_id, credentials)
    return "resumed"
