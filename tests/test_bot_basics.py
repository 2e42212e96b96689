"""The bot through the Telegram stand-in and a real database: commands, languages, restarts."""

from __future__ import annotations

import asyncio

import pytest

from db import Database
from main import StartupError, create_bot, preflight
from sandbox.telegram import TelegramServer
from tests.conftest import BotApp, PgServer, make_settings


async def test_start_greets_in_english_with_the_menu(user) -> None:
    await user.send("/start")
    reply = await user.expect_message("Hello, Anna!")
    assert "CVAT" in reply.text
    # What the test is, how long it takes, how many attempts.
    assert "12 street images" in reply.text
    assert "About 60 minutes" in reply.text
    assert "Attempts: 2. Only your latest attempt counts" in reply.text
    assert reply.reply_keyboard == [["📝 Get a test task"], ["ℹ️ Help", "🌐 Language"],
                                    ["✉️ Write to HR"]]


async def test_start_greets_in_russian_for_a_russian_telegram(telegram, bot_app) -> None:
    ivan = telegram.user(1002, first_name="Иван", language_code="ru")
    await ivan.send("/start")
    reply = await ivan.expect_message("Здравствуйте, Иван!")
    assert reply.reply_keyboard[:2] == [["📝 Получить задание"], ["ℹ️ Помощь", "🌐 Язык"]]


async def test_html_breaking_name_is_shown_literally(telegram, bot_app) -> None:
    mallory = telegram.user(1003, first_name="<b>Bob</b> & <i", language_code="en")
    await mallory.send("/start")
    reply = await mallory.expect_message("Hello, <b>Bob</b> & <i!")
    assert reply.entities[0]["type"] == "bold"


@pytest.mark.parametrize(("code", "expected"),
                         [("en", "How this works"), ("ru", "Как это устроено")])
async def test_help_by_command_and_by_menu_button(telegram, bot_app, code, expected) -> None:
    person = telegram.user(1010, first_name="P", language_code=code)
    await person.send("/help")
    await person.expect_message(expected)
    await person.send("ℹ️ Помощь" if code == "ru" else "ℹ️ Help")
    await person.expect_message(expected)


async def test_language_switch_is_remembered_across_a_restart(user, bot_app: BotApp) -> None:
    await user.send("/language")
    choice = await user.expect_message("Choose your language")
    assert choice.buttons == [["🇬🇧 English", "🇷🇺 Русский"]]
    await user.press("🇷🇺 Русский")
    await user.expect_answer()
    done = await user.expect_message("Готово")
    assert done.reply_keyboard[1] == ["ℹ️ Помощь", "🌐 Язык"]
    await bot_app.restart()
    await user.send("/start")
    await user.expect_message("Здравствуйте, Anna!")
    await user.send("🌐 Язык")
    await user.expect_message("Выберите язык")
    await user.press("🇬🇧 English")
    await user.expect_message("Done: I will speak English")


async def test_anything_unexpected_gets_a_polite_answer(user) -> None:
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


async def test_support_dialog_survives_a_bot_restart(user, hr_user, bot_app: BotApp) -> None:
    await hr_user.send("/start")
    await hr_user.expect_message("Hello, Helen")
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await bot_app.restart()
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


async def test_cancel_leaves_the_dialog(user) -> None:
    await user.send("/cancel")
    await user.expect_message("nothing to cancel")
    await user.send("✉️ Write to HR")
    await user.expect_message("Type your message to HR")
    await user.send("/cancel")
    await user.expect_message("Cancelled")
    await user.send("some text")
    await user.expect_message("I did not understand that")


async def test_database_restarted_under_the_running_bot(user, pg_server: PgServer) -> None:
    if pg_server.embedded is None:
        pytest.skip("needs the embedded server to restart it")
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await asyncio.to_thread(pg_server.stop)
    # While it is down the bot says so plainly (the dialog state is in the database, so
    # guessing without it could send the text to the wrong place)...
    await user.send("my message while the database is down")
    await user.expect_message("database is briefly unavailable", timeout=20)
    await user.press_data("l1:ru")
    answer = await user.expect_answer(timeout=20)
    assert "database is briefly unavailable" in answer["text"]
    await asyncio.to_thread(pg_server.start)
    # Once it is back, the next update is answered and the dialog state is intact.
    await user.send("the server was down")
    await user.expect_message("Your message is saved", timeout=20)


async def test_preflight_names_a_rejected_token(telegram: TelegramServer, db: Database) -> None:
    settings = make_settings(TELEGRAM_API_URL=telegram.base_url,
                             BOT_TOKEN="999:unknown-token-unknown-token-xx")
    bot = create_bot(settings)
    try:
        with pytest.raises(StartupError, match="rejected BOT_TOKEN"):
            await preflight(bot, db, settings)
    finally:
        await bot.session.close()


async def test_preflight_names_an_unreachable_api(db: Database) -> None:
    settings = make_settings(TELEGRAM_API_URL="http://127.0.0.1:9")
    bot = create_bot(settings)
    try:
        with pytest.raises(StartupError, match="Cannot reach the Bot API"):
            await preflight(bot, db, settings)
    finally:
        await bot.session.close()
