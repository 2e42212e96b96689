"""Texts: both languages complete, placeholders matching, valid Telegram HTML."""

from __future__ import annotations

import html

from bot_files.texts import LANGUAGES, Texts, catalog, pick_language, placeholders
from sandbox.telegram import parse_html


def test_every_text_exists_in_every_language_with_the_same_placeholders() -> None:
    english = catalog("en")
    for language in LANGUAGES:
        other = catalog(language)
        assert set(other) == set(english), f"{language}: keys differ"
        for key, template in english.items():
            assert placeholders(other[key]) == placeholders(template), f"{language}: {key}"


def test_every_text_is_valid_telegram_html_when_filled() -> None:
    for language in LANGUAGES:
        t = Texts(language)
        for key, template in catalog(language).items():
            values = {name: "<&>" for name in placeholders(template)}
            text = t(key, **values)
            parse_html(text)  # raises on markup Telegram would refuse
            if values:
                assert html.escape("<&>", quote=False) in text


def test_language_follows_choice_then_telegram() -> None:
    assert pick_language("en", "ru") == "en"
    assert pick_language(None, "ru-RU") == "ru"
    assert pick_language(None, "uk") == "ru"
    assert pick_language(None, "de") == "en"
    assert pick_language(None, None) == "en"
