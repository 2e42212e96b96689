"""The bot as a process, as production starts it: pre-flight, polling, graceful SIGTERM; its
worker processes, killed mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psycopg2

from config.env import PROJECT_DIR
from db import Database, EmbeddedPostgres
from sandbox.candidate import annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer
from tests.conftest import BOT_TOKEN, CVAT_ADMIN_PASSWORD, HANG
from tests.flow import bot_process_env, read_login, start_bot_process, submit


def _environment(telegram: TelegramServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update({
        "ENV_FILE": str(tmp_path / "none.env"),
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "CVAT_URL": "http://127.0.0.1:9",
        "CVAT_ADMIN_USERNAME": "bot-admin",
        "CVAT_ADMIN_PASSWORD": CVAT_ADMIN_PASSWORD,
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
        "LOG_TO_CONSOLE": "true",
    })
    env.update(extra)
    return env


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_DIR / "main.py"), cwd=PROJECT_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


async def _wait_for_line(proc: asyncio.subprocess.Process, needle: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), HANG)).decode()
        if not line:
            raise AssertionError("the bot exited early:\n" + "".join(seen))
        seen.append(line)
        if needle in line:
            return


async def test_process_with_embedded_database_answers_and_stops_on_sigterm(
    telegram: TelegramServer, tmp_path: Path
) -> None:
    # DATA_DIR inside a 0700 folder, as in a clone under /root: run as root, the server's own
    # user cannot pass it.
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    env = _environment(telegram, tmp_path, DATA_DIR=str(closed / "data"))
    modes_above = {folder: folder.stat().st_mode for folder in (closed, *closed.parents)}
    proc = await _start(env)
    seen: list[str] = []
    try:
        await _wait_for_line(proc, "Run polling", seen)
        person = telegram.user(2001, first_name="Olga", language_code="ru")
        await person.send("/start")
        await person.expect_message("Здравствуйте, Olga!", timeout=15)
        commands = [c for m, c, _ in telegram.calls if m == "setMyCommands"]
        assert commands, "the command menu was not set"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), HANG) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stdout is not None
    seen.append((await proc.stdout.read()).decode())
    output = "".join(seen)
    assert "bot stopped" in output
    # The embedded server was stopped with the bot, and its data is kept for the next start
    # (as root, where the server's user could not pass a folder above DATA_DIR, in a folder of
    # its own); no folder above was opened up for it.
    server = EmbeddedPostgres(closed / "data")
    try:
        assert not server.running
        assert (server.pgdata / "PG_VERSION").exists()
        assert {folder: folder.stat().st_mode for folder in (closed, *closed.parents)} == \
            modes_above
        for log_file in (tmp_path / "logs").glob("*.log"):
            text = log_file.read_text()
            assert BOT_TOKEN not in text and server.password not in text
    finally:
        server.remove()


async def test_process_refuses_a_rejected_token_with_a_clear_message(
    telegram: TelegramServer, tmp_path: Path, database_url: str
) -> None:
    env = _environment(telegram, tmp_path, BOT_TOKEN="4242:AAAA-not-a-registered-token-xyz",
                       DATABASE_URL=database_url)
    proc = await _start(env)
    out, _ = await asyncio.wait_for(proc.communicate(), HANG)
    assert proc.returncode == 1
    assert "Telegram rejected BOT_TOKEN" in out.decode()
    assert "Traceback" not in out.decode()


# --- workers --------------------------------------------------------------------------------


async def _worker_pid(db: Database, kind: str) -> int:
    """The process id of the worker running the job of `kind` (from its `locked_by`)."""
    deadline = asyncio.get_running_loop().time() + HANG
    while True:
        holder = await db.fetchval("SELECT locked_by FROM jobs WHERE kind = %s"
                                   " AND status = 'running'", (kind,))
        if holder is not None:
            return int(holder.split("-")[-2])
        assert asyncio.get_running_loop().time() < deadline, f"no {kind} job ran"
        await asyncio.sleep(0.05)


async def _until(db: Database, sql: str) -> None:
    deadline = asyncio.get_running_loop().time() + HANG
    while not await db.fetchval(sql):
        assert asyncio.get_running_loop().time() < deadline, f"{sql!r} never held"
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_build_and_mid_grading_loses_nothing(
    telegram: TelegramServer, cvat: CvatServer, database_url: str, db: Database,
    tmp_path: Path,
) -> None:
    """The bot as production starts it, with two worker processes. The worker building a
    candidate's task is killed (SIGKILL) while CVAT processes the images, and the worker
    grading their submission is killed while it stores the figures. Another worker (or the
    one the bot starts again) takes each job over when its lease runs out and finishes it
    once: one task on CVAT, one login, one metrics row, one thank-you."""
    cvat.processing_time = 3.0
    env = bot_process_env(telegram.base_url, cvat.base_url, database_url, tmp_path,
                          WORKERS="2", BUILD_LEASE_SECONDS="3", POOL_ACCOUNTS="0",
                          POOL_TASKS="0")
    person = telegram.user(2101, first_name="Kira", language_code="en")
    bot = await start_bot_process(env)
    blocker = psycopg2.connect(database_url)
    try:
        await telegram.wait_polling(timeout=HANG)
        await person.send("📝 Get a test task")
        await person.expect_message("Ready to start?")
        await person.press("✅ Yes, create my task")
        await _until(db, "SELECT cvat_task_id IS NOT NULL AND status = 'creating' FROM attempts")
        os.kill(await _worker_pid(db, "build"), signal.SIGKILL)
        login = read_login(await person.expect_message("Your CVAT login"))
        await person.expect_message("What to do")

        await annotate(login)
        with blocker.cursor() as cur:  # the figures wait: the grading is under way
            cur.execute("LOCK TABLE metrics IN EXCLUSIVE MODE")
        await submit(person)
        await _until(db, "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted"
                         " AND relation = 'metrics'::regclass")
        assert await db.fetchval("SELECT status FROM attempts") == "submitted"
        os.kill(await _worker_pid(db, "submit"), signal.SIGKILL)
        blocker.rollback()
        await person.expect_edit("Thank you!")
        bot.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.wait(), HANG) == 0
    finally:
        blocker.close()
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert len(cvat.tasks) == 1
    assert [m.text.count("Your CVAT login") for m in person.messages].count(1) == 1
    assert sum("Thank you!" in m.text for m in [*person.messages, *person.edits]) == 1
    assert await db.fetchval("SELECT count(*) FROM metrics") == 1
    assert await db.fetchval("SELECT status FROM attempts") == "graded"
    jobs = await db.fetchall("SELECT kind, status, tries FROM jobs WHERE queue = 'work'"
                             " ORDER BY id")
    assert [(j["kind"], j["status"], j["tries"]) for j in jobs] == [
        ("build", "done", 2), ("submit", "done", 2)]
