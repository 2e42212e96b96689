"""SQL for `telegram_users`: everyone who has talked to the bot."""

from __future__ import annotations

from dataclasses import dataclass

from db import Database


@dataclass(frozen=True)
class TelegramUser:
    """What the bot remembers about a Telegram user."""

    telegram_id: int
    username: str | None
    full_name: str
    language: str | None


async def touch_user(
    db: Database, telegram_id: int, username: str | None, full_name: str
) -> TelegramUser:
    """Record that the user wrote (one round trip) and return their stored preferences."""
    row = await db.fetchone(
        "INSERT INTO telegram_users (telegram_id, username, full_name) VALUES (%s, %s, %s)"
        " ON CONFLICT (telegram_id) DO UPDATE SET username = EXCLUDED.username,"
        " full_name = EXCLUDED.full_name, last_seen_at = now()"
        " RETURNING telegram_id, username, full_name, language",
        (telegram_id, username, full_name),
    )
    assert row is not None
    return TelegramUser(**row)


async def set_language(db: Database, telegram_id: int, language: str) -> None:
    """Remember the user's chosen language."""
    await db.execute(
        "INSERT INTO telegram_users (telegram_id, language) VALUES (%s, %s)"
        " ON CONFLICT (telegram_id) DO UPDATE SET language = EXCLUDED.language",
        (telegram_id, language),
    )
