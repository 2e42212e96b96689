"""HR at volume in process: a Russian HR user's export in their time zone, the lists and the
digest with the clock moved, and roles (a viewer is refused every admin action). Moved from
tests/test_hr_volume.py, assertions unchanged."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pandas as pd

from authorization import Role, add_to_whitelist, set_role
from bot_files.digests import clock, send_due_digests
from bot_files.handlers.hr.roles import (
    ADMIN_CARD_ACTS,
    ADMIN_KEY_ACTS,
    ADMIN_RULE_ACTS,
    ADMIN_WHITELIST_ACTS,
)
from bot_files.hr_keyboards import (
    DecideAct,
    HrCard,
    HrDecide,
    HrKey,
    HrReply,
    HrRule,
    HrWhitelist,
)
from config.env import Settings
from db import Database
from tasks_metrics.hr_lists import ListName, list_counts
from tests.fast.chat import FastChat, FastTelegram
from tests.steps import find, open_menu
from tests.test_hr_export import STARTED, add_candidate, add_graded_attempt, metrics, seed_several

MOSCOW = "Europe/Moscow"


async def test_russian_hr_gets_a_russian_export_in_their_time_zone(
    telegram: FastTelegram, db: Database
) -> None:
    await telegram.restart(timezone=MOSCOW)
    ids = await seed_several(db)
    await db.execute("UPDATE attempts SET cvat_task_id = 7, cvat_job_id = 9"
                     " WHERE candidate_id = %s AND number = 2", (ids["two"],))
    await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (900050)")
    irina = telegram.user(900_050, first_name="Ирина", language_code="ru")
    await irina.send("/hr")
    await irina.expect_message("Меню HR")
    await irina.press("📊 Все кандидаты")
    xlsx = (await irina.expect_message(".xlsx", timeout=10)).document
    csv = (await irina.expect_message(".csv", timeout=10)).document
    assert xlsx is not None and csv is not None

    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert book.sheetnames == ["Кандидаты", "Попытки", "Пояснения"]
    sheet = book["Кандидаты"]
    header = [c.value for c in sheet[1]]
    assert header[:7] == ["Имя", "Telegram", "Решение", "Кто решил",
                          f"Когда решено, {MOSCOW}", "Итог", "Ниже порога"]
    assert sheet.freeze_panes == "B2" and "Найдено машин" in header  # the name stays in view
    assert f"Задание получено, {MOSCOW}" in header
    row = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == "Пётр Two")
    assert row[2] is None  # no decision yet
    assert row[header.index("Итог")] == "пройден"
    received = row[header.index(f"Задание получено, {MOSCOW}")]
    assert received == (STARTED.astimezone(ZoneInfo(MOSCOW))).replace(tzinfo=None)
    assert row[header.index("Задание в CVAT")].endswith("/tasks/7/jobs/9")
    assert sheet.cell(row=2, column=header.index("Найдено машин") + 1).number_format == "0.0%"
    attempts = [r[0] for r in book["Попытки"].iter_rows(min_row=2, values_only=True)]
    assert attempts.count("Пётр Two") == 2  # names on the attempts sheet too
    glossary = {r[0]: r[1] for r in book["Пояснения"].iter_rows(min_row=2, values_only=True)}
    assert "машин" in glossary["Найдено машин"] and "Europe/Moscow" in str(glossary)

    # The CSV opens in a Russian Excel: a BOM, ";" between fields, a decimal comma.
    assert csv.data.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(io.BytesIO(csv.data), sep=";", decimal=",")
    assert list(frame.columns[:3]) == ["Имя", "Telegram", "Решение"]
    two = frame[frame["Имя"] == "Пётр Two"].iloc[0]
    assert two["Найдено машин"] == 100.0 and two["Верно прочитано номеров"] == 66.7
    assert "Итог" not in pd.read_csv(io.BytesIO(csv.data)).columns  # not comma-separated


async def test_lists_page_and_open_cards_and_the_digest_comes_at_its_time(
    hr_user: FastChat, telegram: FastTelegram, db: Database, settings: Settings
) -> None:
    for k in range(9):  # graded, no decision yet: to review (two pages)
        cid = await add_candidate(db, 7000 + k, name=f"Reviewed {k}")
        await add_graded_attempt(db, cid, 1, metrics(0.7, "borderline" if k < 2 else "pass"))
    stalled = await add_candidate(db, 7100, name="Slow Sam")
    fresh = await add_candidate(db, 7101, name="Fresh Fay")
    for cid, days in ((stalled, 4), (fresh, 1)):
        await db.execute("INSERT INTO attempts (candidate_id, number, status, task_started)"
                         " VALUES (%s, 1, 'ready', now() - %s)", (cid, timedelta(days=days)))
    await open_menu(hr_user)
    await hr_user.press("📋 Lists")
    lists = await hr_user.expect_message("Lists")
    labels = [row[0] for row in lists.buttons]
    assert {"📝 To review (9)", "🟡 Borderline (2)", "⏳ Started, not submitted (1)",
            "⌛ Expired (0)", "🚩 Flagged (0)"} <= set(labels)
    await hr_user.press("📝 To review (9)")
    page = await hr_user.expect_edit("page 1 of 2")
    assert len(page.buttons) == 8 + 2
    await hr_user.press("Next ›")
    second = await hr_user.expect_edit("page 2 of 2")
    await hr_user.press(second.buttons[0][0])
    await hr_user.expect_message("Reviewed")  # the card opens
    await hr_user.press("⬅️ Lists", message_id=second.message_id)
    await hr_user.expect_edit("Pick a list")
    await hr_user.press("⏳ Started, not submitted (1)")
    assert (await hr_user.expect_edit("Started a task")).buttons[0] == ["Slow Sam"]

    # Three days on, Fay is stalled too; the review list stays.
    later = clock(settings, datetime.now(UTC) + timedelta(days=3))
    counts = await list_counts(db, later)
    assert counts[ListName.STALLED] == 2 and counts[ListName.REVIEW] == 9
    graded_day = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)
    await db.execute("UPDATE attempts SET submitted_at = %s WHERE candidate_id = %s",
                     (graded_day, stalled))
    assert (await list_counts(db, clock(settings, graded_day + timedelta(hours=1))))[
        ListName.TODAY] == 1
    assert (await list_counts(db, clock(settings, graded_day + timedelta(days=1))))[
        ListName.TODAY] == 0

    # A daily digest at 09:30 instead of a ping per result.
    await open_menu(hr_user)
    await hr_user.press("🔔 Notifications: each result")
    await hr_user.expect_message("How should I tell you")
    await hr_user.press("One digest a day, at 09:00")
    await hr_user.expect_message("one digest a day at 09:00")
    await hr_user.press("🕘 Change the digest time")
    await hr_user.expect_message("At what time")
    await hr_user.send("9.3")
    await hr_user.expect_message("could not read a time")
    await hr_user.send("09:30")
    done = await hr_user.expect_message("one digest a day at 09:30")
    assert done.buttons[-1] == ["🗓 Notifications: daily digest at 09:30"]
    await db.execute("UPDATE metrics SET graded_at = %s", (graded_day,))
    day = datetime(2026, 11, 6, tzinfo=UTC)
    assert await send_due_digests(telegram.bot, db, settings, day + timedelta(hours=9)) == 0
    assert await send_due_digests(telegram.bot, db, settings,
                                  day + timedelta(hours=9, minutes=31)) == 1
    digest = await hr_user.expect_message("Daily digest")
    assert "Graded since the last digest: 9 (✅ 7, 🟡 2, ❌ 0)" in digest.text
    assert "To review: 9" in digest.text and digest.buttons[0] == ["📝 To review (9)"]
    assert await send_due_digests(telegram.bot, db, settings, day + timedelta(hours=12)) == 0
    assert await send_due_digests(telegram.bot, db, settings,
                                  day + timedelta(days=1, hours=10)) == 1


async def test_a_viewer_is_refused_every_admin_action(
    hr_user: FastChat, telegram: FastTelegram, db: Database
) -> None:
    target = await add_candidate(db, 5555, username="victim", name="Victor", cvat="cand9_zz")
    await add_graded_attempt(db, target, 1, metrics(0.9, "pass"))
    await add_to_whitelist(db, hr_user.id, 900_070)
    viewer = telegram.user(900_070, first_name="Vera", language_code="en")

    # The admin makes Vera an admin in the whitelist, then a viewer again.
    await open_menu(hr_user)
    await hr_user.press("👥 Whitelist")
    listing = await hr_user.expect_message("HR whitelist")
    assert "900070 · viewer" in listing.text
    await hr_user.press("⭐ Make admin")
    await hr_user.expect_message("is now admin")
    await find(viewer, "@victim")
    card = await viewer.expect_message("Victor")
    assert "➕ One more attempt" in str(card.buttons)
    assert await set_role(db, hr_user.id, viewer.id, Role.VIEWER,
                          frozenset({hr_user.id})) == "changed"
    await viewer.press("➕ One more attempt")  # a button she still has: refused now
    await viewer.expect_answer("Only an HR admin")
    await find(viewer, "@victim")
    card = await viewer.expect_message("Victor")
    assert card.buttons == [["⬅️ HR menu"]]  # nothing she may not do is shown

    forged = [HrCard(act=act, cid=target).pack() for act in ADMIN_CARD_ACTS]
    forged += [HrWhitelist(act=act, tid=hr_user.id).pack() for act in ADMIN_WHITELIST_ACTS]
    forged += [HrRule(act=act, m="car_recall").pack() for act in ADMIN_RULE_ACTS]
    forged += [HrDecide(act=act, cid=target, d="invite").pack() for act in DecideAct]
    forged += [HrReply(tid=5555).pack()]
    forged += [HrKey(act=act, i="scene_001.jpg", n=1).pack() for act in ADMIN_KEY_ACTS]
    for data in forged:
        await viewer.press_data(data)
        await viewer.expect_answer("Only an HR admin")
    await viewer.expect_nothing(0.3)
    assert await db.fetchval("SELECT extra_attempts FROM candidates WHERE id = %s",
                             (target,)) == 0
    assert await db.fetchval("SELECT count(*) FROM trainingdata_whitelist") == 1
    assert await db.fetchval("SELECT count(*) FROM pass_rules") == 1
    assert await db.fetchval("SELECT count(*) FROM decisions") == 0
    refused = await db.fetchval("SELECT count(*) FROM action_log WHERE action = 'hr.refused'"
                                " AND actor_id = %s", (viewer.id,))
    assert refused == len(forged) + 1
    # What a viewer may do still works: the lists and the export.
    await open_menu(viewer)
    await viewer.press("📊 All candidates")
    await viewer.expect_message(".xlsx", timeout=10)
