"""PostgreSQL layer against a real server: migrations, reconnects, FSM storage, action log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from aiogram.fsm.storage.base import StorageKey

import log
from bot_files.fsm_storage import PostgresStorage
from config.env import PROJECT_DIR
from db import Database, DatabaseUnavailable, load_migrations, migrate
from log import logged_action, record_action
from tasks_generator.attempts import visit_row
from tests.conftest import PgServer

EXPECTED_TABLES = {"telegram_users", "candidates", "attempts", "metrics", "trainingdata_whitelist",
                   "hr_preferences", "action_log", "fsm_storage", "schema_migrations",
                   "pool_accounts", "pool_tasks", "tombstone_key", "deleted_candidates",
                   "pass_rules", "installation", "privacy_notices", "answer_keys", "decisions",
                   "metrics_history", "flags", "jobs"}


@pytest.fixture
def empty_database(pg_server: PgServer) -> str:
    """A database with no schema at all."""
    name = "cbt_empty_" + str(threading.get_ident())
    pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_server.admin(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def test_migrations_apply_once_and_then_do_nothing(empty_database: str) -> None:
    versions = [m.version for m in load_migrations()]
    assert migrate(empty_database) == versions
    assert migrate(empty_database) == []
    assert _tables(empty_database) == EXPECTED_TABLES


def test_migrations_from_several_threads_at_once(empty_database: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate(empty_database), range(4)))
    assert sorted(map(len, results)) == [0, 0, 0, len(load_migrations())]
    with psycopg2.connect(empty_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT version) FROM schema_migrations")
        assert cur.fetchone() == (len(load_migrations()),) * 2


def test_migrations_from_two_processes_at_once(empty_database: str) -> None:
    command = [sys.executable, "-m", "db", "migrate", "--database-url", empty_database]
    procs = [subprocess.Popen(command, cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(out for out, _ in outputs)
    assert said[0].startswith("applied: 0001")
    assert "up to date" in said[1]
    assert _tables(empty_database) == EXPECTED_TABLES


async def test_task_completed_is_computed_by_the_database(db: Database) -> None:
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id, full_name) VALUES (5, 'X') RETURNING id")
    attempt = await db.fetchval(
        "INSERT INTO attempts (candidate_id, number) VALUES (%s, 1) RETURNING id", (candidate,))
    await db.execute(
        "INSERT INTO metrics (attempt_id, candidate_id, times_attempted, task_started, task_ended)"
        " VALUES (%s, %s, 1, '2026-01-01 10:00+00', '2026-01-01 10:42:30+00')",
        (attempt, candidate))
    assert str(await db.fetchval("SELECT task_completed FROM metrics")) == "0:42:30"


async def test_one_open_attempt_per_candidate(db: Database) -> None:
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id) VALUES (6) RETURNING id")
    await db.execute("INSERT INTO attempts (candidate_id, number) VALUES (%s, 1)", (candidate,))
    with pytest.raises(psycopg2.errors.UniqueViolation):
        await db.execute("INSERT INTO attempts (candidate_id, number) VALUES (%s, 2)",
                         (candidate,))


async def test_database_restart_under_a_running_pool(db: Database, pg_server: PgServer) -> None:
    if pg_server.embedded is None:
        pytest.skip("needs the embedded server to restart it")
    await db.execute("INSERT INTO telegram_users (telegram_id) VALUES (1)")
    # Several pooled connections, all of which die with the server.
    await asyncio.gather(*(db.fetchval("SELECT pg_sleep(0.05)") for _ in range(4)))
    await asyncio.to_thread(pg_server.stop)
    with pytest.raises(DatabaseUnavailable):
        await Database(db.dsn, retry_delays=(0.05,)).fetchval("SELECT 1")
    await asyncio.to_thread(pg_server.start)
    assert await db.fetchval("SELECT count(*) FROM telegram_users") == 1


async def test_a_call_waits_out_a_short_outage(db: Database, pg_server: PgServer) -> None:
    if pg_server.embedded is None:
        pytest.skip("needs the embedded server to restart it")
    await db.ping()
    await asyncio.to_thread(pg_server.stop)
    restart = asyncio.create_task(asyncio.to_thread(pg_server.start))
    # Issued while the server is down: retried with backoff until it is back.
    assert await db.fetchval("SELECT 41 + 1") == 42
    await restart


async def test_a_visit_rewrites_the_user_only_when_something_changed(db: Database) -> None:
    """The first visit stores the language of first contact; visits right after read the row
    without rewriting it (its xmin stays); a new name, or a last write older than
    VISIT_WRITE_INTERVAL, is written."""
    def row() -> Awaitable[dict[str, Any] | None]:
        return db.fetchone("SELECT xmin::text AS version, username, full_name, language,"
                           " last_seen_at > now() - interval '10 seconds' AS fresh"
                           " FROM telegram_users WHERE telegram_id = 7001")

    assert (await visit_row(db, 7001, "ann", "Ann", "ru"))["language"] == "ru"
    first = await row()
    assert (await visit_row(db, 7001, "ann", "Ann", "en"))["language"] == "ru"
    assert await row() == first
    await visit_row(db, 7001, "ann_b", "Ann B", "en")
    renamed = await row()
    assert renamed is not None and first is not None and renamed["version"] != first["version"]
    assert (renamed["username"], renamed["full_name"], renamed["language"]) == \
        ("ann_b", "Ann B", "ru")
    await db.execute("UPDATE telegram_users SET last_seen_at = now() - interval '2 minutes'"
                     " WHERE telegram_id = 7001")
    assert not (await row() or {})["fresh"]
    await visit_row(db, 7001, "ann_b", "Ann B", "en")
    assert (await row() or {})["fresh"]


async def test_fsm_storage_roundtrip_and_atomic_update(db: Database) -> None:
    storage = PostgresStorage(db)
    key = StorageKey(bot_id=1, chat_id=2, user_id=3)
    assert await storage.get_state(key) is None
    assert await storage.get_data(key) == {}
    await storage.set_state(key, "Support:waiting_text")
    await storage.set_data(key, {"a": 1})
    assert await storage.get_state(key) == "Support:waiting_text"
    # Fifty concurrent merges of different keys: none is lost.
    await asyncio.gather(*(storage.update_data(key, {f"k{i}": i}) for i in range(50)))
    data = await storage.get_data(key)
    assert data["a"] == 1 and all(data[f"k{i}"] == i for i in range(50))
    await storage.set_state(key, None)
    assert await storage.get_state(key) is None
    assert (await storage.get_data(key))["a"] == 1
    other = StorageKey(bot_id=1, chat_id=2, user_id=3, destiny="other")
    assert await PostgresStorage(db).get_data(other) == {}


async def test_logged_action_writes_file_and_table(db: Database, log_dir: Path) -> None:
    @logged_action("credentials.resend")
    async def resend(db: Database, actor_id: int, candidate_id: int) -> str:
        return "sent"

    @logged_action("account.delete")
    async def fail(db: Database, actor_id: int, candidate_id: int) -> None:
        raise RuntimeError("CVAT said no")

    assert await resend(db, actor_id=10, candidate_id=77) == "sent"
    with pytest.raises(RuntimeError):
        await fail(db, 10, 78)
    await record_action(db, 11, "hr.export", details={"rows": 3})
    rows = await db.fetchall("SELECT actor_id, action, candidate_id, ok, details"
                             " FROM action_log ORDER BY id")
    assert [(r["actor_id"], r["action"], r["candidate_id"], r["ok"]) for r in rows] == [
        (10, "credentials.resend", 77, True), (10, "account.delete", 78, False),
        (11, "hr.export", None, True)]
    assert rows[1]["details"] == {"error": "RuntimeError"}
    log.flush()  # the logging thread writes the files
    text = (log_dir / "actions.log").read_text()
    assert "action=credentials.resend candidate=77" in text
    assert "action=account.delete candidate=78 ok=False" in text
