"""The one home of `candidates`, `telegram_users`, `deleted_candidates` and `privacy_notices`:
their SQL and typed rows (a visit is recorded by tasks_generator.repository.visit_row, in the
same round trip that reads the menu's figures). Functions taking a `Cursor` run inside the
caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from db import Cursor, Database
from tasks_generator.repository import USED_STATUSES, AttemptStatus


@dataclass(frozen=True)
class Candidate:
    """A person taking the test, and their CVAT account once it exists."""

    id: int
    telegram_id: int
    telegram_username: str | None
    full_name: str
    cvat_username: str | None
    cvat_password: str | None
    cvat_user_id: int | None
    created_at: datetime
    cvat_deleted_at: datetime | None
    extra_attempts: int
    cvat_activation_pending: bool = False
    cvat_deactivated_at: datetime | None = None

    @property
    def password_forgotten(self) -> bool:
        """The account exists but its password was forgotten after the last graded attempt:
        a new attempt needs a new account."""
        return (self.cvat_user_id is not None and self.cvat_deleted_at is None
                and self.cvat_password is None)


_CANDIDATE_COLUMNS = (
    "id, telegram_id, telegram_username, full_name, cvat_username, cvat_password, cvat_user_id,"
    " created_at, cvat_deleted_at, extra_attempts, cvat_activation_pending, cvat_deactivated_at"
)
_GIVE_POOLED_ACCOUNT = (
    "UPDATE candidates SET cvat_username = %s, cvat_password = %s, cvat_user_id = %s,"
    " cvat_deleted_at = NULL, cvat_deactivated_at = NULL, cvat_reactivated_at = NULL,"
    f" cvat_activation_pending = %s WHERE id = %s RETURNING {_CANDIDATE_COLUMNS}")


def tombstone_hash_sql(telegram_id_sql: str) -> str:
    """SQL for the keyed hash naming a Telegram id in `deleted_candidates` (the key lives in
    `tombstone_key`): a deleted person is recognised again without keeping who they were."""
    return ("encode(sha256(convert_to((SELECT secret FROM tombstone_key) || ':' || "
            f"({telegram_id_sql})::text, 'UTF8')), 'hex')")


async def set_language(db: Database, telegram_id: int, language: str) -> None:
    """Remember the user's chosen language."""
    await db.execute(
        "INSERT INTO telegram_users (telegram_id, language) VALUES (%s, %s)"
        " ON CONFLICT (telegram_id) DO UPDATE SET language = EXCLUDED.language",
        (telegram_id, language),
    )


async def user_language(db: Database, telegram_id: int) -> str | None:
    """The language the user chose, or None."""
    return await db.fetchval("SELECT language FROM telegram_users WHERE telegram_id = %s",
                             (telegram_id,))


async def user_name(db: Database, telegram_id: int) -> str | None:
    """The name the user last wrote with, or None (never seen, or forgotten)."""
    return await db.fetchval("SELECT full_name FROM telegram_users WHERE telegram_id = %s",
                             (telegram_id,))


@dataclass(frozen=True)
class Correspondent:
    """Someone HR write to: their candidate row id (None if they are not a candidate) and
    the name to show HR (their Telegram id when no name is known)."""

    candidate_id: int | None
    name: str


async def correspondent(db: Database, telegram_id: int) -> Correspondent:
    """Who `telegram_id` is, as HR answering them see it."""
    candidate = await get_candidate(db, telegram_id)
    if candidate is not None:
        return Correspondent(candidate.id, candidate.full_name or str(telegram_id))
    return Correspondent(None, await user_name(db, telegram_id) or str(telegram_id))


def lock_or_create_candidate(
    cur: Cursor, telegram_id: int, username: str | None, full_name: str
) -> Candidate:
    """Inside a transaction: the candidate's row, created if new, locked until COMMIT (so two
    presses or two replicas handle one candidate one at a time)."""
    # A person whose data HR deleted before starts as a new candidate, marked as returning.
    cur.execute(
        "INSERT INTO candidates (telegram_id, telegram_username, full_name, returned_after,"
        " previous_attempts, previously_tested_at) SELECT %(id)s, %(username)s, %(name)s,"
        " d.deleted_at, coalesce(d.attempts_used, 0), d.tested_at"
        " FROM (SELECT 1) one LEFT JOIN deleted_candidates d"
        f" ON d.telegram_hash = {tombstone_hash_sql('%(id)s')}"
        " ON CONFLICT (telegram_id) DO UPDATE SET telegram_username = EXCLUDED.telegram_username,"
        " full_name = EXCLUDED.full_name"
        f" RETURNING {_CANDIDATE_COLUMNS}",
        {"id": telegram_id, "username": username, "name": full_name},
    )
    row = cur.fetchone()
    cur.execute("SELECT 1 FROM candidates WHERE id = %s FOR UPDATE", (row["id"],))
    return Candidate(**row)


async def get_candidate(db: Database, telegram_id: int) -> Candidate | None:
    """The candidate with this Telegram id, or None."""
    row = await db.fetchone(
        f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE telegram_id = %s", (telegram_id,)
    )
    return Candidate(**row) if row else None


async def get_candidate_by_id(db: Database, candidate_id: int) -> Candidate | None:
    """The candidate with this row id, or None."""
    row = await db.fetchone(
        f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE id = %s", (candidate_id,)
    )
    return Candidate(**row) if row else None


async def extra_attempts(db: Database, candidate_id: int) -> int:
    """The attempts HR granted the candidate beyond the setting (0 for none, or no candidate)."""
    extra = await db.fetchval("SELECT extra_attempts FROM candidates WHERE id = %s",
                              (candidate_id,))
    return int(extra or 0)


def grant_attempt(cur: Cursor, candidate_id: int) -> int | None:
    """Inside a transaction: one more attempt for the candidate; the new number of extra
    attempts, None if gone."""
    cur.execute("UPDATE candidates SET extra_attempts = extra_attempts + 1"
                " WHERE id = %s RETURNING extra_attempts", (candidate_id,))
    row = cur.fetchone()
    return int(row["extra_attempts"]) if row else None


async def reserve_cvat_credentials(
    db: Database, candidate_id: int, username: str, password: str
) -> Candidate:
    """Store the account's name and password BEFORE registering it, so the database always
    knows every account the bot may have created. Replaces earlier ones only while no account
    exists under them (none registered yet, or the old one was deleted)."""
    row = await db.fetchone(
        "UPDATE candidates SET cvat_username = %s, cvat_password = %s, cvat_user_id = NULL,"
        " cvat_deleted_at = NULL, cvat_deactivated_at = NULL, cvat_reactivated_at = NULL"
        " WHERE id = %s"
        " AND (cvat_user_id IS NULL OR cvat_deleted_at IS NOT NULL)"
        f" RETURNING {_CANDIDATE_COLUMNS}",
        (username, password, candidate_id),
    )
    if row is None:
        row = await db.fetchone(f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE id = %s",
                                (candidate_id,))
    assert row is not None
    return Candidate(**row)


async def set_cvat_user_id(db: Database, candidate_id: int, user_id: int) -> None:
    """Record the registered account's id."""
    await db.execute(
        "UPDATE candidates SET cvat_user_id = %s, cvat_deleted_at = NULL WHERE id = %s",
        (user_id, candidate_id),
    )


def give_pooled_account(cur: Cursor, candidate_id: int, username: str, password: str,
                        user_id: int, *, pending_activation: bool) -> Candidate:
    """Inside the transaction that opens an attempt: the candidate's account is now the pooled
    one handed out (a new name, password and id)."""
    cur.execute(_GIVE_POOLED_ACCOUNT, (username, password, user_id, pending_activation,
                                       candidate_id))
    return Candidate(**cur.fetchone())


async def mark_account_activated(db: Database, candidate_id: int) -> None:
    """The pooled account handed to the candidate can log in now."""
    await db.execute("UPDATE candidates SET cvat_activation_pending = false WHERE id = %s",
                     (candidate_id,))


async def forget_lost_account(db: Database, candidate_id: int) -> Candidate:
    """The candidate's account is gone from CVAT (deleted by hand, server reset): record it as
    deleted, so the next step registers a new one."""
    row = await db.fetchone(
        "UPDATE candidates SET cvat_deleted_at = now(), cvat_activation_pending = false"
        f" WHERE id = %s RETURNING {_CANDIDATE_COLUMNS}", (candidate_id,))
    assert row is not None
    return Candidate(**row)


# --------------------------------------------------------------- the account after the test

# Every allowed attempt used, and every attempt graded (or expired): the test is over for this
# candidate.
_FINISHED = (
    "(SELECT count(*) FROM attempts a WHERE a.candidate_id = c.id AND a.status IN %(used)s)"
    " >= %(max_attempts)s + c.extra_attempts"
    " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
    "  AND a.status NOT IN %(closed)s)"
)
_CLOSED = (AttemptStatus.GRADED, AttemptStatus.EXPIRED)
_FORGET_PASSWORDS = ("UPDATE candidates c SET cvat_password = NULL"
                     f" WHERE c.cvat_password IS NOT NULL AND {_FINISHED}{{only}}")
_TO_DEACTIVATE = (
    "SELECT c.id AS candidate_id, c.cvat_user_id, c.cvat_username FROM candidates c"
    " WHERE c.cvat_user_id IS NOT NULL AND c.cvat_deleted_at IS NULL"
    f" AND c.cvat_deactivated_at IS NULL AND {_FINISHED}"
    " AND greatest((SELECT max(m.graded_at) FROM metrics m WHERE m.candidate_id = c.id),"
    "  (SELECT max(a.expired_at) FROM attempts a WHERE a.candidate_id = c.id),"
    "  c.cvat_reactivated_at) < now() - %(after)s ORDER BY c.id")
_ACCOUNT_GONE = "UPDATE candidates SET cvat_deleted_at = now() WHERE id = %s"
_DEACTIVATED = ("UPDATE candidates SET cvat_deactivated_at = now() WHERE id = %s"
                " AND cvat_user_id = %s")
_DEACTIVATED_ACCOUNT = (
    "SELECT id AS candidate_id, cvat_user_id, cvat_username FROM candidates WHERE id = %s"
    " AND cvat_deactivated_at IS NOT NULL AND cvat_deleted_at IS NULL")
_REACTIVATED = ("UPDATE candidates SET cvat_deactivated_at = NULL, cvat_reactivated_at = now()"
                "{gone} WHERE id = %s")


@dataclass(frozen=True)
class CvatAccount:
    """A candidate's registered CVAT account."""

    candidate_id: int
    cvat_user_id: int
    cvat_username: str | None


async def forget_finished_passwords_sql(db: Database, max_attempts: int,
                                        candidate_id: int | None = None) -> int:
    """Forget the password of every candidate whose test is over (or of one); how many. One
    statement: a grant of one more attempt (the same row) is never lost in between."""
    only = " AND c.id = %(candidate)s" if candidate_id is not None else ""
    return await db.execute(_FORGET_PASSWORDS.format(only=only),
                            {"max_attempts": max_attempts, "candidate": candidate_id,
                             "used": USED_STATUSES, "closed": _CLOSED})


async def accounts_to_deactivate(db: Database, max_attempts: int,
                                 after: timedelta) -> list[CvatAccount]:
    """Accounts of candidates whose test has been over for `after` (from the last grading,
    expiry or HR's reactivation), still active."""
    rows = await db.fetchall(_TO_DEACTIVATE, {"max_attempts": max_attempts, "after": after,
                                              "used": USED_STATUSES, "closed": _CLOSED})
    return [CvatAccount(**row) for row in rows]


async def account_gone(db: Database, candidate_id: int) -> None:
    """The candidate's account is not on CVAT any more."""
    await db.execute(_ACCOUNT_GONE, (candidate_id,))


async def account_deactivated(db: Database, account: CvatAccount) -> None:
    """The account was deactivated on CVAT (only if it is still the candidate's)."""
    await db.execute(_DEACTIVATED, (account.candidate_id, account.cvat_user_id))


async def deactivated_account(db: Database, candidate_id: int) -> CvatAccount | None:
    """The candidate's account if it is deactivated (and not deleted), else None."""
    row = await db.fetchone(_DEACTIVATED_ACCOUNT, (candidate_id,))
    return CvatAccount(**row) if row else None


async def account_reactivated(db: Database, candidate_id: int, *, gone: bool) -> None:
    """HR let the account log in again (`gone`: it was not on CVAT any more)."""
    await db.execute(_REACTIVATED.format(gone=", cvat_deleted_at = now()" if gone else ""),
                     (candidate_id,))


# ----------------------------------------------------------------- forgetting a candidate

_TO_DELETE = (
    "SELECT c.telegram_id, c.cvat_user_id, c.cvat_deleted_at,"
    " EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
    "  AND a.status = %(creating)s AND a.lease_until > now()) AS building,"
    " coalesce((SELECT array_agg(a.cvat_task_id ORDER BY a.id) FROM attempts a"
    "  WHERE a.candidate_id = c.id AND a.cvat_task_id IS NOT NULL), '{}') AS cvat_task_ids"
    " FROM candidates c WHERE c.id = %(id)s")
_TOMBSTONE = (
    "INSERT INTO deleted_candidates (telegram_hash, attempts_used, tested_at)"
    f" SELECT {tombstone_hash_sql('%(tid)s')},"
    "  count(*) FILTER (WHERE status IN %(used)s), max(submitted_at)"
    "  FROM attempts WHERE candidate_id = %(cid)s"
    " ON CONFLICT (telegram_hash) DO UPDATE SET deleted_at = now(),"
    " attempts_used = deleted_candidates.attempts_used + EXCLUDED.attempts_used,"
    " tested_at = coalesce(EXCLUDED.tested_at, deleted_candidates.tested_at),"
    " deletions = deleted_candidates.deletions + 1")
_DELETE_CANDIDATE = "DELETE FROM candidates WHERE id = %(cid)s"
_DELETE_USER = "DELETE FROM telegram_users WHERE telegram_id = %(tid)s"
_DELETE_CONVERSATION = "DELETE FROM fsm_storage WHERE user_id = %(tid)s"
_LAST_ACTIVITY = (
    "greatest(c.created_at,"
    " (SELECT max(a.updated_at) FROM attempts a WHERE a.candidate_id = c.id),"
    " (SELECT max(a.submitted_at) FROM attempts a WHERE a.candidate_id = c.id),"
    " (SELECT max(m.graded_at) FROM metrics m WHERE m.candidate_id = c.id),"
    " (SELECT u.last_seen_at FROM telegram_users u WHERE u.telegram_id = c.telegram_id))"
)
_INACTIVE = f"SELECT c.id FROM candidates c WHERE {_LAST_ACTIVITY} < %s ORDER BY c.id"
_FORGET_VISITORS = (
    "DELETE FROM telegram_users u WHERE u.last_seen_at < %s AND NOT (u.telegram_id = ANY(%s))"
    " AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.telegram_id = u.telegram_id)"
    " AND NOT EXISTS (SELECT 1 FROM trainingdata_whitelist w"
    "  WHERE w.telegram_id = u.telegram_id)")


@dataclass(frozen=True)
class ToDelete:
    """What deleting a candidate needs to know first."""

    telegram_id: int
    cvat_user_id: int | None
    cvat_deleted_at: datetime | None
    building: bool  # a task is being built for them right now
    cvat_task_ids: list[int]

    @property
    def account_live(self) -> bool:
        """The candidate has an account on CVAT (as far as the bot knows)."""
        return self.cvat_user_id is not None and self.cvat_deleted_at is None


async def candidate_to_delete(db: Database, candidate_id: int) -> ToDelete | None:
    """The candidate's Telegram id, account and tasks, and whether a build is under way."""
    row = await db.fetchone(_TO_DELETE, {"creating": AttemptStatus.CREATING,
                                         "id": candidate_id})
    return ToDelete(**row) if row else None


def leave_tombstone(cur: Cursor, candidate_id: int, telegram_id: int) -> None:
    """Inside the deleting transaction: remember only that this Telegram account was deleted,
    when it was last tested and how many attempts it used."""
    cur.execute(_TOMBSTONE, {"tid": telegram_id, "cid": candidate_id, "used": USED_STATUSES})


def delete_candidate_rows(cur: Cursor, candidate_id: int, telegram_id: int) -> bool:
    """Inside the deleting transaction: the candidate's row (its attempts and metrics go with
    it), their Telegram user and conversation state; whether the candidate was there."""
    params: dict[str, Any] = {"tid": telegram_id, "cid": candidate_id}
    cur.execute(_DELETE_CANDIDATE, params)
    if cur.rowcount != 1:
        return False
    cur.execute(_DELETE_USER, params)
    cur.execute(_DELETE_CONVERSATION, params)
    return True


async def inactive_candidates(db: Database, cutoff: datetime) -> list[int]:
    """Candidates whose last activity was before `cutoff`."""
    return [row["id"] for row in await db.fetchall(_INACTIVE, (cutoff,))]


async def forget_bare_visitors(db: Database, cutoff: datetime, hr_admin_ids: list[int]) -> int:
    """Forget people last seen before `cutoff` who never asked for a task and are not HR."""
    return await db.execute(_FORGET_VISITORS, (cutoff, hr_admin_ids))


# ------------------------------------------------------------------------------ consent

_HAS_CONSENTED = "SELECT 1 FROM telegram_users WHERE telegram_id = %s AND consent_version = %s"
_CONSENT = (
    "WITH notice AS (INSERT INTO privacy_notices (version, text_en, text_ru)"
    " VALUES (%(v)s, %(en)s, %(ru)s) ON CONFLICT (version) DO NOTHING)"
    " INSERT INTO telegram_users (telegram_id, consent_version, consented_at)"
    " VALUES (%(id)s, %(v)s, now()) ON CONFLICT (telegram_id) DO UPDATE"
    " SET consent_version = EXCLUDED.consent_version, consented_at = now()")


async def has_consented(db: Database, telegram_id: int, version: str) -> bool:
    """Whether this person agreed to this version of the notice."""
    return bool(await db.fetchval(_HAS_CONSENTED, (telegram_id, version)))


async def store_consent(db: Database, telegram_id: int, version: str,
                        texts: dict[str, str]) -> None:
    """Store the notice (once per version) and that this person agreed to it now."""
    await db.execute(_CONSENT, {"v": version, "en": texts["en"], "ru": texts["ru"],
                                "id": telegram_id})
