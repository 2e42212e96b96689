"""What one flooding user costs everyone else: another user's /help latency while one user
sends 10 x 50 messages, 0.2 s apart (the security review's probe), with and without
SHARED_BY_REPLICAS (the per-user lock across replicas), and what the flood cost the database:
statements (Database.statements) and transactions (PostgreSQL's pg_stat_database). The
production bot polls the Telegram stand-in, on an embedded PostgreSQL.

    .venv/bin/python -m tests.bench.flood
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import statistics
import time
from typing import Any

from config.env import load_settings
from connection import AsyncCvatClient
from db import Database, migrate
from main import create_bot, create_dispatcher
from sandbox.telegram import TelegramServer
from tests.bench.harness import Postgres

TOKEN = "7000000002:AAF-bench-token-for-the-sandbox-0123456789"


async def _scenario(url: str, replicas: bool) -> dict[str, Any]:
    telegram = TelegramServer()
    telegram.add_bot(TOKEN, username="bench_bot", first_name="Bench")
    await telegram.start(host="127.0.0.1", port=0)
    settings = load_settings(environ={
        "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url, "CVAT_URL": "http://127.0.0.1:9",
        "CVAT_ADMIN_USERNAME": "admin", "CVAT_ADMIN_PASSWORD": "Bench-Adm1n-Passw0rd",
        "DATABASE_URL": url, "LOG_TO_CONSOLE": "false", "POOL_ACCOUNTS": "0", "POOL_TASKS": "0",
        "RECONCILE_INTERVAL_SECONDS": "3600"}, env_file=None)
    settings = dataclasses.replace(settings, replicas=replicas)
    db = Database(url)
    bot, cvat = create_bot(settings), AsyncCvatClient.from_settings(settings)
    dp = create_dispatcher(settings, db, cvat)
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False,
                                                   close_bot_session=False, polling_timeout=5))
    flooder = telegram.user(9001, first_name="Flood")
    calm = telegram.user(9002, first_name="Calm")
    latencies: list[float] = []
    try:
        await telegram.wait_polling(timeout=30)
        await calm.send("/help")  # warm up
        await calm.expect_message("How this works", timeout=30)

        async def flood() -> None:
            for batch in range(10):
                await asyncio.gather(*(flooder.send(f"spam {batch}-{i}") for i in range(50)))
                await asyncio.sleep(0.2)

        async def measure() -> None:
            # Seven more /help, four a second: within the calm user's burst (8).
            for _ in range(7):
                started = time.monotonic()
                await calm.send("/help")
                await calm.expect_message("How this works", timeout=60)
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.25)

        before, committed = db.statements, await asyncio.to_thread(_transactions, url)
        await asyncio.gather(flood(), measure())
        await asyncio.sleep(1.0)  # the last dropped updates
        statements = db.statements - before
        # PostgreSQL's own count, as its backends report it (at the latest 10 s after).
        await asyncio.sleep(11)
        transactions = await asyncio.to_thread(_transactions, url) - committed - 1
    finally:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.wait_for(polling, 30)
        await dp.fsm.close()
        await bot.session.close()
        await cvat.close()
        await db.close()
        await telegram.stop()
    answered = sum("did not understand" in m.text for m in flooder.messages)
    prefix = "replicas" if replicas else "single"
    return {f"{prefix}_other_p50_ms": round(statistics.median(latencies) * 1000, 1),
            f"{prefix}_other_max_ms": round(max(latencies) * 1000, 1),
            f"{prefix}_flood_answered": answered,
            f"{prefix}_statements": statements,
            f"{prefix}_transactions_seen_by_postgresql": transactions}


async def main() -> None:
    """Both scenarios on one embedded PostgreSQL; a table, then one JSON object."""
    postgres = Postgres()
    await postgres.start()
    figures: dict[str, Any] = {}
    try:
        for replicas in (False, True):
            url = postgres.new_database(f"flood_{int(replicas)}")
            await asyncio.to_thread(migrate, url)
            figures.update(await _scenario(url, replicas))
    finally:
        await postgres.stop()
    for key, value in figures.items():
        print(f"{key:40} {value}")
    print(json.dumps(figures))


def _transactions(url: str) -> int:
    """Transactions committed in this database, from pg_stat_database."""
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT xact_commit FROM pg_stat_database"
                        " WHERE datname = current_database()")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


if __name__ == "__main__":
    asyncio.run(main())
