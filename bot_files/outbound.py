"""Messages the bot sends on its own, outside a reply: to a candidate (HR's decision, HR's
reply, an extra attempt) or to HR (a support message, a new result).

Each goes out in its recipient's stored language (stored at first contact, then their own
choice), paced within Telegram's limits, and a failed send (a blocked bot, a deleted account)
is logged and reported, never raised into the action that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot_files.telegram_limits import Pacer
from bot_files.texts import Texts, pick_language
from create_users.to_handlers import user_language
from db import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None


@dataclass(frozen=True)
class Letter:
    """One message: its text and, optionally, its buttons or keyboard."""

    text: str
    markup: Markup = None


Compose = Callable[[Texts], Letter | Awaitable[Letter]]


class Outbound:
    """The one way the bot writes to someone who did not just write to it."""

    def __init__(self, db: Database, pacer: Pacer) -> None:
        self.db = db
        self.pacer = pacer

    async def texts_for(self, telegram_id: int) -> Texts:
        """Texts in the recipient's stored language (English if the database cannot say)."""
        try:
            stored = await user_language(self.db, telegram_id)
        except DatabaseUnavailable as exc:
            logger.warning("language of %s unknown: %s", telegram_id, exc)
            stored = None
        return Texts(pick_language(stored, None))

    async def send(self, bot: Bot, telegram_id: int, compose: Compose) -> bool:
        """Compose the message in the recipient's language and send it, paced. True if
        Telegram took it."""
        t = await self.texts_for(telegram_id)
        letter = compose(t)
        if not isinstance(letter, Letter):
            letter = await letter
        await self.pacer.wait(telegram_id)
        try:
            await bot.send_message(telegram_id, letter.text, reply_markup=letter.markup)
        except TelegramAPIError as exc:
            logger.warning("message to %s not delivered: %s", telegram_id, exc)
            return False
        return True
