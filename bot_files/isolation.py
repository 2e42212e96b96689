"""Per-user event isolation shared by replicas: two bot processes behind one load balancer never
handle the same user's updates at once (aiogram's own isolations work within one process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator
from datetime import timedelta

from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey

from db import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)


class PostgresEventIsolation(BaseEventIsolation):
    """A lease row per user in `event_locks`: taken when free or expired, renewed while the
    handler runs, released at its end. A crashed replica's lease simply runs out."""

    def __init__(self, db: Database, lease: timedelta = timedelta(seconds=30),
                 poll: float = 0.05) -> None:
        self.db = db
        self.lease = lease
        self.poll = poll

    async def _acquire(self, key: str, owner: str) -> bool:
        taken = await self.db.fetchval(
            "INSERT INTO event_locks (key, owner, expires_at) VALUES (%s, %s, now() + %s)"
            " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner,"
            " expires_at = EXCLUDED.expires_at WHERE event_locks.expires_at < now()"
            " RETURNING owner", (key, owner, self.lease))
        return taken == owner

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        """Hold the user's lease while their update is handled."""
        name = f"{key.bot_id}:{key.chat_id}:{key.user_id}"
        owner = secrets.token_hex(8)
        # Another process holds it: nothing to wait on but the database, so poll it briefly.
        while not await self._acquire(name, owner):  # noqa: ASYNC110
            await asyncio.sleep(self.poll)

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                try:
                    await self.db.execute(
                        "UPDATE event_locks SET expires_at = now() + %s"
                        " WHERE key = %s AND owner = %s", (self.lease, name, owner))
                except DatabaseUnavailable as exc:
                    logger.warning("event lock of %s not renewed: %s", name, exc)

        keeper = asyncio.create_task(renew())
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                await self.db.execute("DELETE FROM event_locks WHERE key = %s AND owner = %s",
                                      (name, owner))
            except DatabaseUnavailable as exc:
                logger.warning("event lock of %s not released (it expires): %s", name, exc)

    async def close(self) -> None:
        """Nothing to close: the Database belongs to the caller."""
