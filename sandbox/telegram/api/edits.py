"""Changing what was sent: editMessageText, editMessageCaption, editMessageReplyMarkup,
deleteMessage and deleteMessages."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sandbox.telegram.api.common import chat_of, format_param, markup_of
from sandbox.telegram.api.registry import method
from sandbox.telegram.errors import bad

if TYPE_CHECKING:
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, Chat, StoredMessage, World

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_CONTENT_KEYS = ("text", "entities", "caption", "caption_entities", "reply_markup")


def _locate(bot: BotState, params: Params) -> tuple[Chat, StoredMessage]:
    """The bot's own message a call names by chat_id and message_id (inline ones: none)."""
    if params.has("inline_message_id"):
        raise bad("message to edit not found")
    user = chat_of(bot, params, sending=False)
    mid = params.int("message_id")
    if mid is None:
        raise bad("message identifier is not specified")
    stored = bot.messages.get((user.id, mid))
    if stored is None:
        raise bad("message to edit not found")
    if not stored.from_bot:
        raise bad("message can't be edited")
    return user, stored


def _apply_edit(
    user: Chat,
    stored: StoredMessage,
    changes: dict[str, Any],
    markup: dict[str, Any] | None,
    html: str | None,
    params: Params,
) -> dict[str, Any]:
    old = stored.msg
    new_markup = markup if markup and markup.get("inline_keyboard") else None
    msg = {**old, "edit_date": int(time.time())}
    for k, v in changes.items():
        if v is None:
            msg.pop(k, None)
        else:
            msg[k] = v
    if new_markup is None:
        msg.pop("reply_markup", None)
    else:
        msg["reply_markup"] = new_markup
    if all(old.get(k) == msg.get(k) for k in _CONTENT_KEYS):
        raise bad(NOT_MODIFIED)
    stored.msg = msg
    stored.markup = new_markup
    if html is not None:
        stored.html = html
        stored.parse_mode = params.str("parse_mode")
    user.on_bot_edit(msg, html=stored.html, parse_mode=stored.parse_mode)
    return msg


@method("editMessageText")
async def edit_message_text(world: World, bot: BotState, params: Params) -> Any:
    """New text (and inline keyboard) for a text message of the bot."""
    text = params.str("text")
    plain, entities = format_param(world, text, params)
    markup = markup_of(params, inline_only=True)
    user, stored = _locate(bot, params)
    if "text" not in stored.msg:
        raise bad("there is no text in the message to edit")
    changes = {"text": plain, "entities": entities or None}
    return _apply_edit(user, stored, changes, markup, text, params)


@method("editMessageCaption")
async def edit_message_caption(world: World, bot: BotState, params: Params) -> Any:
    """A new caption (and inline keyboard) for a media message of the bot."""
    caption = params.str("caption")
    plain, entities = format_param(world, caption, params, caption=True)
    markup = markup_of(params, inline_only=True)
    user, stored = _locate(bot, params)
    if "text" in stored.msg:
        raise bad("there is no caption in the message to edit")
    changes = {"caption": plain or None, "caption_entities": entities or None}
    return _apply_edit(user, stored, changes, markup, caption, params)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(world: World, bot: BotState, params: Params) -> Any:
    """A new inline keyboard (or none) for a message of the bot."""
    markup = markup_of(params, inline_only=True)
    user, stored = _locate(bot, params)
    kept = ("text", "entities", "caption", "caption_entities")
    keep = {k: stored.msg[k] for k in kept if k in stored.msg}
    return _apply_edit(user, stored, keep, markup, None, params)


@method("deleteMessage")
async def delete_message(world: World, bot: BotState, params: Params) -> Any:
    """Delete one message of the chat."""
    user = chat_of(bot, params, sending=False)
    mid = params.int("message_id")
    if mid is None:
        raise bad("message identifier is not specified")
    if bot.messages.pop((user.id, mid), None) is None:
        raise bad("message to delete not found")
    user.on_bot_delete(mid)
    return True


@method("deleteMessages")
async def delete_messages(world: World, bot: BotState, params: Params) -> Any:
    """Delete up to 100 messages of the chat (unknown ids are skipped)."""
    user = chat_of(bot, params, sending=False)
    ids = params.json("message_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad("message_ids must be a non-empty array of at most 100 identifiers")
    for mid in ids:
        if bot.messages.pop((user.id, int(mid)), None) is not None:
            user.on_bot_delete(int(mid))
    return True
