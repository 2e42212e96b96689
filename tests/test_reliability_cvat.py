"""CVAT failing at every step of building a task and of grading: the candidate hears it in
plain words, nothing is left on CVAT that the database does not know, and a retry succeeds."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import pytest

from config.env import Settings
from db import Database
from sandbox.candidate import annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import BotApp
from tests.flow import get_task, read_login, submit

# Every CVAT call on the way to a candidate's credentials, and how to break it.
BUILD_STEPS = {
    "register": ("POST", r"^/api/auth/register"),
    "find user": ("GET", r"^/api/users\?"),
    "set role": ("PATCH", r"^/api/users/\d+"),
    "create task": ("POST", r"^/api/tasks$"),
    "upload": ("POST", r"^/api/tasks/\d+/data"),
    "wait": ("GET", r"^/api/requests/"),
    "list jobs": ("GET", r"^/api/jobs\?"),
    "assign": ("PATCH", r"^/api/jobs/\d+"),
}
TROUBLE = re.compile("not answering|went wrong")
FAULTS = {"503": {"status": 503, "count": 20}, "500": {"status": 500, "count": 20},
          "dropped": {"drop": True, "count": 20}, "timeout": {"hang": True, "count": 20}}
GRADING_STEPS = {
    "read job": ("GET", r"^/api/jobs/\d+$"),
    "annotations": ("GET", r"^/api/jobs/\d+/annotations"),
    "labels": ("GET", r"^/api/labels"),
    "frames": ("GET", r"^/api/jobs/\d+/data/meta"),
    "close job": ("PATCH", r"^/api/jobs/\d+"),
}


@pytest.fixture
async def quick_timeout_bot(settings: Settings, db: Database) -> AsyncIterator[BotApp]:
    """The bot with a short CVAT timeout, so a hanging CVAT fails fast."""
    app = BotApp(dataclasses.replace(settings, cvat_timeout=0.8), db)
    await app.start()
    yield app
    await app.stop()


def _candidate_accounts(cvat: CvatServer) -> list[str]:
    return [u.username for u in cvat.users.values() if u.username.startswith("cand")]


async def _confirm(user: TelegramUser) -> None:
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    await user.press("✅ Yes, create my task")


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("step", list(BUILD_STEPS))
async def test_cvat_failing_while_building(
    step: str, fault: str, quick_timeout_bot: BotApp, telegram: TelegramServer,
    cvat: CvatServer, db: Database,
) -> None:
    user = telegram.user(5001, first_name="Ira", language_code="en")
    method, path = BUILD_STEPS[step]
    cvat.fail_next(method, path, **FAULTS[fault])
    await _confirm(user)
    failed = await user.expect_message(TROUBLE, timeout=60)
    assert failed.buttons == [["🔄 Try again"]]
    # Nothing half-made is left: no task on CVAT, no open attempt, and the only account (if
    # registration got that far) is the one the database holds the name of.
    assert cvat.tasks == {}
    row = await db.fetchone("SELECT a.status, a.cvat_task_id, c.cvat_username FROM attempts a"
                            " JOIN candidates c ON c.id = a.candidate_id")
    assert row["status"] == "failed" and row["cvat_task_id"] is None
    assert set(_candidate_accounts(cvat)) <= {row["cvat_username"]}

    cvat.clear_faults()
    await user.press("🔄 Try again")
    login = read_login(await user.expect_message("Your CVAT login", timeout=30))
    assert _candidate_accounts(cvat) == [login.username]
    assert len(cvat.tasks) == 1
    assert await db.fetchval("SELECT status FROM attempts") == "ready"


async def test_cvat_refusing_connections(user: TelegramUser, cvat: CvatServer,
                                         db: Database) -> None:
    port = int(cvat.base_url.rsplit(":", 1)[1])
    await cvat.stop()
    await _confirm(user)
    await user.expect_message("not answering", timeout=30)
    await cvat.start(host="127.0.0.1", port=port)
    await user.press("🔄 Try again")
    await user.expect_message("Your CVAT login", timeout=30)
    assert len(cvat.tasks) == 1 and len(_candidate_accounts(cvat)) == 1


async def test_task_that_stays_empty_is_never_handed_out(user: TelegramUser, cvat: CvatServer,
                                                         db: Database) -> None:
    cvat.empty_task_failure = True
    await _confirm(user)
    await user.expect_message("went wrong", timeout=30)
    assert cvat.tasks == {}
    assert "Your CVAT login" not in user.transcript()
    cvat.empty_task_failure = False
    await user.press("🔄 Try again")
    await user.expect_message("Your CVAT login", timeout=30)
    assert len(cvat.tasks) == 1


async def test_a_name_taken_meanwhile_gets_a_new_one(user: TelegramUser, cvat: CvatServer,
                                                     db: Database) -> None:
    """A build interrupted after reserving a name; by the retry another account has it."""
    await db.execute("INSERT INTO candidates (telegram_id, full_name, cvat_username,"
                     " cvat_password) VALUES (%s, 'Anna', 'cand_taken', 'Old-Passw0rd-x')",
                     (user.id,))
    cvat.add_user("cand_taken", "Someone-Elses-1")
    await _confirm(user)
    login = read_login(await user.expect_message("Your CVAT login", timeout=30))
    assert login.username != "cand_taken"
    assert cvat.users_by_name("cand_taken").password == "Someone-Elses-1"  # untouched


async def test_an_email_taken_gets_a_new_name(user: TelegramUser, cvat: CvatServer,
                                              db: Database, settings: Settings) -> None:
    await db.execute("INSERT INTO candidates (telegram_id, full_name, cvat_username,"
                     " cvat_password) VALUES (%s, 'Anna', 'cand_mail', 'Old-Passw0rd-x')",
                     (user.id,))
    cvat.add_user("somebody", "Someone-Elses-1",
                  email=f"cand_mail@{settings.cvat_email_domain}")
    await _confirm(user)
    login = read_login(await user.expect_message("Your CVAT login", timeout=30))
    assert login.username not in ("cand_mail", "somebody")


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["503", "dropped", "timeout"])
@pytest.mark.parametrize("step", list(GRADING_STEPS))
async def test_cvat_failing_while_grading(
    step: str, fault: str, quick_timeout_bot: BotApp, telegram: TelegramServer,
    cvat: CvatServer, db: Database,
) -> None:
    user = telegram.user(5002, first_name="Oleg", language_code="en")
    login = await get_task(user)
    await annotate(login)
    method, path = GRADING_STEPS[step]
    cvat.fail_next(method, path, **FAULTS[fault])
    await submit(user)
    await user.expect_edit(TROUBLE, timeout=60)
    status = await db.fetchval("SELECT status FROM attempts")
    assert status == "ready"  # not used up, not lost
    assert await db.fetchval("SELECT count(*) FROM metrics") == 0
    cvat.clear_faults()
    await user.press("🔄 Try again")
    await user.expect_edit("Thank you!", timeout=30)
    assert await db.fetchval("SELECT count(*) FROM metrics") == 1
    assert await db.fetchval("SELECT status FROM attempts") == "graded"
