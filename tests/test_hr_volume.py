"""HR at volume, end to end: the error pictures' character diff, consent before the first task
and retention. A Russian HR user's export, the lists and the digest, and roles are in the fast
tier (tests/fast/test_hr_volume.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image, ImageDraw

from config.env import Settings
from create_users.lifecycle import apply_retention
from db import Database
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tasks_metrics.generation import Mark, char_diff, draw_plate_text, get_font
from tasks_metrics.picture_labels import PictureLabels
from tests.conftest import BotApp
from tests.flow import get_task
from tests.test_hr_export import add_candidate, add_graded_attempt, metrics

MOSCOW = "Europe/Moscow"
StartApp = Callable[..., Awaitable[BotApp]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Many presses in a row, faster than a person (the flood limit has its own tests)."""
    return dataclasses.replace(settings, throttle_burst=1000)


def _rendered(text_pairs: list[tuple[str, str]]) -> list[np.ndarray]:
    """Each (expected, given) drawn as the pictures draw the given text."""
    out = []
    for expected, given in text_pairs:
        image = Image.new("RGB", (400, 90), (32, 32, 36))
        draw_plate_text(ImageDraw.Draw(image), (10, 10), expected, given, PictureLabels())
        out.append(np.asarray(image))
    return out


def test_a_look_alike_plate_is_drawn_unlike_the_right_one() -> None:
    right, cyrillic = "H721PX18", "Н721PX18"  # the second starts with Cyrillic En
    # As plain text the two are the same picture: why the old pictures showed nothing.
    plain = []
    for text in (right, cyrillic):
        image = Image.new("L", (300, 50))
        ImageDraw.Draw(image).text((5, 5), text, fill=255, font=get_font(34, "Mono"))
        plain.append(np.asarray(image))
    assert np.array_equal(plain[0], plain[1])
    drawn_right, drawn_lookalike, drawn_case, drawn_wrong = _rendered(
        [(right, right), (right, cyrillic), ("B966EB73", "b966EB73"), (right, "M721PX18")])
    assert not np.array_equal(drawn_right, drawn_lookalike)
    # Each kind of mistake is marked its own way: look-alike, case and a wrong character.
    assert [m for _, _, m in char_diff(right, cyrillic)][:2] == [Mark.LOOKALIKE, Mark.SAME]
    assert char_diff("B966EB73", "b966EB73")[0][2] == Mark.CASE
    assert char_diff(right, "M721PX18")[0][2] == Mark.WRONG
    assert [m for _, _, m in char_diff("A12", "A1")] == [Mark.SAME, Mark.SAME, Mark.MISSING]
    cells = [d[12:54, 12:30].reshape(-1, 3).mean(axis=0) for d in
             (drawn_lookalike, drawn_case, drawn_wrong)]
    assert len({tuple(np.round(c)) for c in cells}) == 3  # three different colours


async def test_consent_is_required_before_the_first_task(
    app_with: StartApp, telegram: TelegramServer, cvat: CvatServer, db: Database
) -> None:
    await app_with(privacy_notice="ACME Ltd keeps your test results for 180 days.")
    anna = telegram.user(1001, first_name="Anna", language_code="en")
    await anna.send("/start")
    assert "ACME Ltd keeps your test results" in (await anna.expect_message("Hello")).text
    # A button from before the notice (or a forged one) builds nothing: the notice comes first.
    await anna.press_data("t1:go")
    asked = await anna.expect_message("Ready to start?")
    assert "By pressing ✅ Yes you agree" in asked.text and "ACME Ltd" in asked.text
    assert len(cvat.users) == 1 and not cvat.tasks  # the bot's own account only
    assert await db.fetchval("SELECT consent_version FROM telegram_users") is None
    await anna.press("✅ Yes, create my task")
    await anna.expect_message("Your CVAT login", timeout=20)
    consent = await db.fetchone(
        "SELECT u.consented_at, n.text_en FROM telegram_users u"
        " JOIN privacy_notices n ON n.version = u.consent_version")
    assert consent["text_en"] == "ACME Ltd keeps your test results for 180 days."
    assert consent["consented_at"] is not None


async def test_retention_forgets_exactly_the_inactive_and_keeps_a_tombstone(
    user: TelegramUser, bot_app: BotApp, cvat: CvatServer, db: Database, settings: Settings
) -> None:
    await user.send("/start")
    login = await get_task(user)
    recent = await add_candidate(db, 5050, name="Recent Rita")
    await add_graded_attempt(db, recent, 1, metrics(0.9, "pass"))
    await db.execute("UPDATE attempts SET submitted_at = now(), updated_at = now()"
                     " WHERE candidate_id = %s", (recent,))
    await db.execute("INSERT INTO telegram_users (telegram_id, last_seen_at) VALUES"
                     " (6060, now() - interval '200 days'), (6061, now())")
    assert await apply_retention(db, bot_app.cvat, settings) == 0  # nobody is old enough
    old = datetime.now(UTC) - timedelta(days=181)
    await db.execute("UPDATE candidates SET created_at = %s WHERE telegram_id = %s",
                     (old, user.id))
    await db.execute("UPDATE attempts a SET updated_at = %s, submitted_at = %s FROM candidates"
                     " c WHERE c.id = a.candidate_id AND c.telegram_id = %s", (old, old, user.id))
    await db.execute("UPDATE telegram_users SET last_seen_at = %s WHERE telegram_id = %s",
                     (old, user.id))

    assert await apply_retention(db, bot_app.cvat, settings) == 1
    assert cvat.users_by_name(login.username) is None and not cvat.tasks  # account and task
    left = await db.fetchall("SELECT telegram_id FROM candidates")
    assert [r["telegram_id"] for r in left] == [5050]
    assert await db.fetchval("SELECT count(*) FROM attempts") == 1  # Rita's
    users = await db.fetchall("SELECT telegram_id FROM telegram_users ORDER BY 1")
    assert [r["telegram_id"] for r in users] == [6061]  # the old bare visit went too
    tombstone = await db.fetchone("SELECT * FROM deleted_candidates")
    assert tombstone["tested_at"] == old and str(user.id) not in str(dict(tombstone))
    assert await db.fetchval("SELECT count(*) FROM action_log"
                             " WHERE action = 'retention.forgotten'") == 1

    # The same person comes back: recognised as tested before.
    again = await get_task(user)
    assert again.username != login.username
    assert await db.fetchval("SELECT previously_tested_at FROM candidates"
                             " WHERE telegram_id = %s", (user.id,)) == old
