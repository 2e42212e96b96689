"""Small helpers every handler module uses to answer: where to reply, edit-or-send, dates."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot_files.texts import Texts

logger = logging.getLogger(__name__)


def target_of(event: Message | CallbackQuery) -> Message | None:
    """The message to reply under: the user's own, or the one whose button was pressed."""
    if isinstance(event, Message):
        return event
    if event.message is None or isinstance(event.message, InaccessibleMessage):
        return None
    return event.message


async def edit_or_send(message: Message, text: str, **kwargs: Any) -> None:
    """Replace the text of one of the bot's messages, or send a new one if it cannot be."""
    try:
        await message.edit_text(text, **kwargs)
    except TelegramBadRequest:
        await message.answer(text, **kwargs)


def when_text(t: Texts, value: datetime | None, zone: tzinfo = UTC) -> str:
    """A moment as HR read it: "2026-11-30 14:05 UTC" ("… MSK" in Europe/Moscow), or a dash."""
    return t("hr.no_value") if value is None else value.astimezone(zone).strftime(
        "%Y-%m-%d %H:%M %Z")


def register_typed_answer(router: Router, state: State, received: Any, not_text: Any) -> None:
    """A dialog waiting for typed text in `state`: text (not a command) goes to `received`,
    anything else (a sticker, a photo) to `not_text`."""
    router.message.register(received, state, F.text & ~F.text.startswith("/"))
    router.message.register(not_text, state, ~F.text)
