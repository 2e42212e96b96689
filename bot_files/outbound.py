"""Messages the bot sends on its own, outside a reply: to a candidate (HR's decision, HR's
reply, an extra attempt, a login finished in the background, a deadline) or to HR (a support
message, a new result, the daily digest).

Each goes out in its recipient's stored language (stored at first contact, then their own
choice), paced within Telegram's limits, and a failed send (a blocked bot, a deleted account)
is logged and reported, never raised into the action that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError

from bot_files.presentation.text import Letter, Markup
from bot_files.telegram_limits import Pacer
from bot_files.texts import Texts, pick_language
from create_users.to_handlers import user_language
from db import Database, DatabaseUnavailable

__all__ = ["Compose", "Delivery", "Letter", "Markup", "Outbound"]

logger = logging.getLogger(__name__)

Composed = Letter | Sequence[Letter]
Compose = Callable[[Texts], Composed | Awaitable[Composed]]


class Delivery(Enum):
    """What became of a message: Telegram took it, the recipient blocked the bot (trying
    again would not reach them either), or it failed (it may go later)."""

    SENT = "sent"
    BLOCKED = "blocked"
    FAILED = "failed"


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

    async def send(self, bot: Bot, telegram_id: int, compose: Compose, *,
                   texts: Texts | None = None) -> bool:
        """Compose the message(s) in the recipient's language and send them, paced. True if
        Telegram took them all."""
        return await self.deliver(bot, telegram_id, compose, texts=texts) is Delivery.SENT

    async def deliver(self, bot: Bot, telegram_id: int, compose: Compose, *,
                      texts: Texts | None = None) -> Delivery:
        """As `send`, telling a blocked bot from a failure. `texts`: in the recipient's
        stored language, when the caller read it already (else it is read now)."""
        t = texts or await self.texts_for(telegram_id)
        composed = compose(t)
        if not isinstance(composed, Letter | Sequence):
            composed = await composed
        letters = [composed] if isinstance(composed, Letter) else list(composed)
        await self.pacer.wait(telegram_id)  # one slot per recipient: a reply is a burst too
        try:
            for letter in letters:
                await bot.send_message(telegram_id, letter.text, reply_markup=letter.markup)
        except TelegramForbiddenError as exc:
            logger.info("%s blocked the bot: message not delivered (%s)", telegram_id, exc)
            return Delivery.BLOCKED
        except TelegramAPIError as exc:
            logger.warning("message to %s not delivered: %s", telegram_id, exc)
            return Delivery.FAILED
        return Delivery.SENT

    async def send_each(self, bot: Bot, recipients: Sequence[tuple[int, str | None]],
                        compose: Compose) -> int:
        """The message to each (telegram_id, stored language), each in their language; one
        failed send never stops the others. How many Telegram took."""
        sent = 0
        for telegram_id, language in recipients:
            sent += await self.send(bot, telegram_id, compose,
                                    texts=Texts(pick_language(language, None)))
        return sent
