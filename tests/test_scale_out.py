"""Two bot processes in webhook mode behind a round-robin balancer and two worker processes
share one PostgreSQL: 100 candidates take the test, every update is answered once, no account
or task is doubled."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiogram.fsm.storage.base import StorageKey
from aiohttp import web

from bot_files.isolation import PostgresEventIsolation
from config.env import PROJECT_DIR, Settings
from connection import AsyncCvatClient
from db import Database, free_port
from main import WEBHOOK_PATH, create_bot, create_dispatcher
from sandbox.candidate import annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import HANG
from tests.flow import (
    bot_process_env,
    get_task,
    start_bot_process,
    submit,
    text_update,
)

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
async def two_replicas(telegram: TelegramServer, cvat: CvatServer, database_url: str,
                       tmp_path: Path) -> AsyncIterator[list[int]]:
    """Two production bots as processes in webhook mode, each starting one worker process
    (WORKERS=1): two bots and two workers on one database, one balancer in front."""
    ports = [free_port(), free_port()]
    balancer, address, hits = await _balancer([f"http://127.0.0.1:{p}" for p in ports])
    bots = []
    try:
        for index, port in enumerate(ports):
            env = bot_process_env(
                telegram.base_url, cvat.base_url, database_url, tmp_path / f"replica-{index}",
                WEBHOOK_URL=address + WEBHOOK_PATH, WEBHOOK_SECRET="replica-secret",
                WEBHOOK_LISTEN=f"127.0.0.1:{port}", SHARED_BY_REPLICAS="true",
                THROTTLE_BURST="100", WORKERS="1", POOL_ACCOUNTS="0", POOL_TASKS="0")
            bots.append(await start_bot_process(env))
        for port in ports:
            await _listening(port)
        yield hits
    finally:
        for bot in bots:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
        for bot in bots:
            await asyncio.wait_for(bot.wait(), HANG)
        await balancer.cleanup()


async def _listening(port: int) -> None:
    """Until a replica's webhook server answers (its /healthz)."""
    deadline = asyncio.get_running_loop().time() + HANG
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                    if answer.status in (200, 503):
                        return
            assert asyncio.get_running_loop().time() < deadline, f"no replica on {port}"
            await asyncio.sleep(0.2)


async def _take_the_test(user: TelegramUser) -> None:
    await user.send("/start")
    await user.expect_message("Hello")
    login = await get_task(user)
    await annotate(login)
    await submit(user)
    await user.expect_edit("Thank you!")


@pytest.mark.slow
@pytest.mark.timeout(900)  # a hang bound: 100 candidates on a busy 2-core machine take long
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
        # While replica A handles a long update of Anna's, replica B's update of hers waits
        # inside PostgreSQL: a few statements in all, not a poll every few milliseconds.
        holding = asyncio.Event()
        inside = {"a": False}

        async def long_update() -> None:
            async with replica_a.lock(anna):
                inside["a"] = True
                holding.set()
                await asyncio.sleep(1.0)
                inside["a"] = False  # the last thing before replica A lets go

        holder = asyncio.create_task(long_update())
        await holding.wait()
        before = other_db.statements
        async with replica_b.lock(anna):
            # Replica B is let in only once A is out (its task may finish a moment later).
            assert not inside["a"]
        await holder
        assert other_db.statements - before <= 3  # try, wait, release
    finally:
        await replica_a.close()
        await replica_b.close()
        await other_db.close()


_HOLD_AND_DIE = """
import asyncio, sys
from aiogram.fsm.storage.base import StorageKey
from bot_files.isolation import PostgresEventIsolation
from db import Database

async def main():
    isolation = PostgresEventIsolation(Database(sys.argv[1]))
    async with isolation.lock(StorageKey(bot_id=1, chat_id=5, user_id=5)):
        print("holding", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_replica_that_dies_releases_its_users_at_once(db: Database) -> None:
    """A replica killed while it handles Anna's update: the other replica, waiting for her lock,
    goes on as soon as the dead one's database session ends, with no lease to run out."""
    dying = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD_AND_DIE, db.dsn, cwd=PROJECT_DIR,
        stdout=asyncio.subprocess.PIPE)
    replica = PostgresEventIsolation(db)
    try:
        assert dying.stdout is not None
        assert (await asyncio.wait_for(dying.stdout.readline(), HANG)).strip() == b"holding"
        waiter = asyncio.create_task(_take(replica))
        await asyncio.sleep(0.5)
        assert not waiter.done()  # the lock is really held by the other process
        dying.kill()
        await dying.wait()
        await asyncio.wait_for(waiter, HANG)
    finally:
        if dying.returncode is None:
            dying.kill()
            await dying.wait()
        await replica.close()


async def _take(isolation: PostgresEventIsolation) -> None:
    async with isolation.lock(StorageKey(bot_id=1, chat_id=5, user_id=5)):
        pass


async def test_a_flood_through_two_replicas_costs_the_database_nothing(
    telegram: TelegramServer, settings: Settings, db: Database
) -> None:
    """100 updates of one user, spread over two replicas (fed directly, so the count covers
    exactly these): the dropped ones cost neither a state read nor the per-user lock."""
    flooder = telegram.user(7101, first_name="Flood")
    calm = telegram.user(7102, first_name="Calm")
    replicas = []
    for _ in range(2):
        replica = dataclasses.replace(settings, replicas=True)
        database = Database(str(settings.database_url))
        bot, cvat = create_bot(replica), AsyncCvatClient.from_settings(replica)
        replicas.append((create_dispatcher(replica, database, cvat), bot, cvat, database))

    def statements() -> int:
        return sum(database.statements for *_, database in replicas)

    try:
        dp, bot, *_ = replicas[0]
        before = statements()
        await dp.feed_raw_update(bot, text_update(calm, "hello"))
        per_update = statements() - before
        before = statements()
        await asyncio.gather(*(replicas[i % 2][0].feed_raw_update(
            replicas[i % 2][1], text_update(flooder, f"spam {i}")) for i in range(100)))
        cost = statements() - before
    finally:
        for dp, bot, cvat, database in replicas:
            await dp.fsm.close()
            await bot.session.close()
            await cvat.close()
            await database.close()
    answered = [m for m in flooder.messages if "did not understand" in m.text]
    assert 2 * settings.throttle_burst <= len(answered) < 40
    # An answered update costs what it costs, plus one statement when it had to wait for the
    # other replica; a dropped one costs nothing.
    assert len(answered) * per_update <= cost <= len(answered) * (per_update + 1)
