"""The candidates' guide: made from the task set, sent with the login in the candidate's
language, and put in the CVAT task (pooled ones too), where the candidate reads it beside the
images."""

from __future__ import annotations

import asyncio
import dataclasses

import requests

from db import Database
from sandbox.candidate import TASK_SET, Login
from sandbox.cvat import CvatServer
from sandbox.cvat_client import SandboxCvatClient
from sandbox.telegram import TelegramServer, TelegramUser, parse_html
from tasks_generator.guide import TELEGRAM_TEXT_LIMIT, guide_markdown, guide_text
from tests.conftest import HANG, BotApp
from tests.flow import get_task, read_login, wait_for_pool
from tests.test_pool import POOL_ON, StartApp


def read_guide(login: Login) -> str:
    """The guide of the candidate's job, read as the candidate (blocking: run in a thread)."""
    client = SandboxCvatClient(login.url, login.username, login.password)
    try:
        (job,) = client.visible_jobs()
        assert job.raw["guide_id"] is not None, "the job has no guide"
        answer = requests.get(f"{login.url}/api/guides/{job.raw['guide_id']}",
                              auth=(login.username, login.password), timeout=HANG)
        answer.raise_for_status()
        return answer.json()["markdown"]
    finally:
        client.close()


async def test_the_guide_comes_with_the_login_and_sits_in_the_cvat_task(
        user: TelegramUser, bot_app: BotApp) -> None:
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    await user.press("✅ Yes, create my task")
    login = read_login(await user.expect_message("Your CVAT login", timeout=HANG))
    guide = await user.expect_message("What to do")
    for said in ("12 images", "Draw new rectangle", "plate</b> field", "partly hidden",
                 "cut off by the image edge", "labelling convention", "Ctrl+S", "✅ Submit"):
        assert said in (guide.html or ""), said
    assert "The letters on the plates are" not in guide.text  # the old, wrong line

    markdown = await asyncio.to_thread(read_guide, login)
    assert markdown == guide_markdown(TASK_SET)
    assert "## Annotation test: what to do" in markdown and "## Тестовое задание" in markdown
    assert "**plate** field" in markdown and "`A123BC77`" in markdown and "<b>" not in markdown


async def test_pooled_tasks_carry_the_guide(app_with: StartApp, telegram: TelegramServer,
                                            cvat: CvatServer, db: Database) -> None:
    await app_with(**POOL_ON)
    await wait_for_pool(db, 3, 3)
    assert len(cvat.guides) == len(cvat.tasks) == 3
    assert {guide.task_id for guide in cvat.guides.values()} == set(cvat.tasks)
    login = await get_task(telegram.user(1003, first_name="Maria", language_code="en"))
    assert await db.fetchval("SELECT count(*) FROM pool_tasks WHERE status = 'handed_out'") == 1
    assert await asyncio.to_thread(read_guide, login) == guide_markdown(TASK_SET)


def test_the_guide_in_each_language_fits_one_message_and_says_the_rule_of_the_set() -> None:
    russian = guide_text("ru", TASK_SET)
    assert russian.startswith("<b>Что нужно сделать</b>")
    assert "по нашим правилам разметки их вводят латиницей" in russian
    for language in ("en", "ru"):
        text = guide_text(language, TASK_SET)
        parse_html(text)
        assert len(text) <= TELEGRAM_TEXT_LIMIT
    # A set that says nothing of its own gets the general rule, and its labels still listed.
    plain = dataclasses.replace(TASK_SET, label_hints={}, plate_rule={}, labels=("truck",),
                                text_attribute=("truck", "number"))
    text = guide_text("en", plain)
    assert "<b>truck</b>" in text and "<b>number</b> field" in text
    assert "exactly what is written" in text and "Cyrillic" not in text
