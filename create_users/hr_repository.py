"""The one home of `trainingdata_whitelist` and `hr_preferences`: who is HR besides the
settings' admins, their role, and how each hears about results. The rules on top (the last
admin stays, the filters) are in `authorization`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum

from db import Cursor, Database


class Role(StrEnum):
    """What an HR user may do: a viewer reads and exports; an admin also decides, grants
    attempts, deletes, and edits the pass rule and the whitelist."""

    VIEWER = "viewer"
    ADMIN = "admin"


class Notify(StrEnum):
    """A message after each graded submission, a daily digest at a set time, or nothing."""

    EACH = "each"
    DIGEST = "digest"
    NONE = "none"


DEFAULT_DIGEST_AT = time(9, 0)

_WHITELISTED = "SELECT telegram_id FROM trainingdata_whitelist"
_LOCK_WHITELIST = "SELECT telegram_id FROM trainingdata_whitelist FOR UPDATE"
_ON_WHITELIST = "SELECT 1 FROM trainingdata_whitelist WHERE telegram_id = %s"
_IS_ADMIN = ("SELECT 1 FROM trainingdata_whitelist w JOIN hr_preferences p USING (telegram_id)"
             " WHERE w.telegram_id = %s AND p.role = %s")
_LANGUAGES = "SELECT telegram_id, language FROM telegram_users WHERE telegram_id = ANY(%s)"
_MEMBERS = (
    "SELECT ids.telegram_id, w.telegram_id IS NOT NULL AS on_whitelist, w.added_at,"
    " COALESCE(u.username, w.username) AS username, COALESCE(u.full_name, '') AS full_name,"
    " p.role"
    " FROM (SELECT telegram_id FROM trainingdata_whitelist"
    "       UNION SELECT unnest(%s::bigint[])) ids"
    " LEFT JOIN trainingdata_whitelist w ON w.telegram_id = ids.telegram_id"
    " LEFT JOIN telegram_users u ON u.telegram_id = ids.telegram_id"
    " LEFT JOIN hr_preferences p ON p.telegram_id = ids.telegram_id")
_ADD = ("INSERT INTO trainingdata_whitelist (telegram_id, username, added_by)"
        " VALUES (%s, %s, %s) ON CONFLICT (telegram_id) DO NOTHING RETURNING true")
_REMOVE = "DELETE FROM trainingdata_whitelist WHERE telegram_id = %s"
_ROLES = "SELECT telegram_id, role FROM hr_preferences WHERE telegram_id = ANY(%s)"
_SET_ROLE = ("INSERT INTO hr_preferences (telegram_id, role) VALUES (%s, %s)"
             " ON CONFLICT (telegram_id) DO UPDATE SET role = EXCLUDED.role")
_NOTIFY_CHOICE = "SELECT notify, digest_at FROM hr_preferences WHERE telegram_id = %s"
_SET_NOTIFY = (
    "INSERT INTO hr_preferences (telegram_id, notify, digest_at)"
    " VALUES (%(id)s, %(mode)s, coalesce(%(at)s, %(default_at)s))"
    " ON CONFLICT (telegram_id) DO UPDATE SET notify = EXCLUDED.notify,"
    " digest_at = coalesce(%(at)s, hr_preferences.digest_at)"
    " RETURNING notify, digest_at")
_NOT_EACH = ("SELECT telegram_id FROM hr_preferences WHERE notify <> %s"
             " AND telegram_id = ANY(%s)")
_CLAIM_DIGESTS = (
    "UPDATE hr_preferences p SET digest_sent_on = %(day)s WHERE p.notify = %(digest)s"
    " AND p.telegram_id = ANY(%(ids)s) AND p.digest_at <= %(time)s"
    " AND p.digest_sent_on IS DISTINCT FROM %(day)s"
    " RETURNING p.telegram_id,"
    " (SELECT u.language FROM telegram_users u WHERE u.telegram_id = p.telegram_id)")


@dataclass(frozen=True)
class MemberRow:
    """A whitelist member or a settings' admin, with what the bot knows of them."""

    telegram_id: int
    on_whitelist: bool
    added_at: datetime | None
    username: str | None
    full_name: str
    role: Role | None


@dataclass(frozen=True)
class NotifyChoice:
    """One HR user's choice."""

    mode: Notify = Notify.EACH
    digest_at: time = DEFAULT_DIGEST_AT


async def whitelisted(db: Database) -> set[int]:
    """Telegram ids on the whitelist."""
    return {row["telegram_id"] for row in await db.fetchall(_WHITELISTED)}


def lock_whitelist(cur: Cursor) -> set[int]:
    """Inside a transaction: the whitelist, locked until COMMIT (two HR changing it at once
    take turns)."""
    cur.execute(_LOCK_WHITELIST)
    return {row["telegram_id"] for row in cur.fetchall()}


async def on_whitelist(db: Database, telegram_id: int) -> bool:
    """Whether the user is on the whitelist."""
    return bool(await db.fetchval(_ON_WHITELIST, (telegram_id,)))


async def whitelisted_admin(db: Database, telegram_id: int) -> bool:
    """Whether the user is on the whitelist with the admin role."""
    return bool(await db.fetchval(_IS_ADMIN, (telegram_id, Role.ADMIN)))


async def languages(db: Database, ids: list[int]) -> dict[int, str | None]:
    """The stored language of each of these users who has one."""
    return {row["telegram_id"]: row["language"] for row in await db.fetchall(_LANGUAGES, (ids,))}


async def members(db: Database, admin_ids: list[int]) -> list[MemberRow]:
    """Every whitelist member and settings' admin."""
    rows = await db.fetchall(_MEMBERS, (admin_ids,))
    return [MemberRow(**{**row, "role": Role(row["role"]) if row["role"] else None})
            for row in rows]


async def add_member(db: Database, actor_id: int, telegram_id: int,
                     username: str | None) -> bool:
    """Put a user on the whitelist as a viewer (a role left from an earlier membership does
    not come back with the person), in one transaction; False if they were already there."""

    def work(cur: Cursor) -> bool:
        cur.execute(_ADD, (telegram_id, username, actor_id))
        if cur.fetchone() is None:
            return False
        cur.execute(_SET_ROLE, (telegram_id, Role.VIEWER))
        return True

    return await db.run(work)


def remove_member(cur: Cursor, telegram_id: int) -> None:
    """Inside a transaction: take the user off the whitelist."""
    cur.execute(_REMOVE, (telegram_id,))


def roles_of(cur: Cursor, ids: list[int]) -> dict[int, Role | None]:
    """Inside a transaction: the role of each of these users (None: never set)."""
    cur.execute(_ROLES, (ids,))
    return dict.fromkeys(ids, None) | {row["telegram_id"]: Role(row["role"])
                                       for row in cur.fetchall()}


def store_role(cur: Cursor, telegram_id: int, role: Role) -> None:
    """Inside a transaction: the user's role."""
    cur.execute(_SET_ROLE, (telegram_id, role))


async def notify_choice(db: Database, telegram_id: int) -> NotifyChoice:
    """How this HR user hears about results (a message after each one, by default)."""
    row = await db.fetchone(_NOTIFY_CHOICE, (telegram_id,))
    return NotifyChoice(Notify(row["notify"]), row["digest_at"]) if row else NotifyChoice()


async def store_notify(db: Database, telegram_id: int, mode: Notify,
                       digest_at: time | None) -> NotifyChoice:
    """Store how this HR user hears about results (and the digest's time); the choice now."""
    row = await db.fetchone(_SET_NOTIFY, {"id": telegram_id, "mode": mode, "at": digest_at,
                                          "default_at": DEFAULT_DIGEST_AT})
    assert row is not None
    return NotifyChoice(Notify(row["notify"]), row["digest_at"])


async def not_each(db: Database, ids: list[int]) -> set[int]:
    """Which of these users chose something else than a message per result."""
    return {row["telegram_id"] for row in await db.fetchall(_NOT_EACH, (Notify.EACH, ids))}


async def claim_digests(db: Database, ids: list[int], day: date,
                        now: time) -> list[tuple[int, str | None]]:
    """(telegram id, stored language) of these users whose digest is due at `now` on `day`,
    marked as sent in the same statement."""
    rows = await db.fetchall(_CLAIM_DIGESTS, {"day": day, "digest": Notify.DIGEST, "ids": ids,
                                              "time": now})
    return sorted((row["telegram_id"], row["language"]) for row in rows)
