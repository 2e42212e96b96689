"""HR's /start: the HR menu first, the candidate's greeting and menu one button away."""

from __future__ import annotations

from db import Database
from tests.fast.chat import FastChat, FastTelegram


async def test_hr_start_shows_the_hr_menu_and_the_candidate_side_on_request(
        hr_user: FastChat, telegram: FastTelegram, db: Database) -> None:
    await hr_user.send("/start")
    menu = await hr_user.expect_message("HR menu")
    assert menu.text.startswith("Hello, Helen! You are on the HR list")
    assert ["📊 All candidates"] in menu.buttons and ["🧪 Take the test myself"] in menu.buttons
    assert "Get a test task" not in hr_user.transcript()

    await hr_user.press("🧪 Take the test myself")
    greeting = await hr_user.expect_message("practical test")
    assert greeting.reply_keyboard is not None
    assert "📝 Get a test task" in greeting.reply_keyboard[0]
    assert ["🗂 HR menu"] in greeting.reply_keyboard

    # A whitelisted HR member writing in Russian gets the same, in Russian.
    olga = telegram.user(900_002, first_name="Ольга", language_code="ru")
    await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (%s)", (olga.id,))
    await olga.send("/start")
    menu = await olga.expect_message("Меню HR")
    assert menu.text.startswith("Здравствуйте, Ольга! Вы в списке HR")
    await olga.press("🧪 Пройти тест как кандидат")
    greeting = await olga.expect_message("Здравствуйте, Ольга! 👋")
    assert greeting.reply_keyboard and ["📝 Получить задание"] in greeting.reply_keyboard
