"""Sending: sendMessage, sendPhoto, sendDocument, sendMediaGroup and sendChatAction."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sandbox.telegram.api.common import chat_of, format_param, markup_of, reply_to_of
from sandbox.telegram.api.files import input_file, media_content
from sandbox.telegram.api.registry import method
from sandbox.telegram.errors import bad
from sandbox.telegram.params import Params
from sandbox.telegram.world import StoredMessage

if TYPE_CHECKING:
    from sandbox.telegram.world import BotState, Chat, World

CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}


@method("sendMessage")
async def send_message(world: World, bot: BotState, params: Params) -> Any:
    """A text message, with entities, a keyboard and link preview options."""
    user = chat_of(bot, params)
    text = params.str("text")
    plain, entities = format_param(world, text, params)
    markup = markup_of(params)
    reply_to = reply_to_of(bot, user, params)
    world.flood.check(bot.token, user.id)
    content: dict[str, Any] = {"text": plain}
    if entities:
        content["entities"] = entities
    lpo = params.json("link_preview_options")
    if isinstance(lpo, dict) and lpo.get("is_disabled"):
        content["link_preview_options"] = {"is_disabled": True}
    elif params.bool("disable_web_page_preview"):
        content["link_preview_options"] = {"is_disabled": True}
    return new_message(bot, user, params, content, markup, html=text, reply_to=reply_to)


@method("sendPhoto")
async def send_photo(world: World, bot: BotState, params: Params) -> Any:
    """A photo with a caption."""
    return await _send_media(world, bot, params, "photo")


@method("sendDocument")
async def send_document(world: World, bot: BotState, params: Params) -> Any:
    """A document with a caption."""
    return await _send_media(world, bot, params, "document")


async def _send_media(world: World, bot: BotState, params: Params, kind: str) -> Any:
    user = chat_of(bot, params)
    caption = params.str("caption")
    plain, entities = format_param(world, caption, params, caption=True)
    markup = markup_of(params)
    reply_to = reply_to_of(bot, user, params)
    rec, _ = await input_file(world, params, kind, params.values.get(kind), kind)
    world.flood.check(bot.token, user.id)
    content = media_content(world, rec, kind, plain, entities)
    return new_message(bot, user, params, content, markup, html=caption, reply_to=reply_to)


@method("sendMediaGroup")
async def send_media_group(world: World, bot: BotState, params: Params) -> Any:
    """2-10 photos or 2-10 documents as one album."""
    user = chat_of(bot, params)
    media = params.json("media", "media")
    if not isinstance(media, list):
        raise bad("can't parse media JSON object")
    if not 2 <= len(media) <= 10:
        raise bad("wrong number of messages in media group (must be 2-10)")
    kinds = set()
    prepared = []
    for i, item in enumerate(media):
        if not isinstance(item, dict) or item.get("type") not in ("photo", "document"):
            raise bad(f"can't parse InputMedia: media #{i} has unsupported type")
        kind = item["type"]
        kinds.add(kind)
        sub = Params(
            {
                "caption": item.get("caption"),
                "parse_mode": item.get("parse_mode"),
                "caption_entities": item.get("caption_entities"),
            },
            {},
        )
        plain, entities = format_param(world, item.get("caption"), sub, caption=True)
        prepared.append((kind, item, plain, entities))
    if "document" in kinds and len(kinds) > 1:
        raise bad("document can't be mixed with other media types")
    reply_to = reply_to_of(bot, user, params)
    records = []
    for kind, item, plain, entities in prepared:
        rec, _ = await input_file(world, params, "", item.get("media"), kind)
        records.append((kind, item, rec, plain, entities))
    world.flood.check(bot.token, user.id)
    group_id = str(next(bot.media_group_ids))
    result = []
    for kind, item, rec, plain, entities in records:
        content = media_content(world, rec, kind, plain, entities)
        content["media_group_id"] = group_id
        sub = Params({**params.values, "parse_mode": item.get("parse_mode")}, {})
        result.append(
            new_message(bot, user, sub, content, None, html=item.get("caption"), reply_to=reply_to)
        )
    return result


@method("sendChatAction")
async def send_chat_action(world: World, bot: BotState, params: Params) -> Any:
    """Show "typing..." or another action in the chat."""
    user = chat_of(bot, params)
    action = params.str("action")
    if action not in CHAT_ACTIONS:
        raise bad("wrong parameter action in request")
    user.on_chat_action(action)
    return True


def new_message(
    bot: BotState,
    user: Chat,
    params: Params,
    content: dict[str, Any],
    markup: dict[str, Any] | None,
    *,
    html: str | None,
    reply_to: dict[str, Any] | None,
) -> dict[str, Any]:
    """Store a message the bot sends to the chat, show it to the chat; the Message."""
    mid = bot.next_message_id(user.id)
    msg: dict[str, Any] = {
        "message_id": mid,
        "from": bot.as_user(),
        "chat": user.as_chat(),
        "date": int(time.time()),
    }
    if reply_to is not None:
        msg["reply_to_message"] = reply_to
    msg.update(content)
    if markup and markup.get("inline_keyboard"):
        msg["reply_markup"] = markup
    if params.bool("protect_content"):
        msg["has_protected_content"] = True
    parse_mode = params.str("parse_mode")
    bot.messages[(user.id, mid)] = StoredMessage(msg, True, html, parse_mode, markup)
    user.on_bot_message(msg, html=html, parse_mode=parse_mode, markup=markup)
    return msg
