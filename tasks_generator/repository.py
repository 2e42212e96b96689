"""The one home of `attempts`, `pool_accounts`, `pool_tasks` and `installation`: their SQL, their
typed rows, and every transition of an attempt's life.

    creating -> ready -> submitted -> graded
        |         |
        v         v
      failed    expired

A failed attempt is resumed by the next request (it does not use up an attempt); a ready one
past its deadline expires (it counts as used). A lease marks an attempt someone is building now,
and its owner token fences every write of the builder. Each transition below names the status it
leaves in its SQL condition and says whether it happened, so two replicas (or a crash and its
recovery) can never both move one attempt. Functions taking a `Cursor` run inside the caller's
transaction, so that a use case touching several tables composes them in one `db.run`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from db import Cursor, Database


class AttemptStatus(StrEnum):
    """Where an attempt is in its life (the values are the `attempts.status` strings)."""

    CREATING = "creating"
    READY = "ready"
    SUBMITTED = "submitted"
    GRADED = "graded"
    FAILED = "failed"
    EXPIRED = "expired"


# An attempt in one of these has used up one of the candidate's attempts.
USED_STATUSES = (AttemptStatus.SUBMITTED, AttemptStatus.GRADED, AttemptStatus.EXPIRED)


class PoolStatus(StrEnum):
    """Where a pooled account or task is (the values are the pool tables' `status` strings)."""

    CREATING = "creating"
    READY = "ready"
    HANDED_OUT = "handed_out"
    RETIRING = "retiring"


class PoolTable(StrEnum):
    """The two tables of the warm pool."""

    ACCOUNTS = "pool_accounts"
    TASKS = "pool_tasks"


MARK_BYTES = 5  # 10 hex digits: two deployments on one CVAT never draw the same


@dataclass(frozen=True)
class Attempt:
    """One test task of one candidate."""

    id: int
    candidate_id: int
    number: int
    status: AttemptStatus
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
        values = {k: row[k] for k in cls.__dataclass_fields__}
        values["image_subset"] = tuple(row["image_subset"] or ())
        values["status"] = AttemptStatus(row["status"])
        return cls(**values)


@dataclass(frozen=True)
class SubmittedWork:
    """What grading reads of a submitted attempt: its draw and the stored copy of the work."""

    image_subset: list[str]
    task_set: str
    task_started: datetime | None
    task_ended: datetime | None
    stored: str | None


@dataclass(frozen=True)
class OpenCheck:
    """An open attempt whose check claim ran out (a Submit that stopped half-way)."""

    attempt_id: int
    telegram_id: int


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


@dataclass(frozen=True)
class PoolRow:
    """One row of `pool_accounts` or `pool_tasks`, as a refill pass leased it. `resumed`: an
    earlier build of it may have made something on CVAT without recording it."""

    id: int
    status: PoolStatus
    lease_until: datetime | None
    created_at: datetime
    failures: int = 0
    resumed: bool = False
    # pool_accounts
    cvat_username: str | None = None
    cvat_password: str | None = None
    cvat_user_id: int | None = None
    inactive: bool = False
    # pool_tasks
    task_set: str | None = None
    image_subset: tuple[str, ...] = ()
    cvat_task_name: str | None = None
    cvat_task_id: int | None = None
    cvat_job_id: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any], resumed: bool = False) -> PoolRow:
        """Build from a pool table's row (the columns the other table has keep defaults)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["status"] = PoolStatus(row["status"])
        values["image_subset"] = tuple(row.get("image_subset") or ())
        return cls(**{**values, "resumed": resumed})


@dataclass(frozen=True)
class PooledAccount:
    """A ready account the pool hands out (its password leaves the pool's row)."""

    cvat_username: str
    cvat_password: str
    cvat_user_id: int
    inactive: bool


@dataclass(frozen=True)
class PooledTask:
    """A ready task the pool hands out."""

    cvat_task_id: int
    cvat_job_id: int
    cvat_task_name: str
    image_subset: list[str]


@dataclass(frozen=True)
class PoolCounts:
    """How many pooled things are ready and being made."""

    accounts_ready: int
    accounts_creating: int
    tasks_ready: int
    tasks_creating: int


class LeaseLost(Exception):
    """Another builder took this attempt over (this one's lease ran out while it was stopped or
    cut off from the database): this builder stops and changes nothing more."""


def new_lease_owner() -> str:
    """A token naming one holder of a lease: every write of the holder checks it."""
    return secrets.token_hex(8)


def task_name(candidate_id: int, number: int, attempt_id: int, mark: str) -> str:
    """The unique name of a task built for one attempt (a pooled task keeps its own), with this
    deployment's mark: another database's attempt of the same id names its task otherwise."""
    return f"Test of candidate {candidate_id}, attempt {number} (#{attempt_id}, {mark})"


def pooled_task_name(row_id: int, mark: str) -> str:
    """The unique name of a pooled task, with this deployment's mark (another database's pool
    counts its rows from 1 as well)."""
    return f"Annotation test (pooled #{row_id}, {mark})"


# ------------------------------------------------------------------------------------- SQL

_COLUMNS = ", ".join(Attempt.__dataclass_fields__)

_MARK = "SELECT mark FROM installation"
_MAKE_MARK = "INSERT INTO installation (mark) VALUES (%s) ON CONFLICT DO NOTHING"

_BY_ID = f"SELECT {_COLUMNS} FROM attempts WHERE id = %s"
_LATEST = (f"SELECT {_COLUMNS} FROM attempts WHERE candidate_id = %s"
           " ORDER BY number DESC LIMIT 1")
_USED = "SELECT count(*) FROM attempts WHERE candidate_id = %s AND status IN %s"
_USED_FOR_CANDIDATE = ("(SELECT count(*) FROM attempts x WHERE x.candidate_id = c.id"
                       " AND x.status IN %(used)s)")
_SEEN = ("SELECT coalesce(array_agg(DISTINCT i ORDER BY i), '{}') AS seen"
         " FROM attempts a, unnest(a.image_subset) i"
         " WHERE a.candidate_id = %s AND a.task_set = %s AND a.id IS DISTINCT FROM %s")
_INSERT = ("INSERT INTO attempts (candidate_id, number, task_set, image_subset, lease_until,"
           f" lease_owner) VALUES (%s, %s, %s, %s, now() + %s, %s) RETURNING {_COLUMNS}")
_NAME_TASK = f"UPDATE attempts SET cvat_task_name = %s WHERE id = %s RETURNING {_COLUMNS}"
_TAKE_LEASE = ("UPDATE attempts SET status = %(creating)s, error = NULL,"
               " lease_until = now() + %(lease)s, lease_owner = %(owner)s, updated_at = now()"
               " WHERE id = %(id)s AND status IN (%(creating)s, %(failed)s)"
               " AND (lease_until IS NULL OR lease_until <= now())"
               f" RETURNING {_COLUMNS}")
_GIVE_POOLED_TASK = ("UPDATE attempts SET cvat_task_id = %s, cvat_job_id = %s,"
                     " cvat_task_name = %s, image_subset = %s WHERE id = %s"
                     f" RETURNING {_COLUMNS}")
_RECORD_STEP = ("UPDATE attempts SET {sets} WHERE id = %(id)s AND status = %(creating)s"
                f" AND lease_owner = %(owner)s RETURNING {_COLUMNS}")
_MARK_READY = ("UPDATE attempts SET status = %(ready)s, cvat_job_id = %(job)s,"
               " task_started = %(started)s, lease_until = NULL, lease_owner = NULL,"
               " error = NULL, updated_at = now()"
               " WHERE id = %(id)s AND status = %(creating)s AND lease_owner = %(owner)s")
_MARK_FAILED = ("UPDATE attempts SET status = %(failed)s, error = %(error)s, lease_until = NULL,"
                " lease_owner = NULL, updated_at = now(){forget_task}"
                " WHERE id = %(id)s AND status = %(status)s AND lease_owner = %(owner)s")
_FORGET_TASK = ", cvat_task_id = NULL, cvat_job_id = NULL"
_LEASE_FAILED = ("UPDATE attempts SET lease_until = now() + %(lease)s, lease_owner = %(owner)s"
                 " WHERE id = %(id)s AND status = %(failed)s AND cvat_task_id = %(task)s"
                 " AND (lease_until IS NULL OR lease_until < now())")
_INTERRUPTED = (f"SELECT {_COLUMNS} FROM attempts"
                " WHERE (status = %(creating)s AND lease_until < now())"
                " OR (status = %(failed)s AND cvat_task_id IS NOT NULL"
                "  AND (lease_until IS NULL OR lease_until < now())) ORDER BY id")
_FORGET_LOST_TASK = ("UPDATE attempts SET cvat_task_id = NULL, cvat_job_id = NULL,"
                     " cvat_task_name = %(name)s, updated_at = now() WHERE id = %(id)s"
                     " AND status = %(creating)s AND lease_owner = %(owner)s"
                     f" RETURNING {_COLUMNS}")
_CLAIM_CHECK = ("UPDATE attempts SET checking_until = now() + %(claim)s WHERE id = %(id)s"
                " AND status = %(ready)s AND (checking_until IS NULL OR checking_until < now())")
_RELEASE_CHECK = ("UPDATE attempts SET checking_until = CASE WHEN %s THEN NULL ELSE now() END"
                  " WHERE id = %s AND checking_until IS NOT NULL")
_ABANDONED_CHECKS = ("SELECT a.id AS attempt_id, c.telegram_id FROM attempts a"
                     " JOIN candidates c ON c.id = a.candidate_id"
                     " WHERE a.status = %s AND a.checking_until < now() ORDER BY a.id")
_MARK_SUBMITTED = ("UPDATE attempts SET status = %(submitted)s, submitted_at = now(),"
                   " task_ended = %(ended)s, submitted_annotations = %(work)s::jsonb,"
                   " updated_at = now() WHERE id = %(id)s AND status = %(ready)s")
_SUBMITTED_WORK = ("SELECT image_subset, task_set, task_started, task_ended,"
                   " submitted_annotations::text AS stored FROM attempts WHERE id = %s")
_MARK_GRADED = ("UPDATE attempts SET status = %(graded)s, grading_error = NULL,"
                " grading_failures = 0, grading_retry_at = NULL, updated_at = now()"
                " WHERE id = %(id)s AND status IN (%(submitted)s, %(graded)s)")
_GRADING_FAILED = ("UPDATE attempts SET grading_error = %s,"
                   " grading_failures = grading_failures + 1,"
                   " grading_retry_at = now() + (%s::interval[])[least(grading_failures + 1, %s)],"
                   " updated_at = now() WHERE id = %s")
_TO_REGRADE = ("SELECT id FROM attempts WHERE status = %s AND updated_at < now() - %s"
               " AND grading_failures <= %s"
               " AND (grading_retry_at IS NULL OR grading_retry_at < now()) ORDER BY id")
_OVERDUE = ("SELECT id FROM attempts WHERE status = %(ready)s"
            " AND task_started + %(deadline)s <= now()"
            " AND (checking_until IS NULL OR checking_until < now()) ORDER BY id")
_EXPIRE = ("UPDATE attempts SET status = %(expired)s, expired_at = now(), checking_until = NULL,"
           " updated_at = now() WHERE id = %(id)s AND status = %(ready)s")
_NOTICE_COLUMNS = ("a.id AS attempt_id, c.telegram_id, a.number, u.language,"
                   " a.task_started + %(deadline)s AS deadline, now() AS now")
_CLAIM_REMINDERS = (
    "UPDATE attempts a SET reminded_at = now()"
    " FROM candidates c LEFT JOIN telegram_users u ON u.telegram_id = c.telegram_id"
    " WHERE c.id = a.candidate_id AND a.status = %(ready)s AND a.reminded_at IS NULL"
    " AND a.task_started + %(deadline)s - %(before)s <= now()"
    " AND a.task_started + %(deadline)s > now()"
    f" RETURNING {_NOTICE_COLUMNS}")
_CLAIM_EXPIRY_NOTICES = (
    "UPDATE attempts a SET expiry_notified_at = now()"
    " FROM candidates c LEFT JOIN telegram_users u ON u.telegram_id = c.telegram_id"
    " WHERE c.id = a.candidate_id AND a.status = %(expired)s AND a.expiry_notified_at IS NULL"
    f" RETURNING {_NOTICE_COLUMNS},"
    f" greatest(0, %(max_attempts)s + c.extra_attempts - {_USED_FOR_CANDIDATE}) AS attempts_left")
_RELEASE_NOTICE = "UPDATE attempts SET {column} = NULL WHERE id = %s"

_STAGE_SELECT = (
    "SELECT c.id AS candidate_id, c.extra_attempts, a.status AS attempt_status,"
    f" a.number AS attempt_number, {_USED_FOR_CANDIDATE} AS used,"
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
_VISIT = (
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
    f" AS language FROM (SELECT 1) one {_STAGE_JOINS}")
_STAGE = f"{_STAGE_SELECT} FROM (SELECT 1) one {_STAGE_JOINS}"

# The warm pool. `{table}` is a PoolTable.
_POOL_COUNTS = (
    "SELECT (SELECT count(*) FROM pool_accounts WHERE status = %(ready)s) AS ar,"
    " (SELECT count(*) FROM pool_accounts WHERE status = %(creating)s) AS ac,"
    " (SELECT count(*) FROM pool_tasks WHERE status = %(ready)s) AS tr,"
    " (SELECT count(*) FROM pool_tasks WHERE status = %(creating)s) AS tc")
_POOL_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_NOW = "SELECT now() AS now"
_POOL_LIVE = "SELECT * FROM {table} WHERE status IN %s ORDER BY id"
_POOL_LEASE = ("UPDATE {table} SET lease_until = now() + %(lease)s{new_status}"
               " WHERE id = ANY(%(ids)s) RETURNING *")
_POOL_RENEW = "UPDATE {table} SET lease_until = now() + %s WHERE id = %s"
_POOL_FAILED = "UPDATE {table} SET lease_until = now() + %s, failures = failures + 1 WHERE id = %s"
_POOL_LET_GO = "UPDATE {table} SET lease_until = NULL WHERE id = %s"
_POOL_READY_ROWS = "SELECT * FROM {table} WHERE status = %s ORDER BY id"
_POOL_CHECKED = "UPDATE {table} SET checked_at = now() WHERE id = ANY(%s)"
_POOL_DROP = ("WITH d AS (DELETE FROM {table} WHERE id = %s AND status = %s RETURNING 1)"
              " SELECT count(*) FROM d")
_POOL_RETIRED = "DELETE FROM {table} WHERE id = %s AND status = %s"
_POOL_ACCOUNT_NEW = ("INSERT INTO pool_accounts (cvat_username, cvat_password) VALUES (%s, %s)"
                     " RETURNING id")
_POOL_ACCOUNT_RENAMED = ("UPDATE pool_accounts SET cvat_username = %s, cvat_password = %s"
                         " WHERE id = %s")
_POOL_ACCOUNT_REGISTERED = "UPDATE pool_accounts SET cvat_user_id = %s WHERE id = %s"
_POOL_ACCOUNT_VANISHED = "DELETE FROM pool_accounts WHERE id = %s"
_POOL_ACCOUNT_READY = (
    "UPDATE pool_accounts SET status = %(ready)s, inactive = %(inactive)s, ready_at = now(),"
    " checked_at = now(), lease_until = NULL WHERE id = %(id)s AND status = %(creating)s")
_POOL_TASK_ID = "SELECT nextval(pg_get_serial_sequence('pool_tasks', 'id')) AS id"
_POOL_TASK_NEW = ("INSERT INTO pool_tasks (id, task_set, image_subset, cvat_task_name)"
                  " VALUES (%s, %s, %s, %s)")
_POOL_TASK_CREATED = "UPDATE pool_tasks SET cvat_task_id = %s WHERE id = %s"
_POOL_TASK_READY = (
    "UPDATE pool_tasks SET status = %(ready)s, cvat_task_id = %(task)s, cvat_job_id = %(job)s,"
    " ready_at = now(), checked_at = now(), lease_until = NULL"
    " WHERE id = %(id)s AND status = %(creating)s")
_HAND_OUT_ACCOUNT = (
    "WITH taken AS (SELECT id, cvat_username, cvat_password, cvat_user_id, inactive"
    "  FROM pool_accounts WHERE status = %(ready)s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " UPDATE pool_accounts p SET status = %(handed_out)s, candidate_id = %(candidate)s,"
    " handed_out_at = now(), lease_until = NULL, cvat_password = NULL FROM taken"
    " WHERE p.id = taken.id"
    " RETURNING taken.cvat_username, taken.cvat_password, taken.cvat_user_id, taken.inactive")
_HAND_OUT_TASK = (
    "UPDATE pool_tasks SET status = %(handed_out)s, attempt_id = %(attempt)s,"
    " handed_out_at = now()"
    " WHERE id = (SELECT id FROM pool_tasks WHERE status = %(ready)s AND task_set = %(set)s"
    "  AND NOT image_subset && %(seen)s::text[] ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING cvat_task_id, cvat_job_id, cvat_task_name, image_subset")

_S = AttemptStatus
_STATUSES = {"creating": _S.CREATING, "ready": _S.READY, "submitted": _S.SUBMITTED,
             "graded": _S.GRADED, "failed": _S.FAILED, "expired": _S.EXPIRED,
             "used": USED_STATUSES}
_POOL_STATUSES = {"creating": PoolStatus.CREATING, "ready": PoolStatus.READY,
                  "handed_out": PoolStatus.HANDED_OUT}


def _attempt(row: dict[str, Any] | None) -> Attempt | None:
    return Attempt.from_row(row) if row else None


# ----------------------------------------------------------------------------- the mark

def installation_mark(cur: Cursor) -> str:
    """Inside a transaction: this database's mark, made the first time it is asked for (two
    processes asking at once agree on one)."""
    cur.execute(_MARK)
    row = cur.fetchone()
    if row is None:
        cur.execute(_MAKE_MARK, (secrets.token_hex(MARK_BYTES),))
        cur.execute(_MARK)
        row = cur.fetchone()
    return str(row["mark"])


def database_now(cur: Cursor) -> datetime:
    """Inside a transaction: the database's clock (the one leases are judged by)."""
    cur.execute(_NOW)
    now: datetime = cur.fetchone()["now"]
    return now


# ------------------------------------------------------------------------ reading attempts

def latest_in(cur: Cursor, candidate_id: int) -> Attempt | None:
    """Inside a transaction: the candidate's newest attempt."""
    cur.execute(_LATEST, (candidate_id,))
    return _attempt(cur.fetchone())


def used_in(cur: Cursor, candidate_id: int) -> int:
    """Inside a transaction: how many attempts the candidate has used."""
    cur.execute(_USED, (candidate_id, USED_STATUSES))
    return int(cur.fetchone()["count"])


def seen_images(cur: Cursor, candidate_id: int, task_set: str,
                but: int | None = None) -> list[str]:
    """Every image of the set the candidate had in an attempt (but attempt `but`)."""
    cur.execute(_SEEN, (candidate_id, task_set, but))
    return list(cur.fetchone()["seen"])


async def get_attempt(db: Database, attempt_id: int) -> Attempt:
    """One attempt by id."""
    row = await db.fetchone(_BY_ID, (attempt_id,))
    assert row is not None, f"attempt {attempt_id} does not exist"
    return Attempt.from_row(row)


async def latest_attempt(db: Database, candidate_id: int) -> Attempt | None:
    """The candidate's newest attempt."""
    return _attempt(await db.fetchone(_LATEST, (candidate_id,)))


async def count_used(db: Database, candidate_id: int) -> int:
    """Attempts the candidate has used (submitted, graded or expired)."""
    return int(await db.fetchval(_USED, (candidate_id, USED_STATUSES)))


async def interrupted_attempts(db: Database) -> list[Attempt]:
    """Attempts whose builder stopped (lease expired) and failed ones with a task left on
    CVAT: what start-up reconciles."""
    rows = await db.fetchall(_INTERRUPTED, _STATUSES)
    return [Attempt.from_row(r) for r in rows]


async def visit_row(db: Database, telegram_id: int, username: str | None,
                    full_name: str, first_language: str) -> dict[str, Any]:
    """One round trip per update: record that the user wrote, and read their language, their
    candidate stage figures and whether they are on the HR whitelist. A user without a stored
    language gets `first_language` stored. The row is written only when it is new or has no
    language yet, when the name changed, or when its last write is older than
    VISIT_WRITE_INTERVAL: a user tapping through menus costs reads, not writes."""
    row = await db.fetchone(_VISIT, {"id": telegram_id, "username": username,
                                     "name": full_name, "language": first_language,
                                     "used": USED_STATUSES, "interval": VISIT_WRITE_INTERVAL})
    assert row is not None
    return row


async def stage_row(db: Database, telegram_id: int) -> dict[str, Any]:
    """The candidate stage figures and whitelist flag of a user, without recording a visit."""
    row = await db.fetchone(_STAGE, {"id": telegram_id, "used": USED_STATUSES})
    assert row is not None
    return row


# --------------------------------------------------------- transitions: opening and building

def insert_attempt(cur: Cursor, candidate_id: int, number: int, task_set: str,
                   images: list[str], lease: timedelta) -> Attempt:
    """Inside a transaction: a new attempt, `creating` under a lease to this caller, named."""
    cur.execute(_INSERT, (candidate_id, number, task_set, images, lease, new_lease_owner()))
    attempt = Attempt.from_row(cur.fetchone())
    cur.execute(_NAME_TASK, (task_name(candidate_id, number, attempt.id, installation_mark(cur)),
                             attempt.id))
    return Attempt.from_row(cur.fetchone())


def take_lease(cur: Cursor, attempt_id: int, lease: timedelta) -> Attempt | None:
    """Inside a transaction: creating/failed -> creating, under a new lease to this caller;
    None when someone else holds a lease on it now."""
    cur.execute(_TAKE_LEASE, {**_STATUSES, "lease": lease, "owner": new_lease_owner(),
                              "id": attempt_id})
    return _attempt(cur.fetchone())


def give_pooled_task(cur: Cursor, attempt: Attempt) -> Attempt:
    """Inside a transaction: the oldest ready pooled task with no image the candidate had
    before becomes the attempt's (its images too); the attempt as it was when none fits."""
    seen = seen_images(cur, attempt.candidate_id, attempt.task_set, but=attempt.id)
    cur.execute(_HAND_OUT_TASK, {**_POOL_STATUSES, "attempt": attempt.id,
                                 "set": attempt.task_set, "seen": seen})
    row = cur.fetchone()
    if row is None:
        return attempt
    pooled = PooledTask(**row)
    cur.execute(_GIVE_POOLED_TASK, (pooled.cvat_task_id, pooled.cvat_job_id,
                                    pooled.cvat_task_name, pooled.image_subset, attempt.id))
    return Attempt.from_row(cur.fetchone())


async def record_step(db: Database, attempt_id: int, owner: str | None,
                      lease: timedelta | None = None, **values: Any) -> Attempt:
    """Record step results (cvat_task_id, ...) and, with `lease`, extend the building lease;
    only while `owner` holds the lease of a creating attempt, else LeaseLost."""
    sets = ", ".join(["updated_at = now()",
                      *(["lease_until = now() + %(lease)s"] if lease else []),
                      *(f"{name} = %({name})s" for name in values)])
    row = await db.fetchone(_RECORD_STEP.format(sets=sets),
                            {**values, **_STATUSES, "lease": lease, "id": attempt_id,
                             "owner": owner})
    if row is None:
        raise LeaseLost(f"attempt {attempt_id}")
    return Attempt.from_row(row)


async def forget_lost_task(db: Database, attempt: Attempt) -> Attempt:
    """The attempt's (pooled) task is gone from CVAT: drop it, so the build makes a new one
    under the attempt's own name (only by the lease's holder, else LeaseLost)."""

    def work(cur: Cursor) -> dict[str, Any] | None:
        name = task_name(attempt.candidate_id, attempt.number, attempt.id,
                         installation_mark(cur))
        cur.execute(_FORGET_LOST_TASK, {**_STATUSES, "name": name, "id": attempt.id,
                                        "owner": attempt.lease_owner})
        return cur.fetchone()

    row = await db.run(work)
    if row is None:
        raise LeaseLost(f"attempt {attempt.id}")
    return Attempt.from_row(row)


async def mark_ready(db: Database, attempt_id: int, owner: str | None, job_id: int,
                     task_started: datetime) -> None:
    """creating -> ready: the task is assigned, the candidate can work (only by the lease's
    holder, else LeaseLost)."""
    done = await db.execute(_MARK_READY, {**_STATUSES, "job": job_id, "started": task_started,
                                          "id": attempt_id, "owner": owner})
    if not done:
        raise LeaseLost(f"attempt {attempt_id}")


async def mark_failed(db: Database, attempt_id: int, owner: str | None, error: str, *,
                      task_deleted: bool, status: str = AttemptStatus.CREATING) -> bool:
    """creating (or failed, for a clean-up) -> failed: a later request resumes it. Forget the
    task only if it was deleted. Only the lease's holder (`owner`, on an attempt in `status`)
    changes anything; whether it did."""
    sql = _MARK_FAILED.format(forget_task=_FORGET_TASK if task_deleted else "")
    done = await db.execute(sql, {**_STATUSES, "error": error[:500], "id": attempt_id,
                                  "status": AttemptStatus(status), "owner": owner})
    return bool(done)


async def lease_failed_attempt(db: Database, attempt: Attempt,
                               lease: timedelta) -> str | None:
    """Take a failed attempt's lease to delete the task it left; the owner token, or None
    when someone else holds it or the task changed."""
    owner = new_lease_owner()
    done = await db.execute(_LEASE_FAILED, {**_STATUSES, "lease": lease, "owner": owner,
                                            "id": attempt.id, "task": attempt.cvat_task_id})
    return owner if done else None


# --------------------------------------------------------- transitions: checking and grading

async def claim_check(db: Database, attempt_id: int, claim: timedelta) -> bool:
    """Take a ready attempt for one check, for `claim` (False: another press has it)."""
    return await db.execute(_CLAIM_CHECK, {**_STATUSES, "claim": claim, "id": attempt_id}) == 1


async def release_check(db: Database, attempt_id: int, *, job_open: bool) -> None:
    """The check is over. With the job still closed the claim is left expired, so that
    reconciliation gives the job back."""
    await db.execute(_RELEASE_CHECK, (job_open, attempt_id))


async def abandoned_checks(db: Database) -> list[OpenCheck]:
    """Open attempts whose check claim ran out."""
    rows = await db.fetchall(_ABANDONED_CHECKS, (AttemptStatus.READY,))
    return [OpenCheck(**row) for row in rows]


async def mark_submitted(db: Database, attempt_id: int, ended: datetime | None,
                         work: str) -> bool:
    """ready -> submitted, with the stored copy of the work; whether it happened (False: it
    was submitted already, or expired)."""
    return await db.execute(_MARK_SUBMITTED, {**_STATUSES, "ended": ended, "work": work,
                                              "id": attempt_id}) == 1


async def submitted_work(db: Database, attempt_id: int) -> SubmittedWork | None:
    """What grading reads of the attempt, or None when there is no such attempt."""
    row = await db.fetchone(_SUBMITTED_WORK, (attempt_id,))
    return SubmittedWork(**row) if row else None


def mark_graded(cur: Cursor, attempt_id: int) -> bool:
    """Inside the transaction that stores its metrics: submitted (or graded, a re-grade) ->
    graded; whether it happened."""
    cur.execute(_MARK_GRADED, {**_STATUSES, "id": attempt_id})
    return cur.rowcount == 1


async def record_grading_failure(db: Database, attempt_id: int, error: str,
                                 retries: tuple[timedelta, ...]) -> None:
    """Keep why grading failed and when to try again (after the next of `retries`)."""
    await db.execute(_GRADING_FAILED, (error[:500], [str(pause) for pause in retries],
                                       len(retries), attempt_id))


async def attempts_to_regrade(db: Database, older_than: timedelta, tries: int) -> list[int]:
    """Submitted attempts left ungraded for `older_than`, due for another try."""
    rows = await db.fetchall(_TO_REGRADE, (AttemptStatus.SUBMITTED, older_than, tries))
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class AttemptRef:
    """An attempt by id and number."""

    id: int
    number: int


_WITH_WORK = ("SELECT id, number FROM attempts WHERE candidate_id = %s"
              " AND submitted_annotations IS NOT NULL AND status IN %s ORDER BY number")


async def attempts_with_work(db: Database, candidate_id: int) -> list[AttemptRef]:
    """The candidate's submitted or graded attempts with their stored work, oldest first."""
    rows = await db.fetchall(_WITH_WORK, (candidate_id, (AttemptStatus.SUBMITTED,
                                                         AttemptStatus.GRADED)))
    return [AttemptRef(**row) for row in rows]


# ------------------------------------------------------------------ transitions: deadlines

async def overdue_attempts(db: Database, deadline: timedelta) -> list[int]:
    """Ready attempts past their deadline and not being checked."""
    rows = await db.fetchall(_OVERDUE, {**_STATUSES, "deadline": deadline})
    return [row["id"] for row in rows]


async def mark_expired(db: Database, attempt_id: int) -> bool:
    """ready -> expired; whether it happened."""
    return await db.execute(_EXPIRE, {**_STATUSES, "id": attempt_id}) == 1


async def claim_reminders(db: Database, deadline: timedelta, before: timedelta) -> list[Notice]:
    """Ready attempts within `before` of their deadline whose candidate was not reminded,
    each claimed for this caller."""
    rows = await db.fetchall(_CLAIM_REMINDERS, {**_STATUSES, "deadline": deadline,
                                                "before": before})
    return [Notice(**row) for row in rows]


async def claim_expiry_notices(db: Database, deadline: timedelta,
                               max_attempts: int) -> list[Notice]:
    """Expired attempts whose candidate was not told yet, each claimed, with attempts left."""
    rows = await db.fetchall(_CLAIM_EXPIRY_NOTICES, {**_STATUSES, "deadline": deadline,
                                                     "max_attempts": max_attempts})
    return [Notice(**row) for row in rows]


async def release_notice(db: Database, attempt_id: int, column: str) -> None:
    """A deadline message could not be sent: clear its claim (`column`)."""
    assert column in ("reminded_at", "expiry_notified_at"), column
    await db.execute(_RELEASE_NOTICE.format(column=column), (attempt_id,))


# ------------------------------------------------------------------------- the warm pool

async def pool_counts(db: Database) -> PoolCounts:
    """The pool's state now, in one query."""
    row = await db.fetchone(_POOL_COUNTS, _POOL_STATUSES)
    assert row is not None
    return PoolCounts(row["ar"], row["ac"], row["tr"], row["tc"])


def lock_pool(cur: Cursor, lock: int, table: PoolTable) -> tuple[datetime, list[PoolRow]]:
    """Inside a transaction, under the pool's lock (until COMMIT): the database's now and the
    rows not handed out."""
    cur.execute(_POOL_LOCK, (lock,))
    now = database_now(cur)
    cur.execute(_POOL_LIVE.format(table=table),
                ((PoolStatus.CREATING, PoolStatus.READY, PoolStatus.RETIRING),))
    return now, [PoolRow.from_row(row) for row in cur.fetchall()]


def lease_pool_rows(cur: Cursor, table: PoolTable, ids: list[int], lease: timedelta,
                    status: PoolStatus | None = None,
                    resumed: list[int] | None = None) -> list[PoolRow]:
    """Inside a transaction: lease these rows to this process (moving them to `status`), by id;
    each marked `resumed` if in `resumed` (all when it is None)."""
    if not ids:
        return []
    new_status = ", status = %(status)s" if status else ""
    cur.execute(_POOL_LEASE.format(table=table, new_status=new_status),
                {"lease": lease, "ids": ids, "status": status})
    again = set(ids if resumed is None else resumed)
    return sorted((PoolRow.from_row(row, row["id"] in again) for row in cur.fetchall()),
                  key=lambda r: r.id)


def new_pool_account(cur: Cursor, username: str, password: str) -> int:
    """Inside a transaction: a new pooled account's row (before it exists on CVAT); its id."""
    cur.execute(_POOL_ACCOUNT_NEW, (username, password))
    return int(cur.fetchone()["id"])


def new_pool_task(cur: Cursor, task_set: str, images: list[str]) -> int:
    """Inside a transaction: a new pooled task's row, named (before it exists on CVAT); its
    id."""
    cur.execute(_POOL_TASK_ID)
    row_id = int(cur.fetchone()["id"])
    cur.execute(_POOL_TASK_NEW, (row_id, task_set, images,
                                 pooled_task_name(row_id, installation_mark(cur))))
    return row_id


async def renew_pool_lease(db: Database, table: PoolTable, row_id: int,
                           lease: timedelta) -> None:
    """Extend this process's lease on a pooled row."""
    await db.execute(_POOL_RENEW.format(table=table), (lease, row_id))


async def pool_row_failed(db: Database, table: PoolTable, row_id: int,
                          pause: timedelta) -> None:
    """A build or deletion failed: count it and leave the row alone for `pause`."""
    await db.execute(_POOL_FAILED.format(table=table), (pause, row_id))


async def let_pool_row_go(db: Database, table: PoolTable, row_id: int) -> None:
    """A clean stop: the row is free for the next process at once."""
    await db.execute(_POOL_LET_GO.format(table=table), (row_id,))


async def rename_pool_account(db: Database, row_id: int, username: str,
                              password: str) -> None:
    """The name was taken on CVAT: the row gets another name (and password)."""
    await db.execute(_POOL_ACCOUNT_RENAMED, (username, password, row_id))


async def pool_account_registered(db: Database, row_id: int, user_id: int) -> None:
    """Record the registered pooled account's id."""
    await db.execute(_POOL_ACCOUNT_REGISTERED, (user_id, row_id))


async def pool_account_vanished(db: Database, row_id: int) -> None:
    """The account went from CVAT while being made: its row goes (another replaces it)."""
    await db.execute(_POOL_ACCOUNT_VANISHED, (row_id,))


async def pool_account_ready(db: Database, row_id: int, inactive: bool) -> None:
    """creating -> ready for a pooled account."""
    await db.execute(_POOL_ACCOUNT_READY, {**_POOL_STATUSES, "inactive": inactive,
                                           "id": row_id})


async def pool_task_created(db: Database, row_id: int, task_id: int | None) -> None:
    """Record the pooled task's CVAT id as soon as it exists."""
    await db.execute(_POOL_TASK_CREATED, (task_id, row_id))


async def pool_task_ready(db: Database, row_id: int, task_id: int, job_id: int) -> None:
    """creating -> ready for a pooled task."""
    await db.execute(_POOL_TASK_READY, {**_POOL_STATUSES, "task": task_id, "job": job_id,
                                        "id": row_id})


async def pool_row_retired(db: Database, table: PoolTable, row_id: int) -> None:
    """The pooled thing was deleted from CVAT: its retiring row goes."""
    await db.execute(_POOL_RETIRED.format(table=table), (row_id, PoolStatus.RETIRING))


async def ready_pool_rows(db: Database, table: PoolTable) -> list[PoolRow]:
    """The ready rows of a pool table, oldest first."""
    rows = await db.fetchall(_POOL_READY_ROWS.format(table=table), (PoolStatus.READY,))
    return [PoolRow.from_row(row) for row in rows]


async def pool_rows_checked(db: Database, table: PoolTable, ids: list[int]) -> None:
    """Record that these rows were just seen on CVAT (one statement for all)."""
    if ids:
        await db.execute(_POOL_CHECKED.format(table=table), (ids,))


async def drop_ready_pool_row(db: Database, table: PoolTable, row_id: int) -> bool:
    """Drop a ready row (what it named is gone or no longer ours); whether it was ready."""
    return bool(await db.fetchval(_POOL_DROP.format(table=table), (row_id, PoolStatus.READY)))


def hand_out_account(cur: Cursor, candidate_id: int) -> PooledAccount | None:
    """Inside a transaction: the oldest ready pooled account, now the candidate's (`SKIP
    LOCKED` lets other replicas take others meanwhile); the pool forgets its password."""
    cur.execute(_HAND_OUT_ACCOUNT, {**_POOL_STATUSES, "candidate": candidate_id})
    row = cur.fetchone()
    return PooledAccount(**row) if row else None


_POOL_FORGET_CANDIDATE = "DELETE FROM pool_accounts WHERE candidate_id = %s"


def forget_pool_accounts(cur: Cursor, candidate_id: int) -> None:
    """Inside the transaction that deletes a candidate: the pool's rows of accounts handed to
    them."""
    cur.execute(_POOL_FORGET_CANDIDATE, (candidate_id,))
