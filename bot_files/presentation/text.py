"""Formatting shared by every screen: values cut to one line, numbers and moments as HR read
them, pages, and long texts split into messages Telegram takes."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Generic, TypeVar

from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot_files.texts import Texts

USER_TEXT_LIMIT = 64      # characters of a name a candidate chose, as shown to HR
MESSAGE_LIMIT = 3900      # under Telegram's 4096, leaving room for entities

Item = TypeVar("Item")
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None


@dataclass(frozen=True)
class Letter:
    """One rendered message: its text and, optionally, its buttons or keyboard."""

    text: str
    markup: Markup = None


def cut(text: str, limit: int = USER_TEXT_LIMIT) -> str:
    """A value someone typed, on one line and at most `limit` characters (then "…"), before
    it goes into a text: a name or plate text can then never break a message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def number(t: Texts, value: float | None, digits: int = 3) -> str:
    """A measure with `digits` decimals, or a dash."""
    return t("hr.no_value") if value is None else f"{value:.{digits}f}"


def count(t: Texts, value: int | None) -> str:
    """A count, or a dash."""
    return t("hr.no_value") if value is None else str(value)


def spent(t: Texts, value: timedelta | None) -> str:
    """A duration in whole minutes, or a dash."""
    if value is None:
        return t("hr.no_value")
    return t("hr.minutes", minutes=round(value.total_seconds() / 60))


def when_text(t: Texts, value: datetime | None, zone: tzinfo = UTC) -> str:
    """A moment as HR read it: "2026-11-30 14:05 UTC" ("… MSK" in Europe/Moscow), or a dash."""
    return t("hr.no_value") if value is None else value.astimezone(zone).strftime(
        "%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a list: its items, its number (1-based, within range) and how many."""

    items: Sequence[Item]
    number: int
    pages: int


def paginate(items: Sequence[Item], page: int, size: int) -> Page[Item]:
    """Page `page` of `items` (clamped to the pages there are; an empty list has one)."""
    pages = max(1, math.ceil(len(items) / size))
    page = min(max(page, 1), pages)
    return Page(items[(page - 1) * size:page * size], page, pages)


def _pack(parts: Iterable[str], separator: str, limit: int) -> list[str]:
    """Join parts with `separator` into as few texts under `limit` as they fit in."""
    texts: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + len(separator) + len(part) > limit:
            texts.append(current)
            current = part
        else:
            current = f"{current}{separator}{part}" if current else part
    if current:
        texts.append(current)
    return texts


def _whole_line(line: str, limit: int) -> str:
    """A line as it is, or (too long for a message alone: never, with values cut) without its
    markup and cut, rather than broken inside a tag."""
    if len(line) <= limit:
        return line
    text = html.unescape(re.sub(r"<[^>]*>", "", line))
    return html.escape(text[:limit // 2 - 1] + "…", quote=False)


def chunks(blocks: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join text blocks into messages under the limit. A block too long alone is split between
    its lines: no tag of ours spans lines and values are cut to one line, so no message ends
    inside a tag."""
    pieces = [piece for block in blocks for piece in (
        [block] if len(block) <= limit else
        _pack((_whole_line(line, limit) for line in block.split("\n")), "\n", limit))]
    return _pack(pieces, "\n\n", limit)
