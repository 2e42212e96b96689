"""Two replicas in webhook mode behind a round-robin balancer share one PostgreSQL: 100
candidates take the test, every update is answered once, no account or task is doubled."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram.fsm.storage.base import StorageKey
from aiohttp import web

from bot_files.isolation import PostgresEventIsolation
from config.env import Settings
from connection import AsyncCvatClient
from db import Database, free_port
from main import WEBHOOK_PATH, create_bot, create_dispatcher, create_webhook_app
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import make_settings
from tests.flow import annotate, get_task

CANDIDATES = 100



async def _balancer(targets: list[str]) -> tuple[web.AppRunner, str, list[int]]:
    """Forwards each webhook POST to the next replica in turn (like an nginx upstream)."""
    turn = itertools.cycle(range(len(targets)))
    hits = [0] * len(targets)
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        index = next(turn)
        hits[index] += 1
        async with session.post(targets[index] + request.path, data=await request.read(),
                                headers={k: v for k, v in request.headers.items()
                                         if k.lower().startswith(("x-telegram", "content-type"))},
                                ) as answer:
            return web.Response(status=answer.status, body=await answer.read())

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, forward)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", hits


@pytest.fixture
async def two_replicas(settings: Settings, db: Database) -> AsyncIterator[list[int]]:
    """Two production bots in webhook mode, one database, one balancer in front."""
    ports = [free_port(), free_port()]
    balancer, address, hits = await _balancer([f"http://127.0.0.1:{p}" for p in ports])
    runners, closers = [], []
    for port in ports:
        replica = make_settings(
            TELEGRAM_API_URL=settings.telegram_api_url, CVAT_URL=settings.cvat_url,
            DATABASE_URL=str(settings.database_url), LOG_DIR=str(settings.log_dir),
            WEBHOOK_URL=address + WEBHOOK_PATH, WEBHOOK_SECRET="replica-secret",
            WEBHOOK_LISTEN=f"127.0.0.1:{port}", SHARED_BY_REPLICAS="true",
            THROTTLE_BURST="100")
        database = Database(str(settings.database_url))
        bot, cvat = create_bot(replica), AsyncCvatClient.from_settings(replica)
        app = create_webhook_app(replica, create_dispatcher(replica, database, cvat), bot,
                                 database, cvat)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        closers += [bot.session.close, cvat.close, database.close]
    try:
        yield hits
    finally:
        for runner in runners:
            await runner.cleanup()
        for close in closers:
            await close()
        await balancer.cleanup()


async def _take_the_test(user: TelegramUser) -> None:
    await user.send("/start")
    await user.expect_message("Hello", timeout=60)
    login = await get_task(user)
    await annotate(login)
    await user.send("✅ Submit")
    await user.expect_edit("Thank you!", timeout=120)


@pytest.mark.slow
async def test_hundred_candidates_through_two_replicas(
    telegram: TelegramServer, cvat: CvatServer, db: Database, two_replicas: list[int]
) -> None:
    cvat.processing_time = 0.2
    people = [telegram.user(900_000 + i, first_name=f"C{i}") for i in range(CANDIDATES)]
    await asyncio.gather(*(_take_the_test(p) for p in people))
    await asyncio.sleep(1.0)
    hits = two_replicas
    assert min(hits) > CANDIDATES  # both replicas really took part
    for person in people:
        texts = [m.text for m in person.messages]
        assert sum("Hello" in t for t in texts) == 1
        assert sum("Ready to start?" in t for t in texts) == 1
        assert sum("Your CVAT login" in t for t in texts) == 1
        assert sum("Checking your work" in t for t in texts) == 1
    assert len([u for u in cvat.users.values() if u.username.startswith("cand")]) == CANDIDATES
    assert len(cvat.tasks) == CANDIDATES
    assert await db.fetchval("SELECT count(*) FROM attempts WHERE status = 'graded'") == CANDIDATES
    assert await db.fetchval("SELECT count(*) FROM metrics") == CANDIDATES
    assert telegram.counters.get("webhook_dropped", 0) == 0
    assert await db.fetchval("SELECT count(*) FROM event_locks") == 0


async def test_one_users_updates_are_serialised_across_replicas(db: Database) -> None:
    replica_a = PostgresEventIsolation(db)
    other_db = Database(db.dsn)
    replica_b = PostgresEventIsolation(other_db)
    anna, boris = StorageKey(bot_id=1, chat_id=5, user_id=5), StorageKey(bot_id=1, chat_id=6,
                                                                         user_id=6)
    events: list[tuple[str, str]] = []

    async def handle(isolation: PostgresEventIsolation, key: StorageKey, name: str) -> None:
        async with isolation.lock(key):
            events.append(("in", name))
            await asyncio.sleep(0.3)
            events.append(("out", name))

    try:
        await asyncio.gather(handle(replica_a, anna, "a1"), handle(replica_b, anna, "a2"),
                             handle(replica_b, boris, "b"))
        anna_events = [e for e in events if e[1].startswith("a")]
        first, second = anna_events[0][1], anna_events[2][1]
        assert anna_events == [("in", first), ("out", first), ("in", second), ("out", second)]
        # Another user is not held up by Anna's updates.
        assert events.index(("in", "b")) < events.index(("out", anna_events[0][1]))
        # A replica that died holding a lease only delays the user until the lease runs out.
        await db.execute("INSERT INTO event_locks VALUES ('1:5:5', 'dead', now() - interval '1 s')")
        async with replica_a.lock(anna):
            pass
        assert await db.fetchval("SELECT count(*) FROM event_locks") == 0
    finally:
        await other_db.close()
