"""Bad input in every state: stickers, photos, voice, files, huge texts, unknown commands,
edited messages, stale and forged buttons, and fuzzed texts and button data. Every one gets a
helpful answer, no exception escapes, and no state is corrupted."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.env import Settings
from db import Database
from sandbox.candidate import annotate
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import BotApp
from tests.flow import get_task, submit

GENERIC_ERROR = "something went wrong on my side"


@pytest.fixture(name="settings")
def roomy_settings(settings: Settings) -> Settings:
    """These tests send many updates in a row on purpose; the flood limit has its own test
    (test_reliability.py), so here it is configured out of the way."""
    return dataclasses.replace(settings, throttle_burst=1000)


async def _bad_inputs(person: TelegramUser) -> None:
    """Everything a person can throw at the bot; each gets an answer, none an error."""
    await person.send("/help")  # something on screen, as a person always has
    await person.expect_message("How this works")
    sent = await person.send("x" * 10_000)
    await person.send_sticker()
    await person.send_photo()
    await person.send_voice()
    await person.send_document(b"%PDF-1.4 nonsense", "cv.pdf", "application/pdf")
    await person.send("/definitely_not_a_command")
    await person.edit(sent["message_id"], "edited")
    for data in ("t1:zzz", "l1:xx", "h1:export", "h1c:del:1:1", "garbage", "t1:sub:999"):
        await person.press_data(data)
        await person.expect_answer(timeout=10)
    await asyncio.sleep(1.0)
    assert GENERIC_ERROR not in person.transcript().lower()


async def test_bad_input_when_new(user: TelegramUser, db: Database) -> None:
    await _bad_inputs(user)
    assert await db.fetchval("SELECT count(*) FROM attempts") == 0


async def test_bad_input_while_writing_to_hr(user: TelegramUser, hr_user: TelegramUser) -> None:
    await hr_user.send("/start")
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await _bad_inputs(user)
    user.skip_all()
    await user.send("my real question")  # the dialog is still waiting for text
    await hr_user.expect_message("my real question", timeout=10)


async def test_bad_input_with_a_task_and_after_submitting(user: TelegramUser,
                                                          db: Database) -> None:
    login = await get_task(user)
    await _bad_inputs(user)
    assert await db.fetchval("SELECT status FROM attempts") == "ready"
    await annotate(login)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    await _bad_inputs(user)
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


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=300).filter(lambda s: s.strip()))
async def test_any_text_gets_a_polite_answer(telegram: TelegramServer, bot_app: BotApp,
                                             text: str) -> None:
    person = telegram.user(720_000 + len(telegram.users()), first_name="Fuzz")
    await person.send(text)
    reply = await person.expect_message(timeout=10)
    assert GENERIC_ERROR not in reply.text.lower()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.text(min_size=1, max_size=64).filter(lambda s: len(s.encode()) <= 64))
async def test_any_button_data_gets_an_answer(telegram: TelegramServer, bot_app: BotApp,
                                              data: str) -> None:
    person = telegram.user(730_000 + len(telegram.users()), first_name="Forger")
    await person.send("/help")
    await person.expect_message("How this works")
    await person.press_data(data)
    answer = await person.expect_answer(timeout=10)
    assert GENERIC_ERROR not in (answer.get("text") or "").lower()

