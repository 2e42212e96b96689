"""The HR menu end to end where a candidate takes the test on CVAT: the notification, the card,
the pictures, deletions. Telegram stand-in, CVAT stand-in, real PostgreSQL. The menus without
a task are in the fast tier (tests/fast/test_hr_menu.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from config.env import Settings
from db import Database
from sandbox.candidate import TASK_SET, annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.flow import attempt_images, get_task, submit
from tests.steps import find, open_menu


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These tests press many buttons in a row, faster than a person: the per-user flood
    limit (tested on its own) is configured with a bigger burst for them."""
    return dataclasses.replace(settings, throttle_burst=1000)


@dataclasses.dataclass(frozen=True)
class Submitted:
    """What `submit_with_wrong_plates` did: the candidate's CVAT login, and the share of
    plate texts right, as HR read it ("85.7%"): the plates on their draw vary."""

    username: str
    plates_right: str


async def submit_with_wrong_plates(user: TelegramUser, db: Database, wrong: int = 3,
                                   ) -> Submitted:
    """The candidate takes the test, types `wrong` plates wrongly and submits."""
    await user.send("/start")
    login = await get_task(user)
    subset = await attempt_images(db, user.id)
    plates = [s.text for n in subset for s in TASK_SET.ground_truth.images[n].shapes
              if s.label == "plate"]
    # One wrong plate on each of `wrong` images (one picture per image).
    texts = [next(s.text for s in TASK_SET.ground_truth.images[n].shapes if s.label == "plate")
             for n in subset
             if any(s.label == "plate" for s in TASK_SET.ground_truth.images[n].shapes)][:wrong]
    await annotate(login, plate_texts={text: text + "X" for text in texts})
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    share = math.floor((len(plates) - wrong) * 1000 / len(plates)) / 10
    return Submitted(login.username, f"{share:g}%")


async def test_graded_submission_notifies_hr_and_the_card_shows_everything(
    user: TelegramUser, hr_user: TelegramUser, telegram: TelegramServer, db: Database
) -> None:
    quiet = telegram.user(900_002, first_name="Quiet", language_code="en")
    blocked = telegram.user(900_003, first_name="Gone", language_code="en")
    listening = telegram.user(900_004, first_name="Ира", language_code="ru")
    bystander = telegram.user(1_002, first_name="Bob", language_code="en")
    await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (900002),"
                     " (900003), (900004)")
    # The quiet one switches notifications off in the HR menu.
    await open_menu(quiet)
    await quiet.press("🔔 Notifications: each result")
    await quiet.expect_message("How should I tell you")
    await quiet.press("Nothing")
    assert (await quiet.expect_message("no notifications")).buttons[-1] == [
        "🔕 Notifications: off"]
    await listening.send("/language")
    await listening.expect_message()
    await listening.press("🇷🇺 Русский")
    await listening.expect_message("по-русски")
    blocked.block()  # a failed send to one HR user must not stop the others
    quiet.skip_all()

    submitted = await submit_with_wrong_plates(user, db)
    cvat_username, right = submitted.username, submitted.plates_right
    notice = await hr_user.expect_message("New result", timeout=10)
    # 3 of about 22 plates mistyped: only the plate text gate is below pass (86% < 90%).
    assert (f"Anna Smith @anna_s, attempt 1: 🟡 borderline: plate texts right {right} < 90%"
            in notice.text)
    assert (f"попытка 1: 🟡 на грани: верно прочитанные номера {right.replace('.', ',')}"
            " < 90%" in (await listening.expect_message("Новый результат", timeout=10)).text)
    await quiet.expect_nothing(0.5)
    await bystander.expect_nothing(0.1)
    await user.expect_nothing(0.1)
    assert not any("New result" in m.text for m in user.messages)

    # The card, from the notification's button.
    await hr_user.press("📇 Open card")
    card = await hr_user.expect_message("Attempt 1", timeout=10)
    assert "Anna Smith" in card.text and f"CVAT: {cvat_username}" in card.text
    assert "Telegram id: 1001" in card.text and "graded, 12 images" in card.text
    assert "Wrong plates (3):" in card.text and "(different text)" in card.text
    assert f"🟡 borderline: plate texts right {right} < 90%" in card.text
    assert "✅ cars found: 100% (pass ≥ 95%, borderline ≥ 85%)" in card.text
    assert f"🟡 plate texts right: {right} (pass ≥ 90%, borderline ≥ 75%)" in card.text
    assert "Banded by pass rule #1." in card.text and "time spent" in card.text
    assert "given <code>" in card.html and "X</code>" in card.html

    # Error pictures: an album (three images with a wrong plate each).
    await hr_user.press("🖼 Errors of attempt 1")
    await hr_user.expect_message("Drawing the pictures")
    await hr_user.expect_edit("3 pictures", timeout=20)
    album = [await hr_user.expect_message(timeout=10) for _ in range(3)]
    assert {m.kind for m in album} == {"media_group_item"}
    assert len({m.media_group_id for m in album}) == 1
    assert all(m.photo and m.photo[:2] == b"\xff\xd8" for m in album)

    # One more attempt: confirmed first, then granted, and the candidate is told.
    await hr_user.press("➕ One more attempt")
    await hr_user.expect_message("one more attempt?")
    assert await db.fetchval("SELECT extra_attempts FROM candidates") == 0
    await hr_user.press("✅ Yes, allow")
    await hr_user.expect_edit("may take one more attempt")
    assert await db.fetchval("SELECT extra_attempts FROM candidates") == 1
    await user.expect_message("the recruiter allowed you one more attempt")

    # Re-grade from the stored work: the same figures again.
    before = await db.fetchone("SELECT score, graded_at FROM metrics")
    await hr_user.press("🔄 Re-grade")
    await hr_user.expect_message("again, from the stored work?")
    await hr_user.press("✅ Yes, re-grade")
    regraded = await hr_user.expect_edit("Re-graded", timeout=20)
    assert f"Attempt 1: 🟡 borderline: plate texts right {right} < 90%" in regraded.text
    after = await db.fetchone("SELECT score, graded_at FROM metrics")
    assert after["score"] == before["score"] and after["graded_at"] > before["graded_at"]
    actions = {r["action"] for r in await db.fetchall(
        "SELECT action FROM action_log WHERE actor_id = %s", (hr_user.id,))}
    assert {"hr.card", "hr.pictures", "hr.extra_attempt", "hr.regrade"} <= actions


async def test_deleting_the_cvat_account_keeps_the_rows(
    user: TelegramUser, hr_user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)
    assert cvat.users_by_name(login.username) is not None
    await find(hr_user, "@anna_s")
    await hr_user.expect_message("Anna Smith")
    await hr_user.press("🗑 Delete CVAT account")
    await hr_user.expect_message("Delete the CVAT account")
    assert cvat.users_by_name(login.username) is not None  # nothing happens before the "yes"
    await hr_user.press("🗑 Yes, delete")
    await hr_user.expect_edit("is deleted", timeout=10)
    assert cvat.users_by_name(login.username) is None
    row = await db.fetchone("SELECT cvat_deleted_at, cvat_username FROM candidates")
    assert row["cvat_deleted_at"] is not None and row["cvat_username"] == login.username
    assert await db.fetchval("SELECT count(*) FROM attempts") == 1
    logged = await db.fetchone("SELECT actor_id, ok, details FROM action_log"
                               " WHERE action = 'hr.delete_cvat_account'")
    assert logged["actor_id"] == hr_user.id and logged["details"]["outcome"] == "deleted"
    # The card now says so and offers no second deletion.
    await find(hr_user, login.username)
    card = await hr_user.expect_message("account deleted")
    assert "🗑 Delete CVAT account" not in str(card.buttons)


async def test_deleting_the_data_can_keep_the_cvat_account_deactivated(
    user: TelegramUser, hr_user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)
    await find(hr_user, str(user.id))
    await hr_user.expect_message("Anna Smith")
    await hr_user.press("🧹 Delete data")
    await hr_user.expect_message("This cannot be undone")
    await hr_user.press("✖️ Cancel")
    await hr_user.expect_edit("Cancelled")
    assert await db.fetchval("SELECT count(*) FROM candidates") == 1
    await hr_user.press("🧹 Delete data")
    await hr_user.expect_message("This cannot be undone")
    await hr_user.press("🔒 Delete the data, deactivate the account")
    await hr_user.expect_edit("is deleted")
    assert await db.fetchval("SELECT count(*) FROM candidates") == 0
    assert await db.fetchval("SELECT count(*) FROM attempts") == 0
    account = cvat.users_by_name(login.username)
    assert account is not None and not account.is_active  # kept, but it cannot log in
    assert await db.fetchval("SELECT count(*) FROM action_log WHERE action = 'hr.delete_data'"
                             " AND ok") == 1
    await find(hr_user, "@anna_s")
    await hr_user.expect_message("No candidate matches")


async def test_login_is_never_shown_to_hr_by_accident(user: TelegramUser, hr_user: TelegramUser,
                                                      db: Database) -> None:
    # The card shows the CVAT username but never the candidate's password.
    await user.send("/start")
    login = await get_task(user)
    await find(hr_user, "anna")
    card = await hr_user.expect_message("Anna Smith")
    assert login.username in card.text and login.password not in card.text
