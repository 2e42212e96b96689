"""The conversation after Submit in process: which attempt counts, HR's decisions and replies,
each in its reader's stored language (moved from tests/test_conversation.py, assertions
unchanged; the cases that take the test on CVAT stay there)."""

from __future__ import annotations

import dataclasses
import io

import openpyxl
import pytest

from config.env import Settings
from db import Database
from tests.fast.chat import FastChat, FastTelegram
from tests.steps import find, open_menu, whitelist
from tests.test_hr_export import add_candidate, add_graded_attempt, metrics


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Three attempts, as end to end."""
    return dataclasses.replace(settings, max_attempts=3)


@pytest.mark.parametrize(("counting", "said", "standing"), [
    ("latest", "Only your latest attempt counts", "(attempt 2): ❌ below the pass mark"),
    ("best", "Your best attempt counts", "(attempt 1): ✅ passed"),
])
async def test_which_attempt_counts_is_said_before_the_next_one(
        counting: str, said: str, standing: str, telegram: FastTelegram,
        db: Database) -> None:
    await telegram.restart(attempt_counts=counting, max_attempts=3)
    person = telegram.user(7301, first_name="Ivan", language_code="en")
    await person.send("/start")
    greeting = await person.expect_message("Hello, Ivan!")
    assert said in greeting.text
    candidate = await add_candidate(db, person.id, name="Ivan", cvat="cand7_ivan")
    await add_graded_attempt(db, candidate, 1, metrics(0.95, "pass"))
    await add_graded_attempt(db, candidate, 2, metrics(0.40, "fail"))
    await person.send("🔁 New attempt")
    offer = await person.expect_message("Start attempt 3 of 3?")
    assert said in offer.text and standing in offer.text


async def test_invite_reaches_a_russian_candidate_in_russian_once(
        telegram: FastTelegram, hr_user: FastChat, db: Database) -> None:
    olga = telegram.user(7401, first_name="Ольга", last_name="Кузнецова",
                         language_code="ru")
    await olga.send("/start")  # her language is stored at first contact
    await olga.expect_message("Здравствуйте")
    candidate = await add_candidate(db, olga.id, username="olga_k", name="Ольга Кузнецова",
                                    cvat="cand8_olga")
    await add_graded_attempt(db, candidate, 1, metrics(0.93, "pass"))

    await find(hr_user, "@olga_k")
    card = await hr_user.expect_message("Ольга Кузнецова")
    assert "Decision:" not in card.text
    await hr_user.press("✅ Invite")
    preview = await hr_user.expect_message("will receive this message (in Russian)")
    assert "Здравствуйте, Ольга!" in preview.text and "следующий этап" in preview.text
    assert "Ваш результат: тест пройден" in preview.text  # CANDIDATE_RESULT=band
    await hr_user.send("Ждём вас во вторник в 11:00.")
    preview = await hr_user.expect_message("will receive this message")
    assert "Комментарий HR: Ждём вас во вторник в 11:00." in preview.text
    await olga.expect_nothing(0.2)  # nothing goes before Send
    await hr_user.press("📨 Send")
    await hr_user.expect_edit("📨 Sent to Ольга Кузнецова: ✅ Invite")
    letter = await olga.expect_message("Приглашаем вас на следующий этап")
    assert "Комментарий HR: Ждём вас во вторник в 11:00." in letter.text

    # The same decision again sends nothing; the card shows who decided and when.
    await find(hr_user, "@olga_k")
    card = await hr_user.expect_message("Ольга Кузнецова")
    assert "Decision: ✅ Invite · Helen · " in card.text and "sent to the candidate" in card.text
    await hr_user.press("✅ Invite")
    await hr_user.expect_message("will receive this message")
    await hr_user.press("📨 Send")
    await hr_user.expect_edit("Nothing sent: this decision already went to the candidate")
    await olga.expect_nothing(0.3)

    # A change is sent, stored beside the old one and logged with it.
    await hr_user.press("⏸ Hold", message_id=card.message_id)
    await hr_user.expect_message("Now in force: Decision: ✅ Invite")
    await hr_user.press("📨 Send")
    await hr_user.expect_edit("Sent to Ольга Кузнецова: ⏸ Hold")
    await olga.expect_message("Нам нужно ещё немного времени")
    assert [r["decision"] for r in await db.fetchall(
        "SELECT decision FROM decisions ORDER BY id")] == ["invite", "hold"]
    logged = await db.fetchall("SELECT actor_id, details FROM action_log"
                               " WHERE action = 'hr.decision' ORDER BY id")
    assert [r["details"].get("previous") for r in logged] == [None, "invite"]
    assert {r["actor_id"] for r in logged} == {hr_user.id}

    # Counted in the summary, and a column of the export.
    await open_menu(hr_user)
    await hr_user.press("📊 All candidates")
    summary = await hr_user.expect_edit("All candidates", timeout=20)
    assert "⏸ on hold 1" in summary.text and "✅ invited 0" in summary.text
    xlsx = await hr_user.expect_message(".xlsx", timeout=20)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.document.data)).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    row = [cell.value for cell in sheet[2]]
    assert row[header.index("Decision")] == "hold"
    assert row[header.index("Decided by")] == "Helen"


async def test_hr_answer_a_support_message_and_the_candidate_writes_back(
        telegram: FastTelegram, hr_user: FastChat, db: Database) -> None:
    irina = telegram.user(7501, first_name="Ирина", language_code="ru")  # HR, Russian
    await whitelist(db, irina)
    await irina.send("/start")
    await irina.expect_message()
    olga = telegram.user(7502, first_name="Ольга", language_code="ru")
    await olga.send("/start")
    await olga.expect_message("Здравствуйте")

    # Free text the bot does not understand is offered to HR with one tap.
    await olga.send("привет, а что делать, если CVAT не открывается?")
    offer = await olga.expect_message("Если это вопрос для HR")
    await olga.press("✉️ Да, передать HR")
    await olga.expect_edit("ваше сообщение передано HR")
    forwarded = await irina.expect_message("Сообщение от кандидата")  # in HR's language
    assert "CVAT не открывается" in forwarded.text
    english = await hr_user.expect_message("Message from a candidate")
    assert english.buttons == [["↩️ Reply"]]
    assert offer.buttons == [["✉️ Да, передать HR"]]

    await irina.press("↩️ Ответить")
    await irina.expect_message("Напишите ответ. Кандидат: Ольга.")
    answer_text = "Попробуйте другой браузер, например Chrome."
    await irina.send(answer_text)
    await irina.expect_message("Ответ отправлен. Кандидат: Ольга.")
    answer = await olga.expect_message("Сообщение от HR")
    assert "Попробуйте другой браузер" in answer.text
    assert answer.buttons == [["✉️ Ответить HR"]]
    logged = await db.fetchone("SELECT actor_id, details, ok FROM action_log"
                               " WHERE action = 'hr.reply'")
    assert logged["actor_id"] == irina.id and logged["ok"]
    assert logged["details"] == {"to": olga.id, "text": answer_text}

    await olga.press("✉️ Ответить HR")
    await olga.expect_message("Напишите, что передать HR")
    await olga.send("Спасибо, заработало!")
    await olga.expect_message("передано HR")
    assert "Спасибо, заработало!" in (await irina.expect_message("Сообщение от кандидата")).text

    # A forged Reply from someone who is not HR is refused like any HR button.
    await olga.press_data(f"h1a:{irina.id}")
    await olga.expect_answer("Эта кнопка устарела")
    await irina.expect_nothing(0.3)
    assert await db.fetchval("SELECT count(*) FROM action_log WHERE action = 'hr.denied'"
                             " AND actor_id = %s", (olga.id,)) == 1
