"""/healthz from a state kept up to date in the background: a call costs no database round
trip and no CVAT request, and tells an anonymous caller only "ok" or "unavailable"."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from config.env import Settings
from connection import AsyncCvatClient, CvatClient, CvatError
from db import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 5.0  # seconds one part may take before it counts as down


class HealthMonitor:
    """Asks the database and CVAT every `interval` seconds and keeps the answer.

    CVAT is asked on a client of its own (one thread, no retries), so health checks never
    queue in front of a candidate's CVAT call. What is down, and why, goes to the log when
    the state changes; callers of /healthz only learn whether everything is up."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.interval = settings.health_check_interval_seconds
        self.cvat = AsyncCvatClient(CvatClient.from_settings(settings, retries=0),
                                    max_workers=1)
        self.ok = False
        self.problems: dict[str, str] = {"state": "not checked yet"}
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        """Ask both parts now and keep the answer; whether both are up."""
        problems: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.db.ping(), CHECK_TIMEOUT)
        except (DatabaseUnavailable, TimeoutError) as exc:
            problems["database"] = str(exc) or type(exc).__name__
        try:
            await asyncio.wait_for(self.cvat.about(), CHECK_TIMEOUT)
        except (CvatError, TimeoutError) as exc:
            problems["cvat"] = str(exc) or type(exc).__name__
        if problems != self.problems:
            if problems:
                logger.warning("health: unavailable: %s", problems)
            else:
                logger.info("health: ok")
        self.ok, self.problems = not problems, problems
        return self.ok

    async def start(self) -> None:
        """Check once now, then every `interval` seconds in the background."""
        await self.check()

        async def keep_checking() -> None:
            while True:
                await asyncio.sleep(self.interval)
                await self.check()

        self._task = asyncio.create_task(keep_checking(), name="health")

    async def stop(self) -> None:
        """Stop checking and close the CVAT client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.cvat.close()
