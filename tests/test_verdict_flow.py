"""The verdict end to end, through the production bot, both stand-ins and real PostgreSQL:
the gates named to HR, the graded copy being the checked copy, a hostile submission, poisoned
items in the background loops, and a card that survives anything a candidate typed. HR tuning
the pass rule in the bot is in the fast tier (tests/fast/test_pass_rule.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from config.env import Settings
from connection import CvatForbidden
from db import Database
from sandbox.candidate import (
    LABELS,
    TASK_SET,
    Login,
    annotate,
    candidate_client,
    candidate_job,
    perfect_shapes,
    save_shapes,
    stored_work,
)
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import HR_ADMIN_ID, BotApp
from tests.flow import attempt_images, bot_process_env, get_task, start_bot_process, submit
from tests.test_hr import find


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """HR press many buttons in a row here, faster than a person."""
    return dataclasses.replace(settings, throttle_burst=1000)


async def save_work(login: Login, edit: Callable[[list[dict[str, Any]], list[dict[str, Any]]],
                                                 list[dict[str, Any]]]) -> tuple[int, Any]:
    """Save the ground truth changed by `edit(shapes, labels)` as the candidate; (job id,
    the candidate's client, still open)."""
    client = candidate_client(login)
    job_id, frames, labels = await candidate_job(client)
    await save_shapes(client, job_id, edit(perfect_shapes(frames, labels), labels))
    return job_id, client


def label_id(labels: list[dict[str, Any]], name: str) -> int:
    return next(lb["id"] for lb in labels if lb["name"] == name)


async def test_hr_notification_names_the_gate_a_missing_third_of_cars_fails(
    user: TelegramUser, hr_user: TelegramUser, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)

    def drop_every_third_car(shapes: list[dict[str, Any]],
                             labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        car = label_id(labels, "car")
        cars = [s for s in shapes if s["label_id"] == car]
        # One car kept on every image, so the work is complete; a third of all cars gone.
        keep = {id(next(c for c in cars if c["frame"] == f)) for f in {c["frame"] for c in cars}}
        dropped = [c for c in cars if id(c) not in keep][: len(cars) // 3]
        return [s for s in shapes if all(s is not d for d in dropped)]

    _, client = await save_work(login, drop_every_third_car)
    await client.close()
    await submit(user)
    await user.expect_edit("Thank you!", timeout=30)
    notice = await hr_user.expect_message("New result", timeout=10)
    per_image = [sum(s.label == "car" for s in TASK_SET.ground_truth.images[n].shapes)
                 for n in await attempt_images(db, user.id)]
    cars = sum(per_image)
    dropped = min(cars - len(per_image), cars // 3)
    found = f"{math.floor((cars - dropped) * 1000 / cars) / 10:g}%"  # about two thirds
    assert f"Anna Smith @anna_s, attempt 1: ❌ fail: cars found {found} < 95%" in notice.text
    assert await db.fetchval("SELECT band FROM metrics") == "fail"

    # The summary counts the gate, and the export names it, in the reader's language.
    await db.execute("INSERT INTO telegram_users (telegram_id, language) VALUES (%s, 'ru')"
                     " ON CONFLICT (telegram_id) DO UPDATE SET language = 'ru'", (hr_user.id,))
    await hr_user.send("/hr")
    await hr_user.expect_message("Меню HR")
    await hr_user.press("📊 Все кандидаты")
    summary = await hr_user.expect_edit("Все кандидаты", timeout=10)
    assert "Ниже порога прохода</b> (засчитываемые попытки): найдено машин: 1" \
        in summary.html
    xlsx = await hr_user.expect_message(".xlsx", timeout=10)
    csv = await hr_user.expect_message(".csv", timeout=10)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.document.data))["Кандидаты"]
    header = [c.value for c in sheet[1]]
    in_russian = f"найдено машин {found.replace('.', ',')} < 95%"
    assert sheet.cell(row=2, column=header.index("Ниже порога") + 1).value == in_russian
    assert in_russian in csv.document.data.decode("utf-8-sig")


async def test_the_graded_copy_is_the_copy_that_was_checked(
    user: TelegramUser, hr_user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)
    job_id, client = await save_work(login, lambda shapes, labels: shapes)
    try:
        # The bot reads the work only once the job is closed to the candidate: hold that read
        # and let the candidate try to swap in other work in exactly that window.
        hold = cvat.hold_next("GET", rf"/api/jobs/{job_id}/annotations")
        await submit(user)
        await asyncio.wait_for(hold.reached.wait(), 30)
        assert cvat.jobs[job_id].assignee_id is None
        with pytest.raises(CvatForbidden):
            await client.put_job_annotations(job_id, {"shapes": [], "tracks": [], "tags": []})
        hold.release()
    finally:
        await client.close()
    await user.expect_edit("Thank you!", timeout=30)
    stored = await db.fetchval("SELECT submitted_annotations FROM attempts")
    assert stored["annotations"]["shapes"] == cvat.annotations(job_id)["shapes"]
    drawn = await attempt_images(db, user.id)  # the whole work, not the swapped-in nothing
    assert len(stored["annotations"]["shapes"]) == sum(
        len(TASK_SET.ground_truth.images[name].shapes) for name in drawn)
    assert await db.fetchval("SELECT band FROM metrics") == "pass"
    await hr_user.expect_message("attempt 1: ✅ pass", timeout=10)


async def test_incomplete_work_reopens_the_job_and_uses_up_nothing(
    user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)
    job_id, client = await save_work(login, lambda shapes, labels: [
        s for s in shapes if s["frame"] != 0])
    await client.close()
    candidate_id = cvat.jobs[job_id].assignee_id
    await submit(user)
    incomplete = await user.expect_edit("Not finished yet", timeout=30)
    assert (await attempt_images(db, user.id))[0] in incomplete.text
    assert cvat.jobs[job_id].assignee_id == candidate_id  # the candidate can fix it
    row = await db.fetchone("SELECT status, checking_until, submitted_annotations FROM attempts")
    assert row == {"status": "ready", "checking_until": None, "submitted_annotations": None}
    await annotate(login)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=30)


def _memory_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def _reset_peak_memory(pid: int) -> None:
    """From now on VmHWM counts the process's peak from its present size."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def test_a_hostile_submission_costs_only_its_own_attempt(
    telegram: TelegramServer, cvat: CvatServer, database_url: str, db: Database,
    tmp_path: Path,
) -> None:
    """A 100,000-vertex polygon (3.9 MB) and a mask whose box is 20,000 x 20,000 px, Submit
    pressed three times, against `python main.py`: the candidate is told which image and
    which limit, the attempt stays open, another user is answered meanwhile, and the bot
    process's peak memory stays within 50 MB of what it was before."""
    env = bot_process_env(telegram.base_url, cvat.base_url, database_url, tmp_path,
                          POOL_ACCOUNTS="0", POOL_TASKS="0", THROTTLE_BURST="100")
    bot = await start_bot_process(env)
    try:
        await telegram.wait_polling(timeout=60)
        mallory = telegram.user(6101, first_name="Mallory", language_code="en")
        bystander = telegram.user(6102, first_name="Bob", language_code="en")
        login = await get_task(mallory)
        n = 100_000
        polygon = [v for i in range(n) for v in (400 + 250 * math.cos(2 * math.pi * i / n),
                                                  300 + 200 * math.sin(2 * math.pi * i / n))]

        def hostile(shapes: list[dict[str, Any]],
                    labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
            car = label_id(labels, "car")
            return [*shapes,
                    {"type": "polygon", "frame": 0, "label_id": car, "points": polygon},
                    {"type": "mask", "frame": 1, "label_id": car,
                     "points": [0, 20_000 * 20_000, 0, 0, 19_999, 19_999]}]

        # A 4 MB body keeps the stand-in's schema validator (on this test's own event loop)
        # busy for seconds; every other test checks the traffic's shape.
        cvat.validate_schema = False
        job_id, client = await save_work(login, hostile)
        await client.close()
        await bystander.send("/help")
        await bystander.expect_message("How this works", timeout=30)

        before_kb = _memory_kb(bot.pid, "VmRSS")
        _reset_peak_memory(bot.pid)
        questions = []
        for _ in range(3):
            await mallory.send("✅ Submit")
            questions.append(await mallory.expect_message("for grading?", timeout=30))
        for question in questions:  # three confirmed presses at once
            await mallory.press("✅ Yes, submit it", message_id=question.message_id)
        await bystander.send("/help")
        await bystander.expect_message("How this works", timeout=30)
        answers = [await mallory.expect_edit(re.compile("cannot check|still checking"),
                                             timeout=60) for _ in range(3)]
        await bystander.send("/help")
        await bystander.expect_message("How this works", timeout=30)
        peak_kb = _memory_kb(bot.pid, "VmHWM")
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
            await asyncio.wait_for(bot.wait(), 60)
    texts = [a.text for a in answers]
    over = [t for t in texts if t.startswith("I cannot check this work")]
    assert over, texts
    image = (await attempt_images(db, mallory.id))[0]
    assert f"on image {image} a shape has 100,000 points; at most 1,000 are allowed" in over[0]
    assert all(t in over or "still checking your work" in t for t in texts), texts
    assert not any("went wrong" in t for t in texts)
    print(f"bot RSS before {before_kb / 1024:.1f} MB, peak after {peak_kb / 1024:.1f} MB")
    assert (peak_kb - before_kb) / 1024 <= 50, (before_kb, peak_kb)
    row = await db.fetchone("SELECT status, submitted_annotations, checking_until FROM attempts")
    assert row == {"status": "ready", "submitted_annotations": None, "checking_until": None}
    assert cvat.jobs[job_id].assignee_id is not None  # given back to fix


async def _submitted(db: Database, telegram_id: int, *, subset: list[str] | None = None,
                     stored: str | None = None) -> int:
    """A candidate whose attempt was stored at Submit some minutes ago and never graded (the
    bot stopped), as reconciliation finds it."""
    images = list(TASK_SET.reference_images)
    work = stored or stored_work(images, perfect_shapes(images, LABELS))
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id, full_name) VALUES (%s, %s) RETURNING id",
        (telegram_id, f"Candidate {telegram_id}"))
    return await db.fetchval(
        "INSERT INTO attempts (candidate_id, number, status, image_subset, submitted_at,"
        " submitted_annotations, updated_at) VALUES (%s, 1, 'submitted', %s,"
        " now() - interval '10 minutes', %s::jsonb, now() - interval '10 minutes')"
        " RETURNING id", (candidate, subset or images, work))


async def _interrupted_build(db: Database, telegram_id: int, subset: list[str]) -> int:
    """A candidate whose task build stopped half-way (its lease ran out)."""
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id, full_name) VALUES (%s, %s) RETURNING id",
        (telegram_id, f"Builder {telegram_id}"))
    return await db.fetchval(
        "INSERT INTO attempts (candidate_id, number, status, image_subset, cvat_task_name,"
        " lease_until) VALUES (%s, 1, 'creating', %s, %s, now() - interval '1 minute')"
        " RETURNING id", (candidate, subset, f"Interrupted build {telegram_id}"))


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for the bot's background work (a bound only for a hang)."""
    for _ in range(600):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still waiting for {what}")


async def test_a_poisoned_item_never_stops_the_background_loop(
    app_with: Callable[..., Awaitable[BotApp]], telegram: TelegramServer, db: Database,
) -> None:
    # This test's app is the only one: its worker keeps the house (one per cluster) on the
    # one-second interval below, not another app's worker on the default 30 s.
    images = list(TASK_SET.reference_images)
    # Poisons: a submission on an image the task set no longer has, a stored copy that is
    # not annotations at all, and a build of such an image (each once crashed the loop).
    gone = await _submitted(db, 7001, subset=[*images[:-1], "gone.jpg"])
    garbage = await _submitted(db, 7002, stored='{"annotations": 5}')
    bad_build = await _interrupted_build(db, 7003, [*images[:-1], "gone.jpg"])
    honest = [await _submitted(db, 7004), await _submitted(db, 7005)]
    honest_build = await _interrupted_build(db, 7006, images)
    builder = telegram.user(7006, first_name="Builder", language_code="en")

    app = await app_with(reconcile_interval_seconds=1)
    hr_user = telegram.user(HR_ADMIN_ID, first_name="Helen", username="helen_hr",
                            language_code="en")

    async def graded(ids: list[int]) -> bool:
        return await db.fetchval("SELECT count(*) FROM attempts WHERE id = ANY(%s) AND"
                                 " status = 'graded'", (ids,)) == len(ids)

    await _until(lambda: graded(honest), "the honest submissions to be graded")
    await builder.expect_message("Your CVAT login", timeout=60)
    assert await db.fetchval("SELECT status FROM attempts WHERE id = %s",
                             (honest_build,)) == "ready"
    failed = await db.fetchall(
        "SELECT id, status, grading_error, grading_failures, grading_retry_at > now() AS later,"
        " error FROM attempts WHERE id = ANY(%s) ORDER BY id", ([gone, garbage, bad_build],))
    assert [(r["id"], r["status"]) for r in failed] == [
        (gone, "submitted"), (garbage, "submitted"), (bad_build, "failed")]
    assert "no image 'gone.jpg'" in failed[0]["grading_error"]
    assert "not a JSON object" in failed[1]["grading_error"]
    assert all(r["grading_failures"] == 1 and r["later"] for r in failed[:2])
    assert "gone.jpg" in failed[2]["error"]
    assert not app.worker.keeping.done()

    # After a restart the loop runs again, the poisons wait for their retry time, and new
    # work is still graded.
    await app.restart()
    newer = await _submitted(db, 7007)
    await _until(lambda: graded([newer]), "a submission made after the restart")
    assert not app.worker.keeping.done()
    assert await db.fetchval("SELECT sum(grading_failures) FROM attempts WHERE id = ANY(%s)",
                             ([gone, garbage],)) == 2

    # HR see why on the card.
    await find(hr_user, "7001")
    card = await hr_user.expect_message("Attempt 1", timeout=10)
    assert "⚠️ Not graded: malformed: the task set 'default' has no image 'gone.jpg'" \
        in card.text


async def test_a_candidates_text_cannot_break_the_card(
    user: TelegramUser, hr_user: TelegramUser, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)
    plate = next(s.text for n in await attempt_images(db, user.id)
                 for s in TASK_SET.ground_truth.images[n].shapes if s.label == "plate")
    await annotate(login, plate_texts={plate: "<" * 1000})
    await submit(user)
    await user.expect_edit("Thank you!", timeout=30)
    await hr_user.expect_message("New result", timeout=10)
    await hr_user.press("📇 Open card")
    card = await hr_user.expect_message("Attempt 1", timeout=10)
    assert "<" * 23 + "…" in card.text and "<" * 25 not in card.text
    assert card.buttons and card.buttons[0] == ["🖼 Errors of attempt 1"]
    assert ["🔄 Re-grade"] in card.buttons
