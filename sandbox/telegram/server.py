"""An in-process HTTP stand-in for the Telegram Bot API (api.telegram.org).

This module is the HTTP front and the test API (`TelegramServer`). The parts behind it:
- `world.py`: the state (bots, chats, messages, files, options), shared by every part;
- `api/`: the Bot API methods, one module per family (updates, messages, edits, callbacks,
  files, profile);
- `webhooks.py`: webhook delivery; `limits.py`: flood limits and injected errors;
- `files.py`: the file store; `params.py`: a call's parameters;
- `user_side.py` and `user.py`: the simulated users and what they do on the server.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import Any

from aiohttp import web

from sandbox.forward import Forward
from sandbox.telegram.api import resolve
from sandbox.telegram.errors import ApiError
from sandbox.telegram.files import FileRecord
from sandbox.telegram.params import read_params
from sandbox.telegram.user import TelegramGroup, TelegramUser
from sandbox.telegram.user_side import UserSide
from sandbox.telegram.world import BotState, World

__all__ = ["ApiError", "FileRecord", "TelegramServer"]


class TelegramServer:
    """A faithful local Telegram Bot API server with simulated users."""

    accept_any_token: Forward[bool] = Forward("world")
    strict_html: Forward[bool] = Forward("world")
    webhook_retry_delays: Forward[tuple[float, ...]] = Forward("world")
    webhook_timeout: Forward[float] = Forward("world")
    record_calls: Forward[bool] = Forward("world")
    # Users' expect_* calls wait at least this long before giving up: a test suite sets a
    # bound only a hang reaches, so a busy machine's late answers are never failures.
    expect_at_least: Forward[float] = Forward("world")
    bots: Forward[dict[str, BotState]] = Forward("world")
    calls: Forward[list[tuple[str, dict[str, Any], float]]] = Forward("world")
    counters: Forward[collections.Counter[str]] = Forward("world")

    def __init__(
        self,
        *,
        accept_any_token: bool = False,
        strict_html: bool = True,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0),
        webhook_timeout: float = 10.0,
        record_calls: bool = True,
    ) -> None:
        self.world = World(
            accept_any_token=accept_any_token,
            strict_html=strict_html,
            webhook_retry_delays=webhook_retry_delays,
            webhook_timeout=webhook_timeout,
            record_calls=record_calls,
        )
        self.errors: collections.Counter[str] = collections.Counter()
        self.bot_requests_count = 0
        self.base_url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def files(self) -> dict[str, FileRecord]:
        """Every file of the server by file_id."""
        return self.world.files.by_id

    # ================================================================== lifecycle
    def make_app(self) -> web.Application:
        """The aiohttp application serving the Bot API."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving on host:port (0 = a free port); return and set ``base_url``."""
        self.world.stopping = False
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
        self.world.stopping = True
        for bot in self.world.bots.values():
            bot.wake_pollers()
            if bot.webhook is not None:
                for task in list(bot.webhook.workers.values()):
                    task.cancel()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.world.close()

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
        return self.world.add_bot(token, username, first_name).get_me()

    def user_side(self, bot: str | None = None) -> UserSide:
        """The server as the users of ``bot`` (optional with one bot) reach it."""
        return UserSide(self.world, self.world.bot_for_user(bot))

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
        state = self.world.bot_for_user(bot)
        existing = state.users.get(user_id)
        if isinstance(existing, TelegramUser):
            return existing
        u = TelegramUser(
            UserSide(self.world, state),
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
        state = self.world.bot_for_user(bot)
        existing = state.users.get(chat_id)
        if isinstance(existing, TelegramGroup):
            return existing
        group = TelegramGroup(UserSide(self.world, state), chat_id, title=title)
        state.users[chat_id] = group
        return group

    def users(self, bot: str | None = None) -> list[TelegramUser]:
        """All users created for a bot."""
        return [u for u in self.world.bot_for_user(bot).users.values()
                if isinstance(u, TelegramUser)]

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
        self.world.injected.add(
            method, status, retry_after=retry_after, count=count, drop=drop,
            description=description,
        )

    def clear_injected_errors(self) -> None:
        """Forget every pending injected error."""
        self.world.injected.clear()

    def rate_limits(
        self,
        per_chat_per_second: float | None = 1.0,
        global_per_second: float | None = 30.0,
        *,
        burst: float = 3.0,
        enabled: bool = True,
    ) -> None:
        """Turn Telegram-like flood limits for sending methods on (or off with enabled=False)."""
        self.world.flood.configure(
            per_chat_per_second, global_per_second, burst=burst, enabled=enabled
        )

    def pending_updates(self, token: str | None = None) -> int:
        """How many updates the bot has not confirmed (or not received by webhook) yet."""
        bot = self.world.bot_for_user(token)
        return len(bot.updates) + (bot.webhook.pending if bot.webhook else 0)

    async def wait_polling(
        self,
        token: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until a getUpdates long poll of the bot is in progress."""
        bot = self.world.bot_for_user(token)
        deadline = time.monotonic() + timeout
        while bot.polling == 0:
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not start polling")
            await asyncio.sleep(0.01)

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """The params of every recorded call of one method (case-insensitive)."""
        m = method.lower()
        return [p for name, p, _ in self.world.calls if name.lower() == m]

    # ================================================================== HTTP layer
    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        self.bot_requests_count += 1
        method = request.match_info["method"]
        entry = resolve(method)
        name = entry.name if entry else method
        world = self.world
        world.counters[name] += 1
        try:
            bot = world.auth(request.match_info["token"])
            params = await read_params(request)
            world.record(name, params)
            if entry is None:
                raise ApiError(404, "Not Found")
            injected = world.injected.take(name)
            if injected is not None:
                if injected.drop:
                    if request.transport is not None:
                        request.transport.close()
                    raise ApiError(599, "dropped")
                params_out = {"retry_after": injected.retry_after} if injected.retry_after else None
                raise ApiError(injected.status, injected.description, params_out)
            result = await entry.handler(world, bot, params)
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
            self.world.auth(request.match_info["token"])
        except ApiError:
            return not_found
        rec = self.world.files.by_path.get(request.match_info["path"])
        if rec is None:
            return not_found
        return web.Response(body=rec.data, content_type="application/octet-stream")
