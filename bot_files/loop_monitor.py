"""Event-loop stall monitor: a task that wakes every 10 ms and records how late it woke.

A late wake-up means something held the event loop (blocking work on it, a long stretch of
pure-Python code, or the garbage collector, which holds every thread); every other update
waits that long. Stalls over `warn_after` are logged as a WARNING when they happen; at shutdown
one INFO line gives the largest stall seen and the longest collection, to tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)


class LoopMonitor:
    """Measures event-loop lag: start() in the dispatcher's startup, stop() at shutdown."""

    def __init__(self, interval: float = 0.01, warn_after: float = 0.1) -> None:
        self.interval = interval
        self.warn_after = warn_after
        self.max_stall = 0.0  # seconds
        self.checks = 0
        self.stalls_over_warning = 0
        self.max_collection = 0.0  # seconds: the longest garbage collection while watching
        self.max_collection_generation = -1
        self._collecting_since = 0.0
        self._task: asyncio.Task[None] | None = None

    def _collection(self, phase: str, info: dict[str, Any]) -> None:
        """gc's callback: time each collection (in whichever thread it runs, it holds the
        GIL, so the loop waits for it too)."""
        if phase == "start":
            self._collecting_since = time.perf_counter()
            return
        took = time.perf_counter() - self._collecting_since
        if took > self.max_collection:
            self.max_collection = took
            self.max_collection_generation = info.get("generation", -1)

    def start(self) -> LoopMonitor:
        """Start watching the running loop; returns self."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch(),
                                                                name="loop-monitor")
            gc.callbacks.append(self._collection)
        return self

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - expected)
            self.checks += 1
            if lag > self.max_stall:
                self.max_stall = lag
            if lag > self.warn_after:
                self.stalls_over_warning += 1
                logger.warning("event loop stalled for %.1f ms", lag * 1000)

    async def stop(self) -> None:
        """Stop watching and log the largest stall seen."""
        task, self._task = self._task, None
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._collection)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        logger.info("event loop: max stall %.1f ms over %d checks; longest garbage collection"
                    " %.1f ms (generation %d)", self.max_stall * 1000, self.checks,
                    self.max_collection * 1000, self.max_collection_generation)
