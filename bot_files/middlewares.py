"""Middlewares carry context (who is writing, in which language); no business side effects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot_files.texts import Texts, pick_language
from config.env import Settings
from db import Database, DatabaseUnavailable
from tasks_generator.to_handlers import Visitor, visit

logger = logging.getLogger(__name__)


class UserContextMiddleware(BaseMiddleware):
    """Adds `t` (texts in the user's language), `lang` and `visitor` (their candidate stage and
    HR status, for menus and the HR gate) to every handler's arguments.

    All of it comes from one database round trip, which also records the visit. If the
    database is down, the language falls back to Telegram's language_code, `visitor` is None,
    and the bot still answers whatever does not need the database.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        stored: str | None = None
        visitor: Visitor | None = None
        if user is not None and not user.is_bot:
            try:
                visitor = await visit(self.db, self.settings, telegram_id=user.id,
                                      username=user.username, full_name=user.full_name)
                stored = visitor.language
            except DatabaseUnavailable as exc:
                logger.warning("language of user %s unknown: %s", user.id, exc)
        data["visitor"] = visitor
        lang = pick_language(stored, user.language_code if user else None)
        data["lang"] = lang
        data["t"] = Texts(lang)
        return await handler(event, data)
