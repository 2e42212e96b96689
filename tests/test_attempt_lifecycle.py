"""The attempt's state machine in tasks_generator/repository.py, against real PostgreSQL: each
transition moves an attempt only from the status it names, and says whether it did, so a
Submit pressed as the deadline passes ends submitted or expired, never both; a builder whose
lease was taken over changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import Database
from sandbox.candidate import TASK_SET
from tasks_generator import repository as attempts
from tasks_generator.attempts import OpeningKind, open_attempt
from tasks_generator.repository import AttemptStatus, LeaseLost


async def _open(db: Database, telegram_id: int, *, new: bool = False) -> attempts.Attempt:
    opening = await open_attempt(
        db, telegram_id=telegram_id, username=None, full_name=f"Candidate {telegram_id}",
        max_attempts=2, cooldown=timedelta(0), task_set=TASK_SET.name, draw=TASK_SET.draw,
        new_attempt=new)
    assert opening.kind == OpeningKind.BUILD and opening.attempt is not None
    return opening.attempt


async def test_each_transition_moves_only_from_its_own_status(db: Database) -> None:
    started = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    building = await _open(db, 1)
    assert building.status == AttemptStatus.CREATING and building.lease_owner
    with pytest.raises(LeaseLost):  # not the lease's holder
        await attempts.mark_ready(db, building.id, "someone else", 7, started)
    assert not await attempts.mark_submitted(db, building.id, started, "{}")  # not ready yet
    await attempts.mark_ready(db, building.id, building.lease_owner, 7, started)
    ready = await attempts.get_attempt(db, building.id)
    assert ready.status == "ready" and ready.cvat_job_id == 7 and ready.lease_owner is None
    with pytest.raises(LeaseLost):  # ready now: the builder's steps are over
        await attempts.record_step(db, ready.id, building.lease_owner, cvat_task_id=3)

    # Submit and the deadline meet: whichever comes first wins, the other changes nothing.
    assert await attempts.mark_submitted(db, ready.id, started, '{"annotations": []}')
    assert not await attempts.mark_expired(db, ready.id)
    assert not await attempts.mark_submitted(db, ready.id, started, "{}")  # a second press
    assert (await attempts.get_attempt(db, ready.id)).status == AttemptStatus.SUBMITTED
    assert await db.run(lambda cur: attempts.mark_graded(cur, ready.id))
    assert await attempts.count_used(db, ready.candidate_id) == 1

    second = await _open(db, 1, new=True)
    await attempts.mark_ready(db, second.id, second.lease_owner, 8, started)
    assert await attempts.mark_expired(db, second.id)
    assert not await attempts.mark_submitted(db, second.id, started, "{}")  # too late
    assert not await db.run(lambda cur: attempts.mark_graded(cur, second.id))
    assert (await attempts.get_attempt(db, second.id)).status == AttemptStatus.EXPIRED
    assert await attempts.count_used(db, second.candidate_id) == 2  # expired counts as used
    opening = await open_attempt(
        db, telegram_id=1, username=None, full_name="Candidate 1", max_attempts=2,
        cooldown=timedelta(0), task_set=TASK_SET.name, draw=TASK_SET.draw, new_attempt=True)
    assert opening.kind == OpeningKind.NO_ATTEMPTS_LEFT

    # A failed build is resumed by the next request, under a new lease; the old builder's
    # late writes change nothing.
    failing = await _open(db, 2)
    assert await attempts.mark_failed(db, failing.id, failing.lease_owner, "CVAT is down",
                                      task_deleted=True)
    assert not await attempts.mark_failed(db, failing.id, failing.lease_owner, "again",
                                          task_deleted=True)
    resumed = await _open(db, 2)
    assert resumed.id == failing.id and resumed.lease_owner != failing.lease_owner
    with pytest.raises(LeaseLost):
        await attempts.mark_ready(db, failing.id, failing.lease_owner, 9, started)
