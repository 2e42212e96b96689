"""Texts: both languages complete, placeholders matching, valid Telegram HTML."""

from __future__ import annotations

import html
import re

import pytest
from babel import Locale
from babel.plural import PluralRule

from bot_files.texts import LANGUAGES, PLURAL_RULES, Texts, catalog, pick_language, placeholders
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
    assert pick_language(None, "be") == "ru"
    assert pick_language(None, "uk") == "en"  # not greeted in Russian unasked
    assert pick_language(None, "de") == "en"
    assert pick_language(None, None) == "en"


NUMBERS = (1, 2, 5, 11, 21, 22)
NAMES = {"en": "Olga Kuznetsova", "ru": "Ольга Кузнецова"}
# Placeholders that hold words or markup, not a count.
WORDY = {"name", "who", "username", "url", "image", "label", "kind", "query", "text", "decision",
         "band", "verdict", "cvat", "line", "note", "icon", "expected", "given", "status",
         "problem", "error", "reason", "message", "language", "sent", "when", "date", "time",
         "created", "started", "ended", "spent", "old", "new", "by", "since", "rule", "gates",
         "changes", "telegram_id", "counting", "bot", "password", "hint", "needed", "value",
         "typos", "other", "object",
         "limit", "pass_at", "borderline_at", "failed", "moves", "measure", "x", "y"}
# Numbers that name something (attempt 2, page 3, rule 4) rather than count it.
ORDINALS = {"number", "page", "pages", "rule", "version"}
# Words a count may stand before without agreeing with it (abbreviations do not decline).
NOT_A_NOUN_RU = {"из", "уже", "на", "нет", "сейчас", "сдана", "мин", "чел", "с", "пикс", "дн"}


def _filled(template: str, number: int, language: str) -> dict[str, object]:
    return {name: "https://cvat.example.com/tasks/1/jobs/1" if name in ("url", "link")
            else NAMES[language] if name in WORDY else number
            for name in placeholders(template)}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_renders_with_counts_and_names(language: str) -> None:
    """Every text, with every count 1, 2, 5, 11, 21, 22 and a name in it, renders to valid
    Telegram HTML with nothing left unfilled."""
    t = Texts(language)
    for key, template in catalog(language).items():
        for number in NUMBERS:
            text = t(key, **_filled(template, number, language))
            assert "{" not in text, (key, text)  # nothing unfilled, no plural form left raw
            parse_html(text)


def test_plural_rules_are_cldrs_as_babel_has_them() -> None:
    """The plural rules kept in texts.py are Babel's (CLDR's) for every language."""
    for language in LANGUAGES:
        assert PluralRule(PLURAL_RULES[language]).rules == \
            Locale.parse(language).plural_form.rules, language


def test_russian_counts_agree_with_their_nouns() -> None:
    """A count written before a Russian noun takes the noun's CLDR form (1 кандидат, 2
    кандидата, 5 кандидатов, 21 кандидат): every such place in the texts has plural forms."""
    bare = re.compile(r"\{(\w+)\}[ \u00a0]+([а-яё]+)", re.IGNORECASE)
    for key, template in catalog("ru").items():
        for match in bare.finditer(template):
            name, word = match.groups()
            if name not in WORDY | ORDINALS:
                assert word.lower() in NOT_A_NOUN_RU, \
                    f"ru {key}: {match.group(0)!r} needs plural forms"
    t = Texts("ru")
    expected = {1: "1 фотографию", 2: "2 фотографии", 5: "5 фотографий", 11: "11 фотографий",
                21: "21 фотографию", 22: "22 фотографии"}
    for number, words in expected.items():
        greeting = t("start.greeting", name="Ольга", images=number, minutes=number,
                     attempts=2, counting="")
        assert words in greeting, greeting
    assert "1 проверенный кандидат" in t("hr.chart_caption", count=1)
    assert "22 проверенных кандидата" in t("hr.chart_caption", count=22)
    assert "ещё 1 попытку" in t("submit.more_attempts", left=1)
    assert "ещё 5 попыток" in t("submit.more_attempts", left=5)
    assert "в течение 21 рабочего дня" in t("submit.hr_will_write", days=21)
    en = Texts("en")
    assert "1 more attempt " in en("submit.more_attempts", left=1)
    assert "2 more attempts " in en("submit.more_attempts", left=2)


def test_a_name_is_never_declined_in_russian() -> None:
    """Russian cannot put a name into a case by a template ("Разрешить Ольга Кузнецова",
    "о Ольга Кузнецова"): a name stands where the nominative is right: after a label, at a
    line's start, in a greeting, or beside another placeholder; never after a preposition or
    a word that governs a case."""
    nominative_before = re.compile(
        r"(^|\n|: |; |\(|«|• |▫️ |📇 |\} ?|</code>|Здравствуйте, |Кандидат |Готово: )$")
    for key, template in catalog("ru").items():
        for match in re.finditer(r"\{name\}", template):
            before = re.sub(r"(<b>|<i>)$", "", template[:match.start()])
            assert nominative_before.search(before), f"ru {key}: {{name}} after {before[-20:]!r}"
