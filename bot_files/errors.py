"""The dispatcher's error handler: the user hears that something went wrong (never the
details, in their language), the log gets the details."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.types import ErrorEvent

from bot_files.texts import Texts, pick_language
from db import DatabaseUnavailable

logger = logging.getLogger("bot")


async def on_error(event: ErrorEvent, bot: Bot) -> bool:
    """Tell the user something went wrong (without details) and log the details."""
    exc = event.exception
    update = event.update
    message = update.message or (update.callback_query.message if update.callback_query else None)
    user = (update.message.from_user if update.message else None) or (
        update.callback_query.from_user if update.callback_query else None
    )
    t = Texts(pick_language(None, user.language_code if user else None))
    if isinstance(exc, TelegramRetryAfter):
        logger.warning("update %s not answered: Telegram limits us (%s)", update.update_id, exc)
        return True  # an apology would be limited as well
    if isinstance(exc, DatabaseUnavailable):
        logger.warning("update %s not handled: %s", update.update_id, exc)
        text = t("errors.database")
    else:
        logger.error("update %s failed", update.update_id, exc_info=exc)
        text = t("errors.generic")
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif message is not None:
            await bot.send_message(message.chat.id, text)
    except TelegramAPIError as send_error:
        logger.warning("could not tell the user about the error: %s", send_error)
    return True
