"""General commands: /cancel, /start, /help, /language, and the menu buttons."""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.handlers.hr import open_menu
from bot_files.handlers.menu import current_menu
from bot_files.keyboards import LanguageChoice, TaskAction, TaskStep, language_keyboard
from bot_files.replies import target_of
from bot_files.texts import LANGUAGES, Raw, Texts
from config.env import Settings
from create_users.to_handlers import notice_texts, set_language
from db import Database
from tasks_generator.to_handlers import TaskSet, Visitor


async def cancel(message: Message, state: FSMContext, t: Texts,
                 visitor: Visitor | None) -> None:
    """Leave whatever dialog is in progress."""
    had_state = await state.get_state() is not None
    await state.clear()
    await message.answer(t("cancel.done" if had_state else "cancel.nothing"),
                         reply_markup=current_menu(t, visitor))


def privacy_notice(settings: Settings) -> dict[str, str]:
    """The privacy notice in each language: the company's PRIVACY_NOTICE, or a generic one
    that says what is kept and for how long."""
    key = "privacy.default_notice" if settings.retention_days else \
        "privacy.default_notice_forever"
    return notice_texts(settings, {lang: html.unescape(Texts(lang)(key,
                                                                  days=settings.retention_days))
                                   for lang in LANGUAGES})


async def start(message: Message, state: FSMContext, t: Texts, db: Database,
                settings: Settings, task_set: TaskSet, visitor: Visitor | None) -> None:
    """HR get the HR menu first (the candidate's side one button away); everyone else the
    greeting: what the test is, how long, how many attempts, and the menu for the stage."""
    await state.clear()
    if visitor is not None and visitor.hr:
        await open_menu(message, state, t, db, at_start=True)
        return
    await _greet(message, t, settings, task_set, visitor,
                 message.from_user.first_name if message.from_user else "")


async def greeting_requested(callback: CallbackQuery, t: Texts, settings: Settings,
                             task_set: TaskSet, visitor: Visitor | None) -> None:
    """"Take the test myself" under HR's start: the candidate's greeting and menu."""
    await callback.answer()
    target = target_of(callback)
    if target is not None:
        await _greet(target, t, settings, task_set, visitor, callback.from_user.first_name)


async def _greet(target: Message, t: Texts, settings: Settings, task_set: TaskSet,
                 visitor: Visitor | None, name: str) -> None:
    greeting = t("start.greeting", name=name, images=task_set.images_per_task,
                 minutes=settings.test_duration_minutes, attempts=settings.max_attempts,
                 counting=Raw(t(f"counting.{settings.attempt_counts}")
                              if settings.max_attempts > 1 else ""))
    kind = visitor.stage.kind if visitor else "new"
    left = visitor.stage.attempts_left if visitor else settings.max_attempts
    next_key = {"new": "start.next_new", "failed": "start.next_new",
                "building": "start.next_building", "ready": "start.next_ready"}.get(
        kind, "start.next_done_more" if left else "start.next_done")
    notice = t("privacy.block", notice=privacy_notice(settings)[t.language])
    await target.answer(f"{greeting}\n\n{notice}\n\n{t(next_key)}",
                        reply_markup=current_menu(t, visitor))


async def show_help(message: Message, t: Texts, visitor: Visitor | None) -> None:
    """What the bot does and its commands."""
    await message.answer(t("help.text"),
                         reply_markup=current_menu(t, visitor))


async def choose_language(message: Message, t: Texts) -> None:
    """Offer English or Russian."""
    await message.answer(t("language.choose"), reply_markup=language_keyboard(t))


async def language_chosen(
    callback: CallbackQuery, callback_data: LanguageChoice, db: Database, t: Texts,
    visitor: Visitor | None,
) -> None:
    """Store the language and answer in it from now on."""
    if callback_data.code not in LANGUAGES:
        await callback.answer(t("fallback.callback"))
        return
    await set_language(db, callback.from_user.id, callback_data.code)
    t = Texts(callback_data.code)
    await callback.answer()
    if callback.message is not None:
        menu = current_menu(t, visitor)
        await callback.message.answer(t("language.set"), reply_markup=menu)


def create_router() -> Router:
    """Router of the general commands; /cancel is registered first."""
    router = Router(name="common")
    help_texts = Texts("en").all_variants("menu.help")
    language_texts = Texts("en").all_variants("menu.language")
    router.message.register(cancel, Command("cancel"))
    router.message.register(start, CommandStart())
    router.message.register(show_help, Command("help"))
    router.message.register(show_help, F.text.in_(help_texts))
    router.message.register(choose_language, Command("language"))
    router.message.register(choose_language, F.text.in_(language_texts))
    router.callback_query.register(language_chosen, LanguageChoice.filter())
    router.callback_query.register(greeting_requested,
                                   TaskAction.filter(F.step == TaskStep.GREETING))
    return router
