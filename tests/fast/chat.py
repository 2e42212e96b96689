"""People in the fast tier: a private chat with the bot, driven in process.

    chat = FastChat(dp, bot, 1001, first_name="Anna")
    await chat.send("/start")
    assert "Hello, Anna!" in chat.last_text
    await chat.press("🌐 Language")

Each action builds the Bot API update Telegram would post and feeds it to the production
dispatcher (`dp.feed_raw_update`); it returns once the bot has handled it. What the bot sent
comes back through the recording session (tests/fast/session.py) as the same `BotMessage`
snapshots the end-to-end tier reads, so `expect_message`, `expect_edit`, `expect_answer` and
`expect_nothing` read as they do there. The expectations also wait (up to HANG) for what the
bot sends later from its own tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiogram import Bot, Dispatcher

from bot_files.worker import Worker
from config.env import Settings
from db import Database
from main import create_bot, create_dispatcher
from sandbox.telegram import TINY_PNG, BotMessage, ChatEvent, TelegramUser, format_text
from tasks_metrics.to_handlers import ensure_rule
from tests.fast.session import RecordingSession
from tests.flow import HANG

Matcher = str | re.Pattern[str] | None
Item = TypeVar("Item", BotMessage, dict[str, Any])
_update_ids = itertools.count(1)
_file_ids = itertools.count(1)


class _Inbox(Generic[Item]):
    """What the bot sent of one kind, in order, with the reader's place in it."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[Item] = []
        self.seen = 0
        self.arrived = asyncio.Event()

    def add(self, item: Item) -> None:
        self.items.append(item)
        self.arrived.set()

    async def next(self, contains: Matcher, describe: Callable[[], str]) -> Item:
        """The next unseen item matching `contains` (skipping the ones before it). The bot has
        handled each update before the action returns, so this waits only while some other
        task of the loop still runs (something the bot does on its own), up to HANG."""
        deadline = time.monotonic() + HANG
        start = checked = self.seen
        while True:
            for index in range(checked, len(self.items)):
                if _matches(self.items[index], contains):
                    self.seen = index + 1
                    return self.items[index]
            checked = len(self.items)
            self.arrived.clear()
            if not await _until(self.arrived, deadline):
                break
        want = f" containing {contains!r}" if contains is not None else ""
        other = "\n".join("  " + _describe(item) for item in self.items[start:]) or "  nothing"
        raise AssertionError(f"expected a new {self.what}{want}; what arrived instead:\n"
                             f"{other}\nthe chat so far:\n{describe()}")


# Tasks that wait for work forever (the job listeners, a worker's job taking): while only they
# run, nothing more can arrive. A job a worker runs is a task of its own ("job-<id>").
IDLE_TASKS = ("jobs-listener", "-jobs")


async def _until(event: asyncio.Event, deadline: float) -> bool:
    """Wait for `event` while another task of the loop runs; False once none runs (nothing
    more can arrive) or the deadline passed."""
    others = [task for task in asyncio.all_tasks()
              if task is not asyncio.current_task() and not task.done()
              and not task.get_name().endswith(IDLE_TASKS)]
    remaining = deadline - time.monotonic()
    if not others or remaining <= 0:
        return False
    arrival = asyncio.ensure_future(event.wait())
    done, _ = await asyncio.wait([arrival, *others], timeout=remaining,
                                 return_when=asyncio.FIRST_COMPLETED)
    arrival.cancel()
    return bool(done)


class FastChat:
    """A Telegram user in a private chat with the bot."""

    def __init__(self, dp: Dispatcher, bot: Bot, user_id: int, *, first_name: str = "User",
                 last_name: str | None = None, username: str | None = None,
                 language_code: str | None = "en") -> None:
        assert isinstance(bot.session, RecordingSession), "the bot needs a RecordingSession"
        self.dp = dp
        self.bot = bot
        self.session = bot.session
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.blocked = False
        self.stored: dict[int, dict[str, Any]] = {}
        self.actions: list[str] = []
        self.chat_history: list[ChatEvent] = []
        self._messages: _Inbox[BotMessage] = _Inbox("message")
        self._edits: _Inbox[BotMessage] = _Inbox("edit")
        self._answers: _Inbox[dict[str, Any]] = _Inbox("answer")
        self._current: dict[int, BotMessage] = {}
        self._message_ids = itertools.count(1)
        self.session.register(self)

    def __repr__(self) -> str:
        return f"<FastChat {self.id} {self.first_name!r}>"

    # --- who this is --------------------------------------------------------------------

    @property
    def chat_id(self) -> int:
        """The chat's id (a private chat's id is the user's)."""
        return self.id

    def as_user(self) -> dict[str, Any]:
        """The Telegram User object."""
        user = {"id": self.id, "is_bot": False, "first_name": self.first_name,
                "last_name": self.last_name, "username": self.username,
                "language_code": self.language_code}
        return {key: value for key, value in user.items() if value is not None}

    def as_chat(self) -> dict[str, Any]:
        """The Telegram Chat object."""
        chat = {"id": self.id, "type": "private", "first_name": self.first_name,
                "last_name": self.last_name, "username": self.username}
        return {key: value for key, value in chat.items() if value is not None}

    # --- what the user does ---------------------------------------------------------------

    async def send(self, text: str, *, reply_to: int | None = None) -> dict[str, Any]:
        """A text message (commands, links and mentions get their entities)."""
        plain, entities = format_text(text, None)
        fields: dict[str, Any] = {"text": plain}
        if entities:
            fields["entities"] = entities
        if reply_to is not None:
            fields["reply_to_message"] = self.stored[reply_to]
        return await self.send_fields(fields)

    async def send_fields(self, fields: dict[str, Any],
                          sender: dict[str, Any] | None = None) -> dict[str, Any]:
        """A message with these Message fields (a forward, a contact, anything)."""
        message = {"message_id": self.next_message_id(), "from": sender or self.as_user(),
                   "chat": self.as_chat(), "date": int(time.time()), **fields}
        self.stored[message["message_id"]] = message
        self.chat_history.append(ChatEvent("user", message["message_id"], data=message))
        await self.feed("message", message)
        return message

    async def send_sticker(self, emoji: str = "👍") -> dict[str, Any]:
        """A static sticker."""
        return await self.send_fields({"sticker": {
            **_file("sticker"), "type": "regular", "width": 512, "height": 512,
            "is_animated": False, "is_video": False, "emoji": emoji}})

    async def send_photo(self, data: bytes = TINY_PNG,
                         caption: str | None = None) -> dict[str, Any]:
        """A photo (one size)."""
        fields: dict[str, Any] = {"photo": [{**_file("photo"), "width": 1, "height": 1,
                                             "file_size": len(data)}]}
        return await self.send_fields({**fields, **({"caption": caption} if caption else {})})

    async def send_voice(self, duration: int = 1) -> dict[str, Any]:
        """A voice message."""
        return await self.send_fields({"voice": {**_file("voice"), "duration": duration,
                                                 "mime_type": "audio/ogg"}})

    async def send_document(self, data: bytes, file_name: str = "file.bin",
                            mime_type: str | None = None) -> dict[str, Any]:
        """A file."""
        return await self.send_fields({"document": {
            **_file("document"), "file_name": file_name, "mime_type": mime_type,
            "file_size": len(data)}})

    async def forward_from(self, other: FastChat | dict[str, Any],
                           text: str = "hi") -> dict[str, Any]:
        """Forward a text message `other` wrote."""
        sender = other.as_user() if isinstance(other, FastChat) else dict(other)
        date = int(time.time()) - 60
        return await self.send_fields({"forward_origin": {"type": "user", "date": date,
                                                          "sender_user": sender},
                                       "forward_from": sender, "forward_date": date,
                                       "text": text})

    async def edit(self, message_id: int, text: str) -> dict[str, Any]:
        """Edit one of the user's own messages."""
        own = self.stored.get(message_id)
        assert own is not None and own["from"]["id"] == self.id, f"#{message_id} is not mine"
        edited = {**own, "text": text, "edit_date": int(time.time())}
        self.stored[message_id] = edited
        await self.feed("edited_message", edited)
        return edited

    async def press(self, text: str, *, message_id: int | None = None) -> str:
        """Press the inline button with this text (or the one button containing it) on the
        newest message showing it; the query id."""
        if message_id is not None:
            assert message_id in self._current, f"the bot sent no message #{message_id}"
        shown = ([self._current[message_id]] if message_id is not None
                 else [self._current[m.message_id] for m in reversed(self.messages)])
        shown = [m for m in shown if not m.deleted]
        for exact in (True, False):
            for message in shown:
                hits = [b for b in message.inline_buttons
                        if (b.get("text") == text if exact else text in b.get("text", ""))]
                if len(hits) > 1 and not exact:
                    raise AssertionError(f"{text!r} matches several buttons: {hits}")
                if hits:
                    assert "callback_data" in hits[0], f"{text!r} is not a callback button"
                    return await self.press_data(hits[0]["callback_data"],
                                                 message_id=message.message_id)
        raise AssertionError(f"no inline button {text!r}; buttons on screen:\n"
                             + "\n".join(f"  #{m.message_id}: {m.buttons}"
                                         for m in shown if m.buttons))

    async def press_data(self, data: str, *, message_id: int | None = None) -> str:
        """A callback query with any data (a forged button), on a message of the bot."""
        if message_id is None:
            live = [m for m in reversed(self.messages) if not self._current[m.message_id].deleted]
            assert live, "the bot has sent no message to press on"
            message_id = live[0].message_id
        message = self.stored.get(message_id) or {"message_id": message_id, "date": 0,
                                                  "chat": self.as_chat()}
        query_id = str(next(_update_ids) * 7919)
        self.session.queries[query_id] = (self, message_id)
        await self.feed("callback_query", {"id": query_id, "from": self.as_user(),
                                           "message": message, "chat_instance": str(self.id),
                                           "data": data})
        return query_id

    def block(self) -> None:
        """The user blocks the bot: what it sends from now on is refused (403)."""
        self.blocked = True

    def unblock(self) -> None:
        """The user unblocks the bot."""
        self.blocked = False

    async def feed(self, kind: str, payload: dict[str, Any]) -> None:
        """One update from this chat, handled by the dispatcher before this returns."""
        await self.dp.feed_raw_update(self.bot, {"update_id": next(_update_ids), kind: payload})

    # --- what the user sees -----------------------------------------------------------------

    @property
    def messages(self) -> list[BotMessage]:
        """Every message the bot sent here, as sent."""
        return self._messages.items

    @property
    def edits(self) -> list[BotMessage]:
        """Every edit of a bot message, in order."""
        return self._edits.items

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Every answer to a pressed button: text, show_alert, url."""
        return self._answers.items

    @property
    def last_message(self) -> BotMessage | None:
        """The newest message of the bot that is not deleted, as it is now."""
        live = [self._current[m.message_id] for m in reversed(self.messages)]
        return next((m for m in live if not m.deleted), None)

    @property
    def last_text(self) -> str:
        """The text (or caption) of `last_message`."""
        assert self.last_message is not None, "the bot has sent nothing here"
        return self.last_message.text

    def current(self, message_id: int) -> BotMessage | None:
        """A bot message as it is now (after edits)."""
        return self._current.get(message_id)

    def transcript(self) -> str:
        """The whole chat, one line per event."""
        return "\n".join(event.describe() for event in self.chat_history)

    async def expect_message(self, contains: Matcher = None,
                             timeout: float = HANG) -> BotMessage:  # noqa: ASYNC109
        """The next unseen message of the bot (containing a text or matching a pattern)."""
        return await self._messages.next(contains, self.transcript)

    async def expect_edit(self, contains: Matcher = None,
                          timeout: float = HANG) -> BotMessage:  # noqa: ASYNC109
        """The next unseen edit of a bot message."""
        return await self._edits.next(contains, self.transcript)

    async def expect_answer(self, contains: Matcher = None,
                            timeout: float = HANG) -> dict[str, Any]:  # noqa: ASYNC109
        """The next unseen answer to a pressed button."""
        return await self._answers.next(contains, self.transcript)

    async def expect_nothing(self, within: float = 0.5) -> None:
        """Nothing new from the bot (no message, no edit) while it finishes what it does on
        its own, for at most `within` seconds."""
        before = len(self.messages), len(self.edits)
        deadline = time.monotonic() + within
        while await _until(asyncio.Event(), deadline):
            pass
        new = self.messages[before[0]:] + self.edits[before[1]:]
        assert not new, "expected nothing, got:\n" + "\n".join(m.describe() for m in new)

    def skip_all(self) -> None:
        """Take everything received so far as seen."""
        for inbox in (self._messages, self._edits, self._answers):
            inbox.seen = len(inbox.items)

    # --- called by the recording session ------------------------------------------------

    def next_message_id(self) -> int:
        """Message ids are per chat, shared by both sides."""
        return next(self._message_ids)

    def receive(self, message: BotMessage, *, edit: bool = False) -> None:
        """The bot sent a message here, or edited one."""
        self._current[message.message_id] = message
        (self._edits if edit else self._messages).add(message)
        self.chat_history.append(ChatEvent("edit" if edit else "message", message.message_id,
                                           message))

    def deleted(self, message_id: int) -> None:
        """The bot deleted one of its messages."""
        self._current[message_id].deleted = True
        self.chat_history.append(ChatEvent("delete", message_id))

    def answered(self, answer: dict[str, Any]) -> None:
        """The bot answered a pressed button."""
        self._answers.add(answer)
        self.chat_history.append(ChatEvent("answer", answer["message_id"], data=answer))


class FastGroup(FastChat):
    """A group chat with the bot in it; members write with `send_as`."""

    def __init__(self, dp: Dispatcher, bot: Bot, chat_id: int, *, title: str) -> None:
        super().__init__(dp, bot, chat_id, first_name=title)
        self.title = title

    def as_chat(self) -> dict[str, Any]:
        """The Telegram Chat object of the group."""
        return {"id": self.id, "type": "group", "title": self.title}

    async def send_as(self, member: FastChat, text: str) -> dict[str, Any]:
        """`member` writes `text` in the group."""
        plain, entities = format_text(text, None)
        fields: dict[str, Any] = {"text": plain, **({"entities": entities} if entities else {})}
        return await self.send_fields(fields, sender=member.as_user())


class FastTelegram:
    """Telegram as one test sees it: the production bot and dispatcher (built as
    tests/conftest.py builds them) behind a recording session, and the people of the test,
    made with `telegram.user(...)` and `telegram.group(...)`."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.session = RecordingSession()
        self.worker: Worker | None = None

    async def start(self, *, worker: bool = True) -> None:
        """A bot and a dispatcher afresh (the database stays), and what the bot's start does
        that handlers read: the pass rule of the settings put in force; and (unless
        `worker=False`) a production worker on the same loop, for the jobs HR's exports and
        account actions queue. The keepers (pool, reconciliation) are not started here."""
        await ensure_rule(self.db, self.settings.pass_rule)
        self.bot = self.session.attach(create_bot(self.settings))
        self.dp = create_dispatcher(self.settings, self.db)
        for chat in self.session.chats.values():
            chat.dp, chat.bot = self.dp, self.bot
        if worker:
            await self.start_worker()

    async def start_worker(self) -> Worker:
        """Start the worker (if none runs)."""
        if self.worker is None:
            self.worker = await Worker(self.settings, self.db, keepers=False).start()
        return self.worker

    async def stop(self) -> None:
        """Stop the worker and close what the bot holds."""
        if self.worker is not None:
            await self.worker.stop(grace=0)
            self.worker = None
        await self.dp["jobs"].close()

    async def restart(self, **changes: Any) -> None:
        """A process restart as far as the bot can tell: new bot, dispatcher and storage,
        with some settings changed (`timezone="Europe/Moscow"`) if given."""
        await self.stop()
        self.settings = dataclasses.replace(self.settings, **changes)
        await self.start()

    def user(self, user_id: int, *, first_name: str = "User", last_name: str | None = None,
             username: str | None = None, language_code: str | None = "en") -> FastChat:
        """A person with a private chat with the bot."""
        return FastChat(self.dp, self.bot, user_id, first_name=first_name, last_name=last_name,
                        username=username, language_code=language_code)

    def group(self, chat_id: int, title: str) -> FastGroup:
        """A group the bot is in."""
        return FastGroup(self.dp, self.bot, chat_id, title=title)

    def users(self) -> list[FastChat]:
        """Everyone made so far."""
        return list(self.session.chats.values())


def _file(kind: str) -> dict[str, str]:
    number = next(_file_ids)
    return {"file_id": f"USER-{kind}-{number}", "file_unique_id": f"u{kind}{number}"}


def _matches(item: BotMessage | dict[str, Any], contains: Matcher) -> bool:
    if contains is None:
        return True
    if isinstance(item, BotMessage):
        hay = [item.text, item.html or "",
               item.document.file_name or "" if item.document else ""]
    else:
        hay = [str(item.get("text") or "")]
    if isinstance(contains, re.Pattern):
        return any(contains.search(h) for h in hay)
    return any(contains in h for h in hay)


def _describe(item: BotMessage | dict[str, Any]) -> str:
    return item.describe() if isinstance(item, BotMessage) else str(item)


# Someone in a chat with the bot, in either tier: steps written for both take this.
Person = FastChat | TelegramUser
