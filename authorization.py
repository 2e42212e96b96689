"""The HR gate: who counts as HR (the whitelist table plus HR_ADMIN_IDS from the settings),
their role (viewer or admin), the router filters built on them, the whitelist itself and how
each HR user hears about results (each one, a daily digest, or nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from enum import StrEnum
from typing import Any

from aiogram.filters import BaseFilter
from aiogram.types import TelegramObject, User

from config.env import Settings
from db import Cursor, Database
from log import record_action


async def hr_ids(db: Database, admin_ids: frozenset[int]) -> set[int]:
    """Telegram ids of every HR user: the settings' admins and the whitelist."""
    rows = await db.fetchall("SELECT telegram_id FROM trainingdata_whitelist")
    return set(admin_ids) | {row["telegram_id"] for row in rows}


async def hr_recipients(db: Database, admin_ids: frozenset[int]) -> list[tuple[int, str | None]]:
    """(telegram id, stored language or None) of every HR user, in id order."""
    ids = sorted(await hr_ids(db, admin_ids))
    rows = await db.fetchall(
        "SELECT telegram_id, language FROM telegram_users WHERE telegram_id = ANY(%s)", (ids,)
    )
    languages = {row["telegram_id"]: row["language"] for row in rows}
    return [(hr_id, languages.get(hr_id)) for hr_id in ids]


async def is_hr(db: Database, admin_ids: frozenset[int], telegram_id: int) -> bool:
    """True when the user is an HR admin or on the whitelist."""
    if telegram_id in admin_ids:
        return True
    return bool(await db.fetchval(
        "SELECT 1 FROM trainingdata_whitelist WHERE telegram_id = %s", (telegram_id,)
    ))


class HRFilter(BaseFilter):
    """Router-level filter: passes only updates from HR users (messages and button presses)."""

    async def __call__(self, event: TelegramObject, db: Database, settings: Settings,
                       event_from_user: User | None = None, visitor: Any = None) -> bool:
        if event_from_user is None or event_from_user.is_bot:
            return False
        if visitor is not None:  # read with the update's one round trip (UserContextMiddleware)
            return bool(visitor.hr)
        return await is_hr(db, settings.hr_admin_ids, event_from_user.id)


class Role(StrEnum):
    """What an HR user may do: a viewer reads and exports; an admin also decides, grants
    attempts, deletes, and edits the pass rule and the whitelist."""

    VIEWER = "viewer"
    ADMIN = "admin"


async def is_admin(db: Database, admin_ids: frozenset[int], telegram_id: int) -> bool:
    """True for HR_ADMIN_IDS and for whitelist members with the admin role."""
    if telegram_id in admin_ids:
        return True
    return bool(await db.fetchval(
        "SELECT 1 FROM trainingdata_whitelist w JOIN hr_preferences p USING (telegram_id)"
        " WHERE w.telegram_id = %s AND p.role = 'admin'", (telegram_id,)))


class AdminFilter(BaseFilter):
    """Passes updates from HR users who are not admins (the refusal router's filter, after
    HRFilter)."""

    async def __call__(self, event: TelegramObject, db: Database, settings: Settings,
                       event_from_user: User | None = None) -> bool:
        if event_from_user is None:
            return False
        return not await is_admin(db, settings.hr_admin_ids, event_from_user.id)


# --- the whitelist ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HrMember:
    """One HR user: from the whitelist table, from HR_ADMIN_IDS, or both."""

    telegram_id: int
    username: str | None
    full_name: str
    from_settings: bool
    on_whitelist: bool
    added_at: datetime | None
    role: Role = Role.VIEWER


async def hr_members(db: Database, admin_ids: frozenset[int]) -> list[HrMember]:
    """Every HR user with what the bot knows of them, settings' admins first, then by id."""
    rows = await db.fetchall(
        "SELECT ids.telegram_id, w.telegram_id IS NOT NULL AS on_whitelist, w.added_at,"
        " COALESCE(u.username, w.username) AS username, COALESCE(u.full_name, '') AS full_name,"
        " p.role"
        " FROM (SELECT telegram_id FROM trainingdata_whitelist"
        "       UNION SELECT unnest(%s::bigint[])) ids"
        " LEFT JOIN trainingdata_whitelist w ON w.telegram_id = ids.telegram_id"
        " LEFT JOIN telegram_users u ON u.telegram_id = ids.telegram_id"
        " LEFT JOIN hr_preferences p ON p.telegram_id = ids.telegram_id",
        (sorted(admin_ids),),
    )
    members = [HrMember(row["telegram_id"], row["username"], row["full_name"],
                        row["telegram_id"] in admin_ids, row["on_whitelist"], row["added_at"],
                        Role.ADMIN if row["telegram_id"] in admin_ids
                        else Role(row["role"] or Role.VIEWER))
               for row in rows]
    return sorted(members, key=lambda m: (not m.from_settings, m.telegram_id))


async def add_to_whitelist(db: Database, actor_id: int, telegram_id: int,
                           username: str | None = None) -> bool:
    """Put a user on the whitelist as a viewer; False if they were already there. Logged."""
    added = await db.fetchval(
        "INSERT INTO trainingdata_whitelist (telegram_id, username, added_by)"
        " VALUES (%s, %s, %s) ON CONFLICT (telegram_id) DO NOTHING RETURNING true",
        (telegram_id, username, actor_id),
    )
    if added:  # a role left from an earlier membership does not come back with the person
        await db.execute(
            "INSERT INTO hr_preferences (telegram_id, role) VALUES (%s, 'viewer')"
            " ON CONFLICT (telegram_id) DO UPDATE SET role = 'viewer'", (telegram_id,))
    await record_action(db, actor_id, "hr.whitelist_add",
                        details={"telegram_id": telegram_id, "username": username,
                                 "already": not added})
    return bool(added)


async def remove_from_whitelist(db: Database, actor_id: int, telegram_id: int,
                                admin_ids: frozenset[int]) -> str:
    """Take a user off the whitelist unless they are the last HR user. Logged.

    Returns "removed", "not_found", "settings" (the id comes from HR_ADMIN_IDS and stays HR)
    or "last" (nobody would be left to run the HR menu).
    """

    def work(cur: Cursor) -> str:
        # Locks the whitelist so two HR users removing each other at once cannot both win.
        cur.execute("SELECT telegram_id FROM trainingdata_whitelist FOR UPDATE")
        listed = {row["telegram_id"] for row in cur.fetchall()}
        if telegram_id not in listed:
            return "settings" if telegram_id in admin_ids else "not_found"
        if not admin_ids:
            cur.execute("SELECT count(*) AS n FROM hr_preferences WHERE role = 'admin'"
                        " AND telegram_id = ANY(%s)", (sorted(listed - {telegram_id}),))
            if not cur.fetchone()["n"]:
                return "last"  # nobody left to run the HR menu, or none to administer it
        cur.execute("DELETE FROM trainingdata_whitelist WHERE telegram_id = %s", (telegram_id,))
        return "removed"

    outcome = await db.run(work)
    await record_action(db, actor_id, "hr.whitelist_remove", ok=outcome == "removed",
                        details={"telegram_id": telegram_id, "outcome": outcome})
    return outcome


async def set_role(db: Database, actor_id: int, telegram_id: int, role: Role,
                   admin_ids: frozenset[int]) -> str:
    """Make a whitelist member a viewer or an admin. Logged.

    Returns "changed", "not_found" (not on the whitelist), "settings" (an HR_ADMIN_IDS admin
    stays one) or "last" (the last admin cannot become a viewer)."""

    def work(cur: Cursor) -> str:
        # Locks the whitelist, as removing does: two admins demoting each other at once cannot
        # both win.
        cur.execute("SELECT telegram_id FROM trainingdata_whitelist FOR UPDATE")
        listed = [row["telegram_id"] for row in cur.fetchall()]
        cur.execute("SELECT telegram_id, role FROM hr_preferences WHERE telegram_id = ANY(%s)",
                    (listed,))
        roles = dict.fromkeys(listed, None) | {r["telegram_id"]: r["role"]
                                                for r in cur.fetchall()}
        if telegram_id not in roles:
            return "settings" if telegram_id in admin_ids else "not_found"
        if telegram_id in admin_ids:
            return "settings"
        admins = {tid for tid, r in roles.items() if r == Role.ADMIN} | set(admin_ids)
        if role == Role.VIEWER and admins == {telegram_id}:
            return "last"
        cur.execute("INSERT INTO hr_preferences (telegram_id, role) VALUES (%s, %s)"
                    " ON CONFLICT (telegram_id) DO UPDATE SET role = EXCLUDED.role",
                    (telegram_id, str(role)))
        return "changed"

    outcome = await db.run(work)
    await record_action(db, actor_id, "hr.role", ok=outcome == "changed",
                        details={"telegram_id": telegram_id, "role": str(role),
                                 "outcome": outcome})
    return outcome


# --- how each HR user hears about results ------------------------------------------------------


class Notify(StrEnum):
    """A message after each graded submission, a daily digest at a set time, or nothing."""

    EACH = "each"
    DIGEST = "digest"
    NONE = "none"


DEFAULT_DIGEST_AT = time(9, 0)


@dataclass(frozen=True)
class NotifyChoice:
    """One HR user's choice."""

    mode: Notify = Notify.EACH
    digest_at: time = DEFAULT_DIGEST_AT


async def notify_choice(db: Database, telegram_id: int) -> NotifyChoice:
    """How this HR user hears about results (a message after each one, by default)."""
    row = await db.fetchone("SELECT notify, digest_at FROM hr_preferences WHERE telegram_id = %s",
                            (telegram_id,))
    return NotifyChoice(Notify(row["notify"]), row["digest_at"]) if row else NotifyChoice()


async def set_notify(db: Database, telegram_id: int, mode: Notify,
                     digest_at: time | None = None) -> NotifyChoice:
    """Store how this HR user hears about results (and the digest's time). Logged."""
    row = await db.fetchone(
        "INSERT INTO hr_preferences (telegram_id, notify, digest_at)"
        " VALUES (%(id)s, %(mode)s, coalesce(%(at)s, '09:00'::time))"
        " ON CONFLICT (telegram_id) DO UPDATE SET notify = EXCLUDED.notify,"
        " digest_at = coalesce(%(at)s, hr_preferences.digest_at)"
        " RETURNING notify, digest_at",
        {"id": telegram_id, "mode": str(mode), "at": digest_at})
    assert row is not None
    await record_action(db, telegram_id, "hr.notifications",
                        details={"mode": str(mode), "digest_at": str(row["digest_at"])})
    return NotifyChoice(Notify(row["notify"]), row["digest_at"])


async def notification_recipients(db: Database,
                                  admin_ids: frozenset[int]) -> list[tuple[int, str | None]]:
    """(telegram id, stored language) of every HR user who wants a message per result."""
    recipients = await hr_recipients(db, admin_ids)
    rows = await db.fetchall(
        "SELECT telegram_id FROM hr_preferences WHERE notify <> 'each'"
        " AND telegram_id = ANY(%s)", ([r[0] for r in recipients],))
    other = {row["telegram_id"] for row in rows}
    return [r for r in recipients if r[0] not in other]


async def claim_due_digests(db: Database, admin_ids: frozenset[int], now: datetime,
                            zone: tzinfo) -> list[tuple[int, str | None]]:
    """(telegram id, stored language) of every HR user whose daily digest is due at `now`
    (its time has come in `zone` and none was sent on this local day), marked as sent in
    the same statement: two replicas never send one digest twice."""
    local = now.astimezone(zone)
    ids = sorted(await hr_ids(db, admin_ids))
    rows = await db.fetchall(
        "UPDATE hr_preferences p SET digest_sent_on = %(day)s WHERE p.notify = 'digest'"
        " AND p.telegram_id = ANY(%(ids)s) AND p.digest_at <= %(time)s"
        " AND p.digest_sent_on IS DISTINCT FROM %(day)s"
        " RETURNING p.telegram_id,"
        " (SELECT u.language FROM telegram_users u WHERE u.telegram_id = p.telegram_id)",
        {"day": local.date(), "ids": ids, "time": local.time()})
    return sorted((row["telegram_id"], row["language"]) for row in rows)
