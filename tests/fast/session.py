"""A recording Telegram session for the fast tier: an aiogram `BaseSession` that answers the
bot's requests in process, as the Bot API would, and records every one of them.

The bot keeps its production defaults and request middlewares; only the transport changes.
Each request is prepared as aiogram's HTTP session prepares it (defaults resolved, files
attached) and each answer goes back through aiogram's own response checking, so a refusal
(a 400 for bad HTML, a 403 for a blocked user) reaches the handler as the same exception.
Nothing here opens a socket: a method this session does not know fails the test.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile

from sandbox.telegram import BotMessage, EntityParseError, format_text

if TYPE_CHECKING:
    from tests.fast.chat import FastChat

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_ANSWER = 200
MAX_BUTTON_DATA = 64
Params = dict[str, Any]


class Refused(Exception):
    """What the Bot API answers with ok=false: its status and description."""

    def __init__(self, description: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(description)
        self.status = status
        self.description = (description if description.startswith(("Bad Request", "Forbidden"))
                            else f"Bad Request: {description}")


@dataclass(frozen=True)
class Request:
    """One request the bot made: the Bot API method and its parameters as sent."""

    method: str
    params: Params


@dataclass(frozen=True)
class StoredFile:
    """A file the bot sent (or a user sent it): what `getFile` would return the bytes of."""

    file_id: str
    data: bytes
    file_name: str | None
    mime_type: str | None


class FileStore(dict[str, StoredFile]):
    """The files by id. `BotMessage.from_raw` reads the bytes of a document or a photo through
    the stand-in server's `files`, or (once the stand-in is split) through a mapping passed
    directly: this store is both."""

    @property
    def files(self) -> FileStore:
        """The store itself, where `from_raw` asks a server for its files."""
        return self


class RecordingSession(BaseSession):
    """Answers the bot like Telegram: message ids per chat, the chat, the sent text and markup
    echoed back, edits, callback answers, documents, photos and albums."""

    def __init__(self) -> None:
        super().__init__()
        self.bot_user: dict[str, Any] = {}
        self.requests: list[Request] = []
        self.unknown: list[Request] = []
        self.chats: dict[int, FastChat] = {}
        self.files = FileStore()
        self.queries: dict[str, tuple[FastChat, int]] = {}
        self._file_ids = itertools.count(1)
        self._media_groups = itertools.count(13_000_000_000_000)
        self._answers: dict[str, Callable[[Params, dict[str, StoredFile]], Awaitable[Any]]] = {
            "getMe": self._get_me, "sendMessage": self._send_message,
            "sendPhoto": self._send_photo, "sendDocument": self._send_document,
            "sendMediaGroup": self._send_media_group, "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageReplyMarkup": self._edit_markup, "deleteMessage": self._delete,
            "answerCallbackQuery": self._answer_query, "sendChatAction": self._chat_action,
            "setMyCommands": self._accept, "deleteMyCommands": self._accept,
        }

    def attach(self, bot: Bot) -> Bot:
        """Put this session in place of the bot's HTTP one, keeping the production request
        middlewares (the retry on 429). One session may serve the bots of several starts."""
        self.bot_user = {"id": int(bot.token.split(":", 1)[0]), "is_bot": True,
                         "first_name": "Candidate Test", "username": "candidate_test_bot"}
        self.middleware = bot.session.middleware
        bot.session = self
        return bot

    # --- aiogram's side -----------------------------------------------------------------------

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType],
                           timeout: int | None = None) -> TelegramType:  # noqa: ASYNC109
        params, attached = self._prepare(bot, method)
        files = {key: self._store_file(await _read(bot, value), value.filename)
                 for key, value in attached.items()}
        request = Request(method.__api_method__, params)
        self.requests.append(request)
        answer = self._answers.get(request.method)
        if answer is None:
            self.unknown.append(request)
            raise AssertionError(f"the fast tier does not answer {request.method}")
        try:
            body = {"ok": True, "result": await answer(params, files)}
            status = HTTPStatus.OK
        except Refused as refusal:
            status = refusal.status
            body = {"ok": False, "error_code": int(status), "description": refusal.description}
        return self.check_response(bot, method, status, json.dumps(body)).result

    def _prepare(self, bot: Bot, method: TelegramMethod[Any]) -> tuple[Params, dict[str, Any]]:
        """The parameters as aiogram's HTTP session would post them, JSON fields decoded."""
        files: dict[str, InputFile] = {}
        params = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None:
                params[key] = prepared
        return params, files

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None,
                             timeout: int = 30, chunk_size: int = 65536,  # noqa: ASYNC109
                             raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        raise AssertionError(f"the fast tier downloads nothing (asked for {url})")
        yield b""  # pragma: no cover

    async def close(self) -> None:
        """Nothing to close: no connection was ever opened."""

    # --- the chats ------------------------------------------------------------------------

    def register(self, chat: FastChat) -> None:
        """A chat the bot may write to."""
        self.chats[chat.id] = chat

    def _chat(self, params: Params, *, sending: bool = True) -> FastChat:
        chat = self.chats.get(int(params.get("chat_id", 0)))
        if chat is None:
            raise Refused("chat not found")
        if sending and chat.blocked:
            raise Refused("Forbidden: bot was blocked by the user", HTTPStatus.FORBIDDEN)
        return chat

    def _new_message(self, chat: FastChat, content: Params, params: Params,
                     html: str | None) -> Params:
        raw: Params = {"message_id": chat.next_message_id(), "from": self.bot_user,
                       "chat": chat.as_chat(), "date": int(time.time()), **content}
        markup = _markup(params.get("reply_markup"))
        if markup and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        chat.stored[raw["message_id"]] = raw
        chat.receive(BotMessage.from_raw(self.files, raw, html=html,  # type: ignore[arg-type]
                                         parse_mode=params.get("parse_mode"), markup=markup))
        return raw

    def _stored(self, params: Params) -> tuple[FastChat, Params]:
        chat = self._chat(params, sending=False)
        raw = chat.stored.get(int(params.get("message_id", 0)))
        if raw is None or raw.get("from") != self.bot_user:
            raise Refused("message to edit not found")
        return chat, raw

    def _store_file(self, data: bytes, file_name: str | None) -> StoredFile:
        number = next(self._file_ids)
        mime = mimetypes.guess_type(file_name)[0] if file_name else None
        stored = StoredFile(f"FAST{number:08d}", data, file_name, mime)
        self.files[stored.file_id] = stored
        return stored

    def _file(self, reference: Any, files: dict[str, StoredFile]) -> StoredFile:
        """The file a parameter names: attach://key (uploaded with it) or a known file_id."""
        reference = str(reference)
        known = (files.get(reference.removeprefix("attach://"))
                 if reference.startswith("attach://") else self.files.get(reference))
        if known is None:
            raise Refused("wrong file identifier/HTTP URL specified")
        return known

    # --- the methods ----------------------------------------------------------------------

    async def _get_me(self, params: Params, files: dict[str, StoredFile]) -> Params:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _accept(self, params: Params, files: dict[str, StoredFile]) -> bool:
        return True

    async def _send_message(self, params: Params, files: dict[str, StoredFile]) -> Params:
        chat = self._chat(params)
        text = params.get("text")
        content = _formatted("text", text, params.get("parse_mode"), MAX_TEXT)
        return self._new_message(chat, content, params, text)

    async def _send_media(self, params: Params, files: dict[str, StoredFile], kind: str) -> Params:
        chat = self._chat(params)
        caption = params.get("caption")
        content = _formatted("caption", caption, params.get("parse_mode"), MAX_CAPTION)
        content[kind] = self._media(kind, self._file(params.get(kind), files))
        return self._new_message(chat, content, params, caption)

    async def _send_photo(self, params: Params, files: dict[str, StoredFile]) -> Params:
        return await self._send_media(params, files, "photo")

    async def _send_document(self, params: Params, files: dict[str, StoredFile]) -> Params:
        return await self._send_media(params, files, "document")

    async def _send_media_group(self, params: Params, files: dict[str, StoredFile]) -> list[Params]:
        chat = self._chat(params)
        media = params.get("media") or []
        if not 2 <= len(media) <= 10:
            raise Refused("wrong number of messages in media group (must be 2-10)")
        group = str(next(self._media_groups))
        sent = []
        for item in media:
            caption = item.get("caption")
            content = _formatted("caption", caption, item.get("parse_mode"), MAX_CAPTION)
            stored = self._file(item.get("media"), files)
            content[item["type"]] = self._media(item["type"], stored)
            content["media_group_id"] = group
            sent.append(self._new_message(chat, content, item, caption))
        return sent

    def _media(self, kind: str, stored: StoredFile) -> Any:
        if kind == "photo":
            return [{"file_id": stored.file_id, "file_unique_id": stored.file_id.lower(),
                     "width": 800, "height": 600, "file_size": len(stored.data)}]
        return {"file_id": stored.file_id, "file_unique_id": stored.file_id.lower(),
                "file_name": stored.file_name, "mime_type": stored.mime_type,
                "file_size": len(stored.data)}

    async def _edit_text(self, params: Params, files: dict[str, StoredFile]) -> Params:
        chat, raw = self._stored(params)
        if "text" not in raw:
            raise Refused("there is no text in the message to edit")
        text = params.get("text")
        changes = _formatted("text", text, params.get("parse_mode"), MAX_TEXT)
        return self._edit(chat, raw, {"entities": None, **changes}, params, text)

    async def _edit_caption(self, params: Params, files: dict[str, StoredFile]) -> Params:
        chat, raw = self._stored(params)
        if "text" in raw:
            raise Refused("there is no caption in the message to edit")
        caption = params.get("caption")
        changes = _formatted("caption", caption, params.get("parse_mode"), MAX_CAPTION)
        return self._edit(chat, raw, {"caption": None, "caption_entities": None, **changes},
                          params, caption)

    async def _edit_markup(self, params: Params, files: dict[str, StoredFile]) -> Params:
        chat, raw = self._stored(params)
        return self._edit(chat, raw, {}, params, None)

    def _edit(self, chat: FastChat, raw: Params, changes: Params, params: Params,
              html: str | None) -> Params:
        markup = _markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise Refused("inline keyboard expected")
        edited = {key: value for key, value in {**raw, **changes}.items() if value is not None}
        edited.pop("reply_markup", None)
        if markup and markup["inline_keyboard"]:
            edited["reply_markup"] = markup
        if {k: v for k, v in edited.items() if k != "edit_date"} == {
                k: v for k, v in raw.items() if k != "edit_date"}:
            raise Refused("message is not modified: specified new message content and reply"
                          " markup are exactly the same as a current content and reply markup"
                          " of the message")
        edited["edit_date"] = int(time.time())
        chat.stored[raw["message_id"]] = edited
        previous = chat.current(raw["message_id"])
        if html is None and previous is not None:
            html = previous.html
        chat.receive(BotMessage.from_raw(self.files, edited, html=html,  # type: ignore[arg-type]
                                         parse_mode=params.get("parse_mode"), markup=None,
                                         edited=True), edit=True)
        return edited

    async def _delete(self, params: Params, files: dict[str, StoredFile]) -> bool:
        chat = self._chat(params, sending=False)
        message_id = int(params.get("message_id", 0))
        if chat.stored.pop(message_id, None) is None:
            raise Refused("message to delete not found")
        chat.deleted(message_id)
        return True

    async def _answer_query(self, params: Params, files: dict[str, StoredFile]) -> bool:
        query_id = str(params.get("callback_query_id"))
        asked = self.queries.pop(query_id, None)
        if asked is None:
            raise Refused("query is too old and response timeout expired or query ID is"
                          " invalid")
        text = params.get("text")
        if text is not None and len(text) > MAX_ANSWER:
            raise Refused("MESSAGE_TOO_LONG")
        chat, message_id = asked
        chat.answered({"query_id": query_id, "message_id": message_id, "text": text,
                       "show_alert": bool(params.get("show_alert")), "url": params.get("url"),
                       "cache_time": params.get("cache_time", 0)})
        return True

    async def _chat_action(self, params: Params, files: dict[str, StoredFile]) -> bool:
        self._chat(params).actions.append(str(params.get("action")))
        return True


def _formatted(key: str, source: str | None, parse_mode: str | None, limit: int) -> Params:
    """`text`/`caption` and its entities as Telegram stores them, or Telegram's refusal."""
    try:
        plain, entities = format_text(source or "", parse_mode)
    except EntityParseError as exc:
        raise Refused(f"can't parse entities: {exc}") from None
    if key == "text" and not plain:
        raise Refused("message text is empty")
    if len(plain.encode("utf-16-le")) // 2 > limit:
        raise Refused(f"message {key} is too long" if key == "caption" else "message is too long")
    content: Params = {key: plain} if plain else {}
    if entities:
        content["entities" if key == "text" else "caption_entities"] = entities
    return content


def _markup(markup: Any) -> Params | None:
    """The reply markup as Telegram checks it: callback data of 1-64 bytes, every inline
    button with exactly one action."""
    if not isinstance(markup, dict):
        return None
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= MAX_BUTTON_DATA:
                raise Refused("BUTTON_DATA_INVALID")
            if len(set(button) & {"callback_data", "url", "switch_inline_query",
                                  "copy_text", "web_app", "login_url"}) != 1:
                raise Refused("can't parse inline keyboard button")
    return markup


async def _read(bot: Bot, value: InputFile) -> bytes:
    chunks = [chunk async for chunk in value.read(bot)]
    return b"".join(chunks)
