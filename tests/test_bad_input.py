"""Bad input with a task on CVAT: before and after submitting, stale buttons from before a
restart, another candidate's buttons. Every one gets a helpful answer, no exception escapes,
and no state is corrupted. The cases without a task, and the fuzzed texts and button data,
are in the fast tier (tests/fast/test_bad_input.py)."""

from __future__ import annotations

import dataclasses

import pytest

from config.env import Settings
from db import Database
from sandbox.candidate import annotate
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import BotApp
from tests.flow import get_task, submit
from tests.steps import bad_inputs

GENERIC_ERROR = "something went wrong on my side"


@pytest.fixture(name="settings")
def roomy_settings(settings: Settings) -> Settings:
    """These tests send many updates in a row on purpose; the flood limit has its own test
    (test_reliability.py), so here it is configured out of the way."""
    return dataclasses.replace(settings, throttle_burst=1000)


async def test_bad_input_with_a_task_and_after_submitting(user: TelegramUser,
                                                          db: Database) -> None:
    login = await get_task(user)
    await bad_inputs(user, settle=1.0)
    assert await db.fetchval("SELECT status FROM attempts") == "ready"
    await annotate(login)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    await bad_inputs(user, settle=1.0)
    assert await db.fetchval("SELECT status FROM attempts") == "graded"


async def test_stale_keyboard_from_before_a_restart(user: TelegramUser, bot_app: BotApp) -> None:
    await user.send("📝 Get a test task")
    confirm = await user.expect_message("Ready to start?")
    await user.send("/language")
    await user.expect_message("Choose your language")
    await bot_app.restart()
    # Buttons sent by the previous process still work, and in any order.
    await user.press("✅ Yes, create my task", message_id=confirm.message_id)
    await user.expect_message("Your CVAT login", timeout=30)
    await user.press("🇷🇺 Русский")
    await user.expect_message("Готово")


async def test_another_candidates_credentials_are_never_shown(
    telegram: TelegramServer, bot_app: BotApp
) -> None:
    owner = telegram.user(7101, first_name="Owner")
    login = await get_task(owner)
    stranger = telegram.user(7102, first_name="Stranger")
    await stranger.send("🔑 My credentials")
    await stranger.expect_message("You do not have a test task yet")
    await stranger.press_data("t1:cred")
    await stranger.expect_answer()
    await stranger.press_data("t1:sub")
    await stranger.expect_answer()
    assert login.password not in stranger.transcript()
    assert login.username not in stranger.transcript()
