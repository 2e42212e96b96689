"""After every HR router: HR-shaped updates from anyone else (an HR command or menu text, an
HR button pressed or forged) go to the action log and fall through to the ordinary fallback
answers, so nothing HR-like is shown."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot_files.hr_keyboards import is_hr_callback
from bot_files.replies import typed
from bot_files.services import Audit

HR_TEXT_KEYS = ("hr.menu_button", "hr.btn_export", "hr.btn_find", "hr.btn_whitelist", "key.btn")


async def denied_message(message: Message, audit: Audit) -> None:
    """Someone who is not HR typed an HR command: log it, then let the fallback answer."""
    await audit.record(message.chat.id, "hr.denied", ok=False,
                       details={"text": (message.text or "")[:64]})
    raise SkipHandler


async def denied_callback(callback: CallbackQuery, audit: Audit) -> None:
    """Someone who is not HR pressed (or forged) an HR button: log it, fall through."""
    await audit.record(callback.from_user.id, "hr.denied", ok=False,
                       details={"data": (callback.data or "")[:64]})
    raise SkipHandler


def create_router() -> Router:
    """Logs HR-shaped updates from anyone else, answers nothing."""
    router = Router(name="hr_denied")
    for key in HR_TEXT_KEYS:
        router.message.register(denied_message, typed(key))
    router.message.register(denied_message, Command("hr"))
    router.callback_query.register(denied_callback, F.data.func(is_hr_callback))
    return router
