"""After Submit the conversation goes on: hints, and messages outside a reply in their reader's
stored language. Production dispatcher, the Telegram and CVAT stand-ins, real PostgreSQL.
Which attempt counts, HR's decisions and replies are in the fast tier
(tests/fast/test_conversation.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from config.env import Settings
from db import Database
from sandbox.candidate import TASK_SET, Login, annotate
from sandbox.telegram import TelegramServer, TelegramUser
from tests.flow import attempt_images, get_task, read_login, submit
from tests.steps import find, whitelist
from tests.test_verdict_flow import label_id, save_work


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These journeys press buttons faster than a person: a bigger flood burst."""
    return dataclasses.replace(settings, throttle_burst=1000, max_attempts=3)


async def test_hints_after_attempt_one_never_reveal_the_key(user: TelegramUser,
                                                            db: Database) -> None:
    login = await get_task(user)
    subset = await attempt_images(db, user.id)
    plates = [s.text for n in subset for s in TASK_SET.ground_truth.images[n].shapes
              if s.label == "plate"]

    def sloppy(shapes: list[dict[str, Any]], labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Every plate typed in lower case, and a third of the cars left out (one kept on each
        # image, so the work is complete).
        for shape in shapes:
            for attribute in shape["attributes"]:
                attribute["value"] = attribute["value"].lower()
        car = label_id(labels, "car")
        cars = [s for s in shapes if s["label_id"] == car]
        keep = {id(next(c for c in cars if c["frame"] == f)) for f in {c["frame"] for c in cars}}
        dropped = [id(c) for c in cars if id(c) not in keep][: len(cars) // 3]
        return [s for s in shapes if id(s) not in dropped]

    _, client = await save_work(login, sloppy)
    await client.close()
    await submit(user)
    thanks = await user.expect_edit("Thank you!", timeout=20)
    hints = thanks.text.split("What to look at next time", 1)[1].split("\n\n", 1)[0]
    lines = [line for line in hints.splitlines() if line.startswith("• ")]
    assert 1 <= len(lines) <= 3
    assert any("wrong letter case" in line for line in lines), lines
    assert any("Some cars were missed" in line for line in lines), lines
    assert not any(name in thanks.text for name in subset)  # no image named
    assert not any(p in thanks.text or p.lower() in thanks.text for p in plates)
    assert "2 more attempts" in thanks.text and "Only your latest attempt counts" in thanks.text

    await user.send("🔁 New attempt")
    offer = await user.expect_message("Start attempt 2 of 3?")
    assert "Only your latest attempt counts" in offer.text
    assert "Your result so far (attempt 1): ❌ below the pass mark." in offer.text


async def test_messages_outside_a_reply_use_the_stored_language(
        telegram: TelegramServer, hr_user: TelegramUser, user: TelegramUser,
        db: Database) -> None:
    """HR's notification and an extra attempt arrive in the language each recipient has, with
    a keyboard in that language too, though neither ever pressed 🌐."""
    irina = telegram.user(7601, first_name="Ирина", language_code="ru")
    await whitelist(db, irina)
    await irina.send("/start")
    await irina.expect_message()
    olga = telegram.user(7602, first_name="Ольга", username="olga_r", language_code="ru")
    await olga.send("/start")
    await olga.expect_message("Здравствуйте")
    login = await get_task_ru(olga)
    await annotate(login)
    await olga.send("✅ Сдать работу")
    await olga.expect_message("Сдать попытку 1 на проверку?")
    await olga.press("✅ Да, сдать")
    await olga.expect_edit("Спасибо!", timeout=20)
    notice = await irina.expect_message("Новый результат", timeout=20)
    assert "попытка 1: ✅ тест пройден" in notice.text
    await hr_user.expect_message("New result", timeout=20)

    await find(hr_user, "@olga_r")
    await hr_user.expect_message("Ольга")
    await hr_user.press("➕ One more attempt")
    await hr_user.expect_message("one more attempt?")
    await hr_user.press("✅ Yes, allow")
    grant = await olga.expect_message("рекрутер разрешил вам ещё одну попытку")
    assert grant.reply_keyboard[0][0] == "🔁 Новая попытка"


async def get_task_ru(person: TelegramUser) -> Login:
    """📝 Получить задание, confirmed; the login (Russian texts)."""
    await person.send("📝 Получить задание")
    await person.expect_message("Готовы начать?")
    await person.press("✅ Да, создать задание")
    return read_login(await person.expect_message("Данные для входа в CVAT", timeout=20))
