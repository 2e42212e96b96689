"""The polite answer to anything no other handler took: stickers, random text, stale buttons."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot_files.keyboards import main_menu
from bot_files.texts import Texts


async def unknown_message(message: Message, t: Texts) -> None:
    """Explain and show the menu again."""
    await message.answer(t("fallback.message"), reply_markup=main_menu(t))


async def unknown_callback(callback: CallbackQuery, t: Texts) -> None:
    """A button from an old message, or forged data: say it is out of date."""
    await callback.answer(t("fallback.callback"))


def create_router() -> Router:
    """Router included last."""
    router = Router(name="fallback")
    router.message.register(unknown_message)
    router.callback_query.register(unknown_callback)
    return router
