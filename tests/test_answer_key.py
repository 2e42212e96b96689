"""Answer keys that can be corrected, calibration, flags for copied or implausible work, and the
import of a task set: real PostgreSQL and real grading processes, no Telegram needed."""

from __future__ import annotations

import asyncio
import io
import random
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot_files.presentation.exports import export_locale
from bot_files.presentation.hr import render_card
from bot_files.texts import Texts
from config.env import PROJECT_DIR, Settings
from db import Database
from sandbox.candidate import LABELS, TASK_SET, perfect_shapes, stored_work
from sandbox.telegram import TelegramUser
from tasks_generator import import_set
from tasks_generator.task_set import load_task_set
from tasks_metrics.answer_key import current_key, exclude, stale_attempts
from tasks_metrics.calibration import calibration, suspects
from tasks_metrics.export import describe_flags_plain
from tasks_metrics.export_data import export_rows
from tasks_metrics.grading_process import GradingProcesses
from tasks_metrics.hr_operations import candidate_card
from tasks_metrics.submission import grade_attempt, regrade_for_key

NAMES = TASK_SET.image_names
CAREFUL = timedelta(minutes=40)


@pytest.fixture
async def grader() -> AsyncIterator[GradingProcesses]:
    """One real grading process for the set in use."""
    processes = GradingProcesses(TASK_SET.folder, processes=1)
    yield processes
    await processes.close()


def _work(images: list[str], *, jitter: float = 0.0, seed: int = 0, shift: float = 0.0,
          typos: dict[str, str] | None = None, drop: set[tuple[str, int]] = frozenset(),
          ) -> list[dict[str, Any]]:
    """The ground truth as a candidate saves it: boxes moved by up to `jitter` px at random
    (or all by `shift`), some plate texts mistyped, some objects (image, number) left out."""
    rng = random.Random(seed)
    shapes = perfect_shapes(images, LABELS, plate_texts=typos)
    per_image = [len(TASK_SET.ground_truth.images[n].shapes) for n in images]
    numbered = [(images[frame], number) for frame, count in enumerate(per_image)
                for number in range(1, count + 1)]
    kept = []
    for shape, (image, number) in zip(shapes, numbered, strict=True):
        if (image, number) in drop:
            continue
        shape["points"] = [v + shift + rng.uniform(-jitter, jitter) for v in shape["points"]]
        kept.append(shape)
    return kept


async def _submit(db: Database, telegram_id: int, images: list[str], shapes: list[dict[str, Any]],
                  spent: timedelta = CAREFUL) -> int:
    """A candidate whose attempt on `images` was submitted with `shapes`, `spent` after the
    job was handed out: the attempt's id."""
    work = stored_work(images, shapes)
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id, full_name) VALUES (%s, %s) RETURNING id",
        (telegram_id, f"Candidate {telegram_id}"))
    return await db.fetchval(
        "INSERT INTO attempts (candidate_id, number, status, image_subset, task_started,"
        " task_ended, submitted_at, submitted_annotations) VALUES (%s, 1, 'submitted', %s,"
        " now() - %s, now(), now(), %s::jsonb) RETURNING id",
        (candidate, images, spent, work))


async def _command(db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m tasks_metrics.answer_key ...` on this test's database, as the maintainer
    runs it (in a thread: the test's loop keeps running)."""
    command = [sys.executable, "-m", "tasks_metrics.answer_key", "--database-url", db.dsn,
               "--task-set", str(TASK_SET.folder), *args]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                   timeout=120, cwd=PROJECT_DIR)


async def test_excluding_an_object_regrades_exactly_the_attempts_that_had_its_image(
        db: Database, grader: GradingProcesses) -> None:
    image = NAMES[0]
    wrong = (image, 1)  # a car the key has and (say) is not there: the strong all "miss" it
    subsets = {1: list(NAMES[:12]), 2: [image, *NAMES[12:23]], 3: [image, *NAMES[24:35]],
               4: list(NAMES[36:48])}
    ids = {tid: await _submit(db, tid, images, _work(images, drop={wrong}))
           for tid, images in subsets.items()}
    for attempt in ids.values():
        await grade_attempt(db, grader, attempt)
    before = {r["attempt_id"]: r for r in await db.fetchall("SELECT * FROM metrics")}
    assert [before[ids[t]]["car_missed"] for t in (1, 2, 3, 4)] == [1, 1, 1, 0]
    assert all(before[a]["band"] == "pass" and before[a]["key_version"] == 1 for a in before)

    key, stats = await calibration(db, TASK_SET)
    first = next(s for s in stats if s.image == image)
    assert first.candidates == 3 and first.mean_fit is not None and first.mean_fit > 0.8
    assert [(o.image, o.number) for o in suspects(stats)] == [wrong]  # a probable key error
    assert first.objects[0].missed == 3 and first.objects[0].had == 3

    changed = await exclude(db, TASK_SET, *wrong, actor=42)
    assert (changed.version, changed.affected_images) == (2, (image,))
    assert "car" in changed.change and await stale_attempts(db, TASK_SET.name) == [
        ids[1], ids[2], ids[3]]
    assert await regrade_for_key(db, grader, TASK_SET.name) == 3
    after = {r["attempt_id"]: r for r in await db.fetchall("SELECT * FROM metrics")}
    assert [after[ids[t]]["key_version"] for t in (1, 2, 3, 4)] == [2, 2, 2, 1]
    assert [after[ids[t]]["car_missed"] for t in (1, 2, 3, 4)] == [0, 0, 0, 0]
    assert after[ids[1]]["car_recall"] == 1.0 and after[ids[1]]["car_precision"] == 1.0
    assert after[ids[4]]["graded_at"] == before[ids[4]]["graded_at"]  # not touched
    history = await db.fetchall("SELECT attempt_id, key_version, figures FROM metrics_history"
                                " ORDER BY attempt_id")
    assert [(h["attempt_id"], h["key_version"]) for h in history] == [
        (ids[1], 1), (ids[2], 1), (ids[3], 1)]
    assert all(h["figures"]["car_missed"] == 1 for h in history)  # the old figures are kept
    assert await regrade_for_key(db, grader, TASK_SET.name) == 0
    key, stats = await calibration(db, TASK_SET)
    assert key.version == 2 and suspects(stats) == []

    # The maintainer's command line: the key, then a whole image left out.
    shown = await _command(db, "show")
    assert shown.returncode == 0, shown.stderr
    assert "answer key version 2" in shown.stdout and f"{image} #1" in shown.stdout
    excluded = await _command(db, "exclude", NAMES[40])
    assert excluded.returncode == 0, excluded.stderr
    assert "version 3" in excluded.stdout and "1 attempts re-graded" in excluded.stdout
    assert (await db.fetchval("SELECT report -> 'images' FROM metrics WHERE attempt_id = %s",
                              (ids[4],))) == 11
    again = await _command(db, "exclude", NAMES[40])
    assert again.returncode == 1 and "excluded already" in again.stderr
    printed = await _command(db, "calibration")
    assert printed.returncode == 0 and f"{NAMES[40]} (excluded)" in printed.stdout
    assert (await current_key(db, TASK_SET.name)).version == 3


async def test_copied_and_too_fast_work_is_flagged_and_honest_work_is_not(
        db: Database, grader: GradingProcesses, settings: Settings) -> None:
    images = list(NAMES[48:60])
    plates = [s.text for n in images for s in TASK_SET.ground_truth.images[n].shapes
              if s.label == "plate"]
    typos = {plates[0]: plates[0][:-1] + "0", plates[3]: plates[3].lower()}
    original = _work(images, jitter=2.5, seed=1, typos=typos)
    attempts = {
        "writer": await _submit(db, 11, images, original),
        "copier": await _submit(db, 12, images, [
            {**s, "points": [v + 0.6 for v in s["points"]]} for s in original]),
        "twin": await _submit(db, 13, images, original),
        "honest": await _submit(db, 14, images, _work(images, jitter=2.5, seed=2,
                                                      typos={plates[5]: plates[5] + "X"})),
        "fast": await _submit(db, 15, list(NAMES[60:72]),
                              _work(list(NAMES[60:72]), jitter=2.5, seed=3),
                              spent=timedelta(seconds=40)),
    }
    for attempt in attempts.values():
        await grade_attempt(db, grader, attempt)
    rows = await db.fetchall("SELECT attempt_id, kind, other_attempt, evidence FROM flags")
    found = {(r["attempt_id"], r["kind"], r["other_attempt"]) for r in rows}
    w, c, t, h, f = (attempts[k] for k in ("writer", "copier", "twin", "honest", "fast"))
    assert found == {(w, "similar", c), (c, "similar", w), (c, "similar", t), (t, "similar", c),
                     (w, "same_person", t), (t, "same_person", w), (f, "too_fast", None)}
    similar = next(r["evidence"] for r in rows if (r["attempt_id"], r["other_attempt"]) == (w, c))
    assert similar["close"] == similar["boxes"] >= 40 and similar["images"] == 12
    assert similar["typos"] == sorted([plates[0][:-1] + "0", plates[3].lower()])
    fast = next(r["evidence"] for r in rows if r["kind"] == "too_fast")
    assert fast["seconds"] == 40 and fast["objects"] > 14  # under 3 s an object
    assert not any(r["attempt_id"] == h or r["other_attempt"] == h for r in rows)
    assert await db.fetchval("SELECT count(DISTINCT band) FROM metrics") >= 1  # no verdict

    # The card and the export show each flag with its evidence.
    writer = await db.fetchval("SELECT candidate_id FROM attempts WHERE id = %s", (w,))
    card = await candidate_card(db, writer)
    assert card is not None
    text = "\n".join(render_card(Texts("en"), card))
    assert "🚩 <b>Near-identical</b> to the work of Candidate 12 (attempt 1)" in text
    assert "within 2 px" in text and "<code>" + plates[3].lower() + "</code>" in text
    assert "🚩 <b>The same work</b> as Candidate 13" in text
    assert "Graded on answer key version 1." in text
    russian = "\n".join(render_card(Texts("ru"), card))
    assert "🚩 <b>Почти совпадает</b> с работой кандидата Candidate 12" in russian
    exported = await export_rows(db)
    column = exported.attempt_columns.index("flags")
    by_id = {row[exported.attempt_columns.index("telegram_id")]: row[column]
             for row in exported.attempts}
    plain = describe_flags_plain(by_id[11])
    assert "similar to candidate" in plain and "the same wrong plates" in plain
    assert describe_flags_plain(by_id[15]).startswith("too fast: ") and by_id[14] is None
    # In a Russian HR user's export the evidence reads in Russian, as on the card.
    in_russian = export_locale(Texts("ru"), settings).describe_flags
    assert in_russian is not None
    assert "🚩 Почти совпадает с работой кандидата Candidate 12" in in_russian(by_id[11])
    assert in_russian(by_id[15]).startswith("🚩 Неправдоподобно быстро")

    # A re-grade recomputes the pair's flags once, never doubling them.
    await grade_attempt(db, grader, c)
    assert await db.fetchval("SELECT count(*) FROM flags") == len(rows)


def _export_zip(images: list[str], xml: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A "CVAT for images 1.1" export with images, as CVAT zips it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("annotations.xml", xml)
        for name in images:
            archive.write(TASK_SET.folder / "images" / name, f"images/{name}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def _subset_xml(images: list[str]) -> str:
    """The default set's annotations cut down to some images."""
    text = (TASK_SET.folder / "annotations.xml").read_text(encoding="utf-8")
    head, _, rest = text.partition("  <image ")
    blocks = ["  <image " + block for block in rest.split("  <image ")]
    blocks[-1] = blocks[-1].replace("</annotations>\n", "")
    kept = [b for b in blocks if any(f'name="{n}"' in b for n in images)]
    return head + "".join(kept) + "</annotations>\n"


def test_the_import_command_adds_a_good_set_and_rejects_a_broken_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = list(NAMES[:12])
    xml = _subset_xml(images).replace('<image id="2" name="scene_003.jpg" width="800"'
                                      ' height="600">', '<image id="2" name="scene_003.jpg"'
                                      ' width="800" height="600">\n    <tag label="night"'
                                      ' source="manual"/>')
    good = tmp_path / "good.zip"
    good.write_bytes(_export_zip(images, xml))
    sets = tmp_path / "sets"
    sets.mkdir()
    assert import_set.main([str(good), "street", "--sets-dir", str(sets)]) == 0
    added = load_task_set(sets / "street")
    assert added.image_names == tuple(images) and added.tags == {"scene_003.jpg": ("night",)}
    assert "task set 'street' added" in capsys.readouterr().out

    broken_xml = (xml.replace('label="car"', 'label="truck"', 1)
                  .replace(f">{TASK_SET.ground_truth.images[NAMES[1]].shapes[3].text}<",
                           ">a123bc77<"))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(_export_zip(images[:-1], broken_xml,
                                   {"images/stray.jpg": b"\xff\xd8 not annotated"}))
    assert import_set.main([str(broken), "broken", "--sets-dir", str(sets)]) == 1
    reasons = capsys.readouterr().err
    assert "labels other than car and plate (1): truck" in reasons
    assert f"{NAMES[1]} #4 'a123bc77'" in reasons
    assert "images without an annotation entry (1): stray.jpg" in reasons
    assert f"annotation entries without an image (1): {images[-1]}" in reasons
    assert not (sets / "broken").exists()
    assert import_set.main([str(good), "street", "--sets-dir", str(sets)]) == 1
    assert "exists already" in capsys.readouterr().err
    not_zip = tmp_path / "x.zip"
    not_zip.write_text("hello")
    assert import_set.main([str(not_zip), "other", "--sets-dir", str(sets)]) == 1
    assert "is not a zip file" in capsys.readouterr().err


async def test_hr_see_the_key_download_the_calibration_and_exclude_a_probable_error(
        db: Database, grader: GradingProcesses, hr_user: TelegramUser) -> None:
    image = NAMES[0]
    for tid in (21, 22, 23):
        images = [image, *NAMES[tid * 3:tid * 3 + 11]]
        attempt = await _submit(db, tid, images, _work(images, drop={(image, 1)}))
        await grade_attempt(db, grader, attempt)
    await hr_user.send("/hr")
    await hr_user.expect_message("HR menu")
    await hr_user.press("🔑 Answer key and calibration")
    screen = await hr_user.expect_message("Answer key", timeout=10)
    assert "Task set default: 96 images, 12 in each test" in screen.text
    assert "night 24" in screen.text and "Answer key version 1" in screen.text
    assert f"{image} #1 (car): missed by 3, misread by 0 of 3" in screen.text
    await hr_user.press("📐 Calibration (XLSX)")
    sheet = await hr_user.expect_message("Calibration of default", timeout=10)
    assert sheet.document is not None and sheet.document.file_name == "calibration_default_v1.xlsx"
    await hr_user.press("🚫 Exclude an object or an image")
    await hr_user.expect_message("Send the image's name")
    await hr_user.send_sticker()
    await hr_user.expect_message("I did not understand")
    await hr_user.send("no_such.jpg 2")
    await hr_user.expect_message("Not changed: the set has no image 'no_such.jpg'")
    await hr_user.press(f"🚫 Exclude {image} #1 car", message_id=screen.message_id)
    await hr_user.expect_message(f"Exclude {image} #1 (car) from grading?")
    await hr_user.press("✅ Yes, exclude")
    done = await hr_user.expect_edit("Answer key version 2", timeout=30)
    assert f"{image} #1 (car) excluded" in done.text and "Re-graded: 3 attempts" in done.text
    assert await db.fetchval("SELECT count(*) FROM metrics WHERE key_version = 2") == 3
    assert await db.fetchval("SELECT sum(car_missed) FROM metrics") == 0
    logged = await db.fetchone("SELECT actor_id, details FROM action_log"
                               " WHERE action = 'hr.answer_key'")
    assert logged["actor_id"] == hr_user.id and logged["details"]["version"] == 2
