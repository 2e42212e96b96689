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
from create_users import hr_repository
from create_users.hr_repository import DEFAULT_DIGEST_AT, Notify, NotifyChoice, Role, notify_choice
from db import Cursor, Database
from log import record_action, record_action_in

__all__ = ["DEFAULT_DIGEST_AT", "AdminFilter", "HRFilter", "HrMember", "Notify", "NotifyChoice",
           "Role", "RoleOutcome", "WhitelistOutcome", "add_to_whitelist", "claim_due_digests",
           "hr_ids", "hr_members", "hr_recipients", "is_admin", "is_hr",
           "notification_recipients", "notify_choice", "remove_from_whitelist", "set_notify",
           "set_role"]


class WhitelistOutcome(StrEnum):
    """What taking a user off the whitelist did."""

    REMOVED = "removed"
    NOT_FOUND = "not_found"
    SETTINGS = "settings"  # the id comes from HR_ADMIN_IDS and stays HR
    LAST = "last"  # nobody would be left to run the HR menu


class RoleOutcome(StrEnum):
    """What changing an HR user's role did."""

    CHANGED = "changed"
    NOT_FOUND = "not_found"  # not on the whitelist
    SETTINGS = "settings"  # an HR_ADMIN_IDS admin stays one
    LAST = "last"  # the last admin cannot become a viewer


async def hr_ids(db: Database, admin_ids: frozenset[int]) -> set[int]:
    """Telegram ids of every HR user: the settings' admins and the whitelist."""
    return set(admin_ids) | await hr_repository.whitelisted(db)


async def hr_recipients(db: Database, admin_ids: frozenset[int]) -> list[tuple[int, str | None]]:
    """(telegram id, stored language or None) of every HR user, in id order."""
    ids = sorted(await hr_ids(db, admin_ids))
    languages = await hr_repository.languages(db, ids)
    return [(hr_id, languages.get(hr_id)) for hr_id in ids]


async def is_hr(db: Database, admin_ids: frozenset[int], telegram_id: int) -> bool:
    """True when the user is an HR admin or on the whitelist."""
    if telegram_id in admin_ids:
        return True
    return await hr_repository.on_whitelist(db, telegram_id)


class HRFilter(BaseFilter):
    """Router-level filter: passes only updates from HR users (messages and button presses)."""

    async def __call__(self, event: TelegramObject, db: Database, settings: Settings,
                       event_from_user: User | None = None, visitor: Any = None) -> bool:
        if event_from_user is None or event_from_user.is_bot:
            return False
        if visitor is not None:  # read with the update's one round trip (UserContextMiddleware)
            return bool(visitor.hr)
        return await is_hr(db, settings.hr_admin_ids, event_from_user.id)


async def is_admin(db: Database, admin_ids: frozenset[int], telegram_id: int) -> bool:
    """True for HR_ADMIN_IDS and for whitelist members with the admin role."""
    if telegram_id in admin_ids:
        return True
    return await hr_repository.whitelisted_admin(db, telegram_id)


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
    members = [HrMember(row.telegram_id, row.username, row.full_name,
                        row.telegram_id in admin_ids, row.on_whitelist, row.added_at,
                        Role.ADMIN if row.telegram_id in admin_ids
                        else row.role or Role.VIEWER)
               for row in await hr_repository.members(db, sorted(admin_ids))]
    return sorted(members, key=lambda m: (not m.from_settings, m.telegram_id))


async def add_to_whitelist(db: Database, actor_id: int, telegram_id: int,
                           username: str | None = None) -> bool:
    """Put a user on the whitelist as a viewer; False if they were already there. Logged."""
    added = await hr_repository.add_member(db, actor_id, telegram_id, username)
    await record_action(db, actor_id, "hr.whitelist_add",
                        details={"telegram_id": telegram_id, "username": username,
                                 "already": not added})
    return bool(added)


async def remove_from_whitelist(db: Database, actor_id: int, telegram_id: int,
                                admin_ids: frozenset[int]) -> WhitelistOutcome:
    """Take a user off the whitelist unless they are the last HR user. Logged.

    Returns "removed", "not_found", "settings" (the id comes from HR_ADMIN_IDS and stays HR)
    or "last" (nobody would be left to run the HR menu).
    """

    def decide(cur: Cursor) -> WhitelistOutcome:
        # Locks the whitelist so two HR users removing each other at once cannot both win.
        listed = hr_repository.lock_whitelist(cur)
        if telegram_id not in listed:
            return WhitelistOutcome.SETTINGS if telegram_id in admin_ids else \
                WhitelistOutcome.NOT_FOUND
        others = sorted(listed - {telegram_id})
        if not admin_ids and Role.ADMIN not in hr_repository.roles_of(cur, others).values():
            return WhitelistOutcome.LAST  # nobody left to run the HR menu, or to administer it
        hr_repository.remove_member(cur, telegram_id)
        return WhitelistOutcome.REMOVED

    def work(cur: Cursor) -> WhitelistOutcome:
        outcome = decide(cur)
        record_action_in(cur, actor_id, "hr.whitelist_remove",
                         ok=outcome == WhitelistOutcome.REMOVED,
                         details={"telegram_id": telegram_id, "outcome": outcome})
        return outcome

    return await db.run(work)


async def set_role(db: Database, actor_id: int, telegram_id: int, role: Role,
                   admin_ids: frozenset[int]) -> RoleOutcome:
    """Make a whitelist member a viewer or an admin. Logged.

    Returns "changed", "not_found" (not on the whitelist), "settings" (an HR_ADMIN_IDS admin
    stays one) or "last" (the last admin cannot become a viewer)."""

    def decide(cur: Cursor) -> RoleOutcome:
        # Locks the whitelist, as removing does: two admins demoting each other at once cannot
        # both win.
        roles = hr_repository.roles_of(cur, sorted(hr_repository.lock_whitelist(cur)))
        if telegram_id not in roles:
            return RoleOutcome.SETTINGS if telegram_id in admin_ids else RoleOutcome.NOT_FOUND
        if telegram_id in admin_ids:
            return RoleOutcome.SETTINGS
        admins = {tid for tid, r in roles.items() if r == Role.ADMIN} | set(admin_ids)
        if role == Role.VIEWER and admins == {telegram_id}:
            return RoleOutcome.LAST
        hr_repository.store_role(cur, telegram_id, role)
        return RoleOutcome.CHANGED

    def work(cur: Cursor) -> RoleOutcome:
        outcome = decide(cur)
        record_action_in(cur, actor_id, "hr.role", ok=outcome == RoleOutcome.CHANGED,
                         details={"telegram_id": telegram_id, "role": str(role),
                                  "outcome": outcome})
        return outcome

    return await db.run(work)


# --- how each HR user hears about results ------------------------------------------------------


async def set_notify(db: Database, telegram_id: int, mode: Notify,
                     digest_at: time | None = None) -> NotifyChoice:
    """Store how this HR user hears about results (and the digest's time). Logged."""
    choice = await hr_repository.store_notify(db, telegram_id, mode, digest_at)
    await record_action(db, telegram_id, "hr.notifications",
                        details={"mode": str(mode), "digest_at": str(choice.digest_at)})
    return choice


async def notification_recipients(db: Database,
                                  admin_ids: frozenset[int]) -> list[tuple[int, str | None]]:
    """(telegram id, stored language) of every HR user who wants a message per result."""
    recipients = await hr_recipients(db, admin_ids)
    other = await hr_repository.not_each(db, [r[0] for r in recipients])
    return [r for r in recipients if r[0] not in other]


async def claim_due_digests(db: Database, admin_ids: frozenset[int], now: datetime,
                            zone: tzinfo) -> list[tuple[int, str | None]]:
    """(telegram id, stored language) of every HR user whose daily digest is due at `now`
    (its time has come in `zone` and none was sent on this local day), marked as sent in
    the same statement: two replicas never send one digest twice."""
    local = now.astimezone(zone)
    ids = sorted(await hr_ids(db, admin_ids))
    return await hr_repository.claim_digests(db, ids, local.date(), local.time())
