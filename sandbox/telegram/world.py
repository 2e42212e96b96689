"""The state of the Telegram stand-in, shared by the HTTP front, the method families in
`api/`, webhook delivery and the user side: bots, their chats and messages, files, options."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from sandbox.telegram.errors import ApiError
from sandbox.telegram.files import FileStore
from sandbox.telegram.limits import FloodLimits, InjectedErrors
from sandbox.telegram.params import Params

if TYPE_CHECKING:
    from sandbox.telegram.webhooks import Webhook

__all__ = ["DEFAULT_UPDATES", "TOKEN_RE", "BotState", "Chat", "StoredMessage", "World"]

TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
DEFAULT_UPDATES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)


class Chat(Protocol):
    """A chat as the server sees it (a simulated user, or a group): who it is, and the
    events the server reports to it. `sandbox.telegram.user.TelegramUser` is one."""

    id: int
    username: str | None
    blocked: bool

    def as_user(self) -> dict[str, Any]:
        """The Telegram User object of the chat's user."""
        ...

    def as_chat(self) -> dict[str, Any]:
        """The Telegram Chat object."""
        ...

    def on_bot_message(
        self,
        raw: dict[str, Any],
        *,
        html: str | None,
        parse_mode: str | None,
        markup: dict[str, Any] | None,
    ) -> None:
        """The bot sent a message to the chat."""
        ...

    def on_bot_edit(self, raw: dict[str, Any], *, html: str | None, parse_mode: str | None) -> None:
        """The bot edited one of its messages."""
        ...

    def on_bot_delete(self, message_id: int) -> None:
        """The bot deleted a message."""
        ...

    def on_callback_answer(self, answer: dict[str, Any]) -> None:
        """The bot answered a button press of the chat's user."""
        ...

    def on_chat_action(self, action: str) -> None:
        """The bot showed a chat action (typing, upload_photo...)."""
        ...

    def on_own_message(self, raw: dict[str, Any]) -> None:
        """The server stored a message the chat's user sent (or edited)."""
        ...


@dataclass
class StoredMessage:
    """A message of a chat as the server keeps it (for edits, replies and deletes)."""

    msg: dict[str, Any]
    from_bot: bool
    html: str | None = None
    parse_mode: str | None = None
    markup: dict[str, Any] | None = None


class BotState:
    """Everything the server keeps for one bot token."""

    def __init__(self, token: str, username: str, first_name: str) -> None:
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.username = username
        self.first_name = first_name
        self.updates: collections.deque[dict[str, Any]] = collections.deque()
        self.next_update_id = random.randint(100_000_000, 800_000_000)
        self.update_event = asyncio.Event()
        self.poll_generation = 0
        self.polling = 0
        self.allowed_updates: set[str] | None = None
        self.webhook: Webhook | None = None
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], StoredMessage] = {}
        self.chat_message_ids: dict[int, int] = {}
        self.queries: dict[str, dict[str, Any]] = {}
        self.users: dict[int, Chat] = {}
        self.media_group_ids = itertools.count(13_000_000_000_000_000)

    def as_user(self) -> dict[str, Any]:
        """The bot's User object (as in message.from)."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def get_me(self) -> dict[str, Any]:
        """The bot's getMe answer."""
        return {
            **self.as_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def wake_pollers(self) -> None:
        """Wake every waiting getUpdates."""
        ev = self.update_event
        self.update_event = asyncio.Event()
        ev.set()

    def next_message_id(self, chat: int) -> int:
        """The next message id of a chat (ids count per chat, as in private chats)."""
        mid = self.chat_message_ids.get(chat, 0) + 1
        self.chat_message_ids[chat] = mid
        return mid


class World:
    """The server's state and options; every part of the stand-in works on this one object."""

    def __init__(
        self,
        *,
        accept_any_token: bool,
        strict_html: bool,
        webhook_retry_delays: tuple[float, ...],
        webhook_timeout: float,
        record_calls: bool,
    ) -> None:
        self.accept_any_token = accept_any_token
        self.strict_html = strict_html
        self.webhook_retry_delays = webhook_retry_delays
        self.webhook_timeout = webhook_timeout
        self.record_calls = record_calls
        self.bots: dict[str, BotState] = {}
        self.files = FileStore()
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.bot_requests_count = 0
        # Users' expect_* calls wait at least this long before giving up: a test suite sets a
        # bound only a hang reaches, so a busy machine's late answers are never failures.
        self.expect_at_least = 0.0
        self.stopping = False
        self.flood = FloodLimits()
        self.injected = InjectedErrors()
        self.query_seq = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ bots
    def add_bot(self, token: str, username: str, first_name: str) -> BotState:
        """Register a bot token (or rename a known one)."""
        if not TOKEN_RE.match(token):
            raise ValueError(f"malformed bot token {token!r} (want digits:20+ chars)")
        bot = self.bots.get(token)
        if bot is None:
            bot = self.bots[token] = BotState(token, username, first_name)
        else:
            bot.username, bot.first_name = username, first_name
        return bot

    def auth(self, token: str) -> BotState:
        """The bot a call's token names; 401 for an unknown one."""
        bot = self.bots.get(token)
        if bot is not None:
            return bot
        if self.accept_any_token and TOKEN_RE.match(token):
            bot = self.bots[token] = BotState(token, f"bot{token.split(':')[0]}_bot", "Sandbox")
            return bot
        raise ApiError(401, "Unauthorized")

    def bot_for_user(self, token: str | None) -> BotState:
        """The bot a test means: the one with this token, or the only one."""
        if token is not None:
            bot = self.bots.get(token)
            if bot is None:
                bot = self.add_bot(token, "candidate_test_bot", "Candidate Test")
            return bot
        if len(self.bots) == 1:
            return next(iter(self.bots.values()))
        if not self.bots:
            raise ValueError("no bot registered: call server.add_bot(token) first")
        raise ValueError("several bots are registered: pass bot=TOKEN")

    # ------------------------------------------------------------------ calls
    def record(self, name: str, params: Params) -> None:
        """Remember a call for `calls` / `calls_of` (when `record_calls` is on)."""
        if self.record_calls:
            self.calls.append((name, params.recorded(), time.monotonic()))

    def http(self) -> aiohttp.ClientSession:
        """The server's own HTTP client (webhook delivery, files by URL), made on first use."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        """Close the server's HTTP client."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ------------------------------------------------------------------ updates
    def push_update(self, bot: BotState, kind: str, payload: dict[str, Any], chat: int) -> None:
        """Queue an update for the bot: for getUpdates, or for its webhook."""
        allowed = bot.allowed_updates
        if kind not in (allowed if allowed is not None else DEFAULT_UPDATES):
            return
        update = {"update_id": bot.next_update_id, kind: payload}
        bot.next_update_id += 1
        if bot.webhook is None:
            bot.updates.append(update)
            bot.wake_pollers()
            return
        bot.webhook.enqueue(chat, update)
