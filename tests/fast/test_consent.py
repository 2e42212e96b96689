"""The privacy notice comes before the first task, in the reader's language, and a button from
before it (or a forged one) asks again instead of building anything. (End to end,
tests/test_hr_volume.py goes on to the login and the stored consent.)"""

from __future__ import annotations

from db import Database
from tests.fast.chat import FastTelegram

NOTICE = "ACME Ltd keeps your test results for 180 days."


async def test_the_notice_is_asked_before_the_first_task_in_both_languages(
        telegram: FastTelegram, db: Database) -> None:
    await telegram.restart(privacy_notice=NOTICE)
    anna = telegram.user(1001, first_name="Anna", language_code="en")
    await anna.send("/start")
    assert NOTICE in (await anna.expect_message("Hello")).text
    await anna.press_data("t1:go")  # "Yes" from before the notice, or forged
    asked = await anna.expect_message("Ready to start?")
    assert "By pressing ✅ Yes you agree" in asked.text and NOTICE in asked.text

    ivan = telegram.user(1002, first_name="Иван", language_code="ru")
    await ivan.send("📝 Получить задание")
    asked = await ivan.expect_message("Готовы начать?")
    assert "Нажимая ✅ Да, вы соглашаетесь с этим." in asked.text and NOTICE in asked.text
    assert asked.buttons[0][0] == "✅ Да, создать задание"

    assert await db.fetchval("SELECT count(*) FROM attempts") == 0
    assert await db.fetchval("SELECT count(consent_version) FROM telegram_users") == 0
