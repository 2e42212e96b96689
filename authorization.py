"""The HR gate: who counts as HR (the whitelist table plus HR_ADMIN_IDS from the settings),
the router filter built on it, the whitelist itself and each HR user's notification switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


async def hr_members(db: Database, admin_ids: frozenset[int]) -> list[HrMember]:
    """Every HR user with what the bot knows of them, settings' admins first, then by id."""
    rows = await db.fetchall(
        "SELECT ids.telegram_id, w.telegram_id IS NOT NULL AS on_whitelist, w.added_at,"
        " COALESCE(u.username, w.username) AS username, COALESCE(u.full_name, '') AS full_name"
        " FROM (SELECT telegram_id FROM trainingdata_whitelist"
        "       UNION SELECT unnest(%s::bigint[])) ids"
        " LEFT JOIN trainingdata_whitelist w ON w.telegram_id = ids.telegram_id"
        " LEFT JOIN telegram_users u ON u.telegram_id = ids.telegram_id",
        (sorted(admin_ids),),
    )
    members = [HrMember(row["telegram_id"], row["username"], row["full_name"],
                        row["telegram_id"] in admin_ids, row["on_whitelist"], row["added_at"])
               for row in rows]
    return sorted(members, key=lambda m: (not m.from_settings, m.telegram_id))


async def add_to_whitelist(db: Database, actor_id: int, telegram_id: int,
                           username: str | None = None) -> bool:
    """Put a user on the whitelist; False if they were already there. Logged."""
    added = await db.fetchval(
        "INSERT INTO trainingdata_whitelist (telegram_id, username, added_by)"
        " VALUES (%s, %s, %s) ON CONFLICT (telegram_id) DO NOTHING RETURNING true",
        (telegram_id, username, actor_id),
    )
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
        if not (listed - {telegram_id}) and not admin_ids:
            return "last"
        cur.execute("DELETE FROM trainingdata_whitelist WHERE telegram_id = %s", (telegram_id,))
        return "removed"

    outcome = await db.run(work)
    await record_action(db, actor_id, "hr.whitelist_remove", ok=outcome == "removed",
                        details={"telegram_id": telegram_id, "outcome": outcome})
    return outcome


# --- notifications ---------------------------------------------------------------------------


async def notifications_on(db: Database, telegram_id: int) -> bool:
    """Whether this HR user gets a message after each graded submission (on by default)."""
    value = await db.fetchval("SELECT notifications FROM hr_preferences WHERE telegram_id = %s",
                              (telegram_id,))
    return value is not False


async def set_notifications(db: Database, telegram_id: int, on: bool) -> None:
    """Switch this HR user's notifications on or off. Logged."""
    await db.execute(
        "INSERT INTO hr_preferences (telegram_id, notifications) VALUES (%s, %s)"
        " ON CONFLICT (telegram_id) DO UPDATE SET notifications = EXCLUDED.notifications",
        (telegram_id, on),
    )
    await record_action(db, telegram_id, "hr.notifications", details={"on": on})


async def notification_recipients(db: Database,
                                  admin_ids: frozenset[int]) -> list[tuple[int, str | None]]:
    """(telegram id, stored language) of every HR user whose notifications are not off."""
    recipients = await hr_recipients(db, admin_ids)
    rows = await db.fetchall(
        "SELECT telegram_id FROM hr_preferences WHERE notifications = false"
        " AND telegram_id = ANY(%s)", ([r[0] for r in recipients],))
    off = {row["telegram_id"] for row in rows}
    return [r for r in recipients if r[0] not in off]
