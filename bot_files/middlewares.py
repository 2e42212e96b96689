"""Middlewares carry context (who is writing, in which language); no business side effects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot_files.texts import Texts, pick_language
from create_users.to_handlers import touch_user
from db import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)


class UserContextMiddleware(BaseMiddleware):
    """Adds `t` (texts in the user's language) and `lang` to every handler's arguments.

    The user's row is refreshed in the same single round trip that reads their language. If the
    database is down, the language falls back to Telegram's language_code and the bot still
    answers whatever does not need the database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        stored: str | None = None
        if user is not None and not user.is_bot:
            try:
                record = await touch_user(self.db, user.id, user.username, user.full_name)
                stored = record.language
            except DatabaseUnavailable as exc:
                logger.warning("language of user %s unknown: %s", user.id, exc)
        lang = pick_language(stored, user.language_code if user else None)
        data["lang"] = lang
        data["t"] = Texts(lang)
        return await handler(event, data)
