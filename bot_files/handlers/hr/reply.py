"""HR answer a candidate's support message: Reply under the forwarded message, then the text,
which reaches the candidate as a message from HR (with a button to write back) and is logged."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.dialogs import MAX_SUPPORT_TEXT, ReplyStates
from bot_files.hr_keyboards import HrReply
from bot_files.notifier import Notifier
from bot_files.replies import acknowledge, register_typed_answer
from bot_files.services import Audit
from bot_files.texts import Texts
from create_users.to_handlers import correspondent
from db import Database


async def reply_pressed(callback: CallbackQuery, callback_data: HrReply, state: FSMContext,
                        t: Texts, db: Database) -> None:
    """Reply under a support message: ask for the text."""
    target = await acknowledge(callback)
    if target is None:
        return
    who = await correspondent(db, callback_data.tid)
    await state.set_state(ReplyStates.text)
    await state.set_data({"reply_to": callback_data.tid})
    await target.answer(t("hr.reply_ask", name=who.name))


async def reply_received(message: Message, state: FSMContext, t: Texts, db: Database,
                         audit: Audit, notifier: Notifier, bot: Bot) -> None:
    """HR's answer: to the candidate, in their language, and into the action log."""
    text = (message.text or "").strip()
    if not text:
        await message.answer(t("hr.find_need_text"))
        return
    if len(text) > MAX_SUPPORT_TEXT:
        await message.answer(t("support.too_long", limit=MAX_SUPPORT_TEXT))
        return
    telegram_id = int((await state.get_data()).get("reply_to", 0))
    await state.clear()
    who = await correspondent(db, telegram_id)
    delivered = await notifier.hr_reply(bot, telegram_id, text)
    await audit.record(message.chat.id, "hr.reply", who.candidate_id,
                       {"to": telegram_id, "text": text}, ok=delivered)
    await message.answer(t("hr.reply_sent" if delivered else "hr.reply_undelivered",
                           name=who.name))


async def reply_not_text(message: Message, t: Texts) -> None:
    """A sticker or a photo instead of the answer."""
    await message.answer(t("hr.find_need_text"))


def create_router() -> Router:
    """Reply and the answer's text (inside the HR-only router)."""
    router = Router(name="hr_reply")
    router.callback_query.register(reply_pressed, HrReply.filter())
    register_typed_answer(router, ReplyStates.text, reply_received, reply_not_text)
    return router
