"""Living within Telegram's limits: retry after 429 (bounded), throttle flooding users, pace
broadcasts (about 30 messages a second overall, 1 a second per chat)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from bot_files.texts import Texts, pick_language

logger = logging.getLogger(__name__)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """On 429 wait as long as Telegram asks and try again, a few times at most. A 429 means
    the call was not carried out, so repeating it is safe for every method."""

    def __init__(self, max_retries: int = 3, max_wait: float = 30.0) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.max_retries or exc.retry_after > self.max_wait:
                    logger.warning("%s still limited after %d retries (retry after %s s)",
                                   type(method).__name__, attempt, exc.retry_after)
                    raise
                logger.info("%s: Telegram asks to wait %s s", type(method).__name__,
                            exc.retry_after)
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")


class ThrottlingMiddleware(BaseMiddleware):
    """Per-user token bucket in front of everything else (main.create_dispatcher registers it
    before the FSM and the event isolation): a flooding user gets one polite notice now and
    then, and their excess updates are dropped before they cost a database round trip, so they
    cannot slow the bot down for others. Counters live in this process only; with several
    replicas each applies the limit to what it receives.

    Memory is bounded: a user whose bucket is full again (idle for burst/rate seconds) is
    forgotten, oldest first, in O(1) per update, and at most `max_users` are kept at all."""

    def __init__(self, rate: float = 1.0, burst: int = 8, notice_every: float = 10.0,
                 max_users: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.notice_every = notice_every
        self.max_users = max_users
        self._forget_after = max(burst / rate, notice_every)
        # user -> (tokens, updated, noticed), least recently seen first
        self._buckets: OrderedDict[int, tuple[float, float, float]] = OrderedDict()

    def allow(self, user_id: int, now: float | None = None) -> tuple[bool, bool]:
        """(allowed, send a notice) for one update of this user."""
        now = time.monotonic() if now is None else now
        tokens, updated, noticed = self._buckets.pop(user_id, (self.burst, now, -math.inf))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        self._forget_idle(now)
        if tokens >= 1:
            self._buckets[user_id] = (tokens - 1, now, noticed)
            return True, False
        notice = now - noticed >= self.notice_every
        self._buckets[user_id] = (tokens, now, now if notice else noticed)
        return False, notice

    def _forget_idle(self, now: float) -> None:
        """Drop the least recently seen users whose state no longer matters (and any beyond
        max_users); stops at the first one still relevant, so each call is O(1) amortised."""
        while self._buckets:
            _, (_, updated, _) = next(iter(self._buckets.items()))
            if now - updated < self._forget_after and len(self._buckets) < self.max_users:
                return
            self._buckets.popitem(last=False)

    @property
    def users_tracked(self) -> int:
        """How many users' counters are kept now."""
        return len(self._buckets)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        allowed, notice = self.allow(user.id)
        if allowed:
            return await handler(event, data)
        if not notice:
            return None
        # Only now and then: an answer (or a log line) for every dropped update would be a
        # flood of our own.
        logger.info("updates from user %s dropped for a while: too many too fast", user.id)
        if isinstance(event, Update):
            t = Texts(pick_language(None, user.language_code))
            if isinstance(event.callback_query, CallbackQuery):
                await event.callback_query.answer(t("throttle.slow_down"))
            elif isinstance(event.message, Message):
                await event.message.answer(t("throttle.slow_down"))
        return None


class Pacer:
    """Spaces out broadcasts: at most `per_second` messages overall and one per chat per
    `per_chat_interval` seconds (Telegram's limits are about 30/s and 1/s per chat)."""

    def __init__(self, per_second: float = 25.0, per_chat_interval: float = 1.0) -> None:
        self.interval = 1.0 / per_second
        self.per_chat_interval = per_chat_interval
        self._next_slot = 0.0
        self._chat_next: dict[int, float] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: int) -> None:
        """Sleep until a message to this chat fits within both limits."""
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot, self._chat_next.get(chat_id, 0.0))
            self._next_slot = slot + self.interval
            self._chat_next[chat_id] = slot + self.per_chat_interval
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
