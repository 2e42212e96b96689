"""Bad input where no task is involved: stickers, photos, voice, files, huge texts, unknown
commands, edited messages, stale and forged buttons, and fuzzed texts and button data. Every
one gets a helpful answer, no exception escapes, and no state is corrupted (moved from
tests/test_bad_input.py, which keeps the cases with a task on CVAT)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db import Database
from tests.fast.chat import FastChat, FastTelegram
from tests.steps import GENERIC_ERROR, bad_inputs


async def test_bad_input_when_new(user: FastChat, db: Database) -> None:
    await bad_inputs(user)
    assert await db.fetchval("SELECT count(*) FROM attempts") == 0


async def test_bad_input_while_writing_to_hr(user: FastChat, hr_user: FastChat) -> None:
    await hr_user.send("/start")
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await bad_inputs(user)
    user.skip_all()
    await user.send("my real question")  # the dialog is still waiting for text
    await hr_user.expect_message("my real question", timeout=10)


async def test_a_question_with_a_nul_character_gets_a_polite_answer(user: FastChat) -> None:
    await user.send("?\x00")
    reply = await user.expect_message()
    assert GENERIC_ERROR not in reply.text.lower()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=300)
       .filter(lambda s: s.strip()))
async def test_any_text_gets_a_polite_answer(telegram: FastTelegram, text: str) -> None:
    person = telegram.user(720_000 + len(telegram.users()), first_name="Fuzz")
    await person.send(text)
    reply = await person.expect_message(timeout=10)
    assert GENERIC_ERROR not in reply.text.lower()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.text(min_size=1, max_size=64).filter(lambda s: len(s.encode()) <= 64))
async def test_any_button_data_gets_an_answer(telegram: FastTelegram, data: str) -> None:
    person = telegram.user(730_000 + len(telegram.users()), first_name="Forger")
    await person.send("/help")
    await person.expect_message("How this works")
    await person.press_data(data)
    answer = await person.expect_answer(timeout=10)
    assert GENERIC_ERROR not in (answer.get("text") or "").lower()
