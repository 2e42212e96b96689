"""Per-user event isolation shared by replicas: two bot processes behind one load balancer never
handle the same user's updates at once (aiogram's own isolations work within one process)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey

from db import AdvisoryLocks, Database, lock_key


class PostgresEventIsolation(BaseEventIsolation):
    """One user's updates one at a time: within this process an asyncio lock per user, across
    processes a PostgreSQL advisory lock per user.

    The advisory lock costs two statements per update (take, release). When another replica
    holds it, the wait happens inside PostgreSQL (no polling), and a replica that dies releases
    its users at once, with its session."""

    def __init__(self, db: Database) -> None:
        self.locks = AdvisoryLocks(db)
        # user -> (lock, how many updates hold or wait for it); dropped when nobody does.
        self._local: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _local_lock(self, name: str) -> AsyncGenerator[None, None]:
        lock, users = self._local.get(name, (asyncio.Lock(), 0))
        self._local[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._local[name]
            if users == 1:
                del self._local[name]
            else:
                self._local[name] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        """Hold the user's lock while their update is handled."""
        name = f"event:{key.bot_id}:{key.chat_id}:{key.user_id}"
        async with self._local_lock(name), self.locks.hold(lock_key(name)):
            yield

    async def close(self) -> None:
        """Close the lock connections (the Database belongs to the caller)."""
        await self.locks.close()
