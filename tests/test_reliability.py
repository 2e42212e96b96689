"""Faults that really happen: the database server stopping mid-flow, the bot killed mid-build,
Telegram limiting us, floods, and bad input in every state. Nothing may be lost or doubled."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot_files.telegram_limits import ThrottlingMiddleware
from config.env import Settings
from connection import AsyncCvatClient
from db import Database
from main import create_bot, create_dispatcher
from sandbox.candidate import Login, annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tasks_generator.to_handlers import Credentials, load_task_set, reconcile
from tests.conftest import (
    HANG,
    BotApp,
    PgServer,
)
from tests.flow import (
    bot_process_env,
    get_task,
    start_bot_process,
    start_worker_process,
    submit,
    text_update,
)

GENERIC_ERROR = "something went wrong on my side"


def _needs_embedded(pg_server: PgServer) -> None:
    if pg_server.embedded is None:
        pytest.skip("needs the embedded server to stop and start it")


async def _wait_for(predicate: Callable[[], bool], within: float = HANG) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# --- the database server stops and starts --------------------------------------------------


async def test_database_restart_while_a_task_is_built(
    user: TelegramUser, cvat: CvatServer, db: Database, pg_server: PgServer
) -> None:
    _needs_embedded(pg_server)
    cvat.processing_time = 2.0
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    await user.press("✅ Yes, create my task")
    await _wait_for(lambda: any("/data" in path for _, path, *_ in cvat.request_log))
    await asyncio.to_thread(pg_server.stop)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(pg_server.start)
    await user.expect_message("Your CVAT login", timeout=30)
    rows = await db.fetchall("SELECT status FROM attempts")
    assert [r["status"] for r in rows] == ["ready"]
    assert len(cvat.tasks) == 1
    assert await db.fetchval("SELECT count(*) FROM candidates") == 1


async def test_database_restart_while_a_submission_is_graded(
    user: TelegramUser, cvat: CvatServer, db: Database, pg_server: PgServer
) -> None:
    _needs_embedded(pg_server)
    login = await get_task(user)
    await annotate(login)
    cvat.latency = 0.3  # the reads from CVAT take a while: the database goes down meanwhile
    await submit(user)
    await _wait_for(lambda: any(path.endswith("/annotations/") or "annotations" in path
                                for method, path, *_ in cvat.request_log[-3:]
                                if method == "GET"))
    await asyncio.to_thread(pg_server.stop)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(pg_server.start)
    await user.expect_edit("Thank you!", timeout=30)
    assert await db.fetchval("SELECT count(*) FROM metrics") == 1
    assert [r["status"] for r in await db.fetchall("SELECT status FROM attempts")] == ["graded"]


# --- the bot process is killed in the middle of building a task ----------------------------


async def test_bot_killed_mid_build_finishes_after_restart(
    telegram: TelegramServer, cvat: CvatServer, database_url: str, db: Database,
    tmp_path: Path,
) -> None:
    cvat.processing_time = 3.0
    # The candidate's own build is killed here; the pool's builds: test_pool.py.
    env = bot_process_env(telegram.base_url, cvat.base_url, database_url, tmp_path,
                          BUILD_LEASE_SECONDS="3", RECONCILE_INTERVAL_SECONDS="1",
                          POOL_ACCOUNTS="0", POOL_TASKS="0")

    async def start() -> asyncio.subprocess.Process:
        proc = await start_bot_process(env)
        await telegram.wait_polling(timeout=30)
        return proc

    person = telegram.user(6001, first_name="Vera", language_code="en")
    bot = await start()
    try:
        await person.send("/support")  # a dialog in progress when the bot dies
        await person.expect_message("Type your message to HR", timeout=15)
        await person.send("📝 Get a test task")
        await person.expect_message("Ready to start?", timeout=15)
        await person.press("✅ Yes, create my task")
        await _wait_for(lambda: any("/data" in path for _, path, *_ in cvat.request_log))
        bot.send_signal(signal.SIGKILL)
        await bot.wait()
        bot = await start()
        await person.expect_message("Your CVAT login", timeout=40)
        # The dialog state survived the kill: this text goes to HR as the /support message.
        await person.send("the bot restarted while I waited")
        await person.expect_message(re.compile("sent to HR|Your message is saved"), timeout=15)
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
            await asyncio.wait_for(bot.wait(), HANG)
    assert [r["status"] for r in await db.fetchall("SELECT status FROM attempts")] == ["ready"]
    assert len(cvat.tasks) == 1
    assert len([u for u in cvat.users.values() if u.username.startswith("cand")]) == 1



async def test_a_stale_builder_changes_nothing_after_a_takeover(
    telegram: TelegramServer, cvat: CvatServer, database_url: str, db: Database,
    settings: Settings, tmp_path: Path,
) -> None:
    """A worker process building a task is paused (SIGSTOP) past its lease; another builder
    takes the attempt over and hands the task out; then CVAT fails the paused builder's next
    calls and it is resumed. It must neither delete the task nor mark the attempt failed."""
    cvat.processing_time = 3.0
    env = bot_process_env(telegram.base_url, cvat.base_url, database_url, tmp_path,
                          BUILD_LEASE_SECONDS="2", RECONCILE_INTERVAL_SECONDS="3600",
                          POOL_ACCOUNTS="0", POOL_TASKS="0", WORKERS="0")
    person = telegram.user(6002, first_name="Petra", language_code="en")
    bot = await start_bot_process(env)
    stale = await start_worker_process(env)
    delivered: list[Credentials] = []

    async def deliver(telegram_id: int, credentials: Credentials) -> None:
        delivered.append(credentials)

    taker = AsyncCvatClient.from_settings(settings)
    try:
        await telegram.wait_polling(timeout=30)
        await person.send("📝 Get a test task")
        await person.expect_message("Ready to start?", timeout=15)
        await person.press("✅ Yes, create my task")
        await _wait_for(lambda: bool(cvat.requests))  # uploaded; CVAT is processing it
        stale.send_signal(signal.SIGSTOP)
        await _wait_until_db(db, "SELECT lease_until < now() FROM attempts")
        assert await db.fetchval("SELECT status FROM attempts") == "creating"
        task_set = load_task_set(settings.task_set, settings.images_per_task)
        counts = await reconcile(db, taker, settings, task_set, deliver)
        assert counts["resumed"] == 1 and len(delivered) == 1
        handed_out = await db.fetchone("SELECT cvat_task_id, cvat_job_id FROM attempts")
        seen = len(person.chat_history)
        cvat.fail_next("GET", "/api/", status=500, count=8)  # the stale one's next poll
        stale.send_signal(signal.SIGCONT)
        await _wait_for(lambda: len(person.chat_history) > seen)  # it has given up
    finally:
        await taker.close()
        if stale.returncode is None:
            stale.send_signal(signal.SIGCONT)
        for process in (stale, bot):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), HANG)
        cvat.clear_faults()
    row = await db.fetchone("SELECT status, cvat_task_id, cvat_job_id FROM attempts")
    assert row["status"] == "ready"
    assert (row["cvat_task_id"], row["cvat_job_id"]) == (handed_out["cvat_task_id"],
                                                         handed_out["cvat_job_id"])
    assert row["cvat_task_id"] in cvat.tasks
    # The candidate can work with the login the new builder sent.
    job_id, _ = await annotate(Login(delivered[0].url, delivered[0].username,
                                     delivered[0].password))
    assert job_id == row["cvat_job_id"]
    assert not any("went wrong" in m.text or ("CVAT" in m.text and "problem" in m.text)
                   for m in person.messages)


async def _wait_until_db(db: Database, sql: str, within: float = HANG) -> None:
    deadline = time.monotonic() + within
    while not await db.fetchval(sql):
        assert time.monotonic() < deadline, f"{sql!r} did not become true in time"
        await asyncio.sleep(0.1)

# --- Telegram's limits ---------------------------------------------------------------------


async def test_flood_control_is_waited_out(user: TelegramUser, telegram: TelegramServer) -> None:
    telegram.inject_errors("sendMessage", status=429, retry_after=1, count=2)
    before = len(telegram.calls_of("sendMessage"))
    started = time.monotonic()
    await user.send("/help")
    await user.expect_message("How this works", timeout=10)
    assert time.monotonic() - started >= 2  # it waited as Telegram asked, twice
    assert len(telegram.calls_of("sendMessage")) - before == 3


async def test_flood_control_retries_are_bounded(user: TelegramUser,
                                                 telegram: TelegramServer) -> None:
    telegram.inject_errors("sendMessage", status=429, retry_after=1, count=50)
    before = len(telegram.calls_of("sendMessage"))
    await user.send("/help")
    await asyncio.sleep(6)
    assert len(telegram.calls_of("sendMessage")) - before == 4  # one try and three retries
    telegram.clear_injected_errors()
    await user.send("/help")
    await user.expect_message("How this works", timeout=10)


async def test_get_updates_errors_back_off(user: TelegramUser, telegram: TelegramServer) -> None:
    telegram.inject_errors("getUpdates", status=502, count=3)
    await user.send("/help")
    await user.expect_message("How this works", timeout=20)
    polls = [t for method, _, t in telegram.calls if method == "getUpdates"]
    gaps = [b - a for a, b in zip(polls[-5:], polls[-4:], strict=False)]
    assert max(gaps) >= 0.9  # it waited before asking again, not hammering the server


async def test_broadcast_to_hr_is_paced_under_telegrams_limits(
    user: TelegramUser, telegram: TelegramServer, db: Database
) -> None:
    for i in range(40):
        hr = telegram.user(800_000 + i, first_name=f"HR{i}")
        await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (%s)", (hr.id,))
        await hr.send("/start")
        await hr.expect_message("Hello")
    telegram.rate_limits(per_chat_per_second=1, global_per_second=30)
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await user.send("Hello from a candidate")
    await user.expect_message("sent to HR", timeout=30)
    for i in range(40):
        await telegram.user(800_000 + i).expect_message("Hello from a candidate")
    assert not [e for e in telegram.errors if e.endswith(":429")]


# --- floods and crowds ---------------------------------------------------------------------


async def test_a_flood_costs_the_database_nothing(telegram: TelegramServer,
                                                 settings: Settings, db: Database) -> None:
    """100 updates of one user at once: the burst is answered, one notice, and the rest is
    dropped before any database work (counted by the Database itself). The production
    dispatcher is fed directly, so the count covers exactly these updates."""
    flooder = telegram.user(7001, first_name="Flood")
    calm = telegram.user(7002, first_name="Calm")
    bot = create_bot(settings)
    cvat = AsyncCvatClient.from_settings(settings)
    dp = create_dispatcher(settings, db, cvat)
    try:
        before = db.statements
        await dp.feed_raw_update(bot, text_update(calm, "hello"))
        per_update = db.statements - before
        assert per_update > 0
        before = db.statements
        await asyncio.gather(
            *(dp.feed_raw_update(bot, text_update(flooder, f"spam {i}")) for i in range(100)),
            *(dp.feed_raw_update(bot, text_update(calm, f"calm {i}")) for i in range(3)))
        cost = db.statements - before
    finally:
        await bot.session.close()
        await cvat.close()
    answered = [m for m in flooder.messages if "did not understand" in m.text]
    notices = [m for m in flooder.messages if "very fast" in m.text]
    assert settings.throttle_burst <= len(answered) < 20
    assert len(notices) == 1
    assert len([m for m in calm.messages if "did not understand" in m.text]) == 4
    assert cost == (len(answered) + 3) * per_update  # a dropped update cost nothing


async def test_a_flood_of_button_presses_gets_one_notice(telegram: TelegramServer,
                                                       settings: Settings, db: Database) -> None:
    """60 presses of a stale button at once: the burst is answered ("out of date"), the rest
    costs one notice in all, not an answerCallbackQuery each (the updates come from the
    stand-in through getUpdates, as polling gets them)."""
    presser = telegram.user(7003, first_name="Presser")
    bot = create_bot(settings)
    cvat = AsyncCvatClient.from_settings(settings)
    dp = create_dispatcher(settings, db, cvat)
    try:
        await dp.feed_raw_update(bot, text_update(presser, "hello"))
        for _ in range(60):
            await presser.press_data("t1:stale")
        updates = await bot.get_updates(timeout=0)
        await asyncio.gather(*(dp.feed_update(bot, update) for update in updates))
    finally:
        await bot.session.close()
        await cvat.close()
    assert len(updates) == 60
    answers = [a.get("text") or "" for a in presser.answers]
    out_of_date = [a for a in answers if "out of date" in a]
    assert settings.throttle_burst - 1 <= len(out_of_date) < 20
    assert len(answers) == len(out_of_date) + 1
    assert sum("very fast" in a for a in answers) == 1


def test_the_throttle_forgets_users_whose_bucket_is_full_again() -> None:
    """A million users over days keep only the recently active ones in memory."""
    throttle = ThrottlingMiddleware(rate=1, burst=8, max_users=50_000)
    for user in range(100_000):
        throttle.allow(user, now=user / 1000)  # a thousand new users a second
    assert throttle.users_tracked <= 10 * 1000 + 1  # the last ten seconds' users
    crowd = ThrottlingMiddleware(rate=1, burst=8, max_users=5_000)
    for user in range(100_000):
        crowd.allow(user, now=0.0)  # all at once: the cap holds
    assert crowd.users_tracked == 5_000
    assert crowd.allow(99_999, now=0.0) == (True, False)  # the newest are kept


async def test_three_hundred_users_pressing_at_once_are_all_answered(
    telegram: TelegramServer, bot_app: BotApp
) -> None:
    people = [telegram.user(710_000 + i, first_name=f"P{i}") for i in range(300)]
    await asyncio.gather(*(p.send("/language") for p in people))
    await asyncio.gather(*(p.expect_message("Choose your language", timeout=60)
                           for p in people))
    await asyncio.gather(*(p.press("🇷🇺 Русский") for p in people))
    await asyncio.gather(*(p.expect_message("Готово", timeout=60) for p in people))


async def test_get_task_spam_creates_one_task(user: TelegramUser, cvat: CvatServer,
                                              db: Database) -> None:
    await user.send("📝 Get a test task")
    confirm = await user.expect_message("Ready to start?")
    await asyncio.gather(*(user.press("✅ Yes, create my task", message_id=confirm.message_id)
                           for _ in range(20)))
    await user.expect_message("Your CVAT login", timeout=30)
    await asyncio.sleep(1)
    assert len(cvat.tasks) == 1
    assert await db.fetchval("SELECT count(*) FROM attempts") == 1
