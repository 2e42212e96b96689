"""The HR menu in process: exports, who gets it, search, whitelist, Russian (moved from
tests/test_hr.py, assertions unchanged; the cases with a task on CVAT stay there)."""

from __future__ import annotations

import io

import pandas as pd

from bot_files.presentation.exports import export_locale
from bot_files.texts import Texts
from config.env import Settings
from db import Database
from tests.fast.chat import FastChat, FastTelegram
from tests.steps import find, open_menu
from tests.test_hr_export import (
    add_candidate,
    add_graded_attempt,
    check_files_against_database,
    metrics,
    seed_several,
)


async def test_whitelisted_hr_gets_xlsx_csv_summary_and_chart(hr_user: FastChat,
                                                              db: Database,
                                                              settings: Settings) -> None:
    await seed_several(db)
    await open_menu(hr_user)
    await hr_user.press("📊 All candidates")
    summary = await hr_user.expect_edit("All candidates", timeout=10)
    assert "Candidates: 4" in summary.text and "Submitted: 3" in summary.text
    assert "pass 1, 🟡 borderline 1, ❌ fail 1" in summary.text and "Score: 0.700" in summary.text
    chart = await hr_user.expect_message("Scores of graded candidates", timeout=10)
    assert chart.photo and chart.photo.startswith(b"\x89PNG")
    xlsx = await hr_user.expect_message(".xlsx", timeout=10)
    csv = await hr_user.expect_message(".csv", timeout=10)
    assert xlsx.document is not None and csv.document is not None
    await check_files_against_database(db, xlsx.document.data, csv.document.data,
                                       export_locale(Texts("en"), settings))
    assert len(pd.read_csv(io.BytesIO(csv.document.data))) == 4
    logged = await db.fetchval("SELECT count(*) FROM action_log WHERE action = 'hr.export'"
                               " AND actor_id = %s", (hr_user.id,))
    assert logged == 1


async def test_a_user_not_on_the_list_gets_nothing_hr_like(user: FastChat,
                                                          db: Database) -> None:
    target = await add_candidate(db, 5555, username="victim", cvat="cand9_zz")
    await add_graded_attempt(db, target, 1, metrics(0.9, "pass"))
    for text in ("/hr", "🗂 HR menu", "📊 All candidates", "🗂 Меню HR"):
        await user.send(text)
        answer = await user.expect_message("I did not understand that")
        assert answer.reply_keyboard is not None
        assert all("HR menu" not in b for row in answer.reply_keyboard for b in row)
    for data in ("h1:x", f"h1c:dd!:{target}:0", f"h1c:o:{target}:0", "h1w:add:0:0",
                 "h1s:2"):
        await user.press_data(data)
        assert "out of date" in (await user.expect_answer())["text"]
    await user.expect_nothing(0.5)
    assert not any(m.document or m.photo for m in user.messages)
    assert await db.fetchval("SELECT count(*) FROM candidates WHERE id = %s", (target,)) == 1
    denied = await db.fetchall("SELECT actor_id, ok, details FROM action_log"
                               " WHERE action = 'hr.denied' ORDER BY id")
    assert len(denied) == 9 and {r["actor_id"] for r in denied} == {user.id}
    assert not any(r["ok"] for r in denied)
    assert denied[0]["details"] == {"text": "/hr"}
    assert denied[4]["details"] == {"data": "h1:x"}


async def test_hr_sees_the_hr_button_in_the_main_menu(hr_user: FastChat) -> None:
    await hr_user.send("/help")
    help_message = await hr_user.expect_message("How this works")
    assert help_message.reply_keyboard[-1] == ["🗂 HR menu"]
    await hr_user.send("🗂 HR menu")
    await hr_user.expect_message("HR menu")


async def test_search_pages_and_says_when_nothing_matches(hr_user: FastChat,
                                                         db: Database) -> None:
    for k in range(11):
        await add_candidate(db, 7000 + k, username=f"ivan_{k}", name=f"Ivan {k}")
    await find(hr_user, "nobody")
    await hr_user.expect_message("No candidate matches nobody")
    await hr_user.send("ivan")  # still waiting for a query
    first = await hr_user.expect_message("page 1 of 2")
    assert len(first.buttons) == 8 + 2 and first.buttons[-2] == ["Next ›"]
    await hr_user.press("Next ›")
    second = await hr_user.expect_edit("page 2 of 2")
    assert second.buttons[-2] == ["‹ Back"] and len(second.buttons) == 3 + 2
    await hr_user.press("Ivan 0 · @ivan_0")
    card = await hr_user.expect_message("Ivan 0")
    assert "No attempts yet." in card.text


async def test_whitelist_add_by_id_and_forward_then_remove(
    hr_user: FastChat, telegram: FastTelegram, db: Database
) -> None:
    colleague = telegram.user(900_020, first_name="Olga", username="olga_hr",
                              language_code="en")
    await open_menu(hr_user)
    await hr_user.press("👥 Whitelist")
    listing = await hr_user.expect_message("HR whitelist")
    assert "900001" in listing.text and "set in the bot's configuration" in listing.text

    await hr_user.press("➕ Add")
    await hr_user.expect_message("Send the new HR user's Telegram id")
    await hr_user.send("not a number")
    await hr_user.expect_message("That is not a Telegram id")
    await hr_user.send_fields({"forward_origin": {"type": "hidden_user", "date": 1_700_000_000,
                                                  "sender_user_name": "Secret"}, "text": "hi"})
    await hr_user.expect_message("hides their account")
    await hr_user.forward_from(colleague)
    await hr_user.expect_message("Added 900020")
    await hr_user.expect_message("HR whitelist")
    await hr_user.press("➕ Add")
    await hr_user.expect_message("Send the new HR user's Telegram id")
    await hr_user.send("900030")
    await hr_user.expect_message("Added 900030")
    listing = await hr_user.expect_message("HR whitelist")
    assert "900030" in listing.text and "@olga_hr" in listing.text
    rows = await db.fetchall("SELECT telegram_id, username, added_by FROM trainingdata_whitelist"
                             " ORDER BY telegram_id")
    assert [(r["telegram_id"], r["username"], r["added_by"]) for r in rows] == [
        (900020, "olga_hr", 900001), (900030, None, 900001)]

    # The new colleague has the HR menu now.
    await open_menu(colleague)

    await hr_user.press("➖ Remove 900030")
    await hr_user.expect_message("Remove 900030")
    await hr_user.press("➖ Yes, remove")
    await hr_user.expect_edit("Removed 900030")
    assert await db.fetchval("SELECT array_agg(telegram_id) FROM trainingdata_whitelist") == [
        900020]
    logged = await db.fetchall("SELECT action FROM action_log WHERE actor_id = 900001"
                               " AND action LIKE 'hr.whitelist%%' ORDER BY id")
    assert [r["action"] for r in logged] == ["hr.whitelist_add", "hr.whitelist_add",
                                             "hr.whitelist_remove"]


async def test_russian_hr_menu(telegram: FastTelegram, db: Database) -> None:
    await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (900050)")
    ru = telegram.user(900_050, first_name="Анна", language_code="ru")
    await ru.send("/hr")
    menu = await ru.expect_message("Меню HR")
    assert menu.buttons[0] == ["📊 Все кандидаты"]
    await ru.press("📊 Все кандидаты")
    await ru.expect_edit("Кандидатов пока нет")
