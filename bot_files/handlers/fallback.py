"""The polite answer to anything no other handler took: stickers, random text, stale buttons.
A candidate's free text may be a question: it is kept, and one tap passes it on to HR."""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot_files.dialogs import MAX_SUPPORT_TEXT, TYPED_KEY
from bot_files.keyboards import TaskAction, TaskStep
from bot_files.presentation.candidate import current_menu
from bot_files.texts import Texts
from tasks_generator.to_handlers import Visitor


def looks_like_a_question(text: str) -> bool:
    """Free text worth offering to HR: a question, or a sentence (not a stray word, a menu
    key from an old keyboard, or a command)."""
    text = text.strip()
    return not text.startswith("/") and ("?" in text or len(text.split()) >= 4)


async def unknown_message(message: Message, t: Texts, state: FSMContext,
                          visitor: Visitor | None) -> None:
    """Explain and show the menu again; under a candidate's question, offer to pass it on to
    HR."""
    text = message.text or ""
    if looks_like_a_question(text) and visitor is not None and not visitor.hr:
        await state.update_data({TYPED_KEY: text[:MAX_SUPPORT_TEXT]})
        builder = InlineKeyboardBuilder()
        builder.button(text=t("support.offer_yes"),
                       callback_data=TaskAction(step=TaskStep.SEND_TYPED))
        await message.answer(t("fallback.offer"), reply_markup=builder.as_markup())
        return
    await message.answer(t("fallback.message"), reply_markup=current_menu(t, visitor))


async def edited_message(message: Message, t: Texts) -> None:
    """Edits are not read as new input: say so instead of acting on them silently."""
    await message.reply(t("fallback.edited"))


async def unknown_callback(callback: CallbackQuery, t: Texts) -> None:
    """A button from an old message, or forged data: say it is out of date."""
    await callback.answer(t("fallback.callback"))


def create_router() -> Router:
    """Router included last."""
    router = Router(name="fallback")
    router.message.register(unknown_message)
    router.callback_query.register(unknown_callback)
    router.edited_message.register(edited_message)
    return router
