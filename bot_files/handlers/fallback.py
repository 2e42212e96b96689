"""The polite answer to anything no other handler took: stickers, random text, stale buttons."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot_files.handlers.menu import current_menu
from bot_files.texts import Texts
from tasks_generator.to_handlers import Visitor


async def unknown_message(message: Message, t: Texts, visitor: Visitor | None) -> None:
    """Explain and show the menu again."""
    await message.answer(t("fallback.message"),
                         reply_markup=current_menu(t, visitor))


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
