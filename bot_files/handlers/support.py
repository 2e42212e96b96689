"""/support: a candidate writes to HR (the dialog state lives in PostgreSQL). Each HR user gets
the message with a Reply button (bot_files.handlers.hr.reply); free text the bot does not
understand can be passed on with one tap."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, User

from bot_files.dialogs import MAX_SUPPORT_TEXT, TYPED_KEY, Support
from bot_files.keyboards import TaskAction, TaskStep
from bot_files.notifier import Notifier
from bot_files.presentation.candidate import current_menu
from bot_files.replies import acknowledge, register_typed_answer, target_of, typed
from bot_files.services import Audit
from bot_files.texts import Texts
from tasks_generator.to_handlers import Visitor

logger = logging.getLogger(__name__)


async def ask(event: Message | CallbackQuery, state: FSMContext, t: Texts) -> None:
    """Ask for the message to HR (/support, the menu key, or Reply under HR's message)."""
    if isinstance(event, CallbackQuery):
        await event.answer()
    target = target_of(event)
    if target is None:
        return
    await state.set_state(Support.waiting_text)
    await target.answer(t("support.ask"))


async def forward_to_hr(audit: Audit, notifier: Notifier, bot: Bot, sender: User,
                        text: str) -> int:
    """Send a candidate's message to every HR user, each in their language, with a Reply
    button; recorded in the action log. How many HR users it reached."""
    await audit.record(sender.id, "support_message", details={"text": text})
    return await notifier.support_message(bot, sender, text)


async def received(message: Message, state: FSMContext, t: Texts, audit: Audit,
                   notifier: Notifier, bot: Bot, visitor: Visitor | None) -> None:
    """Forward the candidate's text to every HR user and record it."""
    text = message.text or ""
    if len(text) > MAX_SUPPORT_TEXT:
        await message.answer(t("support.too_long", limit=MAX_SUPPORT_TEXT))
        return
    assert message.from_user is not None
    delivered = await forward_to_hr(audit, notifier, bot, message.from_user, text)
    await state.clear()
    await message.answer(t("support.sent" if delivered else "support.no_hr"),
                         reply_markup=current_menu(t, visitor))


async def send_typed(callback: CallbackQuery, state: FSMContext, t: Texts, audit: Audit,
                     notifier: Notifier, bot: Bot) -> None:
    """"Yes, send it to HR" under the fallback's answer: pass on the text it was about."""
    target = await acknowledge(callback)
    data = await state.get_data()
    text = data.get(TYPED_KEY)
    if target is None:
        return
    if not isinstance(text, str) or not text:
        await target.answer(t("support.offer_gone"))
        return
    await state.update_data({TYPED_KEY: None})
    delivered = await forward_to_hr(audit, notifier, bot, callback.from_user,
                                    text[:MAX_SUPPORT_TEXT])
    await target.edit_text(t("support.sent" if delivered else "support.no_hr"))


async def not_text(message: Message, t: Texts) -> None:
    """Anything but text while waiting for the message."""
    await message.answer(t("support.need_text"))


def create_router() -> Router:
    """Router of the /support dialog, with a fallback in its state."""
    router = Router(name="support")
    router.message.register(ask, Command("support"))
    router.message.register(ask, typed("menu.support"))
    register_typed_answer(router, Support.waiting_text, received, not_text)
    router.callback_query.register(ask, TaskAction.filter(F.step == TaskStep.WRITE_HR))
    router.callback_query.register(send_typed, TaskAction.filter(F.step == TaskStep.SEND_TYPED))
    return router
