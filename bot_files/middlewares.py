"""Middlewares carry context (who is writing, in which language); no business side effects."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.types import Chat, Message, TelegramObject, Update, User

from bot_files.texts import Texts, pick_language
from config.env import Settings
from db import Database, DatabaseUnavailable
from tasks_generator.to_handlers import Visitor, visit

logger = logging.getLogger(__name__)


class UserContextMiddleware(BaseMiddleware):
    """Adds `t` (texts in the user's language) and `visitor` (their candidate stage and
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
        telegram_code = user.language_code if user else None
        if user is not None and not user.is_bot:
            try:
                visitor = await visit(self.db, self.settings, telegram_id=user.id,
                                      username=user.username, full_name=user.full_name,
                                      first_language=pick_language(None, telegram_code))
                stored = visitor.language
            except DatabaseUnavailable as exc:
                logger.warning("language of user %s unknown: %s", user.id, exc)
        data["visitor"] = visitor
        data["t"] = Texts(pick_language(stored, telegram_code))
        return await handler(event, data)


class PrivateChatsOnly(BaseMiddleware):
    """The bot works in private chats only: whatever comes from a group, a supergroup or a
    channel is dropped before any database work, so no answer of the bot (an HR export, a
    candidate's login) can land there. The first command seen in such a chat gets one short
    answer pointing to a private chat; everything after that is silence."""

    def __init__(self, remember_chats: int = 10_000) -> None:
        self.remember_chats = remember_chats
        self._told: OrderedDict[int, None] = OrderedDict()  # chats already told, oldest first

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat: Chat | None = data.get("event_chat")
        if chat is not None and chat.type == ChatType.PRIVATE:
            return await handler(event, data)
        message = event.message if isinstance(event, Update) else None
        if (chat is not None and chat.id not in self._told and isinstance(message, Message)
                and (message.text or "").startswith("/")):
            self._told[chat.id] = None
            while len(self._told) > self.remember_chats:
                self._told.popitem(last=False)
            user: User | None = data.get("event_from_user")
            t = Texts(pick_language(None, user.language_code if user else None))
            bot: Bot = data["bot"]
            me = await bot.me()
            await message.answer(t("private.only", bot=f"@{me.username}"))
        logger.debug("update %s from a %s chat ignored: the bot works in private chats only",
                    event.update_id if isinstance(event, Update) else "?",
                    chat.type if chat is not None else "unknown")
        return None
