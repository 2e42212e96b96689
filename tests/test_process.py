"""The bot as a process, as production starts it: pre-flight, polling, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from config.env import PROJECT_DIR
from db import EmbeddedPostgres
from sandbox.telegram import TelegramServer
from tests.conftest import BOT_TOKEN, CVAT_ADMIN_PASSWORD, HANG


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
