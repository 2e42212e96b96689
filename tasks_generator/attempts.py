"""Opening a candidate's attempt: the use case that finds or starts their test task.

The attempt's life (creating -> ready -> submitted -> graded, failed, expired) and all its SQL
live in `tasks_generator.repository`; the names other modules use are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from create_users.repository import (
    Candidate,
    give_pooled_account,
    lock_or_create_candidate,
)
from db import Cursor, Database
from tasks_generator.repository import (
    USED_STATUSES,
    Attempt,
    AttemptStatus,
    LeaseLost,
    count_used,
    database_now,
    forget_lost_task,
    get_attempt,
    give_pooled_task,
    hand_out_account,
    insert_attempt,
    interrupted_attempts,
    latest_attempt,
    latest_in,
    lease_failed_attempt,
    mark_failed,
    mark_ready,
    new_lease_owner,
    record_step,
    seen_images,
    stage_row,
    take_lease,
    task_name,
    used_in,
    visit_row,
)

__all__ = [
    "CREATING",
    "DEFAULT_LEASE",
    "EXPIRED",
    "FAILED",
    "GRADED",
    "READY",
    "SUBMITTED",
    "USED_STATUSES",
    "Attempt",
    "AttemptStatus",
    "Draw",
    "LeaseLost",
    "Opening",
    "OpeningKind",
    "StageKind",
    "TaskRequestKind",
    "attempts_left",
    "count_used",
    "forget_lost_task",
    "get_attempt",
    "interrupted_attempts",
    "latest_attempt",
    "lease_failed_attempt",
    "mark_failed",
    "mark_ready",
    "new_lease_owner",
    "open_attempt",
    "record_step",
    "seen_images",
    "stage_of",
    "stage_row",
    "task_name",
    "visit_row",
]

CREATING, READY, SUBMITTED = AttemptStatus.CREATING, AttemptStatus.READY, AttemptStatus.SUBMITTED
GRADED, FAILED, EXPIRED = AttemptStatus.GRADED, AttemptStatus.FAILED, AttemptStatus.EXPIRED
DEFAULT_LEASE = timedelta(seconds=60)


class OpeningKind(StrEnum):
    """What a request for a test task found or started."""

    BUILD = "build"  # this caller must build the attempt now
    BUSY = "busy"  # someone else is building it (or cleaning up after a failure)
    READY = "ready"  # it exists: send the credentials again
    DONE = "done"  # the latest attempt was submitted; a new one needs `new_attempt`
    NO_ATTEMPTS_LEFT = "no_attempts_left"
    COOLDOWN = "cooldown"


class TaskRequestKind(StrEnum):
    """The answer to "give me a test task": an OpeningKind but `build`, which ends as one of
    the first two."""

    CREATED = "created"  # built now
    TAKEN_OVER = "taken_over"  # this process was cut off too long; another finished the build
    READY = OpeningKind.READY
    BUSY = OpeningKind.BUSY
    DONE = OpeningKind.DONE
    NO_ATTEMPTS_LEFT = OpeningKind.NO_ATTEMPTS_LEFT
    COOLDOWN = OpeningKind.COOLDOWN


class StageKind(StrEnum):
    """Where a candidate is, as the menus show it."""

    NEW = "new"  # no attempt yet
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    DONE = "done"  # the latest attempt is submitted, graded or expired


def stage_of(status: str | None) -> StageKind:
    """The stage of a candidate whose latest attempt is in `status` (None: no attempt)."""
    if status is None:
        return StageKind.NEW
    return {CREATING: StageKind.BUILDING, READY: StageKind.READY,
            FAILED: StageKind.FAILED}.get(AttemptStatus(status), StageKind.DONE)


@dataclass(frozen=True)
class Opening:
    """What a request for a test task found or started (see OpeningKind). `resumed`: the
    attempt to build was being built before (a crash, a failure), so what it sent to CVAT may
    have arrived without being recorded."""

    kind: OpeningKind
    candidate: Candidate
    attempt: Attempt | None = None
    used: int = 0
    allowed: int = 0
    available_at: datetime | None = None
    resumed: bool = False


Draw = Callable[[Collection[str]], tuple[str, ...]]


def attempts_left(allowed: int, used: int) -> int:
    """The one rule for how many attempts a candidate may still start."""
    return max(0, allowed - used)


def _take_pooled_account(cur: Cursor, candidate: Candidate) -> Candidate:
    """Give the candidate the oldest ready account of the warm pool, if they need one and the
    pool has one. Only a candidate with no account name yet (or whose account was deleted)
    takes one: a name reserved for an on-demand registration may already be on CVAT."""
    if candidate.cvat_username is not None and candidate.cvat_deleted_at is None:
        return candidate
    pooled = hand_out_account(cur, candidate.id)
    if pooled is None:
        return candidate
    return give_pooled_account(cur, candidate.id, pooled.cvat_username, pooled.cvat_password,
                               pooled.cvat_user_id, pending_activation=pooled.inactive)


async def open_attempt(
    db: Database,
    *,
    telegram_id: int,
    username: str | None,
    full_name: str,
    max_attempts: int,
    cooldown: timedelta,
    task_set: str,
    draw: Draw,
    new_attempt: bool,
    lease: timedelta = DEFAULT_LEASE,
    pooled_accounts: bool = False,
    pooled_tasks: bool = False,
) -> Opening:
    """Find or start the candidate's attempt in one transaction, the candidate's row locked.

    `draw(seen)` gives the images of a new attempt, none of `seen` (the images the candidate
    had) where the set allows; the draw is stored with the attempt. With `new_attempt` False the
    caller asked for their (first) task: an existing attempt of any state is reported rather
    than a new one started. An attempt to build takes a ready account and task from the warm
    pool (`pooled_accounts`, `pooled_tasks`) in the same transaction, where the pool has them.
    """

    def build(cur: Cursor, candidate: Candidate, attempt: Attempt, used: int,
              allowed: int, resumed: bool = True) -> Opening:
        if pooled_accounts:
            candidate = _take_pooled_account(cur, candidate)
        if pooled_tasks and attempt.cvat_task_id is None:
            attempt = give_pooled_task(cur, attempt)
        return Opening(OpeningKind.BUILD, candidate, attempt, used, allowed, resumed=resumed)

    def work(cur: Cursor) -> Opening:
        candidate = lock_or_create_candidate(cur, telegram_id, username, full_name)
        latest = latest_in(cur, candidate.id)
        used = used_in(cur, candidate.id)
        allowed = max_attempts + candidate.extra_attempts
        now = database_now(cur)
        if latest is not None and latest.status == READY:
            return Opening(OpeningKind.READY, candidate, latest, used, allowed)
        if latest is not None and latest.status in (CREATING, FAILED):
            # A failed one may be being cleaned up under a lease: busy as well.
            leased = take_lease(cur, latest.id, lease)
            if leased is None:
                return Opening(OpeningKind.BUSY, candidate, latest, used, allowed)
            return build(cur, candidate, leased, used, allowed)
        if latest is not None and not new_attempt:
            return Opening(OpeningKind.DONE, candidate, latest, used, allowed)
        if not attempts_left(allowed, used):
            return Opening(OpeningKind.NO_ATTEMPTS_LEFT, candidate, latest, used, allowed)
        if latest is not None and latest.submitted_at and cooldown:
            available = latest.submitted_at + cooldown
            if available > now:
                return Opening(OpeningKind.COOLDOWN, candidate, latest, used, allowed,
                               available)
        number = (latest.number if latest else 0) + 1
        images = draw(seen_images(cur, candidate.id, task_set))
        attempt = insert_attempt(cur, candidate.id, number, task_set, list(images), lease)
        return build(cur, candidate, attempt, used, allowed, resumed=False)

    return await db.run(work)
