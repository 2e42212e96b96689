"""General commands: /cancel, /start, /help, /language, and the menu buttons."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.keyboards import LanguageChoice, TaskAction, TaskStep, language_keyboard
from bot_files.presentation.candidate import current_menu, greeting
from bot_files.presentation.hr import hr_menu
from bot_files.replies import acknowledge, answer, typed
from bot_files.services import Account, Audit, HrQueries
from bot_files.texts import LANGUAGES, Texts
from tasks_generator.to_handlers import Visitor


async def cancel(message: Message, state: FSMContext, t: Texts,
                 visitor: Visitor | None) -> None:
    """Leave whatever dialog is in progress."""
    had_state = await state.get_state() is not None
    await state.clear()
    await message.answer(t("cancel.done" if had_state else "cancel.nothing"),
                         reply_markup=current_menu(t, visitor))


async def start(message: Message, state: FSMContext, t: Texts, account: Account,
                hr_queries: HrQueries, audit: Audit, visitor: Visitor | None) -> None:
    """HR get the HR menu first (the candidate's side one button away); everyone else the
    greeting: what the test is, how long, how many attempts, and the menu for the stage."""
    await state.clear()
    name = message.from_user.first_name if message.from_user else ""
    if visitor is not None and visitor.hr:
        choice = await hr_queries.notify_choice(message.chat.id)
        await answer(message, hr_menu(t, choice, greeting_for=name))
        await audit.record(message.chat.id, "hr.menu")
        return
    await answer(message, greeting(t, account, visitor, name))


async def greeting_requested(callback: CallbackQuery, t: Texts, account: Account,
                             visitor: Visitor | None) -> None:
    """"Take the test myself" under HR's start: the candidate's greeting and menu."""
    target = await acknowledge(callback)
    if target is not None:
        await answer(target, greeting(t, account, visitor, callback.from_user.first_name))


async def show_help(message: Message, t: Texts, visitor: Visitor | None) -> None:
    """What the bot does and its commands."""
    await message.answer(t("help.text"), reply_markup=current_menu(t, visitor))


async def choose_language(message: Message, t: Texts) -> None:
    """Offer English or Russian."""
    await message.answer(t("language.choose"), reply_markup=language_keyboard(t))


async def language_chosen(callback: CallbackQuery, callback_data: LanguageChoice,
                          account: Account, t: Texts, visitor: Visitor | None) -> None:
    """Store the language and answer in it from now on."""
    if callback_data.code not in LANGUAGES:
        await callback.answer(t("fallback.callback"))
        return
    await account.set_language(callback.from_user.id, callback_data.code)
    t = Texts(callback_data.code)
    await callback.answer()
    if callback.message is not None:
        await callback.message.answer(t("language.set"), reply_markup=current_menu(t, visitor))


def create_router() -> Router:
    """Router of the general commands; /cancel is registered first."""
    router = Router(name="common")
    router.message.register(cancel, Command("cancel"))
    router.message.register(start, CommandStart())
    router.message.register(show_help, Command("help"))
    router.message.register(show_help, typed("menu.help"))
    router.message.register(choose_language, Command("language"))
    router.message.register(choose_language, typed("menu.language"))
    router.callback_query.register(language_chosen, LanguageChoice.filter())
    router.callback_query.register(greeting_requested,
                                   TaskAction.filter(F.step == TaskStep.GREETING))
    return router
