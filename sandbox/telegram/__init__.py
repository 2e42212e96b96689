"""A faithful local stand-in for the Telegram Bot API, with simulated users for tests."""

from sandbox.telegram.html import EntityParseError, format_text, parse_html, parse_markdown_v2
from sandbox.telegram.server import ApiError, FileRecord, TelegramServer
from sandbox.telegram.user import (
    TINY_PNG,
    BotMessage,
    ChatEvent,
    SentFile,
    TelegramGroup,
    TelegramUser,
)
from sandbox.telegram.user_side import UserSide

__all__ = [
    "TINY_PNG",
    "ApiError",
    "BotMessage",
    "ChatEvent",
    "EntityParseError",
    "FileRecord",
    "SentFile",
    "TelegramGroup",
    "TelegramServer",
    "TelegramUser",
    "UserSide",
    "format_text",
    "parse_html",
    "parse_markdown_v2",
]
