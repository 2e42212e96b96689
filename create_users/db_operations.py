"""SQL for `candidates`, and the language choice in `telegram_users` (a visit is recorded by
tasks_generator.attempts.visit_row, in the same round trip that reads the menu's figures)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db import Cursor, Database


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


def take_pooled_account(cur: Cursor, candidate: Candidate) -> Candidate:
    """Inside the transaction that opens an attempt (the candidate's row locked): give the
    candidate the oldest ready account of the warm pool, if they need one and the pool has one.

    Only a candidate with no account name yet (or whose account was deleted) takes one: a name
    reserved for an on-demand registration may already be registered on CVAT. `SKIP LOCKED`
    lets other replicas take other accounts meanwhile; the row's status makes it one-off."""
    if candidate.cvat_username is not None and candidate.cvat_deleted_at is None:
        return candidate
    # The pool's copy of the password is forgotten at hand-out: the candidate's row has it.
    cur.execute(
        "WITH taken AS (SELECT id, cvat_username, cvat_password, cvat_user_id, inactive"
        "  FROM pool_accounts WHERE status = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " UPDATE pool_accounts p SET status = 'handed_out', candidate_id = %s,"
        " handed_out_at = now(), lease_until = NULL, cvat_password = NULL FROM taken"
        " WHERE p.id = taken.id"
        " RETURNING taken.cvat_username, taken.cvat_password, taken.cvat_user_id, taken.inactive",
        (candidate.id,),
    )
    pooled = cur.fetchone()
    if pooled is None:
        return candidate
    cur.execute(
        "UPDATE candidates SET cvat_username = %s, cvat_password = %s, cvat_user_id = %s,"
        " cvat_deleted_at = NULL, cvat_deactivated_at = NULL, cvat_reactivated_at = NULL,"
        " cvat_activation_pending = %s WHERE id = %s"
        f" RETURNING {_CANDIDATE_COLUMNS}",
        (pooled["cvat_username"], pooled["cvat_password"], pooled["cvat_user_id"],
         pooled["inactive"], candidate.id),
    )
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
