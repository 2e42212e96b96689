"""The user side of the sandbox: simulated Telegram users and what they see of the bot."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.telegram.html import detect_entities

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sandbox.telegram.files import FileRecord
    from sandbox.telegram.user_side import UserSide

__all__ = ["TINY_PNG", "BotMessage", "ChatEvent", "SentFile", "TelegramGroup", "TelegramUser"]

# A 1x1 transparent PNG, the default picture a user sends.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)
_OGG = b"OggS\x00\x02" + b"\x00" * 40


@dataclass
class SentFile:
    """A file the bot sent: name, MIME type and the exact bytes."""

    file_name: str | None
    mime_type: str | None
    data: bytes
    file_id: str


@dataclass
class BotMessage:
    """A message as the user sees it (one snapshot: as sent, or after one edit)."""

    message_id: int
    chat_id: int
    text: str
    html: str | None
    entities: list[dict[str, Any]]
    kind: str
    buttons: list[list[str]]
    button_data: dict[str, str]
    url_buttons: dict[str, str]
    reply_keyboard: list[list[str]] | None
    remove_keyboard: bool
    document: SentFile | None
    photo: bytes | None
    media_group_id: str | None
    raw: dict[str, Any]
    parse_mode: str | None = None
    force_reply: bool = False
    edited: bool = False
    deleted: bool = False
    received_at: float = field(default_factory=time.monotonic)

    @property
    def caption(self) -> str:
        """The caption of a media message (same as ``text``)."""
        return self.text

    @property
    def inline_buttons(self) -> list[dict[str, Any]]:
        """All inline buttons as raw dicts, row by row."""
        markup = self.raw.get("reply_markup") or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]

    def has_button(self, text: str) -> bool:
        """True if an inline button has exactly this text."""
        return any(b.get("text") == text for b in self.inline_buttons)

    def __contains__(self, needle: str) -> bool:
        return needle in self.text or (self.html is not None and needle in self.html)

    def describe(self) -> str:
        """A one-line human description used in assertion messages."""
        text = self.text if len(self.text) <= 300 else self.text[:300] + "…"
        parts = [f"#{self.message_id} {self.kind}{' (edited)' if self.edited else ''}: {text!r}"]
        if self.document is not None:
            parts.append(f"file={self.document.file_name!r}")
        if self.buttons:
            parts.append(f"buttons={self.buttons}")
        if self.reply_keyboard:
            parts.append(f"keyboard={self.reply_keyboard}")
        if self.deleted:
            parts.append("[deleted]")
        return " ".join(parts)

    @classmethod
    def from_raw(
        cls,
        files: Mapping[str, FileRecord],
        raw: dict[str, Any],
        *,
        html: str | None,
        parse_mode: str | None,
        markup: dict[str, Any] | None,
        edited: bool = False,
    ) -> BotMessage:
        """Build a snapshot from a stored Telegram Message dict (`files`: the server's, by id)."""
        inline = (raw.get("reply_markup") or {}).get("inline_keyboard", [])
        buttons = [[b.get("text", "") for b in row] for row in inline]
        button_data = {
            b["text"]: b["callback_data"] for row in inline for b in row if "callback_data" in b
        }
        url_buttons = {b["text"]: b["url"] for row in inline for b in row if "url" in b}
        reply_keyboard = None
        remove = False
        force = False
        if markup:
            if "keyboard" in markup:
                reply_keyboard = [
                    [b if isinstance(b, str) else b.get("text", "") for b in row]
                    for row in markup["keyboard"]
                ]
            remove = bool(markup.get("remove_keyboard"))
            force = bool(markup.get("force_reply"))
        document = None
        photo = None
        if "document" in raw:
            doc = raw["document"]
            rec = files.get(doc["file_id"])
            document = SentFile(
                doc.get("file_name"), doc.get("mime_type"), rec.data if rec else b"", doc["file_id"]
            )
        if "photo" in raw:
            rec = files.get(raw["photo"][-1]["file_id"])
            photo = rec.data if rec else b""
        if "media_group_id" in raw:
            kind = "media_group_item"
        elif "photo" in raw:
            kind = "photo"
        elif "document" in raw:
            kind = "document"
        else:
            kind = "text"
        text = raw.get("text", raw.get("caption", ""))
        entities = raw.get("entities", raw.get("caption_entities", []))
        return cls(
            message_id=raw["message_id"],
            chat_id=raw["chat"]["id"],
            text=text,
            html=html,
            entities=entities,
            kind=kind,
            buttons=buttons,
            button_data=button_data,
            url_buttons=url_buttons,
            reply_keyboard=reply_keyboard,
            remove_keyboard=remove,
            document=document,
            photo=photo,
            media_group_id=raw.get("media_group_id"),
            raw=raw,
            parse_mode=parse_mode,
            force_reply=force,
            edited=edited,
        )


@dataclass
class ChatEvent:
    """One entry of a chat's history: kind is message|edit|delete|answer|action|user."""

    kind: str
    message_id: int | None
    message: BotMessage | None = None
    data: dict[str, Any] | None = None
    at: float = field(default_factory=time.monotonic)

    def describe(self) -> str:
        """A one-line human description."""
        if self.message is not None:
            return f"{self.kind}: {self.message.describe()}"
        return f"{self.kind}: #{self.message_id} {self.data}"


Matcher = str | re.Pattern[str] | None


def _matches(item: BotMessage | dict[str, Any], contains: Matcher) -> bool:
    if contains is None:
        return True
    if isinstance(item, BotMessage):
        hay = [item.text, item.html or ""]
        if item.document is not None and item.document.file_name:
            hay.append(item.document.file_name)
    else:
        hay = [str(item.get("text") or "")]
    if isinstance(contains, re.Pattern):
        return any(contains.search(h) for h in hay)
    return any(contains in h for h in hay)


class TelegramUser:
    """A simulated Telegram user chatting privately with one bot.

    It acts through the server's user side (`UserSide`); the server reports what the bot does
    through the `on_*` methods (the `world.Chat` interface)."""

    def __init__(
        self,
        side: UserSide,
        user_id: int,
        *,
        first_name: str,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        is_premium: bool = False,
    ) -> None:
        self._side = side
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.is_premium = is_premium
        self.blocked = False
        self.messages: list[BotMessage] = []
        self.edits: list[BotMessage] = []
        self.answers: list[dict[str, Any]] = []
        self.actions: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.chat_history: list[ChatEvent] = []
        self._current: dict[int, BotMessage] = {}
        self._cursor_message = 0
        self._cursor_edit = 0
        self._cursor_answer = 0
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ identity
    @property
    def chat_id(self) -> int:
        """The private chat id (equals the user id)."""
        return self.id

    @property
    def bot_token(self) -> str:
        """The token of the bot this user talks to."""
        return self._side.bot_token

    def as_user(self) -> dict[str, Any]:
        """The Telegram User object of this user."""
        d: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        if self.language_code:
            d["language_code"] = self.language_code
        if self.is_premium:
            d["is_premium"] = True
        return d

    def as_chat(self) -> dict[str, Any]:
        """The Telegram Chat object of the private chat with this user."""
        d: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        d["type"] = "private"
        return d

    def __repr__(self) -> str:
        return f"<TelegramUser {self.id} {self.first_name!r} @{self.username}>"

    # ------------------------------------------------------------------ user actions
    async def send_fields(self, fields: dict[str, Any], *,
                          reply_to: int | None = None) -> dict[str, Any]:
        """A message with these Message fields (a forward, a contact, anything the other
        send_* methods do not cover), as the fast tier's FastChat.send_fields."""
        msg = self._side.send_message(self, fields, reply_to=reply_to)
        await asyncio.sleep(0)
        return msg

    async def send(self, text: str, *, reply_to: int | None = None) -> dict[str, Any]:
        """Send a text message (commands get a bot_command entity); return the Message."""
        fields: dict[str, Any] = {"text": text}
        entities = detect_entities(text, [])
        if entities:
            fields["entities"] = entities
        return await self.send_fields(fields, reply_to=reply_to)

    async def send_photo(
        self, data: bytes | None = None, caption: str | None = None
    ) -> dict[str, Any]:
        """Send a photo (a tiny PNG by default); the bot can getFile each PhotoSize."""
        sizes = self._side.upload_photo(data if data is not None else TINY_PNG)
        fields: dict[str, Any] = {"photo": sizes}
        if caption:
            fields["caption"] = caption
        return await self.send_fields(fields)

    async def send_document(
        self,
        data: bytes,
        file_name: str = "file.bin",
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """Send a document with this name and MIME type."""
        doc = self._side.upload_document(data, file_name, mime_type)
        fields: dict[str, Any] = {"document": doc}
        if caption:
            fields["caption"] = caption
        return await self.send_fields(fields)

    async def send_sticker(self, emoji: str = "👍") -> dict[str, Any]:
        """Send a (static WebP) sticker."""
        rec = self._side.upload_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "sticker", "sticker.webp")
        sticker = {
            "file_id": rec.file_id,
            "file_unique_id": rec.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "SandboxStickers",
            "file_size": len(rec.data),
        }
        return await self.send_fields({"sticker": sticker})

    async def send_voice(self, data: bytes | None = None, duration: int = 1) -> dict[str, Any]:
        """Send a voice message (OGG/Opus)."""
        rec = self._side.upload_file(data or _OGG, "voice", "voice.oga", "audio/ogg")
        voice = {
            "file_id": rec.file_id,
            "file_unique_id": rec.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(rec.data),
        }
        return await self.send_fields({"voice": voice})

    async def forward_from(
        self, other: TelegramUser | dict[str, Any], text: str = "hi"
    ) -> dict[str, Any]:
        """Forward a text message originally written by ``other`` (a user or a User dict)."""
        sender = other.as_user() if isinstance(other, TelegramUser) else dict(other)
        date = int(time.time()) - 60
        fields: dict[str, Any] = {
            "forward_origin": {"type": "user", "date": date, "sender_user": sender},
            "forward_from": sender,
            "forward_date": date,
            "text": text,
        }
        return await self.send_fields(fields)

    async def edit(self, message_id: int, text: str) -> dict[str, Any]:
        """Edit one of this user's own messages (the bot gets an edited_message update)."""
        msg = self._side.edit_message(self, message_id, text)
        await asyncio.sleep(0)
        return msg

    async def press(self, text: str, *, message_id: int | None = None) -> str:
        """Press the inline button with this text on the newest message showing it; query id."""
        if message_id is not None:
            msg = self._current.get(message_id)
            if msg is None or msg.deleted:
                raise AssertionError(
                    f"user {self.id}: no bot message #{message_id} to press {text!r} on; "
                    f"{self._buttons_overview()}"
                )
            candidates = [msg]
        else:
            candidates = [m for m in reversed(self.messages) if not self._current_of(m).deleted]
            candidates = [self._current_of(m) for m in candidates]
        for msg in candidates:
            for button in msg.inline_buttons:
                if button.get("text") == text:
                    return await self._press_button(msg, button)
        for msg in candidates:
            hits = [b for b in msg.inline_buttons if text in b.get("text", "")]
            if len(hits) == 1:
                return await self._press_button(msg, hits[0])
            if len(hits) > 1:
                raise AssertionError(
                    f"user {self.id}: {text!r} matches several buttons of message "
                    f"#{msg.message_id}: {[b['text'] for b in hits]}"
                )
        raise AssertionError(
            f"user {self.id}: no inline button {text!r}; {self._buttons_overview()}"
        )

    async def press_data(self, data: str, *, message_id: int | None = None) -> str:
        """Send a callback_query with arbitrary (possibly forged) data; return the query id."""
        if message_id is None:
            live = [m for m in reversed(self.messages) if not self._current_of(m).deleted]
            if not live:
                raise AssertionError(f"user {self.id}: the bot has sent no message to press on")
            message_id = live[0].message_id
        return self._side.press_button(self, message_id, data)

    def block(self) -> None:
        """Block the bot: its sends fail with 403, and it gets a my_chat_member update."""
        if not self.blocked:
            self.blocked = True
            self._side.block_changed(self)

    def unblock(self) -> None:
        """Unblock the bot again."""
        if self.blocked:
            self.blocked = False
            self._side.block_changed(self)

    # ------------------------------------------------------------------ expectations
    async def expect_message(self, contains: Matcher = None, timeout: float = 5.0) -> BotMessage:  # noqa: ASYNC109
        """Wait for the next unseen new bot message (optionally containing text or a regex)."""
        return await self._expect("message", contains, timeout)

    async def expect_edit(self, contains: Matcher = None, timeout: float = 5.0) -> BotMessage:  # noqa: ASYNC109
        """Wait for the next unseen edit of a bot message (optionally containing text)."""
        return await self._expect("edit", contains, timeout)

    async def expect_answer(self, contains: Matcher = None, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait for the next unseen callback answer: dict with text, show_alert, url, ..."""
        return await self._expect("answer", contains, timeout)

    async def expect_nothing(self, within: float = 0.5) -> None:
        """Fail if any new bot message or edit arrives within ``within`` seconds."""
        n_msg, n_edit = len(self.messages), len(self.edits)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            if len(self.messages) > n_msg or len(self.edits) > n_edit:
                new = self.messages[n_msg:] + self.edits[n_edit:]
                raise AssertionError(
                    f"user {self.id}: expected nothing within {within}s, got:\n"
                    + "\n".join("  " + m.describe() for m in new)
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await self._wait(remaining)

    def skip_all(self) -> None:
        """Mark everything received so far as seen by every expect_* cursor."""
        self._cursor_message = len(self.messages)
        self._cursor_edit = len(self.edits)
        self._cursor_answer = len(self.answers)

    # ------------------------------------------------------------------ state access
    @property
    def last_message(self) -> BotMessage | None:
        """The newest bot message that is not deleted, in its current (edited) state."""
        for m in reversed(self.messages):
            cur = self._current_of(m)
            if not cur.deleted:
                return cur
        return None

    def current(self, message_id: int) -> BotMessage | None:
        """The current state of a bot message (after edits), or None."""
        return self._current.get(message_id)

    def transcript(self) -> str:
        """The whole chat as readable lines (handy in assertion messages)."""
        return "\n".join(e.describe() for e in self.chat_history)

    # ------------------------------------------------------------------ internals
    def _current_of(self, msg: BotMessage) -> BotMessage:
        return self._current.get(msg.message_id, msg)

    def _notify(self) -> None:
        ev = self._changed
        self._changed = asyncio.Event()
        ev.set()

    async def _wait(self, seconds: float) -> None:
        ev = self._changed
        try:
            await asyncio.wait_for(ev.wait(), seconds)
        except TimeoutError:
            pass

    async def _press_button(self, msg: BotMessage, button: dict[str, Any]) -> str:
        if "callback_data" not in button:
            raise AssertionError(
                f"user {self.id}: button {button.get('text')!r} of #{msg.message_id} has no "
                f"callback_data (it is {sorted(k for k in button if k != 'text')})"
            )
        qid = self._side.press_button(self, msg.message_id, button["callback_data"])
        await asyncio.sleep(0)
        return qid

    def _buttons_overview(self) -> str:
        seen = []
        for m in reversed(self.messages):
            cur = self._current_of(m)
            if cur.buttons and not cur.deleted:
                seen.append(f"  #{cur.message_id}: {cur.buttons}")
            if len(seen) >= 8:
                break
        if not seen:
            return "the chat has no message with inline buttons"
        return "buttons seen (newest first):\n" + "\n".join(seen)

    async def _expect(self, what: str, contains: Matcher, timeout: float) -> Any:  # noqa: ASYNC109
        items: list[Any] = {"message": self.messages, "edit": self.edits, "answer": self.answers}[
            what
        ]
        cursor_name = f"_cursor_{what}"
        start = getattr(self, cursor_name)
        idx = start
        timeout = max(timeout, self._side.expect_at_least)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while idx < len(items):
                item = items[idx]
                idx += 1
                if _matches(item, contains):
                    setattr(self, cursor_name, idx)
                    return item
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._wait(remaining)
        arrived = items[start:]
        want = f" containing {contains!r}" if contains is not None else ""
        lines = [
            f"user {self.id} ({self.first_name}): expected a new {what}{want} within {timeout}s; "
            + (f"{len(arrived)} other(s) arrived:" if arrived else "nothing arrived.")
        ]
        for item in arrived:
            lines.append("  " + (item.describe() if isinstance(item, BotMessage) else str(item)))
        tail = self.chat_history[-10:]
        if tail:
            lines.append("last chat events:")
            lines.extend("  " + e.describe() for e in tail)
        raise AssertionError("\n".join(lines))

    # ------------------------------------------------------------------ what the server reports
    def on_bot_message(
        self,
        raw: dict[str, Any],
        *,
        html: str | None,
        parse_mode: str | None,
        markup: dict[str, Any] | None,
    ) -> None:
        """The bot sent a message to this chat."""
        msg = BotMessage.from_raw(
            self._side.files, raw, html=html, parse_mode=parse_mode, markup=markup
        )
        self.messages.append(msg)
        self._current[msg.message_id] = msg
        self.chat_history.append(ChatEvent("message", msg.message_id, msg))
        self._notify()

    def on_bot_edit(self, raw: dict[str, Any], *, html: str | None, parse_mode: str | None) -> None:
        """The bot edited one of its messages."""
        msg = BotMessage.from_raw(
            self._side.files, raw, html=html, parse_mode=parse_mode, markup=None, edited=True
        )
        self.edits.append(msg)
        self._current[msg.message_id] = msg
        self.chat_history.append(ChatEvent("edit", msg.message_id, msg))
        self._notify()

    def on_bot_delete(self, message_id: int) -> None:
        """The bot deleted a message."""
        cur = self._current.get(message_id)
        if cur is not None:
            cur.deleted = True
        self.chat_history.append(ChatEvent("delete", message_id))
        self._notify()

    def on_callback_answer(self, answer: dict[str, Any]) -> None:
        """The bot answered a button press."""
        self.answers.append(answer)
        self.chat_history.append(ChatEvent("answer", answer.get("message_id"), data=answer))
        self._notify()

    def on_chat_action(self, action: str) -> None:
        """The bot showed a chat action."""
        self.actions.append(action)
        self.chat_history.append(ChatEvent("action", None, data={"action": action}))

    def on_own_message(self, msg: dict[str, Any]) -> None:
        """The server stored a message this user sent (or edited)."""
        self.sent.append(msg)
        self.chat_history.append(ChatEvent("user", msg["message_id"], data=msg))


class TelegramGroup(TelegramUser):
    """A group chat the bot is a member of. Members write in it with `send_as`; what the bot
    sends to the group's id is recorded here like a user's chat (`messages`, `expect_*`)."""

    def __init__(self, side: UserSide, chat_id: int, *, title: str) -> None:
        super().__init__(side, chat_id, first_name=title)
        self.title = title

    def as_chat(self) -> dict[str, Any]:
        """The Telegram Chat object of the group."""
        return {"id": self.id, "type": "group", "title": self.title}

    def __repr__(self) -> str:
        return f"<TelegramGroup {self.id} {self.title!r}>"

    async def send_as(self, member: TelegramUser, text: str) -> dict[str, Any]:
        """`member` writes `text` in the group (commands get a bot_command entity)."""
        fields: dict[str, Any] = {"text": text}
        entities = detect_entities(text, [])
        if entities:
            fields["entities"] = entities
        msg = self._side.send_message(self, fields, sender=member)
        await asyncio.sleep(0)
        return msg
