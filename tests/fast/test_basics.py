"""The candidate's first steps in process: greeting, help, language, support, cancel, and
anything unexpected (moved from tests/test_bot_basics.py, assertions unchanged)."""

from __future__ import annotations

import pytest

from tests.fast.chat import FastChat, FastTelegram


async def test_start_greets_in_english_with_the_menu(user: FastChat) -> None:
    await user.send("/start")
    reply = await user.expect_message("Hello, Anna!")
    assert "CVAT" in reply.text
    # What the test is, how long it takes, how many attempts.
    assert "12 street images" in reply.text
    assert "About 60 minutes" in reply.text
    assert "Attempts: 2. Only your latest attempt counts" in reply.text
    assert reply.reply_keyboard == [["📝 Get a test task"], ["ℹ️ Help", "🌐 Language"],
                                    ["✉️ Write to HR"]]


async def test_start_greets_in_russian_for_a_russian_telegram(telegram: FastTelegram) -> None:
    ivan = telegram.user(1002, first_name="Иван", language_code="ru")
    await ivan.send("/start")
    reply = await ivan.expect_message("Здравствуйте, Иван!")
    assert reply.reply_keyboard[:2] == [["📝 Получить задание"], ["ℹ️ Помощь", "🌐 Язык"]]


async def test_html_breaking_name_is_shown_literally(telegram: FastTelegram) -> None:
    mallory = telegram.user(1003, first_name="<b>Bob</b> & <i", language_code="en")
    await mallory.send("/start")
    reply = await mallory.expect_message("Hello, <b>Bob</b> & <i!")
    assert reply.entities[0]["type"] == "bold"


@pytest.mark.parametrize(("code", "expected"),
                         [("en", "How this works"), ("ru", "Как это устроено")])
async def test_help_by_command_and_by_menu_button(telegram: FastTelegram, code: str,
                                                  expected: str) -> None:
    person = telegram.user(1010, first_name="P", language_code=code)
    await person.send("/help")
    await person.expect_message(expected)
    await person.send("ℹ️ Помощь" if code == "ru" else "ℹ️ Help")
    await person.expect_message(expected)


async def test_language_switch_is_remembered_across_a_restart(user: FastChat,
                                                              telegram: FastTelegram) -> None:
    await user.send("/language")
    choice = await user.expect_message("Choose your language")
    assert choice.buttons == [["🇬🇧 English", "🇷🇺 Русский"]]
    await user.press("🇷🇺 Русский")
    await user.expect_answer()
    done = await user.expect_message("Готово")
    assert done.reply_keyboard[1] == ["ℹ️ Помощь", "🌐 Язык"]
    await telegram.restart()
    await user.send("/start")
    await user.expect_message("Здравствуйте, Anna!")
    await user.send("🌐 Язык")
    await user.expect_message("Выберите язык")
    await user.press("🇬🇧 English")
    await user.expect_message("Done: I will speak English")


async def test_anything_unexpected_gets_a_polite_answer(user: FastChat) -> None:
    await user.send("what is this?")
    await user.expect_message("I did not understand that")
    await user.send_sticker()
    await user.expect_message("I did not understand that")
    await user.send("/nonexistent")
    await user.expect_message("I did not understand that")
    await user.press_data("l1:xx")
    answer = await user.expect_answer()
    assert "out of date" in answer["text"]
    await user.press_data("garbage-from-nowhere")
    assert "out of date" in (await user.expect_answer())["text"]


async def test_support_dialog_survives_a_bot_restart(user: FastChat, hr_user: FastChat,
                                                     telegram: FastTelegram) -> None:
    await hr_user.send("/start")
    await hr_user.expect_message("Hello, Helen")
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await telegram.restart()
    await user.send_sticker()
    await user.expect_message("Please send your message as text")
    await user.send("I cannot log in to CVAT <help>")
    await user.expect_message("your message was sent to HR")
    forwarded = await hr_user.expect_message("Message from a candidate")
    assert "Anna Smith @anna_s" in forwarded.text
    assert "I cannot log in to CVAT <help>" in forwarded.text
    # The dialog is over: the next text is ordinary again.
    await user.send("hello")
    await user.expect_message("I did not understand that")


async def test_cancel_leaves_the_dialog(user: FastChat) -> None:
    await user.send("/cancel")
    await user.expect_message("nothing to cancel")
    await user.send("✉️ Write to HR")
    await user.expect_message("Type your message to HR")
    await user.send("/cancel")
    await user.expect_message("Cancelled")
    await user.send("some text")
    await user.expect_message("I did not understand that")
