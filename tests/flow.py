"""Helpers for end-to-end tests on the Telegram side: a candidate who takes the test through the
bot (the CVAT side of the candidate, the scripted annotation, is sandbox/candidate.py), the bot
as a process, and waits for the pool."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

from config.env import PROJECT_DIR
from connection import AsyncCvatClient, CvatError
from db import Database
from sandbox.candidate import Login, read_login
from sandbox.telegram import TelegramUser
from tasks_generator.pool import pool_counts

# Seconds a test waits for something the bot does before calling it a hang. The waits return
# as soon as the event happens; only a hang (or a bug) ever reaches this bound, however busy
# the machine is, so it is the same for every wait.
HANG = 90.0


async def get_task(user: TelegramUser, *, new_attempt: bool = False) -> Login:
    """Ask for a (new) task, confirm, and wait for the credentials."""
    await user.send("🔁 New attempt" if new_attempt else "📝 Get a test task")
    await user.expect_message("Start attempt" if new_attempt else "Ready to start?")
    await user.press("✅ Yes, start a new attempt" if new_attempt else "✅ Yes, create my task")
    # Waits for the events themselves; the bound (the stand-in's expect_at_least in the
    # suite) is only for a hang.
    await user.expect_edit("Your test task is ready")
    login = read_login(await user.expect_message("Your CVAT login"))
    await user.expect_message("What to do")
    return login


async def attempt_images(db: Database, telegram_id: int, number: int = 1) -> tuple[str, ...]:
    """The images drawn for a candidate's attempt (every attempt draws its own)."""
    images = await db.fetchval(
        "SELECT a.image_subset FROM attempts a JOIN candidates c ON c.id = a.candidate_id"
        " WHERE c.telegram_id = %s AND a.number = %s", (telegram_id, number))
    assert images, f"candidate {telegram_id} has no attempt {number}"
    return tuple(images)


def text_update(user: TelegramUser, text: str) -> dict[str, Any]:
    """A Bot API update with a text message from this user in their private chat, as Telegram
    would post it (for feeding the dispatcher directly)."""
    number = next(_update_ids)
    return {"update_id": number, "message": {
        "message_id": number, "date": 0, "chat": user.as_chat(), "from": user.as_user(),
        "text": text}}


_update_ids = itertools.count(1_000_000)


def bot_process_env(telegram_url: str, cvat_url: str, database_url: str, tmp_path: Path,
                    **extra: str) -> dict[str, str]:
    """The environment of `python main.py` against the stand-ins and this test's database."""
    from tests.conftest import BOT_TOKEN, CVAT_ADMIN_PASSWORD, CVAT_ADMIN_USERNAME

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({
        "ENV_FILE": str(tmp_path / "none.env"), "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram_url, "CVAT_URL": cvat_url,
        "CVAT_ADMIN_USERNAME": CVAT_ADMIN_USERNAME, "CVAT_ADMIN_PASSWORD": CVAT_ADMIN_PASSWORD,
        "DATABASE_URL": database_url, "LOG_DIR": str(tmp_path / "logs"),
        "LOG_TO_CONSOLE": "false", **extra,
    })
    return env


async def start_bot_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python main.py` as production starts it (with WORKERS worker processes of its own)."""
    return await asyncio.create_subprocess_exec(sys.executable, str(PROJECT_DIR / "main.py"),
                                                cwd=PROJECT_DIR, env=env)


async def start_worker_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python main.py worker`, as `./run.sh worker` starts it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_DIR / "main.py"), "worker", cwd=PROJECT_DIR, env=env)


async def wait_for_pool(db: Database, accounts: int, tasks: int, within: float = HANG) -> None:
    """Until exactly this many accounts and tasks are ready and none is being made."""
    deadline = time.monotonic() + within
    while True:
        counts = await pool_counts(db)
        if (counts.accounts_ready, counts.tasks_ready, counts.accounts_creating,
                counts.tasks_creating) == (accounts, tasks, 0, 0):
            return
        assert time.monotonic() < deadline, f"pool never reached {accounts}/{tasks}: {counts}"
        await asyncio.sleep(0.05)


async def delete_from_cvat(db: Database, admin: AsyncCvatClient) -> None:
    """Delete every task and account this database knows from CVAT (a real one is not thrown
    away after a run, as the stand-in is)."""
    tasks = await db.fetchall("SELECT cvat_task_id AS id FROM attempts UNION"
                              " SELECT cvat_task_id FROM pool_tasks")
    users = await db.fetchall("SELECT cvat_user_id AS id FROM candidates UNION"
                              " SELECT cvat_user_id FROM pool_accounts")
    for delete, rows in ((admin.delete_task, tasks), (admin.delete_user, users)):
        for row in rows:
            if row["id"] is not None:
                with contextlib.suppress(CvatError):
                    await delete(row["id"])


async def submit(user: TelegramUser) -> None:
    """✅ Submit and confirm it, as a candidate does (English texts)."""
    await user.send("✅ Submit")
    await user.expect_message("for grading?")
    await user.press("✅ Yes, submit it")
