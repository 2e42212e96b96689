"""Keyboards: small builder functions, texts from media/."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder, ReplyKeyboardBuilder

from bot_files.texts import Texts


class LanguageChoice(CallbackData, prefix="l1"):
    """Button payload: the chosen language ("l1:ru"); versioned prefix, far under 64 bytes."""

    code: str


def main_menu(t: Texts) -> ReplyKeyboardMarkup:
    """The persistent menu under the input field."""
    builder = ReplyKeyboardBuilder()
    builder.button(text=t("menu.help"))
    builder.button(text=t("menu.language"))
    builder.button(text=t("menu.support"))
    builder.adjust(2, 1)
    return builder.as_markup(resize_keyboard=True, is_persistent=True)


def language_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """Two buttons: English, Russian."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("language.button_en"), callback_data=LanguageChoice(code="en"))
    builder.button(text=t("language.button_ru"), callback_data=LanguageChoice(code="ru"))
    return builder.as_markup()
