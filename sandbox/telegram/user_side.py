"""The user side of the Bot API: what a simulated user does on the server. A TelegramUser
(or a group's member) reaches the server only through a `UserSide` bound to its bot; the
server reaches the user back through the `world.Chat` interface (`on_bot_message`...)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sandbox.telegram.html import detect_entities
from sandbox.telegram.world import StoredMessage

if TYPE_CHECKING:
    from sandbox.telegram.files import FileRecord
    from sandbox.telegram.world import BotState, Chat, World

__all__ = ["UserSide"]


class UserSide:
    """One bot's server as its users see it: send, edit, press a button, block; upload files."""

    def __init__(self, world: World, bot: BotState) -> None:
        self._world = world
        self._bot = bot

    @property
    def bot_token(self) -> str:
        """The token of the bot the users talk to."""
        return self._bot.token

    @property
    def expect_at_least(self) -> float:
        """The shortest wait a user's expect_* call may give up after (the server's option)."""
        return self._world.expect_at_least

    @property
    def files(self) -> Mapping[str, FileRecord]:
        """The server's files by file_id (what a message's photo or document holds)."""
        return self._world.files.by_id

    # ------------------------------------------------------------------ files a user sends
    def upload_photo(self, data: bytes) -> list[dict[str, Any]]:
        """Store a photo the user sends; its PhotoSize list (the bot can getFile each)."""
        return self._world.files.register_photo(data)

    def upload_document(
        self, data: bytes, file_name: str | None, mime_type: str | None
    ) -> dict[str, Any]:
        """Store a document the user sends; its Document object."""
        return self._world.files.register_document(data, file_name, mime_type)

    def upload_file(
        self, data: bytes, kind: str, file_name: str | None = None, mime_type: str | None = None
    ) -> FileRecord:
        """Store another file the user sends (a sticker, a voice message...)."""
        return self._world.files.register(data, kind, file_name, mime_type)

    # ------------------------------------------------------------------ what a user does
    def send_message(
        self,
        chat: Chat,
        fields: dict[str, Any],
        *,
        reply_to: int | None = None,
        sender: Chat | None = None,
    ) -> dict[str, Any]:
        """The user (or `sender`, a member of the group `chat`) sends a message with these
        fields; the bot gets a `message` update. The stored Message."""
        bot = self._bot
        mid = bot.next_message_id(chat.id)
        msg: dict[str, Any] = {
            "message_id": mid,
            "from": (sender or chat).as_user(),
            "chat": chat.as_chat(),
            "date": int(time.time()),
        }
        if reply_to is not None:
            stored = bot.messages.get((chat.id, reply_to))
            if stored is None:
                raise AssertionError(f"user {chat.id}: no message #{reply_to} to reply to")
            msg["reply_to_message"] = {
                k: v for k, v in stored.msg.items() if k != "reply_to_message"
            }
        msg.update(fields)
        bot.messages[(chat.id, mid)] = StoredMessage(msg, False)
        chat.on_own_message(msg)
        self._world.push_update(bot, "message", msg, chat.id)
        return msg

    def edit_message(self, chat: Chat, message_id: int, text: str) -> dict[str, Any]:
        """The user edits one of their own messages; the bot gets an `edited_message`."""
        bot = self._bot
        stored = bot.messages.get((chat.id, message_id))
        if stored is None or stored.from_bot:
            raise AssertionError(f"user {chat.id}: message #{message_id} is not the user's own")
        msg = {**stored.msg, "text": text, "edit_date": int(time.time())}
        msg.pop("entities", None)
        entities = detect_entities(text, [])
        if entities:
            msg["entities"] = entities
        stored.msg = msg
        chat.on_own_message(msg)
        self._world.push_update(bot, "edited_message", msg, chat.id)
        return msg

    def press_button(self, chat: Chat, message_id: int, data: str) -> str:
        """The user presses a button with this callback data on a message (any data: a forged
        press too); the bot gets a `callback_query`. The query id."""
        bot = self._bot
        stored = bot.messages.get((chat.id, message_id))
        if stored is not None:
            message = stored.msg
        else:
            message = {"chat": chat.as_chat(), "message_id": message_id, "date": 0}
        qid = f"{bot.id % 1_000_000 * 10**13 + next(self._world.query_seq) * 7919}"
        bot.queries[qid] = {"user": chat.id, "answered": False, "message_id": message_id}
        query = {
            "id": qid,
            "from": chat.as_user(),
            "message": message,
            "chat_instance": str(-((bot.id * 1_000_003 + chat.id) % 9_000_000_000_000_000_000)),
            "data": data,
        }
        self._world.push_update(bot, "callback_query", query, chat.id)
        return qid

    def block_changed(self, chat: Chat) -> None:
        """The user blocked (chat.blocked) or unblocked the bot; it gets `my_chat_member`."""
        bot = self._bot
        old, new = ("member", "kicked") if chat.blocked else ("kicked", "member")

        def member(status: str) -> dict[str, Any]:
            extra = {"until_date": 0} if status == "kicked" else {}
            return {"status": status, "user": bot.as_user(), **extra}

        update = {
            "chat": chat.as_chat(),
            "from": chat.as_user(),
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
        self._world.push_update(bot, "my_chat_member", update, chat.id)
