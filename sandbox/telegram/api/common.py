"""What several method families share: the chat a call names, text with its entities,
reply markup, and the message a call replies to."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sandbox.telegram.errors import ApiError, bad
from sandbox.telegram.html import EntityParseError, format_text, u16len

if TYPE_CHECKING:
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, Chat, World

__all__ = ["chat_of", "format_param", "markup_of", "reply_to_of"]

MAX_TEXT = 4096
MAX_CAPTION = 1024
BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
    "web_app",
    "copy_text",
)


def chat_of(bot: BotState, params: Params, *, sending: bool = True) -> Chat:
    """The chat `chat_id` names (an id or @username); 403 when sending to a blocked user."""
    raw = params.str("chat_id")
    if raw is None or raw == "":
        raise bad("chat_id is empty")
    user: Chat | None = None
    if raw.lstrip("-").isdigit():
        user = bot.users.get(int(raw))
    elif raw.startswith("@"):
        user = next((u for u in bot.users.values() if u.username == raw[1:]), None)
    if user is None:
        raise bad("chat not found")
    if sending and user.blocked:
        raise ApiError(403, "Forbidden: bot was blocked by the user")
    return user


def format_param(
    world: World, text: str | None, params: Params, *, caption: bool = False, prefix: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities of a text or caption, by its parse_mode or entities; 400s."""
    key = "caption" if caption else "text"
    parse_mode = params.str(f"{prefix}parse_mode")
    ent_key = f"{prefix}caption_entities" if caption else f"{prefix}entities"
    entities = params.json(ent_key, "entities")
    if entities is not None and not isinstance(entities, list):
        raise bad("can't parse entities JSON object")
    try:
        plain, ents = format_text(
            text or "", parse_mode, entities, strict_entities=world.strict_html
        )
    except EntityParseError as e:
        raise bad(f"can't parse entities: {e}") from None
    except ValueError:
        raise bad(f"unsupported parse_mode {parse_mode}") from None
    limit = MAX_CAPTION if caption else MAX_TEXT
    if not caption and not plain:
        raise bad("message text is empty")
    if u16len(plain) > limit:
        raise bad(f"message {key} is too long" if caption else "message is too long")
    return plain, ents


def markup_of(params: Params, *, inline_only: bool = False) -> dict[str, Any] | None:
    """The checked `reply_markup` of a call (inline, reply keyboard, remove, force reply)."""
    value = params.json("reply_markup", "reply keyboard markup")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad("object expected as reply markup")
    if "inline_keyboard" in value:
        return _check_inline(value)
    if inline_only:
        raise bad("inline keyboard expected")
    if "keyboard" in value:
        return _check_keyboard(value)
    if "remove_keyboard" in value:
        if value["remove_keyboard"] is not True:
            raise bad('field "remove_keyboard" of the ReplyKeyboardRemove must be true')
        return value
    if "force_reply" in value:
        if value["force_reply"] is not True:
            raise bad('field "force_reply" of the ForceReply must be true')
        return value
    raise bad("can't parse reply keyboard markup JSON object")


def reply_to_of(bot: BotState, user: Chat, params: Params) -> dict[str, Any] | None:
    """The message a call replies to (reply_parameters or reply_to_message_id), or None."""
    rp = params.json("reply_parameters")
    mid = None
    allow = params.bool("allow_sending_without_reply")
    if isinstance(rp, dict):
        mid = rp.get("message_id")
        allow = bool(rp.get("allow_sending_without_reply", allow))
    elif rp is not None:
        raise bad("can't parse reply parameters JSON object")
    if mid is None:
        mid = params.int("reply_to_message_id")
    if mid is None:
        return None
    stored = bot.messages.get((user.id, int(mid)))
    if stored is None:
        if allow:
            return None
        raise bad("message to be replied not found")
    return {k: v for k, v in stored.msg.items() if k != "reply_to_message"}


def _check_keyboard(value: dict[str, Any]) -> dict[str, Any]:
    rows = value["keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
    norm = []
    for row in rows:
        out_row = []
        for b in row:
            if isinstance(b, str):
                b = {"text": b}
            if not isinstance(b, dict) or not isinstance(b.get("text"), str):
                raise bad('can\'t parse keyboard button: Field "text" must be of type String')
            out_row.append(b)
        norm.append(out_row)
    return {**value, "keyboard": norm}


def _check_inline(value: dict[str, Any]) -> dict[str, Any]:
    rows = value["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    total = 0
    norm_rows = []
    for row in rows:
        norm_row = []
        for b in row:
            total += 1
            norm_row.append(_check_inline_button(b))
        norm_rows.append(norm_row)
    if total > 100:
        raise bad("reply markup is too long")
    return {"inline_keyboard": norm_rows}


def _check_inline_button(b: Any) -> dict[str, Any]:
    if not isinstance(b, dict):
        raise bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    if not isinstance(b.get("text"), str):
        raise bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    b = {k: v for k, v in b.items() if v is not None}
    actions = [k for k in BUTTON_ACTIONS if k in b]
    if not actions:
        raise bad("text buttons are unallowed in the inline keyboard")
    if len(actions) > 1:
        raise bad(
            "can't parse inline keyboard button: exactly one of the optional fields "
            f"must be used, got {', '.join(actions)}"
        )
    if "callback_data" in b:
        data = b["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad("BUTTON_DATA_INVALID")
    if "url" in b:
        url = b["url"]
        if not isinstance(url, str) or not re.match(r"^(https?|tg)://\S+$", url):
            raise bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
    return b
