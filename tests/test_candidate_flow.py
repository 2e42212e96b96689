"""The candidate's journey end to end: Telegram stand-in, CVAT stand-in, real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from config.env import Settings
from connection import CvatForbidden, CvatNotFound
from db import Database
from sandbox.candidate import TASK_SET, annotate, candidate_client
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import BotApp
from tests.flow import attempt_images, get_task, read_login, submit


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These journeys press buttons faster than a person: the per-user flood limit (tested on
    its own) gets a bigger burst here."""
    return dataclasses.replace(settings, throttle_burst=1000)


async def _attempt_rows(db: Database) -> list[dict]:
    return await db.fetchall("SELECT number, status, cvat_task_id, cvat_job_id, image_subset"
                             " FROM attempts ORDER BY number")


async def test_happy_path(user: TelegramUser, cvat: CvatServer, db: Database) -> None:
    await user.send("/start")
    await user.expect_message("Hello, Anna!")
    await user.send("📝 Get a test task")
    confirm = await user.expect_message("Ready to start?")
    assert "12 images" in confirm.text
    await user.press("✅ Yes, create my task")
    await user.expect_edit("Images", timeout=20)
    ready = await user.expect_edit("Your test task is ready", timeout=20)
    assert "✅ Images 12/12" in ready.text and "✅ Account" in ready.text
    credentials = await user.expect_message("Your CVAT login")
    assert credentials.button_data == {"🔎 Check my work": "t1:chk", "✅ Submit": "t1:sub"}
    instructions = await user.expect_message("What to do")
    assert "Latin" in instructions.text and "Cyrillic" in instructions.text
    assert instructions.reply_keyboard[0] == ["🔎 Check my work", "✅ Submit"]
    assert instructions.reply_keyboard[1] == ["🔑 My credentials"]
    login = read_login(credentials)
    assert login.url == cvat.base_url

    # The account is a worker that sees exactly one job, with the attempt's images.
    account = cvat.users_by_name(login.username)
    assert account is not None and "worker" in account.groups
    client = candidate_client(login)
    try:
        jobs = await client.visible_jobs()
        assert len(jobs) == 1
        meta = await client.get_job_meta(jobs[0].id)
        images = await attempt_images(db, user.id)
        assert [f["name"] for f in meta["frames"]] == list(images)
        assert TASK_SET.fits(images)  # a stratified draw of the set
        with pytest.raises((CvatForbidden, CvatNotFound)):
            await client.get_task(jobs[0].task_id)  # job-only assignee: no task-level access
    finally:
        await client.close()

    job_id, _ = await annotate(login)
    await submit(user)
    await user.expect_message("Checking your work")
    thanks = await user.expect_edit("Thank you!", timeout=20)
    assert "attempt 1" in thanks.text and "1 more attempt on new images" in thanks.text
    assert "Only your latest attempt counts" in thanks.text
    assert "write to you in this chat within 3 working days" in thanks.text
    assert "score" not in thanks.text.lower()  # SHOW_SCORE_TO_CANDIDATE is off by default
    assert "What to look at next time" not in thanks.text  # a perfect attempt: no hints
    menu = await user.expect_message("You have submitted your test")
    assert menu.reply_keyboard[0] == ["🔁 New attempt", "🔑 My credentials"]

    rows = await _attempt_rows(db)
    assert [(r["number"], r["status"]) for r in rows] == [(1, "graded")]
    metrics = await db.fetchone("SELECT * FROM metrics")
    assert metrics["car_iou"] == 1.0 and metrics["plate_accuracy"] == 1.0
    assert metrics["band"] == "pass" and metrics["times_attempted"] == 1
    assert metrics["task_completed"] is not None
    # The job is closed: the candidate can no longer change the graded work.
    client = candidate_client(login)
    try:
        with pytest.raises((CvatForbidden, CvatNotFound)):
            await client.put_job_annotations(job_id, {"version": 0, "tags": [], "shapes": [],
                                                      "tracks": []})
    finally:
        await client.close()
    # The ground truth never went to CVAT: the task holds only the candidate's shapes.
    assert len(cvat.annotations(job_id)["shapes"]) == sum(
        len(TASK_SET.ground_truth.images[n].shapes) for n in images)


async def test_incomplete_submission_lists_what_is_missing(user: TelegramUser,
                                                           db: Database) -> None:
    login = await get_task(user)
    images = await attempt_images(db, user.id)
    first_six = set(images[:6])
    await annotate(login, only=first_six)
    await submit(user)
    report = await user.expect_edit("Not finished yet", timeout=20)
    missing = [n for n in images if n not in first_six]
    for name in missing:
        assert f"{name}: no car is marked" in report.text
    for name in first_six:
        assert name not in report.text
    assert "does not use up your attempt" in report.text
    assert [(r["number"], r["status"]) for r in await _attempt_rows(db)] == [(1, "ready")]

    await annotate(login)  # finishes every image
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    assert [(r["number"], r["status"]) for r in await _attempt_rows(db)] == [(1, "graded")]


async def test_plate_without_text_is_reported_without_the_answer(user: TelegramUser,
                                                                 db: Database) -> None:
    login = await get_task(user)
    plate_text = next(s.text for n in await attempt_images(db, user.id)
                      for s in TASK_SET.ground_truth.images[n].shapes if s.label == "plate")
    await annotate(login, plate_texts={plate_text: "  "})
    await submit(user)
    report = await user.expect_edit("Not finished yet", timeout=20)
    assert "has no text" in report.text
    assert plate_text not in report.text


async def test_second_attempt_gets_new_images_and_a_third_is_refused(
    user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    first = await get_task(user)
    await annotate(first)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)

    second = await get_task(user, new_attempt=True)
    assert second.username == first.username  # the same account
    await annotate(second, plate_texts={})
    await submit(user)
    last = await user.expect_edit("Thank you!", timeout=20)
    assert "more attempt" not in last.text

    rows = await _attempt_rows(db)
    assert [(r["number"], r["status"]) for r in rows] == [(1, "graded"), (2, "graded")]
    assert rows[0]["cvat_task_id"] != rows[1]["cvat_task_id"]
    assert not set(rows[0]["image_subset"]) & set(rows[1]["image_subset"])
    assert await db.fetchval("SELECT count(*) FROM metrics") == 2

    await user.send("/start")
    greeting = await user.expect_message("Hello")
    assert "🔁 New attempt" not in str(greeting.reply_keyboard)
    await user.press_data("t1:askn")  # a stale "New attempt" button from an earlier message
    await user.expect_message("You have used all your attempts (2)")
    assert len([t for t in cvat.tasks.values()]) == 2


async def test_get_task_twice_at_once_creates_one_account_and_one_task(
    telegram: TelegramServer, bot_app: BotApp, cvat: CvatServer, db: Database
) -> None:
    phone = telegram.user(3001, first_name="Dmitry", language_code="en")
    await phone.send("📝 Get a test task")
    first = await phone.expect_message("Ready to start?")
    await phone.send("📝 Get a test task")  # the same person on a second device
    second = await phone.expect_message("Ready to start?")
    await asyncio.gather(phone.press("✅ Yes, create my task", message_id=first.message_id),
                         phone.press("✅ Yes, create my task", message_id=second.message_id),
                         phone.press("✅ Yes, create my task", message_id=second.message_id))
    await phone.expect_message("Your CVAT login", timeout=20)
    await asyncio.sleep(1.0)  # let the other presses finish
    candidates = [u for u in cvat.users.values() if u.username.startswith("cand")]
    assert len(candidates) == 1
    assert len(cvat.tasks) == 1
    assert await db.fetchval("SELECT count(*) FROM attempts") == 1
    logins = [m for m in phone.messages if "Your CVAT login" in m.text]
    assert len({read_login(m).username for m in logins}) == 1


async def test_cvat_failing_mid_creation_leaves_nothing_and_retry_works(
    user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    cvat.fail_next("POST", r"/api/tasks/\d+/data", status=503, count=10)
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    await user.press("✅ Yes, create my task")
    failed = await user.expect_message("not answering right now", timeout=30)
    assert failed.buttons == [["🔄 Try again"]]
    await user.expect_edit("could not be prepared")
    assert cvat.tasks == {}  # the half-made task was deleted
    rows = await _attempt_rows(db)
    assert [(r["status"], r["cvat_task_id"]) for r in rows] == [("failed", None)]

    cvat.clear_faults()
    await user.press("🔄 Try again")
    login = read_login(await user.expect_message("Your CVAT login", timeout=20))
    assert len(cvat.tasks) == 1
    assert len([u for u in cvat.users.values() if u.username.startswith("cand")]) == 1
    assert login.username.startswith("cand")
    rows = await _attempt_rows(db)
    assert [(r["number"], r["status"]) for r in rows] == [(1, "ready")]


async def test_my_credentials_resends_and_is_logged(user: TelegramUser, db: Database) -> None:
    await user.send("🔑 My credentials")
    await user.expect_message("You do not have a test task yet")
    login = await get_task(user)
    await user.send("🔑 My credentials")
    again = read_login(await user.expect_message("Your CVAT login"))
    assert again == login
    actions = await db.fetchall("SELECT action, ok FROM action_log WHERE actor_id = %s"
                                " ORDER BY id", (user.id,))
    assert [a["action"] for a in actions].count("credentials.resend") == 2
    assert "task.created" in [a["action"] for a in actions]
    # Once submitted, the old login opens nothing to work on: said so, with the way on.
    await annotate(login)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    await user.send("🔑 My credentials")
    closed = await user.expect_message("Attempt 1 is closed")
    assert closed.buttons == [["🔁 New attempt"]] and "Password" not in closed.text


async def test_submit_without_a_task_and_russian_texts(telegram: TelegramServer,
                                                       bot_app: BotApp) -> None:
    olga = telegram.user(3002, first_name="Ольга", language_code="ru")
    await olga.send("✅ Сдать работу")
    await olga.expect_message("Проверяю")
    await olga.expect_edit("У вас пока нет тестового задания")
    await olga.send("📝 Получить задание")
    await olga.expect_message("Готовы начать?")
    await olga.press("✅ Да, создать задание")
    await olga.expect_edit("Ваше тестовое задание готово", timeout=20)
    await olga.expect_message("Данные для входа в CVAT")


async def test_a_build_interrupted_by_a_crash_is_finished_at_start(
    telegram: TelegramServer, settings, db: Database, cvat: CvatServer
) -> None:
    """A bot that died while building (the attempt is 'creating', its lease run out) finishes
    the task at the next start and sends the login unasked."""
    person = telegram.user(3003, first_name="Pavel", language_code="en")
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id, full_name) VALUES (3003, 'Pavel') RETURNING id")
    await db.execute(
        "INSERT INTO attempts (candidate_id, number, image_subset, cvat_task_name, lease_until)"
        " VALUES (%s, 1, %s, 'Test of candidate 1, attempt 1 (#1)', now() - interval '1 min')",
        (candidate, list(TASK_SET.reference_images)))
    app = BotApp(settings, db)
    await app.start()
    try:
        await person.expect_message("Your test task is ready", timeout=20)
        login = read_login(await person.expect_message("Your CVAT login"))
        await person.expect_message("What to do")
    finally:
        await app.stop()
    assert cvat.users_by_name(login.username) is not None
    assert len(cvat.tasks) == 1
    assert [(r["status"]) for r in await _attempt_rows(db)] == ["ready"]


async def test_a_task_left_by_a_failed_cleanup_is_deleted_at_start(
    user: TelegramUser, cvat: CvatServer, db: Database, bot_app: BotApp
) -> None:
    cvat.fail_next("POST", r"/api/tasks/\d+/data", status=503, count=10)
    cvat.fail_next("DELETE", r"/api/tasks/\d+", status=503, count=10)
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    await user.press("✅ Yes, create my task")
    await user.expect_message("not answering right now", timeout=30)
    rows = await _attempt_rows(db)
    assert rows[0]["status"] == "failed" and rows[0]["cvat_task_id"] is not None
    assert len(cvat.tasks) == 1  # CVAT would not let the bot delete it just now
    cvat.clear_faults()
    await bot_app.restart()
    for _ in range(50):
        if not cvat.tasks:
            break
        await asyncio.sleep(0.1)
    assert cvat.tasks == {}
    assert (await _attempt_rows(db))[0]["cvat_task_id"] is None


async def test_check_never_submits_and_submit_asks_first(user: TelegramUser, cvat: CvatServer,
                                                        db: Database) -> None:
    """🔎 Check my work reports what is missing and locks nothing; ✅ Submit asks before it
    grades, and "Not yet" leaves the work open."""
    login = await get_task(user)
    images = await attempt_images(db, user.id)
    first_six = set(images[:6])
    job_id, _ = await annotate(login, only=first_six)
    await user.send("🔎 Check my work")
    await user.expect_message("nothing is submitted")
    report = await user.expect_edit("Not finished yet", timeout=20)
    missing = [n for n in images if n not in first_six]
    assert f"{missing[0]}: no car is marked" in report.text
    assert "Nothing was submitted" in report.text
    row = await db.fetchone("SELECT status, checking_until, submitted_annotations FROM attempts")
    assert row == {"status": "ready", "checking_until": None, "submitted_annotations": None}
    assert cvat.jobs[job_id].assignee_id is not None  # never taken from the candidate

    await annotate(login)
    await user.press("🔎 Check my work")  # the button under the login
    complete = await user.expect_edit("Every image has what the test needs", timeout=20)
    assert "cannot see whether the boxes and texts are right" in complete.text
    assert await db.fetchval("SELECT status FROM attempts") == "ready"

    await user.send("✅ Submit")
    question = await user.expect_message("Submit attempt 1 for grading?")
    assert "You will not be able to change it afterwards" in question.text
    await user.press("Not yet")
    await user.expect_edit("your work stays open")
    assert await db.fetchval("SELECT status FROM attempts") == "ready"
    assert cvat.jobs[job_id].assignee_id is not None

    await user.press("✅ Submit")  # the button under the login asks too
    await user.expect_message("Submit attempt 1 for grading?")
    await user.press("✅ Yes, submit it")
    await user.expect_edit("Thank you!", timeout=20)
    assert await db.fetchval("SELECT status FROM attempts") == "graded"
    assert cvat.jobs[job_id].assignee_id is None


async def test_russian_candidate_checks_and_submits_in_russian(
        telegram: TelegramServer, bot_app: BotApp, db: Database) -> None:
    olga = telegram.user(5302, first_name="Ольга", language_code="ru")
    await olga.send("/start")
    greeting = await olga.expect_message("Здравствуйте, Ольга!")
    assert "12 фотографий" in greeting.text and "Около 60 минут" in greeting.text
    assert "Засчитывается только последняя попытка" in greeting.text
    await olga.send("📝 Получить задание")
    await olga.expect_message("Готовы начать?")
    await olga.press("✅ Да, создать задание")
    credentials = await olga.expect_message("Данные для входа в CVAT", timeout=20)
    instructions = await olga.expect_message("Что нужно сделать", timeout=20)
    assert instructions.reply_keyboard[0] == ["🔎 Проверить работу", "✅ Сдать работу"]
    await annotate(read_login(credentials), only=set((await attempt_images(db, olga.id))[:3]))
    await olga.send("🔎 Проверить работу")
    await olga.expect_edit("Работа ещё не закончена", timeout=20)
    await olga.send("✅ Сдать работу")
    await olga.expect_message("Сдать попытку 1 на проверку?")
    await olga.press("✅ Да, сдать")
    await olga.expect_edit("Работа ещё не закончена", timeout=20)
    assert await db.fetchval("SELECT status FROM attempts") == "ready"
    # Telegram's language_code was stored at first contact.
    assert await db.fetchval("SELECT language FROM telegram_users WHERE telegram_id = 5302") \
        == "ru"
