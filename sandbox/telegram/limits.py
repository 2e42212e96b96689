"""What stands between a bot's call and its method: Telegram-like flood limits on sending
methods, and the errors a test injected."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

from sandbox.telegram.errors import STATUS_TEXT, ApiError

__all__ = ["FloodLimits", "InjectedError", "InjectedErrors"]


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


class FloodLimits:
    """Per-chat and per-bot send rates; off until `configure` turns them on."""

    def __init__(self) -> None:
        self._limits: dict[str, float] | None = None
        self._chat_buckets: dict[tuple[str, int], _Bucket] = {}
        self._global_buckets: dict[str, _Bucket] = {}

    def configure(
        self,
        per_chat_per_second: float | None,
        global_per_second: float | None,
        *,
        burst: float,
        enabled: bool,
    ) -> None:
        """Turn the limits on with these rates (fresh buckets), or off with enabled=False."""
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

    def check(self, token: str, chat_id: int) -> None:
        """Count one send of this bot to this chat; 429 with retry_after when over a limit."""
        if self._limits is None:
            return
        waits = []
        if self._limits["chat"] > 0:
            bucket = self._chat_buckets.get((token, chat_id))
            if bucket is None:
                bucket = self._chat_buckets[(token, chat_id)] = _Bucket(
                    self._limits["chat"], self._limits["burst"]
                )
            waits.append(bucket.take())
        if self._limits["global"] > 0:
            gb = self._global_buckets.get(token)
            if gb is None:
                rate = self._limits["global"]
                gb = self._global_buckets[token] = _Bucket(rate, rate)
            waits.append(gb.take())
        wait = max(waits, default=0.0)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})


@dataclass
class InjectedError:
    """One injected failure rule: the answer, and how many calls it still applies to."""

    status: int
    description: str
    retry_after: int | None
    count: int
    drop: bool


class InjectedErrors:
    """Failures a test asked for, by method name ("*" = any), first come first served."""

    def __init__(self) -> None:
        self._queues: dict[str, collections.deque[InjectedError]] = {}

    def add(
        self,
        method: str,
        status: int,
        *,
        retry_after: int | None,
        count: int,
        drop: bool,
        description: str | None,
    ) -> None:
        """Queue a rule (Telegram's description and retry_after filled in when not given)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            elif status == 400:
                description = "Bad Request"
            else:
                description = STATUS_TEXT.get(status, "Internal Server Error")
        self._queues.setdefault(method.lower(), collections.deque()).append(
            InjectedError(status, description, retry_after, count, drop)
        )

    def clear(self) -> None:
        """Forget every pending rule."""
        self._queues.clear()

    def take(self, name: str) -> InjectedError | None:
        """The rule for a call of this method, if any (counting the call against it)."""
        for key in (name.lower(), "*"):
            queue = self._queues.get(key)
            if queue:
                rule = queue[0]
                rule.count -= 1
                if rule.count <= 0:
                    queue.popleft()
                return rule
        return None
