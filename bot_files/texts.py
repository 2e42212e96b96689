"""Message texts from media/texts/<lang>.toml, with user-supplied values escaped for HTML."""

from __future__ import annotations

import html
import re
import string
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from babel.plural import PluralRule

TEXTS_DIR = Path(__file__).resolve().parent.parent / "media" / "texts"
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
# Telegram language codes greeted in Russian at first contact; everyone else gets English and
# the language key (greeting a Ukrainian- or Kazakh-language user in Russian unasked is not ours
# to choose).
_RUSSIAN_SPEAKING = ("ru", "be")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
# CLDR's plural rules of our languages, as Babel's locale data has them (tests/test_texts.py
# checks they still agree). Babel's Locale would load all of its locale data to read them:
# 6 MB of the bot's memory for two lines.
PLURAL_RULES: dict[str, dict[str, str]] = {
    "en": {"one": "i in 1 and v in 0"},
    "ru": {"one": "v in 0 and i mod 10 in 1 and i mod 100 not in 11",
           "few": "v in 0 and i mod 10 in 2..4 and i mod 100 not in 12..14",
           "many": "v in 0 and i mod 10 in 0 or v in 0 and i mod 10 in 5..9"
                   " or v in 0 and i mod 100 in 11..14"},
}


class Raw(str):
    """A value already in Telegram HTML: inserted into a text without escaping."""


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


@cache
def catalog(language: str) -> dict[str, str]:
    """Every text of one language, keyed 'section.name', from `<lang>.toml` and any
    `<part>.<lang>.toml` beside it (e.g. hr.en.toml)."""
    texts: dict[str, str] = {}
    for path in [TEXTS_DIR / f"{language}.toml", *sorted(TEXTS_DIR.glob(f"*.{language}.toml"))]:
        with open(path, "rb") as handle:
            part = _flatten(tomllib.load(handle))
        clash = set(part) & set(texts)
        if clash:
            raise ValueError(f"{path.name} repeats texts: {', '.join(sorted(clash))}")
        texts.update(part)
    return texts


class _PluralFormatter(string.Formatter):
    """`str.format` plus plural forms chosen by CLDR's rules for the language (PLURAL_RULES):
    `{count} {count:one=кандидат|few=кандидата|many=кандидатов|other=кандидата}` gives
    "1 кандидат", "2 кандидата", "5 кандидатов", "21 кандидат". A form may hold `#`, which
    stands for the number: `{left:one=# attempt|other=# attempts}`."""

    def __init__(self, language: str) -> None:
        self.plural = PluralRule(PLURAL_RULES[language])

    def format_field(self, value: Any, format_spec: str) -> str:
        if "=" not in format_spec:
            return super().format_field(value, format_spec)
        forms = plural_forms(format_spec)
        number = as_number(value)
        category = self.plural(number) if number is not None else "other"
        form = forms.get(category) or forms.get("other") or forms.get("many", "")
        return form.replace("#", str(value))


@cache
def _formatter(language: str) -> _PluralFormatter:
    """One formatter per language (parsing the locale costs more than formatting a text)."""
    return _PluralFormatter(language)


def plural_forms(spec: str) -> dict[str, str]:
    """`one=кандидат|few=кандидата|many=кандидатов` as {category: form}."""
    return dict(part.split("=", 1) for part in spec.split("|"))


def as_number(value: Any) -> float | int | None:
    """The number a value shows (an int, or a grouped string such as "12 345"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    match = _NUMBER.search(str(value).replace("\u00a0", "").replace(" ", ""))
    if match is None:
        return None
    text = match.group().replace(",", ".")
    return float(text) if "." in text else int(text)


def placeholders(template: str) -> set[str]:
    """The {names} a text expects."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def pick_language(stored: str | None, telegram_code: str | None) -> str:
    """The user's chosen language, else one that fits Telegram's language_code."""
    if stored in LANGUAGES:
        return stored
    code = (telegram_code or "").lower().split("-")[0]
    return "ru" if code in _RUSSIAN_SPEAKING else DEFAULT_LANGUAGE


class Texts:
    """Texts of one language: `t("start.greeting", name=user_name)`."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._catalog = catalog(self.language)
        self._formatter = _formatter(self.language)

    def __call__(self, key: str, **values: Any) -> str:
        template = self._catalog.get(key)
        if template is None:
            template = catalog(DEFAULT_LANGUAGE)[key]
        safe = {
            name: value if isinstance(value, Raw | int | float) else html.escape(str(value),
                                                                               quote=False)
            for name, value in values.items()
        }
        return self._formatter.format(template, **safe)

    def all_variants(self, key: str) -> set[str]:
        """The text of a key in every language (to recognise a typed menu button)."""
        return {catalog(lang)[key] for lang in LANGUAGES}


def number_text(t: Texts, value: Any) -> str:
    """A whole number with thousands grouped as the language writes them (12,345 / 12 345)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)
    grouped = f"{value:,}"
    return grouped.replace(",", "\u00a0") if t.language == "ru" else grouped


def limit_text(t: Texts, limit: Any) -> Raw:
    """What a submission is over (tasks_metrics.limits.OverLimit) in the user's language
    (HTML, with the values escaped)."""
    return Raw(t(f"limits.{limit.code}", image=limit.image or "",
                 value=number_text(t, limit.value), limit=number_text(t, limit.limit)))


def problem_text(t: Texts, code: str, params: Mapping[str, Any]) -> str:
    """A completeness problem (tasks_metrics.checker) in the user's language."""
    values = dict(params)
    if "reason" in values:
        values["reason"] = t(f"checker.reason.{values['reason']}")
    return t(f"checker.{code}", **values)
