"""Keyboards: small builder functions, texts from media/."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder, ReplyKeyboardBuilder

from bot_files.texts import Texts
from tasks_generator.to_handlers import StageKind


class LanguageChoice(CallbackData, prefix="l1"):
    """Button payload: the chosen language ("l1:ru"); versioned prefix, far under 64 bytes."""

    code: str


class TaskStep(StrEnum):
    """What a candidate's inline button asks for."""

    ASK = "ask"            # show the confirmation for the first task
    CONFIRM = "go"         # build the first task
    ASK_NEW = "askn"       # show the confirmation for a new attempt
    CONFIRM_NEW = "gon"    # build a new attempt
    LATER = "no"           # not now
    CHECK = "chk"          # check the work without submitting
    SUBMIT = "sub"         # ask to confirm the submission
    SUBMIT_OK = "sub!"     # submit the work (confirmed)
    SUBMIT_LATER = "subn"  # not yet: keep working
    CREDENTIALS = "cred"   # show the login again
    WRITE_HR = "hr"        # write a message to HR (under HR's reply, or a typed question)
    SEND_TYPED = "hrq"     # send the text the candidate just typed to HR
    GREETING = "hi"        # the candidate's greeting and menu (HR asking to take the test)


class TaskAction(CallbackData, prefix="t1"):
    """Button payload of the candidate flow ("t1:sub")."""

    step: TaskStep


class ConfirmTask(CallbackData, prefix="t2"):
    """Yes under a task's confirmation: the step (CONFIRM or CONFIRM_NEW) and the version of
    the privacy notice the confirmation showed, which pressing it agrees to
    ("t2:go:3f9c0a7b21de"). A "t1:go" from before the notice agrees to nothing."""

    step: TaskStep
    v: str


def main_menu(t: Texts, stage: StageKind | None = None, attempts_left: int = 0,
              hr: bool = False) -> ReplyKeyboardMarkup:
    """The persistent menu under the input field, with what fits the candidate's stage (and
    the HR menu button for HR users)."""
    # DONE menus differ only by whether attempts are left; the count itself is not shown.
    return _main_menu(t.language, stage, stage == StageKind.DONE and attempts_left > 0, hr)


@lru_cache(maxsize=64)
def _main_menu(language: str, stage: StageKind | None, more_attempts: bool,
               hr: bool) -> ReplyKeyboardMarkup:
    """Built once per variant: the builder deep-copies every button, which cost more CPU than
    the rest of a /help reply. aiogram only reads a markup, so one object serves all."""
    t = Texts(language)
    builder = ReplyKeyboardBuilder()
    first_row: list[str] = []
    if stage in (None, StageKind.NEW, StageKind.FAILED):
        first_row = [t("menu.get_task")]
    elif stage == StageKind.BUILDING:
        first_row = [t("menu.credentials")]
    elif stage == StageKind.READY:
        first_row = [t("menu.check"), t("menu.submit"), t("menu.credentials")]
    elif stage == StageKind.DONE and more_attempts:
        first_row = [t("menu.new_attempt"), t("menu.credentials")]
    for text in first_row:
        builder.button(text=text)
    builder.button(text=t("menu.help"))
    builder.button(text=t("menu.language"))
    builder.button(text=t("menu.support"))
    sizes = [2, 1] if len(first_row) == 3 else [len(first_row)] if first_row else []
    if hr:
        builder.button(text=t("hr.menu_button"))
    builder.adjust(*sizes, 2, 1, *([1] if hr else []))
    return builder.as_markup(resize_keyboard=True, is_persistent=True)


def language_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """Two buttons: English, Russian."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("language.button_en"), callback_data=LanguageChoice(code="en"))
    builder.button(text=t("language.button_ru"), callback_data=LanguageChoice(code="ru"))
    return builder.as_markup()


def confirm_keyboard(t: Texts, new_attempt: bool = False,
                     notice: str = "") -> InlineKeyboardMarkup:
    """Yes / Not now under the confirmation (Yes agrees to the privacy notice `notice`)."""
    builder = InlineKeyboardBuilder()
    step = TaskStep.CONFIRM_NEW if new_attempt else TaskStep.CONFIRM
    builder.button(text=t("task.yes_new" if new_attempt else "task.yes"),
                   callback_data=ConfirmTask(step=step, v=notice))
    builder.button(text=t("task.not_now"), callback_data=TaskAction(step=TaskStep.LATER))
    builder.adjust(1)
    return builder.as_markup()


def retry_keyboard(t: Texts, step: TaskStep) -> InlineKeyboardMarkup:
    """A single "Try again" button repeating `step`."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("task.retry"), callback_data=TaskAction(step=step))
    return builder.as_markup()


def _clickable(url: str) -> bool:
    # Telegram refuses URL buttons to hosts without a dot (localhost) and to bare IPs.
    host = urlsplit(url).hostname or ""
    return "." in host and not host.replace(".", "").isdigit()


def credentials_keyboard(t: Texts, url: str) -> InlineKeyboardMarkup:
    """Open CVAT (when Telegram accepts the link as a button), Check my work and Submit."""
    builder = InlineKeyboardBuilder()
    if _clickable(url):
        builder.button(text=t("task.open_cvat"), url=url)
    builder.button(text=t("task.check_button"), callback_data=TaskAction(step=TaskStep.CHECK))
    builder.button(text=t("task.submit_button"), callback_data=TaskAction(step=TaskStep.SUBMIT))
    builder.adjust(1)
    return builder.as_markup()


def submit_confirm_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """Yes, submit / Not yet under the question before a submission."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("submit.yes"), callback_data=TaskAction(step=TaskStep.SUBMIT_OK))
    builder.button(text=t("submit.not_yet"),
                   callback_data=TaskAction(step=TaskStep.SUBMIT_LATER))
    builder.adjust(1)
    return builder.as_markup()


def support_reply_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """Under HR's reply: write back to HR."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("support.write_back"),
                   callback_data=TaskAction(step=TaskStep.WRITE_HR))
    return builder.as_markup()


def new_attempt_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """The button offering another attempt."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("task.new_attempt_button"),
                   callback_data=TaskAction(step=TaskStep.ASK_NEW))
    return builder.as_markup()
