"""An in-process HTTP stand-in for the Telegram Bot API (api.telegram.org)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import math
import mimetypes
import random
import re
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from sandbox.telegram.html import EntityParseError, format_text, u16len
from sandbox.telegram.user import BotMessage, TelegramGroup, TelegramUser

__all__ = ["ApiError", "FileRecord", "TelegramServer"]

log = logging.getLogger("sandbox.telegram")

TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
MAX_TEXT = 4096
MAX_CAPTION = 1024
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
JSON_FIELDS = {
    "reply_markup",
    "entities",
    "caption_entities",
    "media",
    "reply_parameters",
    "link_preview_options",
    "allowed_updates",
    "commands",
    "scope",
    "menu_button",
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
GETUPDATES_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


_CONTENT_KEYS = ("text", "entities", "caption", "caption_entities", "reply_markup")


class ApiError(Exception):
    """A Bot API error answer: HTTP status == error_code, Telegram's description."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad(description: str) -> ApiError:
    """A 400 Bad Request error."""
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class FileRecord:
    """A file known to the server (uploaded by a bot or sent by a user)."""

    file_id: str
    file_unique_id: str
    data: bytes
    kind: str
    file_name: str | None
    mime_type: str | None
    file_path: str
    width: int = 0
    height: int = 0


@dataclass
class _Stored:
    msg: dict[str, Any]
    from_bot: bool
    html: str | None = None
    parse_mode: str | None = None
    markup: dict[str, Any] | None = None


@dataclass
class _Webhook:
    url: str
    secret: str | None
    max_connections: int
    queues: dict[int, collections.deque[dict[str, Any]]] = field(default_factory=dict)
    workers: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    pending: int = 0
    last_error_date: int | None = None
    last_error_message: str | None = None
    semaphore: asyncio.Semaphore | None = None


@dataclass
class _Injected:
    status: int
    description: str
    retry_after: int | None
    count: int
    drop: bool


class _Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` stored."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Take one token; return 0 on success or the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class _BotState:
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
        self.webhook: _Webhook | None = None
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], _Stored] = {}
        self.chat_message_ids: dict[int, int] = {}
        self.queries: dict[str, dict[str, Any]] = {}
        self.users: dict[int, TelegramUser] = {}
        self.media_group_ids = itertools.count(13_000_000_000_000_000)

    def as_user(self) -> dict[str, Any]:
        """The bot's User object (as in message.from)."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def wake_pollers(self) -> None:
        """Wake every waiting getUpdates."""
        ev = self.update_event
        self.update_event = asyncio.Event()
        ev.set()


Handler = Callable[["TelegramServer", _BotState, "Params"], Awaitable[Any]]
_METHODS: dict[str, tuple[str, Handler]] = {}


def api(name: str) -> Callable[[Handler], Handler]:
    """Register a Bot API method implementation (names are case-insensitive, as in Telegram)."""

    def deco(fn: Handler) -> Handler:
        _METHODS[name.lower()] = (name, fn)
        return fn

    return deco


class Params:
    """Request parameters from query string, JSON, urlencoded or multipart bodies."""

    def __init__(self, values: dict[str, Any], files: dict[str, Upload]) -> None:
        self.values = values
        self.files = files

    def has(self, name: str) -> bool:
        """True if the parameter is present and not empty."""
        v = self.values.get(name)
        return (v is not None and v != "") or name in self.files

    def str(self, name: str, default: str | None = None) -> str | None:
        """A string parameter."""
        v = self.values.get(name)
        if v is None:
            return default
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    def int(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter; 400 if it is not a number."""
        v = self.values.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return int(v)
        try:
            return int(v)
        except (TypeError, ValueError):
            try:
                return int(float(v))
            except (TypeError, ValueError):
                raise bad(f"invalid {name} specified") from None

    def bool(self, name: str, default: bool = False) -> bool:
        """A boolean parameter (true/false/1/0)."""
        v = self.values.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return v
        return str(v).strip().lower() in ("true", "1", "yes", "on")

    def json(self, name: str, what: str | None = None) -> Any:
        """A JSON-serialized parameter (already decoded for JSON bodies)."""
        v = self.values.get(name)
        if v is None or v == "":
            return None
        if isinstance(v, str):
            try:
                return json.loads(v)
            except ValueError:
                raise bad(f"can't parse {what or name} JSON object") from None
        return v


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG or JPEG header, else (0, 0)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return w, h
    if data[:2] == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + seg_len
    return 0, 0


class TelegramServer:
    """A faithful local Telegram Bot API server with simulated users."""

    def __init__(
        self,
        *,
        accept_any_token: bool = False,
        strict_html: bool = True,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0),
        webhook_timeout: float = 10.0,
        record_calls: bool = True,
    ) -> None:
        self.accept_any_token = accept_any_token
        self.strict_html = strict_html
        self.webhook_retry_delays = webhook_retry_delays
        self.webhook_timeout = webhook_timeout
        self.record_calls = record_calls
        self.bots: dict[str, _BotState] = {}
        self.files: dict[str, FileRecord] = {}
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.bot_requests_count = 0
        # Users' expect_* calls wait at least this long before giving up: a test suite sets a
        # bound only a hang reaches, so a busy machine's late answers are never failures.
        self.expect_at_least = 0.0
        self.base_url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self._files_by_path: dict[str, FileRecord] = {}
        self._file_seq = itertools.count(1)
        self._query_seq = itertools.count(1)
        self._injected: dict[str, collections.deque[_Injected]] = {}
        self._limits: dict[str, float] | None = None
        self._chat_buckets: dict[tuple[str, int], _Bucket] = {}
        self._global_buckets: dict[str, _Bucket] = {}
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # ================================================================== lifecycle
    def make_app(self) -> web.Application:
        """The aiohttp application serving the Bot API."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving on host:port (0 = a free port); return and set ``base_url``."""
        self._stopping = False
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port
        self.base_url = f"http://{host}:{self.port}"
        return self.base_url

    async def stop(self) -> None:
        """Answer pending long polls, stop webhook delivery and close the server."""
        self._stopping = True
        for bot in self.bots.values():
            bot.wake_pollers()
            if bot.webhook is not None:
                for task in list(bot.webhook.workers.values()):
                    task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> TelegramServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ================================================================== test API
    def add_bot(
        self,
        token: str,
        username: str = "candidate_test_bot",
        first_name: str = "Candidate Test",
    ) -> dict[str, Any]:
        """Register a bot token; return its getMe dict."""
        if not TOKEN_RE.match(token):
            raise ValueError(f"malformed bot token {token!r} (want digits:20+ chars)")
        bot = self.bots.get(token)
        if bot is None:
            bot = self.bots[token] = _BotState(token, username, first_name)
        else:
            bot.username, bot.first_name = username, first_name
        return self._get_me(bot)

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        *,
        bot: str | None = None,
        is_premium: bool = False,
    ) -> TelegramUser:
        """Get (or create) a simulated user chatting with ``bot`` (optional with one bot)."""
        state = self._bot_for_user(bot)
        existing = state.users.get(user_id)
        if existing is not None:
            return existing
        u = TelegramUser(
            self,
            state,
            user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            is_premium=is_premium,
        )
        state.users[user_id] = u
        return u

    def group(self, chat_id: int, title: str = "Test group", *,
              bot: str | None = None) -> TelegramGroup:
        """Get (or create) a group chat (a negative id) the bot is a member of: its members
        write there with `send_as`, and what the bot sends there lands in its `messages`."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        state = self._bot_for_user(bot)
        existing = state.users.get(chat_id)
        if isinstance(existing, TelegramGroup):
            return existing
        group = TelegramGroup(self, state, chat_id, title=title)
        state.users[chat_id] = group
        return group

    def users(self, bot: str | None = None) -> list[TelegramUser]:
        """All users created for a bot."""
        return list(self._bot_for_user(bot).users.values())

    def inject_errors(
        self,
        method: str = "*",
        status: int = 500,
        *,
        retry_after: int | None = None,
        count: int = 1,
        drop: bool = False,
        description: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` ("*" = any) fail with ``status``.

        429 answers carry ``parameters.retry_after`` (default 1). ``drop=True`` closes the
        connection without any answer instead.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            elif status == 400:
                description = "Bad Request"
            else:
                description = STATUS_TEXT.get(status, "Internal Server Error")
        self._injected.setdefault(method.lower(), collections.deque()).append(
            _Injected(status, description, retry_after, count, drop)
        )

    def clear_injected_errors(self) -> None:
        """Forget every pending injected error."""
        self._injected.clear()

    def rate_limits(
        self,
        per_chat_per_second: float | None = 1.0,
        global_per_second: float | None = 30.0,
        *,
        burst: float = 3.0,
        enabled: bool = True,
    ) -> None:
        """Turn Telegram-like flood limits for sending methods on (or off with enabled=False)."""
        if not enabled:
            self._limits = None
            return
        self._limits = {
            "chat": per_chat_per_second or 0.0,
            "global": global_per_second or 0.0,
            "burst": burst,
        }
        self._chat_buckets.clear()
        self._global_buckets.clear()

    def pending_updates(self, token: str | None = None) -> int:
        """How many updates the bot has not confirmed (or not received by webhook) yet."""
        bot = self._bot_for_user(token)
        return len(bot.updates) + (bot.webhook.pending if bot.webhook else 0)

    async def wait_polling(
        self,
        token: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until a getUpdates long poll of the bot is in progress."""
        bot = self._bot_for_user(token)
        deadline = time.monotonic() + timeout
        while bot.polling == 0:
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not start polling")
            await asyncio.sleep(0.01)

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """The params of every recorded call of one method (case-insensitive)."""
        m = method.lower()
        return [p for name, p, _ in self.calls if name.lower() == m]

    # ================================================================== HTTP layer
    def _auth(self, token: str) -> _BotState:
        bot = self.bots.get(token)
        if bot is not None:
            return bot
        if self.accept_any_token and TOKEN_RE.match(token):
            bot = self.bots[token] = _BotState(token, f"bot{token.split(':')[0]}_bot", "Sandbox")
            return bot
        raise ApiError(401, "Unauthorized")

    async def _read_params(self, request: web.Request) -> Params:
        values: dict[str, Any] = dict(request.query)
        files: dict[str, Upload] = {}
        if request.method in ("POST", "PUT") and request.body_exists:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise bad("can't parse JSON object") from None
                if not isinstance(body, dict):
                    raise bad("can't parse JSON object")
                values.update(body)
            elif ctype == "multipart/form-data":
                await _read_multipart(await request.multipart(), values, files)
            else:
                raw = await request.read()
                values.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return Params(values, files)

    def _record(self, name: str, params: Params) -> None:
        clean: dict[str, Any] = {}
        for k, v in params.values.items():
            if k in JSON_FIELDS and isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            clean[k] = v
        for k, up in params.files.items():
            clean[k] = f"<file {up.filename} {len(up.data)} bytes>"
        self.calls.append((name, clean, time.monotonic()))

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        self.bot_requests_count += 1
        method = request.match_info["method"]
        entry = _METHODS.get(method.lower())
        name = entry[0] if entry else method
        self.counters[name] += 1
        try:
            bot = self._auth(request.match_info["token"])
            params = await self._read_params(request)
            if self.record_calls:
                self._record(name, params)
            if entry is None:
                raise ApiError(404, "Not Found")
            injected = self._take_injected(name)
            if injected is not None:
                if injected.drop:
                    if request.transport is not None:
                        request.transport.close()
                    raise ApiError(599, "dropped")
                params_out = {"retry_after": injected.retry_after} if injected.retry_after else None
                raise ApiError(injected.status, injected.description, params_out)
            result = await entry[1](self, bot, params)
        except ApiError as e:
            self.errors[f"{name}:{e.code}"] += 1
            return web.Response(
                status=e.code if e.code < 599 else 500,
                text=json.dumps(e.payload(), ensure_ascii=False),
                content_type="application/json",
            )
        return web.Response(
            text=json.dumps({"ok": True, "result": result}, ensure_ascii=False),
            content_type="application/json",
        )

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        self.bot_requests_count += 1
        not_found = web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )
        try:
            self._auth(request.match_info["token"])
        except ApiError:
            return not_found
        rec = self._files_by_path.get(request.match_info["path"])
        if rec is None:
            return not_found
        return web.Response(body=rec.data, content_type="application/octet-stream")

    def _take_injected(self, name: str) -> _Injected | None:
        for key in (name.lower(), "*"):
            queue = self._injected.get(key)
            if queue:
                rule = queue[0]
                rule.count -= 1
                if rule.count <= 0:
                    queue.popleft()
                return rule
        return None

    def _check_flood(self, bot: _BotState, chat_id: int) -> None:
        if self._limits is None:
            return
        waits = []
        if self._limits["chat"] > 0:
            bucket = self._chat_buckets.get((bot.token, chat_id))
            if bucket is None:
                bucket = self._chat_buckets[(bot.token, chat_id)] = _Bucket(
                    self._limits["chat"], self._limits["burst"]
                )
            waits.append(bucket.take())
        if self._limits["global"] > 0:
            gb = self._global_buckets.get(bot.token)
            if gb is None:
                rate = self._limits["global"]
                gb = self._global_buckets[bot.token] = _Bucket(rate, rate)
            waits.append(gb.take())
        wait = max(waits, default=0.0)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    # ================================================================== updates
    def _push_update(self, bot: _BotState, kind: str, payload: dict[str, Any], chat: int) -> None:
        allowed = bot.allowed_updates
        if kind not in (allowed if allowed is not None else DEFAULT_UPDATES):
            return
        update = {"update_id": bot.next_update_id, kind: payload}
        bot.next_update_id += 1
        wh = bot.webhook
        if wh is None:
            bot.updates.append(update)
            bot.wake_pollers()
            return
        wh.pending += 1
        queue = wh.queues.get(chat)
        if queue is None:
            queue = wh.queues[chat] = collections.deque()
        queue.append(update)
        if chat not in wh.workers:
            wh.workers[chat] = asyncio.get_running_loop().create_task(
                self._webhook_worker(bot, wh, chat)
            )

    async def _webhook_worker(self, bot: _BotState, wh: _Webhook, chat: int) -> None:
        queue = wh.queues[chat]
        try:
            while queue:
                update = queue[0]
                assert wh.semaphore is not None
                async with wh.semaphore:
                    await self._deliver(bot, wh, update)
                queue.popleft()
                wh.pending -= 1
        finally:
            wh.workers.pop(chat, None)
            if not queue:
                wh.queues.pop(chat, None)

    async def _deliver(self, bot: _BotState, wh: _Webhook, update: dict[str, Any]) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if wh.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = wh.secret
        body = json.dumps(update, ensure_ascii=False)
        for delay in (0.0, *self.webhook_retry_delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
                async with self._client.post(
                    wh.url, data=body, headers=headers, timeout=timeout
                ) as resp:
                    if 200 <= resp.status < 300:
                        self.counters["webhook_delivered"] += 1
                        await self._webhook_reply(bot, resp)
                        return
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except TimeoutError:
                error = "Read timeout expired"
            except aiohttp.ClientError as e:
                error = f"Connection error: {type(e).__name__}"
            wh.last_error_date = int(time.time())
            wh.last_error_message = error
            self.counters["webhook_failed"] += 1
        self.counters["webhook_dropped"] += 1
        log.warning("webhook update %s dropped after retries: %s", update["update_id"], error)

    async def _webhook_reply(self, bot: _BotState, resp: aiohttp.ClientResponse) -> None:
        """Execute a method the bot put into its webhook answer, as Telegram does."""
        values: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        try:
            if resp.content_type == "application/json":
                body = await resp.json(content_type=None)
                if isinstance(body, dict):
                    values = body
            elif resp.content_type == "multipart/form-data":
                await _read_multipart(
                    aiohttp.MultipartReader(resp.headers, resp.content), values, files
                )
        except (ValueError, aiohttp.ClientError):
            return
        method = values.pop("method", None)
        if not isinstance(method, str):
            return
        entry = _METHODS.get(method.lower())
        if entry is None:
            return
        params = Params(values, files)
        if self.record_calls:
            self._record(entry[0], params)
        self.counters[entry[0]] += 1
        try:
            await entry[1](self, bot, params)
        except ApiError as e:
            log.info("webhook reply %s failed: %s", entry[0], e.description)

    # ================================================================== helpers
    def _bot_for_user(self, token: str | None) -> _BotState:
        if token is not None:
            bot = self.bots.get(token)
            if bot is None:
                self.add_bot(token)
                bot = self.bots[token]
            return bot
        if len(self.bots) == 1:
            return next(iter(self.bots.values()))
        if not self.bots:
            raise ValueError("no bot registered: call server.add_bot(token) first")
        raise ValueError("several bots are registered: pass bot=TOKEN")

    def _get_me(self, bot: _BotState) -> dict[str, Any]:
        return {
            **bot.as_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _next_mid(self, bot: _BotState, chat: int) -> int:
        mid = bot.chat_message_ids.get(chat, 0) + 1
        bot.chat_message_ids[chat] = mid
        return mid

    def _chat(self, bot: _BotState, params: Params, *, sending: bool = True) -> TelegramUser:
        raw = params.str("chat_id")
        if raw is None or raw == "":
            raise bad("chat_id is empty")
        user: TelegramUser | None = None
        if raw.lstrip("-").isdigit():
            user = bot.users.get(int(raw))
        elif raw.startswith("@"):
            user = next((u for u in bot.users.values() if u.username == raw[1:]), None)
        if user is None:
            raise bad("chat not found")
        if sending and user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return user

    def _format(
        self, text: str | None, params: Params, *, caption: bool = False, prefix: str = ""
    ) -> tuple[str, list[dict[str, Any]]]:
        key = "caption" if caption else "text"
        parse_mode = params.str(f"{prefix}parse_mode")
        ent_key = f"{prefix}caption_entities" if caption else f"{prefix}entities"
        entities = params.json(ent_key, "entities")
        if entities is not None and not isinstance(entities, list):
            raise bad("can't parse entities JSON object")
        try:
            plain, ents = format_text(
                text or "", parse_mode, entities, strict_entities=self.strict_html
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

    def _markup(self, params: Params, *, inline_only: bool = False) -> dict[str, Any] | None:
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
                        raise bad(
                            'can\'t parse keyboard button: Field "text" must be of type String'
                        )
                    out_row.append(b)
                norm.append(out_row)
            return {**value, "keyboard": norm}
        if "remove_keyboard" in value:
            if value["remove_keyboard"] is not True:
                raise bad('field "remove_keyboard" of the ReplyKeyboardRemove must be true')
            return value
        if "force_reply" in value:
            if value["force_reply"] is not True:
                raise bad('field "force_reply" of the ForceReply must be true')
            return value
        raise bad("can't parse reply keyboard markup JSON object")

    def _reply_to(
        self, bot: _BotState, user: TelegramUser, params: Params
    ) -> dict[str, Any] | None:
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

    def _new_message(
        self,
        bot: _BotState,
        user: TelegramUser,
        params: Params,
        content: dict[str, Any],
        markup: dict[str, Any] | None,
        *,
        html: str | None,
        reply_to: dict[str, Any] | None,
    ) -> dict[str, Any]:
        mid = self._next_mid(bot, user.id)
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
        bot.messages[(user.id, mid)] = _Stored(msg, True, html, parse_mode, markup)
        user._on_message(
            BotMessage.from_raw(self, msg, html=html, parse_mode=parse_mode, markup=markup)
        )
        return msg

    # ---------------------------------------------------------------- files
    def _new_file_id(self, kind: str) -> tuple[str, str]:
        n = next(self._file_seq)
        prefix = {"photo": "AgACAgIAAxkBAA", "document": "BQACAgIAAxkBAA"}.get(
            kind, "CAACAgIAAxkBAA"
        )
        return f"{prefix}{n:06d}{secrets.token_urlsafe(24)}", f"AQAD{n:06d}{secrets.token_hex(4)}"

    def _register_file(
        self,
        data: bytes,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> FileRecord:
        file_id, unique = self._new_file_id(kind)
        folder = {"photo": "photos", "document": "documents", "voice": "voice"}.get(
            kind, kind + "s"
        )
        ext = ""
        if file_name and "." in file_name:
            ext = file_name.rsplit(".", 1)[1]
        elif kind == "photo":
            ext = "jpg"
        path = f"{folder}/file_{len(self._files_by_path)}{'.' + ext if ext else ''}"
        rec = FileRecord(file_id, unique, data, kind, file_name, mime_type, path)
        if kind == "photo":
            rec.width, rec.height = _image_size(data)
        self.files[file_id] = rec
        self._files_by_path[path] = rec
        return rec

    def _register_photo(self, data: bytes) -> list[dict[str, Any]]:
        rec = self._register_file(data, "photo")
        return self._photo_sizes(rec)

    def _photo_sizes(self, rec: FileRecord) -> list[dict[str, Any]]:
        sizes = []
        w, h = rec.width, rec.height
        if max(w, h) > 320:
            scale = 320 / max(w, h)
            thumb = self._register_file(rec.data, "photo")
            thumb.width, thumb.height = max(1, round(w * scale)), max(1, round(h * scale))
            sizes.append(
                {
                    "file_id": thumb.file_id,
                    "file_unique_id": thumb.file_unique_id,
                    "file_size": len(rec.data),
                    "width": thumb.width,
                    "height": thumb.height,
                }
            )
        sizes.append(
            {
                "file_id": rec.file_id,
                "file_unique_id": rec.file_unique_id,
                "file_size": len(rec.data),
                "width": w,
                "height": h,
            }
        )
        return sizes

    def _register_document(
        self, data: bytes, file_name: str | None, mime_type: str | None
    ) -> dict[str, Any]:
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        rec = self._register_file(
            data, "document", file_name, mime_type or "application/octet-stream"
        )
        return self._document_dict(rec)

    @staticmethod
    def _document_dict(rec: FileRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {"file_id": rec.file_id, "file_unique_id": rec.file_unique_id}
        if rec.file_name:
            doc["file_name"] = rec.file_name
        if rec.mime_type:
            doc["mime_type"] = rec.mime_type
        doc["file_size"] = len(rec.data)
        return doc

    async def _input_file(
        self, params: Params, field_name: str, value: Any, kind: str
    ) -> tuple[FileRecord, bool]:
        """Resolve an InputFile (upload part, attach://, file_id or URL); (record, is_new)."""
        upload = params.files.get(field_name)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = params.files.get(value[len("attach://") :])
            if upload is None:
                raise bad("wrong file identifier/HTTP URL specified")
        if upload is not None:
            if not upload.data:
                raise bad("file must be non-empty")
            name = upload.filename
            if kind == "document" and name == field_name:
                name = "document"
            mime = upload.content_type
            if mime in (None, "application/octet-stream") and name:
                mime = mimetypes.guess_type(name)[0] or mime
            return self._register_file(upload.data, kind, name, mime), True
        if not isinstance(value, str) or not value:
            raise bad(f"there is no {kind} in the request")
        if value.startswith(("http://", "https://")):
            data = await self._fetch_url(value)
            name = value.rsplit("/", 1)[-1].split("?")[0] or None
            mime = mimetypes.guess_type(name)[0] if name else None
            return self._register_file(data, kind, name, mime), True
        rec = self.files.get(value)
        if rec is None:
            raise bad("wrong file identifier/HTTP URL specified")
        if (rec.kind == "photo") != (kind == "photo"):
            have = rec.kind.capitalize()
            raise bad(f"can't use file of type {have} as {kind.capitalize()}")
        return rec, False

    async def _fetch_url(self, url: str) -> bytes:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        try:
            async with self._client.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status != 200:
                    raise bad("failed to get HTTP URL content")
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            raise bad("failed to get HTTP URL content") from None

    def _media_content(
        self, rec: FileRecord, kind: str, caption: str, entities: list[dict[str, Any]]
    ) -> dict[str, Any]:
        content: dict[str, Any] = {}
        if kind == "photo":
            content["photo"] = self._photo_sizes(rec)
        else:
            content["document"] = self._document_dict(rec)
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return content

    # ================================================================== user side
    def _user_message(
        self, user: TelegramUser, fields: dict[str, Any], *, reply_to: int | None = None,
        sender: TelegramUser | None = None,
    ) -> dict[str, Any]:
        bot = user._bot
        mid = self._next_mid(bot, user.id)
        msg: dict[str, Any] = {
            "message_id": mid,
            "from": (sender or user).as_user(),
            "chat": user.as_chat(),
            "date": int(time.time()),
        }
        if reply_to is not None:
            stored = bot.messages.get((user.id, reply_to))
            if stored is None:
                raise AssertionError(f"user {user.id}: no message #{reply_to} to reply to")
            msg["reply_to_message"] = {
                k: v for k, v in stored.msg.items() if k != "reply_to_message"
            }
        msg.update(fields)
        bot.messages[(user.id, mid)] = _Stored(msg, False)
        user._on_own(msg)
        self._push_update(bot, "message", msg, user.id)
        return msg

    def _user_edit(self, user: TelegramUser, message_id: int, text: str) -> dict[str, Any]:
        from sandbox.telegram.html import detect_entities

        bot = user._bot
        stored = bot.messages.get((user.id, message_id))
        if stored is None or stored.from_bot:
            raise AssertionError(f"user {user.id}: message #{message_id} is not the user's own")
        msg = {**stored.msg, "text": text, "edit_date": int(time.time())}
        msg.pop("entities", None)
        entities = detect_entities(text, [])
        if entities:
            msg["entities"] = entities
        stored.msg = msg
        user._on_own(msg)
        self._push_update(bot, "edited_message", msg, user.id)
        return msg

    def _user_callback(self, user: TelegramUser, message_id: int, data: str) -> str:
        bot = user._bot
        stored = bot.messages.get((user.id, message_id))
        if stored is not None:
            message = stored.msg
        else:
            message = {"chat": user.as_chat(), "message_id": message_id, "date": 0}
        qid = f"{bot.id % 1_000_000 * 10**13 + next(self._query_seq) * 7919}"
        bot.queries[qid] = {"user": user.id, "answered": False, "message_id": message_id}
        query = {
            "id": qid,
            "from": user.as_user(),
            "message": message,
            "chat_instance": str(-((bot.id * 1_000_003 + user.id) % 9_000_000_000_000_000_000)),
            "data": data,
        }
        self._push_update(bot, "callback_query", query, user.id)
        return qid

    def _user_block_changed(self, user: TelegramUser) -> None:
        bot = user._bot
        old, new = ("member", "kicked") if user.blocked else ("kicked", "member")

        def member(status: str) -> dict[str, Any]:
            extra = {"until_date": 0} if status == "kicked" else {}
            return {"status": status, "user": bot.as_user(), **extra}

        update = {
            "chat": user.as_chat(),
            "from": user.as_user(),
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
        self._push_update(bot, "my_chat_member", update, user.id)

    # ================================================================== API methods
    @api("getMe")
    async def _get_me_api(self, bot: _BotState, params: Params) -> Any:
        return self._get_me(bot)

    @api("logOut")
    async def _log_out(self, bot: _BotState, params: Params) -> Any:
        return True

    @api("close")
    async def _close(self, bot: _BotState, params: Params) -> Any:
        return True

    @api("getUpdates")
    async def _get_updates(self, bot: _BotState, params: Params) -> Any:
        if bot.webhook is not None:
            raise ApiError(409, GETUPDATES_CONFLICT)
        offset = params.int("offset", 0) or 0
        limit = params.int("limit", 100) or 100
        limit = 100 if limit < 1 or limit > 100 else limit
        timeout = max(0, params.int("timeout", 0) or 0)
        allowed = params.json("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = {str(a) for a in allowed} or None
        queue = bot.updates
        if offset < 0:
            while len(queue) > -offset:
                queue.popleft()
        elif offset:
            while queue and queue[0]["update_id"] < offset:
                queue.popleft()
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.wake_pollers()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        bot.polling += 1
        try:
            while True:
                if queue:
                    allowed_set = bot.allowed_updates
                    if allowed_set is None:
                        return list(itertools.islice(queue, limit))
                    out = []
                    for u in queue:
                        if any(k in allowed_set for k in u if k != "update_id"):
                            out.append(u)
                            if len(out) >= limit:
                                break
                    if out:
                        return out
                remaining = deadline - loop.time()
                if remaining <= 0 or self._stopping:
                    return []
                ev = bot.update_event
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), remaining)
                if generation != bot.poll_generation:
                    raise ApiError(409, TERMINATED)
                if bot.webhook is not None:
                    raise ApiError(409, GETUPDATES_CONFLICT)
        finally:
            bot.polling -= 1

    @api("setWebhook")
    async def _set_webhook(self, bot: _BotState, params: Params) -> Any:
        url = params.str("url", "") or ""
        if not url:
            return await self._delete_webhook(bot, params)
        if not url.startswith(("http://", "https://")):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad("secret token contains unallowed characters")
        max_conn = params.int("max_connections", 40) or 40
        if not 1 <= max_conn <= 100:
            raise bad("bad webhook: invalid max_connections specified")
        allowed = params.json("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = {str(a) for a in allowed} or None
        old = bot.webhook
        pending: list[dict[str, Any]] = []
        if old is not None:
            pending = self._stop_webhook(old)
        wh = _Webhook(url, secret, max_conn)
        wh.semaphore = asyncio.Semaphore(max_conn)
        if old is not None:
            wh.last_error_date, wh.last_error_message = old.last_error_date, old.last_error_message
        bot.webhook = wh
        bot.wake_pollers()
        pending.extend(bot.updates)
        bot.updates.clear()
        if params.bool("drop_pending_updates"):
            pending = []
        pending.sort(key=lambda u: u["update_id"])
        loop = asyncio.get_running_loop()
        for update in pending:
            chat = _update_chat(update)
            wh.pending += 1
            wh.queues.setdefault(chat, collections.deque()).append(update)
        for chat in list(wh.queues):
            wh.workers[chat] = loop.create_task(self._webhook_worker(bot, wh, chat))
        return True

    def _stop_webhook(self, wh: _Webhook) -> list[dict[str, Any]]:
        for task in wh.workers.values():
            task.cancel()
        pending = [u for q in wh.queues.values() for u in q]
        wh.queues.clear()
        wh.workers.clear()
        wh.pending = 0
        return pending

    @api("deleteWebhook")
    async def _delete_webhook(self, bot: _BotState, params: Params) -> Any:
        if bot.webhook is not None:
            pending = self._stop_webhook(bot.webhook)
            bot.webhook = None
            if not params.bool("drop_pending_updates"):
                merged = sorted([*pending, *bot.updates], key=lambda u: u["update_id"])
                bot.updates = collections.deque(merged)
            else:
                bot.updates.clear()
        elif params.bool("drop_pending_updates"):
            bot.updates.clear()
        return True

    @api("getWebhookInfo")
    async def _get_webhook_info(self, bot: _BotState, params: Params) -> Any:
        wh = bot.webhook
        if wh is None:
            return {
                "url": "",
                "has_custom_certificate": False,
                "pending_update_count": len(bot.updates),
            }
        info: dict[str, Any] = {
            "url": wh.url,
            "has_custom_certificate": False,
            "pending_update_count": wh.pending,
            "max_connections": wh.max_connections,
            "ip_address": "127.0.0.1",
        }
        if wh.last_error_date is not None:
            info["last_error_date"] = wh.last_error_date
            info["last_error_message"] = wh.last_error_message
        if bot.allowed_updates is not None:
            info["allowed_updates"] = sorted(bot.allowed_updates)
        return info

    @api("sendMessage")
    async def _send_message(self, bot: _BotState, params: Params) -> Any:
        user = self._chat(bot, params)
        text = params.str("text")
        plain, entities = self._format(text, params)
        markup = self._markup(params)
        reply_to = self._reply_to(bot, user, params)
        self._check_flood(bot, user.id)
        content: dict[str, Any] = {"text": plain}
        if entities:
            content["entities"] = entities
        lpo = params.json("link_preview_options")
        if isinstance(lpo, dict) and lpo.get("is_disabled"):
            content["link_preview_options"] = {"is_disabled": True}
        elif params.bool("disable_web_page_preview"):
            content["link_preview_options"] = {"is_disabled": True}
        return self._new_message(bot, user, params, content, markup, html=text, reply_to=reply_to)

    async def _send_media(self, bot: _BotState, params: Params, kind: str) -> Any:
        user = self._chat(bot, params)
        caption = params.str("caption")
        plain, entities = self._format(caption, params, caption=True)
        markup = self._markup(params)
        reply_to = self._reply_to(bot, user, params)
        rec, _ = await self._input_file(params, kind, params.values.get(kind), kind)
        self._check_flood(bot, user.id)
        content = self._media_content(rec, kind, plain, entities)
        return self._new_message(
            bot, user, params, content, markup, html=caption, reply_to=reply_to
        )

    @api("sendPhoto")
    async def _send_photo(self, bot: _BotState, params: Params) -> Any:
        return await self._send_media(bot, params, "photo")

    @api("sendDocument")
    async def _send_document(self, bot: _BotState, params: Params) -> Any:
        return await self._send_media(bot, params, "document")

    @api("sendMediaGroup")
    async def _send_media_group(self, bot: _BotState, params: Params) -> Any:
        user = self._chat(bot, params)
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
            plain, entities = self._format(item.get("caption"), sub, caption=True)
            prepared.append((kind, item, plain, entities))
        if "document" in kinds and len(kinds) > 1:
            raise bad("document can't be mixed with other media types")
        reply_to = self._reply_to(bot, user, params)
        records = []
        for kind, item, plain, entities in prepared:
            rec, _ = await self._input_file(params, "", item.get("media"), kind)
            records.append((kind, item, rec, plain, entities))
        self._check_flood(bot, user.id)
        group_id = str(next(bot.media_group_ids))
        result = []
        for kind, item, rec, plain, entities in records:
            content = self._media_content(rec, kind, plain, entities)
            content["media_group_id"] = group_id
            sub = Params({**params.values, "parse_mode": item.get("parse_mode")}, {})
            result.append(
                self._new_message(
                    bot, user, sub, content, None, html=item.get("caption"), reply_to=reply_to
                )
            )
        return result

    def _locate(self, bot: _BotState, params: Params, what: str) -> tuple[TelegramUser, _Stored]:
        if params.has("inline_message_id"):
            raise bad(f"message to {what} not found")
        user = self._chat(bot, params, sending=False)
        mid = params.int("message_id")
        if mid is None:
            raise bad("message identifier is not specified")
        stored = bot.messages.get((user.id, mid))
        if stored is None:
            raise bad(f"message to {what} not found")
        return user, stored

    def _apply_edit(
        self,
        bot: _BotState,
        user: TelegramUser,
        stored: _Stored,
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
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        stored.msg = msg
        stored.markup = new_markup
        if html is not None:
            stored.html = html
            stored.parse_mode = params.str("parse_mode")
        user._on_edit(
            BotMessage.from_raw(
                self, msg, html=stored.html, parse_mode=stored.parse_mode, markup=None, edited=True
            )
        )
        return msg

    @api("editMessageText")
    async def _edit_message_text(self, bot: _BotState, params: Params) -> Any:
        text = params.str("text")
        plain, entities = self._format(text, params)
        markup = self._markup(params, inline_only=True)
        user, stored = self._locate(bot, params, "edit")
        if not stored.from_bot:
            raise bad("message can't be edited")
        if "text" not in stored.msg:
            raise bad("there is no text in the message to edit")
        changes = {"text": plain, "entities": entities or None}
        return self._apply_edit(bot, user, stored, changes, markup, text, params)

    @api("editMessageCaption")
    async def _edit_message_caption(self, bot: _BotState, params: Params) -> Any:
        caption = params.str("caption")
        plain, entities = self._format(caption, params, caption=True)
        markup = self._markup(params, inline_only=True)
        user, stored = self._locate(bot, params, "edit")
        if not stored.from_bot:
            raise bad("message can't be edited")
        if "text" in stored.msg:
            raise bad("there is no caption in the message to edit")
        changes = {"caption": plain or None, "caption_entities": entities or None}
        return self._apply_edit(bot, user, stored, changes, markup, caption, params)

    @api("editMessageReplyMarkup")
    async def _edit_message_reply_markup(self, bot: _BotState, params: Params) -> Any:
        markup = self._markup(params, inline_only=True)
        user, stored = self._locate(bot, params, "edit")
        if not stored.from_bot:
            raise bad("message can't be edited")
        keep = {
            k: stored.msg[k]
            for k in ("text", "entities", "caption", "caption_entities")
            if k in stored.msg
        }
        return self._apply_edit(bot, user, stored, keep, markup, None, params)

    @api("deleteMessage")
    async def _delete_message(self, bot: _BotState, params: Params) -> Any:
        user = self._chat(bot, params, sending=False)
        mid = params.int("message_id")
        if mid is None:
            raise bad("message identifier is not specified")
        if bot.messages.pop((user.id, mid), None) is None:
            raise bad("message to delete not found")
        user._on_delete(mid)
        return True

    @api("deleteMessages")
    async def _delete_messages(self, bot: _BotState, params: Params) -> Any:
        user = self._chat(bot, params, sending=False)
        ids = params.json("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad("message_ids must be a non-empty array of at most 100 identifiers")
        for mid in ids:
            if bot.messages.pop((user.id, int(mid)), None) is not None:
                user._on_delete(int(mid))
        return True

    @api("answerCallbackQuery")
    async def _answer_callback_query(self, bot: _BotState, params: Params) -> Any:
        qid = params.str("callback_query_id")
        query = bot.queries.get(qid or "")
        if query is None or query["answered"]:
            raise bad(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        text = params.str("text")
        if text is not None and len(text) > 200:
            raise bad("MESSAGE_TOO_LONG")
        query["answered"] = True
        user = bot.users.get(query["user"])
        answer = {
            "query_id": qid,
            "message_id": query["message_id"],
            "text": text,
            "show_alert": params.bool("show_alert"),
            "url": params.str("url"),
            "cache_time": params.int("cache_time", 0),
        }
        if user is not None:
            user._on_answer(answer)
        return True

    @api("sendChatAction")
    async def _send_chat_action(self, bot: _BotState, params: Params) -> Any:
        user = self._chat(bot, params)
        action = params.str("action")
        if action not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        user._on_action(action)
        return True

    @api("getChat")
    async def _get_chat(self, bot: _BotState, params: Params) -> Any:
        user = self._chat(bot, params, sending=False)
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

    @api("getFile")
    async def _get_file(self, bot: _BotState, params: Params) -> Any:
        rec = self.files.get(params.str("file_id") or "")
        if rec is None:
            raise bad("invalid file_id")
        if len(rec.data) > 20 * 1024 * 1024:
            raise bad("file is too big")
        return {
            "file_id": rec.file_id,
            "file_unique_id": rec.file_unique_id,
            "file_size": len(rec.data),
            "file_path": rec.file_path,
        }

    @staticmethod
    def _scope_key(params: Params) -> tuple[str, str]:
        scope = params.json("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise bad("can't parse BotCommandScope JSON object")
        lang = params.str("language_code", "") or ""
        if lang and not re.fullmatch(r"[a-z]{2}", lang):
            raise bad("invalid language code specified")
        return json.dumps(scope, sort_keys=True), lang

    @api("setMyCommands")
    async def _set_my_commands(self, bot: _BotState, params: Params) -> Any:
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
        key = self._scope_key(params)
        if clean:
            bot.commands[key] = clean
        else:
            bot.commands.pop(key, None)
        return True

    @api("getMyCommands")
    async def _get_my_commands(self, bot: _BotState, params: Params) -> Any:
        return bot.commands.get(self._scope_key(params), [])

    @api("deleteMyCommands")
    async def _delete_my_commands(self, bot: _BotState, params: Params) -> Any:
        bot.commands.pop(self._scope_key(params), None)
        return True

    @api("setChatMenuButton")
    async def _set_chat_menu_button(self, bot: _BotState, params: Params) -> Any:
        button = params.json("menu_button") or {"type": "default"}
        chat = params.int("chat_id")
        bot.menu_buttons[chat] = button
        return True

    @api("getChatMenuButton")
    async def _get_chat_menu_button(self, bot: _BotState, params: Params) -> Any:
        chat = params.int("chat_id")
        return bot.menu_buttons.get(chat) or bot.menu_buttons.get(None) or {"type": "commands"}

    @api("setMyDescription")
    async def _set_my_description(self, bot: _BotState, params: Params) -> Any:
        return True

    @api("setMyShortDescription")
    async def _set_my_short_description(self, bot: _BotState, params: Params) -> Any:
        return True


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
            if not isinstance(b, dict):
                raise bad(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            if not isinstance(b.get("text"), str):
                raise bad(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
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
            norm_row.append(b)
        norm_rows.append(norm_row)
    if total > 100:
        raise bad("reply markup is too long")
    return {"inline_keyboard": norm_rows}


def _update_chat(update: dict[str, Any]) -> int:
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict):
            return int(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict):
            return int(sender["id"])
    return 0


async def _read_multipart(
    reader: aiohttp.MultipartReader, values: dict[str, Any], files: dict[str, Upload]
) -> None:
    while True:
        part = await reader.next()
        if part is None:
            return
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        name = part.name or ""
        data = await part.read(decode=True)
        if part.filename is not None:
            files[name] = Upload(part.filename, part.headers.get("Content-Type"), bytes(data))
        else:
            charset = part.get_charset(default="utf-8")
            values[name] = bytes(data).decode(charset, "replace")
