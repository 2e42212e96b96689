"""The bot and its chats: getMe, logOut, close, getChat, the command lists, the menu
button and the descriptions."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sandbox.telegram.api.common import chat_of
from sandbox.telegram.api.registry import method
from sandbox.telegram.errors import bad

if TYPE_CHECKING:
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, World


@method("getMe")
async def get_me(world: World, bot: BotState, params: Params) -> Any:
    """The bot's own User object with its capabilities."""
    return bot.get_me()


@method("logOut")
async def log_out(world: World, bot: BotState, params: Params) -> Any:
    """Accepted (the stand-in has no cloud server to log out from)."""
    return True


@method("close")
async def close(world: World, bot: BotState, params: Params) -> Any:
    """Accepted (the stand-in has no instance to close)."""
    return True


@method("getChat")
async def get_chat(world: World, bot: BotState, params: Params) -> Any:
    """The full ChatFullInfo of a chat."""
    user = chat_of(bot, params, sending=False)
    return {
        **user.as_chat(),
        "accent_color_id": user.id % 7,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    }


def _scope_key(params: Params) -> tuple[str, str]:
    scope = params.json("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad("can't parse BotCommandScope JSON object")
    lang = params.str("language_code", "") or ""
    if lang and not re.fullmatch(r"[a-z]{2}", lang):
        raise bad("invalid language code specified")
    return json.dumps(scope, sort_keys=True), lang


@method("setMyCommands")
async def set_my_commands(world: World, bot: BotState, params: Params) -> Any:
    """The command list of a scope and language (an empty list removes it)."""
    commands = params.json("commands", "commands") or []
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad("can't parse commands JSON object")
    clean = []
    for c in commands:
        if not isinstance(c, dict):
            raise bad("can't parse BotCommand JSON object")
        cmd = str(c.get("command", "")).lstrip("/").lower()
        desc = str(c.get("description", ""))
        if not re.fullmatch(r"[a-z0-9_]{1,32}", cmd):
            raise bad("BOT_COMMAND_INVALID")
        if not 1 <= len(desc.strip()) <= 256:
            raise bad("command description must be non-empty")
        clean.append({"command": cmd, "description": desc})
    key = _scope_key(params)
    if clean:
        bot.commands[key] = clean
    else:
        bot.commands.pop(key, None)
    return True


@method("getMyCommands")
async def get_my_commands(world: World, bot: BotState, params: Params) -> Any:
    """The command list of a scope and language."""
    return bot.commands.get(_scope_key(params), [])


@method("deleteMyCommands")
async def delete_my_commands(world: World, bot: BotState, params: Params) -> Any:
    """Remove the command list of a scope and language."""
    bot.commands.pop(_scope_key(params), None)
    return True


@method("setChatMenuButton")
async def set_chat_menu_button(world: World, bot: BotState, params: Params) -> Any:
    """The menu button of a chat (or the default one without chat_id)."""
    button = params.json("menu_button") or {"type": "default"}
    chat = params.int("chat_id")
    bot.menu_buttons[chat] = button
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(world: World, bot: BotState, params: Params) -> Any:
    """The menu button of a chat, else the default one, else the command list."""
    chat = params.int("chat_id")
    return bot.menu_buttons.get(chat) or bot.menu_buttons.get(None) or {"type": "commands"}


@method("setMyDescription")
async def set_my_description(world: World, bot: BotState, params: Params) -> Any:
    """Accepted (the stand-in shows no description)."""
    return True


@method("setMyShortDescription")
async def set_my_short_description(world: World, bot: BotState, params: Params) -> Any:
    """Accepted (the stand-in shows no description)."""
    return True
