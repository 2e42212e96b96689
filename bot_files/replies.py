"""Small helpers every handler module uses to answer: where to reply, edit-or-send, and how a
dialog waits for typed text."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot_files.presentation.text import Letter
from bot_files.texts import Texts

logger = logging.getLogger(__name__)


def target_of(event: Message | CallbackQuery) -> Message | None:
    """The message to reply under: the user's own, or the one whose button was pressed."""
    if isinstance(event, Message):
        return event
    if event.message is None or isinstance(event.message, InaccessibleMessage):
        return None
    return event.message


async def acknowledge(event: Message | CallbackQuery) -> Message | None:
    """For a button press, answer it (the spinner stops); the message to reply under (None if
    it is too old to reach)."""
    if isinstance(event, CallbackQuery):
        await event.answer()
    return target_of(event)


def register_screen(router: Router, handler: Any, pressed: Any, key: str) -> None:
    """A screen opened by a button (`pressed`: the button's filter) or by typing the text of
    the menu key `key`: one handler, given the message or the press."""
    router.callback_query.register(handler, pressed)
    router.message.register(handler, typed(key))


def typed(key: str) -> Any:
    """A filter for the text of a menu key (or button) typed in any language."""
    return F.text.in_(menu_texts((key,)))


async def answer(target: Message, letters: Letter | list[Letter]) -> Message | None:
    """Send the rendered message(s) under `target`; the last one sent."""
    sent = None
    for letter in [letters] if isinstance(letters, Letter) else letters:
        sent = await target.answer(letter.text, reply_markup=letter.markup)
    return sent


async def edit_or_send(message: Message, text: str, **kwargs: Any) -> None:
    """Replace the text of one of the bot's messages, or send a new one if it cannot be."""
    try:
        await message.edit_text(text, **kwargs)
    except TelegramBadRequest:
        await message.answer(text, **kwargs)


def menu_texts(keys: tuple[str, ...]) -> frozenset[str]:
    """The texts of these menu keys in every language."""
    en = Texts("en")
    return frozenset(text for key in keys for text in en.all_variants(key))


def register_typed_answer(router: Router, state: State, received: Any, not_text: Any | None,
                          *, menu_keys: tuple[str, ...] = ()) -> None:
    """A dialog waiting for typed text in `state`: text (not a command, nor the text of one
    of `menu_keys`: those open their screen instead) goes to `received`, anything else (a
    sticker, a photo) to `not_text` (if any)."""
    answer_text = F.text & ~F.text.startswith("/")
    if menu_keys:
        answer_text &= ~F.text.in_(menu_texts(menu_keys))
    router.message.register(received, state, answer_text)
    if not_text is not None:
        router.message.register(not_text, state, ~F.text)
