"""aiogram FSM storage in PostgreSQL: dialog state survives restarts and is shared by replicas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from db import Cursor, Database
from log import jsonb

_KEY = (
    "bot_id = %(bot_id)s AND chat_id = %(chat_id)s AND user_id = %(user_id)s"
    " AND thread_id = %(thread_id)s AND business_connection_id = %(bcid)s"
    " AND destiny = %(destiny)s"
)
_COLUMNS = "bot_id, chat_id, user_id, thread_id, business_connection_id, destiny"
_VALUES = "%(bot_id)s, %(chat_id)s, %(user_id)s, %(thread_id)s, %(bcid)s, %(destiny)s"


def _params(key: StorageKey) -> dict[str, Any]:
    return {
        "bot_id": key.bot_id,
        "chat_id": key.chat_id,
        "user_id": key.user_id,
        "thread_id": key.thread_id or 0,
        "bcid": key.business_connection_id or "",
        "destiny": key.destiny,
    }


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


class PostgresStorage(BaseStorage):
    """FSM state and data in the `fsm_storage` table; `update_data` is one atomic statement."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set (or clear, with None) the dialog state."""
        params = {**_params(key), "state": _state_name(state)}
        await self.db.execute(
            f"INSERT INTO fsm_storage ({_COLUMNS}, state) VALUES ({_VALUES}, %(state)s)"
            " ON CONFLICT (" + _COLUMNS + ") DO UPDATE"
            " SET state = EXCLUDED.state, updated_at = now()",
            params,
        )

    async def get_state(self, key: StorageKey) -> str | None:
        """The current dialog state, or None."""
        return await self.db.fetchval(f"SELECT state FROM fsm_storage WHERE {_KEY}", _params(key))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the dialog data."""
        params = {**_params(key), "data": jsonb(dict(data))}
        await self.db.execute(
            f"INSERT INTO fsm_storage ({_COLUMNS}, data) VALUES ({_VALUES}, %(data)s::jsonb)"
            " ON CONFLICT (" + _COLUMNS + ") DO UPDATE"
            " SET data = EXCLUDED.data, updated_at = now()",
            params,
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """The dialog data (an empty dict when there is none)."""
        data = await self.db.fetchval(f"SELECT data FROM fsm_storage WHERE {_KEY}", _params(key))
        return dict(data) if data else {}

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge keys into the dialog data atomically (no lost update between replicas)."""
        params = {**_params(key), "data": jsonb(dict(data))}

        def work(cur: Cursor) -> dict[str, Any]:
            cur.execute(
                f"INSERT INTO fsm_storage ({_COLUMNS}, data) VALUES ({_VALUES}, %(data)s::jsonb)"
                " ON CONFLICT (" + _COLUMNS + ") DO UPDATE"
                " SET data = fsm_storage.data || EXCLUDED.data, updated_at = now()"
                " RETURNING data",
                params,
            )
            row = cur.fetchone()
            return dict(row["data"]) if row else {}

        return await self.db.run(work)

    async def close(self) -> None:
        """Nothing to release: the Database is closed by its owner."""
