"""SQL for `attempts`: the durable progress of each test task.

creating -> ready -> submitted -> graded, or failed (a failed attempt is resumed by the next
request, it does not use up an attempt), or ready -> expired (its deadline passed before it was
submitted: it counts as used). A lease marks an attempt someone is building now.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from create_users.db_operations import Candidate, lock_or_create_candidate, take_pooled_account
from db import Cursor, Database
from tasks_generator.installation import installation_mark

CREATING, READY, SUBMITTED, GRADED, FAILED = "creating", "ready", "submitted", "graded", "failed"
EXPIRED = "expired"
OPEN_STATUSES = (CREATING, READY)
USED_STATUSES = (SUBMITTED, GRADED, EXPIRED)
# The same, for SQL written out in full.
USED_SQL = "(" + ", ".join(f"'{status}'" for status in USED_STATUSES) + ")"
DEFAULT_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Attempt:
    """One test task of one candidate."""

    id: int
    candidate_id: int
    number: int
    status: str
    task_set: str
    image_subset: tuple[str, ...]
    cvat_task_name: str | None
    cvat_task_id: int | None
    cvat_job_id: int | None
    task_started: datetime | None
    task_ended: datetime | None
    submitted_at: datetime | None
    error: str | None
    lease_until: datetime | None
    created_at: datetime
    lease_owner: str | None = None  # the token of whoever holds the lease now

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Attempt:
        """Build from an `attempts` row."""
        fields = {k: row[k] for k in cls.__dataclass_fields__}
        fields["image_subset"] = tuple(row["image_subset"] or ())
        return cls(**fields)


_COLUMNS = ", ".join(Attempt.__dataclass_fields__)


class LeaseLost(Exception):
    """Another builder took this attempt over (this one's lease ran out while it was stopped or
    cut off from the database): this builder stops and changes nothing more."""


def new_lease_owner() -> str:
    """A token naming one holder of a lease: every write of the holder checks it."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Opening:
    """What a request for a test task found or started.

    kind: "build" (this caller must build the attempt now), "busy" (someone else is building
    it), "ready" (it exists: send the credentials again), "done" (the latest attempt was
    submitted; a new one needs `new_attempt`), "no_attempts_left", "cooldown". `resumed`: the
    attempt to build was being built before (a crash, a failure), so what it sent to CVAT may
    have arrived without being recorded.
    """

    kind: str
    candidate: Candidate
    attempt: Attempt | None = None
    used: int = 0
    allowed: int = 0
    available_at: datetime | None = None
    resumed: bool = False


def _latest(cur: Cursor, candidate_id: int) -> Attempt | None:
    cur.execute(f"SELECT {_COLUMNS} FROM attempts WHERE candidate_id = %s"
                " ORDER BY number DESC LIMIT 1", (candidate_id,))
    row = cur.fetchone()
    return Attempt.from_row(row) if row else None


def task_name(candidate_id: int, number: int, attempt_id: int, mark: str) -> str:
    """The unique name of a task built for one attempt (a pooled task keeps its own), with this
    deployment's mark: another database's attempt of the same id names its task otherwise."""
    return f"Test of candidate {candidate_id}, attempt {number} (#{attempt_id}, {mark})"


Draw = Callable[[Collection[str]], tuple[str, ...]]


def seen_images(cur: Cursor, candidate_id: int, task_set: str,
                but: int | None = None) -> list[str]:
    """Every image of the set the candidate had in an attempt (but attempt `but`)."""
    cur.execute(
        "SELECT coalesce(array_agg(DISTINCT i ORDER BY i), '{}') AS seen"
        " FROM attempts a, unnest(a.image_subset) i"
        " WHERE a.candidate_id = %s AND a.task_set = %s AND a.id IS DISTINCT FROM %s",
        (candidate_id, task_set, but))
    return list(cur.fetchone()["seen"])


def _take_pooled_task(cur: Cursor, attempt: Attempt) -> Attempt:
    """Give the attempt, if it has no task yet, the oldest ready pooled task with no image the
    candidate had before; the attempt's images become that task's (pooled tasks are drawn
    like any attempt). None fitting: the attempt keeps its own draw, built on demand."""
    if attempt.cvat_task_id is not None:
        return attempt
    seen = seen_images(cur, attempt.candidate_id, attempt.task_set, but=attempt.id)
    cur.execute(
        "UPDATE pool_tasks SET status = 'handed_out', attempt_id = %s, handed_out_at = now()"
        " WHERE id = (SELECT id FROM pool_tasks WHERE status = 'ready' AND task_set = %s"
        "  AND NOT image_subset && %s::text[] ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING cvat_task_id, cvat_job_id, cvat_task_name, image_subset",
        (attempt.id, attempt.task_set, seen),
    )
    pooled = cur.fetchone()
    if pooled is None:
        return attempt
    cur.execute(
        "UPDATE attempts SET cvat_task_id = %s, cvat_job_id = %s, cvat_task_name = %s,"
        f" image_subset = %s WHERE id = %s RETURNING {_COLUMNS}",
        (pooled["cvat_task_id"], pooled["cvat_job_id"], pooled["cvat_task_name"],
         pooled["image_subset"], attempt.id),
    )
    return Attempt.from_row(cur.fetchone())


def _take_lease(cur: Cursor, attempt_id: int, lease: timedelta) -> Attempt:
    cur.execute(
        "UPDATE attempts SET status = 'creating', error = NULL, lease_until = now() + %s,"
        f" lease_owner = %s, updated_at = now() WHERE id = %s RETURNING {_COLUMNS}",
        (lease, new_lease_owner(), attempt_id),
    )
    return Attempt.from_row(cur.fetchone())


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
            candidate = take_pooled_account(cur, candidate)
        if pooled_tasks:
            attempt = _take_pooled_task(cur, attempt)
        return Opening("build", candidate, attempt, used, allowed, resumed=resumed)

    def work(cur: Cursor) -> Opening:
        candidate = lock_or_create_candidate(cur, telegram_id, username, full_name)
        latest = _latest(cur, candidate.id)
        cur.execute("SELECT count(*) AS used FROM attempts WHERE candidate_id = %s"
                    " AND status IN %s", (candidate.id, USED_STATUSES))
        used = cur.fetchone()["used"]
        allowed = max_attempts + candidate.extra_attempts
        cur.execute("SELECT now() AS now")
        now = cur.fetchone()["now"]
        if latest is not None and latest.status == READY:
            return Opening("ready", candidate, latest, used, allowed)
        if latest is not None and latest.status == CREATING:
            if latest.lease_until is not None and latest.lease_until > now:
                return Opening("busy", candidate, latest, used, allowed)
            return build(cur, candidate, _take_lease(cur, latest.id, lease), used, allowed)
        if latest is not None and latest.status == FAILED:
            if latest.lease_until is not None and latest.lease_until > now:
                return Opening("busy", candidate, latest, used, allowed)  # being cleaned up
            return build(cur, candidate, _take_lease(cur, latest.id, lease), used, allowed)
        if latest is not None and not new_attempt:
            return Opening("done", candidate, latest, used, allowed)  # submitted, graded, expired
        if used >= allowed:
            return Opening("no_attempts_left", candidate, latest, used, allowed)
        if latest is not None and latest.submitted_at and cooldown:
            available = latest.submitted_at + cooldown
            if available > now:
                return Opening("cooldown", candidate, latest, used, allowed, available)
        number = (latest.number if latest else 0) + 1
        images = draw(seen_images(cur, candidate.id, task_set))
        cur.execute(
            "INSERT INTO attempts (candidate_id, number, task_set, image_subset, lease_until,"
            f" lease_owner) VALUES (%s, %s, %s, %s, now() + %s, %s) RETURNING {_COLUMNS}",
            (candidate.id, number, task_set, list(images), lease, new_lease_owner()),
        )
        attempt = Attempt.from_row(cur.fetchone())
        cur.execute(f"UPDATE attempts SET cvat_task_name = %s WHERE id = %s RETURNING {_COLUMNS}",
                    (task_name(candidate.id, number, attempt.id, installation_mark(cur)),
                     attempt.id))
        return build(cur, candidate, Attempt.from_row(cur.fetchone()), used, allowed,
                     resumed=False)

    return await db.run(work)


_STAGE_SELECT = (
    "SELECT c.id AS candidate_id, c.extra_attempts, a.status AS attempt_status,"
    " a.number AS attempt_number,"
    " (SELECT count(*) FROM attempts x WHERE x.candidate_id = c.id"
    f"  AND x.status IN {USED_SQL}) AS used,"
    " EXISTS (SELECT 1 FROM trainingdata_whitelist w WHERE w.telegram_id = %(id)s)"
    "  AS whitelisted"
)
_STAGE_JOINS = (
    " LEFT JOIN candidates c ON c.telegram_id = %(id)s"
    " LEFT JOIN LATERAL (SELECT status, number FROM attempts WHERE candidate_id = c.id"
    "  ORDER BY number DESC LIMIT 1) a ON true"
)


# A returning user's row is rewritten at most this often when nothing else changed: the
# visit is read on every update, and last_seen_at only serves retention, counted in days.
VISIT_WRITE_INTERVAL = "1 minute"


async def visit_row(db: Database, telegram_id: int, username: str | None,
                    full_name: str, first_language: str) -> dict[str, Any]:
    """One round trip per update: record that the user wrote, and read their language, their
    candidate stage figures and whether they are on the HR whitelist. A user without a stored
    language gets `first_language` (the one that fits Telegram's language_code) stored, so that
    what the bot sends them later, outside a reply, speaks the same language. The row is
    written only when it is new or has no language yet, when the name changed, or when its
    last write is older than VISIT_WRITE_INTERVAL: a user tapping through menus costs reads,
    not writes."""
    row = await db.fetchone(
        "WITH seen AS (SELECT language, username, full_name, last_seen_at FROM telegram_users"
        "  WHERE telegram_id = %(id)s),"
        " u AS (INSERT INTO telegram_users (telegram_id, username, full_name, language)"
        "  SELECT %(id)s, %(username)s::text, %(name)s::text, %(language)s::text"
        "  WHERE NOT EXISTS (SELECT 1 FROM seen WHERE language IS NOT NULL"
        "   AND username IS NOT DISTINCT FROM %(username)s::text AND full_name = %(name)s::text"
        "   AND last_seen_at > now() - %(interval)s::interval)"
        "  ON CONFLICT (telegram_id)"
        "  DO UPDATE SET username = EXCLUDED.username, full_name = EXCLUDED.full_name,"
        "  language = coalesce(telegram_users.language, EXCLUDED.language),"
        "  last_seen_at = now() RETURNING language)"
        f" {_STAGE_SELECT}, coalesce((SELECT language FROM u), (SELECT language FROM seen))"
        f" AS language FROM (SELECT 1) one {_STAGE_JOINS}",
        {"id": telegram_id, "username": username, "name": full_name,
         "language": first_language, "interval": VISIT_WRITE_INTERVAL},
    )
    assert row is not None
    return row


async def stage_row(db: Database, telegram_id: int) -> dict[str, Any]:
    """The candidate stage figures and whitelist flag of a user, without recording a visit."""
    row = await db.fetchone(f"{_STAGE_SELECT} FROM (SELECT 1) one {_STAGE_JOINS}",
                            {"id": telegram_id})
    assert row is not None
    return row


async def get_attempt(db: Database, attempt_id: int) -> Attempt:
    """One attempt by id."""
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM attempts WHERE id = %s", (attempt_id,))
    assert row is not None, f"attempt {attempt_id} does not exist"
    return Attempt.from_row(row)


async def latest_attempt(db: Database, candidate_id: int) -> Attempt | None:
    """The candidate's newest attempt."""
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM attempts WHERE candidate_id = %s"
                            " ORDER BY number DESC LIMIT 1", (candidate_id,))
    return Attempt.from_row(row) if row else None


async def count_used(db: Database, candidate_id: int) -> int:
    """Attempts the candidate has submitted."""
    return await db.fetchval("SELECT count(*) FROM attempts WHERE candidate_id = %s"
                             " AND status IN %s", (candidate_id, USED_STATUSES))


async def record_step(db: Database, attempt_id: int, owner: str | None,
                      lease: timedelta | None = None, **fields: Any) -> Attempt:
    """Record step results (cvat_task_id, ...) and, with `lease`, extend the building lease;
    only while `owner` holds the lease, else LeaseLost. The attempt as it is now."""
    sets = ", ".join(["updated_at = now()",
                      *(["lease_until = now() + %(lease)s"] if lease else []),
                      *(f"{name} = %({name})s" for name in fields)])
    row = await db.fetchone(
        f"UPDATE attempts SET {sets} WHERE id = %(id)s AND status = 'creating'"
        f" AND lease_owner = %(owner)s RETURNING {_COLUMNS}",
        {**fields, "lease": lease, "id": attempt_id, "owner": owner})
    if row is None:
        raise LeaseLost(f"attempt {attempt_id}")
    return Attempt.from_row(row)


async def mark_ready(db: Database, attempt_id: int, owner: str | None, job_id: int,
                     task_started: datetime) -> None:
    """The task is assigned: the candidate can work (only by the lease's holder)."""
    done = await db.execute(
        "UPDATE attempts SET status = 'ready', cvat_job_id = %s, task_started = %s,"
        " lease_until = NULL, lease_owner = NULL, error = NULL, updated_at = now()"
        " WHERE id = %s AND status = 'creating' AND lease_owner = %s",
        (job_id, task_started, attempt_id, owner),
    )
    if not done:
        raise LeaseLost(f"attempt {attempt_id}")


async def mark_failed(db: Database, attempt_id: int, owner: str | None, error: str, *,
                      task_deleted: bool, status: str = CREATING) -> bool:
    """Building failed; a later request resumes it. Forget the task only if it was deleted.
    Only the lease's holder (`owner`, on an attempt in `status`) changes anything; whether it
    did."""
    done = await db.execute(
        "UPDATE attempts SET status = 'failed', error = %s, lease_until = NULL,"
        " lease_owner = NULL, updated_at = now()"
        + (", cvat_task_id = NULL, cvat_job_id = NULL" if task_deleted else "")
        + " WHERE id = %s AND status = %s AND lease_owner = %s",
        (error[:500], attempt_id, status, owner),
    )
    return bool(done)


async def lease_failed_attempt(db: Database, attempt: Attempt,
                               lease: timedelta) -> str | None:
    """Take a failed attempt's lease to delete the task it left (a press meanwhile is told the
    attempt is busy, so nobody resumes with a task being deleted); the owner token, or None
    when someone else holds it or the task changed."""
    owner = new_lease_owner()
    done = await db.execute(
        "UPDATE attempts SET lease_until = now() + %s, lease_owner = %s WHERE id = %s"
        " AND status = 'failed' AND cvat_task_id = %s"
        " AND (lease_until IS NULL OR lease_until < now())",
        (lease, owner, attempt.id, attempt.cvat_task_id))
    return owner if done else None


async def interrupted_attempts(db: Database) -> list[Attempt]:
    """Attempts whose builder stopped (lease expired) and failed ones with a task left on
    CVAT: what start-up reconciles."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM attempts WHERE (status = 'creating' AND lease_until < now())"
        " OR (status = 'failed' AND cvat_task_id IS NOT NULL"
        "  AND (lease_until IS NULL OR lease_until < now())) ORDER BY id"
    )
    return [Attempt.from_row(r) for r in rows]


async def forget_lost_task(db: Database, attempt: Attempt) -> Attempt:
    """The attempt's (pooled) task is gone from CVAT: drop it, so the build makes a new one
    under the attempt's own name (only by the lease's holder, else LeaseLost)."""

    def work(cur: Cursor) -> dict[str, Any] | None:
        name = task_name(attempt.candidate_id, attempt.number, attempt.id,
                         installation_mark(cur))
        cur.execute(
            "UPDATE attempts SET cvat_task_id = NULL, cvat_job_id = NULL, cvat_task_name = %s,"
            " updated_at = now() WHERE id = %s AND status = 'creating' AND lease_owner = %s"
            f" RETURNING {_COLUMNS}", (name, attempt.id, attempt.lease_owner))
        return cur.fetchone()

    row = await db.run(work)
    if row is None:
        raise LeaseLost(f"attempt {attempt.id}")
    return Attempt.from_row(row)
