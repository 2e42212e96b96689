"""/support: a candidate writes to HR; the dialog state lives in PostgreSQL."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message

from authorization import hr_recipients
from bot_files.handlers.menu import current_menu
from bot_files.telegram_limits import Pacer
from bot_files.texts import Texts, pick_language
from config.env import Settings
from db import Database
from log import record_action
from tasks_generator.to_handlers import Visitor

logger = logging.getLogger(__name__)
MAX_SUPPORT_TEXT = 3000  # leaves room for the header within Telegram's 4096


class Support(StatesGroup):
    """Waiting for the text of a message to HR."""

    waiting_text = State()


async def ask(message: Message, state: FSMContext, t: Texts) -> None:
    """Ask for the message to HR."""
    await state.set_state(Support.waiting_text)
    await message.answer(t("support.ask"))


async def received(
    message: Message, state: FSMContext, t: Texts, db: Database, settings: Settings, bot: Bot,
    pacer: Pacer, visitor: Visitor | None,
) -> None:
    """Forward the candidate's text to every HR user and record it."""
    text = message.text or ""
    if len(text) > MAX_SUPPORT_TEXT:
        await message.answer(t("support.too_long", limit=MAX_SUPPORT_TEXT))
        return
    sender = message.from_user
    assert sender is not None
    await record_action(db, sender.id, "support_message", details={"text": text})
    delivered = 0
    for hr_id, hr_language in await hr_recipients(db, settings.hr_admin_ids):
        hr_t = Texts(pick_language(hr_language, None))
        body = hr_t("support.to_hr", name=sender.full_name,
                    username=f"@{sender.username}" if sender.username else "",
                    telegram_id=sender.id, text=text)
        try:
            await pacer.wait(hr_id)
            await bot.send_message(hr_id, body)
            delivered += 1
        except TelegramAPIError as exc:
            logger.warning("support message not delivered to HR %s: %s", hr_id, exc)
    await state.clear()
    await message.answer(t("support.sent" if delivered else "support.no_hr"),
                         reply_markup=current_menu(t, visitor))


async def not_text(message: Message, t: Texts) -> None:
    """Anything but text while waiting for the message."""
    await message.answer(t("support.need_text"))


def create_router() -> Router:
    """Router of the /support dialog, with a fallback in its state."""
    router = Router(name="support")
    support_texts = Texts("en").all_variants("menu.support")
    router.message.register(ask, Command("support"))
    router.message.register(ask, F.text.in_(support_texts))
    router.message.register(received, Support.waiting_text, F.text & ~F.text.startswith("/"))
    router.message.register(not_text, Support.waiting_text, ~F.text)
    return router
