"""A test's deadline through the production dispatcher and the stand-ins, the clock moved in the
database rather than waited for: the nudge arrives once (replicas, restarts), the expiry locks
the job on CVAT and tells the candidate in their language, a Submit after it is answered
plainly, and HR see the attempt as expired."""

from __future__ import annotations

import asyncio
import dataclasses

from bot_files.deadlines import DeadlineKeeper
from bot_files.telegram_limits import Pacer
from db import Database
from sandbox.candidate import candidate_client
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tasks_metrics.export_data import export_rows
from tests.conftest import BotApp
from tests.flow import get_task
from tests.test_hr import find


def keeper(app: BotApp) -> DeadlineKeeper:
    """A deadline keeper as a bot process runs it."""
    return DeadlineKeeper(app.bot, app.db, app.cvat, app.settings, Pacer())


async def move_clock(db: Database, hours: float) -> None:
    """As if `hours` had passed since every task was handed over."""
    await db.execute("UPDATE attempts SET task_started = task_started - make_interval("
                     "secs => %s)", (hours * 3600,))


def count(person: TelegramUser, text: str) -> int:
    """How many of the bot's messages to this person contain `text`."""
    return sum(text in m.text for m in person.messages)


async def test_nudge_once_then_expiry_locks_the_job_and_everyone_is_told(
        user: TelegramUser, hr_user: TelegramUser, telegram: TelegramServer, cvat: CvatServer,
        bot_app: BotApp, db: Database) -> None:
    ivan = telegram.user(1002, first_name="Ivan", username="ivan_p", language_code="en")
    login = await get_task(user)
    await get_task(ivan)
    await ivan.send("/language")
    await ivan.expect_message("Choose your language")
    await ivan.press("🇷🇺 Русский")
    await ivan.expect_message("Готово")

    # 50 of 72 hours gone: the nudge (24 h before) is due. Two replicas run at once (and the
    # bot's own loop may too); each candidate gets it once, and once only after a restart.
    await move_clock(db, 50)
    await asyncio.gather(keeper(bot_app).run_once(), keeper(bot_app).run_once())
    nudge = await user.expect_message("A reminder", timeout=10)
    assert "closes in about 22 h" in nudge.text and "/support" in nudge.text
    assert "закроется примерно через 22 ч" in (await ivan.expect_message("Напоминание")).text
    await bot_app.restart()
    await keeper(bot_app).run_once()
    assert (count(user, "A reminder"), count(ivan, "Напоминание")) == (1, 1)

    # 73 hours gone: the job is locked (the candidate sees no job any more) and the attempt
    # closed as expired; both are told, in their language, what they can do.
    await move_clock(db, 23)
    await keeper(bot_app).run_once()
    told = await user.expect_message("Time is up", timeout=10)
    assert "attempt 1" in told.text and "🔁 New attempt" in told.text
    assert told.reply_keyboard and ["🔁 New attempt", "🔑 My credentials"] in told.reply_keyboard
    assert "Можно начать новую попытку" in (await ivan.expect_message("Время вышло")).text
    jobs = await db.fetchall("SELECT status, cvat_job_id FROM attempts ORDER BY id")
    assert [row["status"] for row in jobs] == ["expired", "expired"]
    assert all(cvat.jobs[row["cvat_job_id"]].assignee_id is None for row in jobs)
    client = candidate_client(login)
    try:
        assert await client.visible_jobs() == []
    finally:
        await client.close()
    await keeper(bot_app).run_once()
    assert count(user, "Time is up") == 1

    # Submit after the expiry: a plain answer; the expired attempt counts as used.
    await user.send("✅ Submit")
    closed = await user.expect_edit("is closed", timeout=10)
    assert "can no longer be submitted" in closed.text
    await user.expect_message("You can start a new attempt")
    await user.send("🔁 New attempt")
    await user.expect_message("Start attempt 2 of 2")

    # HR: the card and the export say expired.
    await find(hr_user, "@anna_s")
    card = await hr_user.expect_message("Attempt 1", timeout=10)
    assert "expired (not submitted in time)" in card.text
    rows = await export_rows(db)
    status = rows.attempt_columns.index("status")
    assert [row[status] for row in rows.attempts] == ["expired", "expired"]


async def test_no_nudge_before_its_time_and_none_without_a_deadline(
        user: TelegramUser, bot_app: BotApp, db: Database) -> None:
    await get_task(user)
    await move_clock(db, 47)  # 25 h before the deadline: too early
    assert await keeper(bot_app).run_once() == (0, 0, 0)
    await move_clock(db, 100)  # long past it, but deadlines are off
    off = dataclasses.replace(bot_app.settings, test_deadline_hours=0)
    assert await DeadlineKeeper(bot_app.bot, db, bot_app.cvat, off, Pacer()).run_once() == (
        0, 0, 0)
    assert await db.fetchval("SELECT status FROM attempts") == "ready"
