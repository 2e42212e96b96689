"""The HR gate: who counts as HR (the whitelist table plus HR_ADMIN_IDS from the settings)."""

from __future__ import annotations

from db import Database


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
