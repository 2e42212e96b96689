"""A candidate's CVAT account after the test: the password is forgotten once the last attempt
is graded, the account is deactivated some days later and HR can reactivate it; deleting the
data deletes the account (or deactivates it) and a return is shown to HR as such."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from db import Database
from sandbox.candidate import annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.conftest import HANG, HR_ADMIN_ID, BotApp
from tests.flow import get_task, submit
from tests.test_hr import find


async def _until(condition: Callable[[], Awaitable[bool]], what: str,
                 within: float = HANG) -> None:
    """Wait for something the bot does in the background; the bound is only for a hang."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        await asyncio.sleep(0.1)


async def test_after_the_last_graded_attempt_the_login_is_retired_step_by_step(
    telegram: TelegramServer, cvat: CvatServer, db: Database,
    app_with: Callable[..., Awaitable[BotApp]],
) -> None:
    await app_with(max_attempts=1, reconcile_interval_seconds=1, throttle_burst=1000)
    person = telegram.user(5101, first_name="Lena", username="lena_l", language_code="en")
    hr = telegram.user(HR_ADMIN_ID, first_name="Helen", language_code="en")
    await person.send("/start")
    login = await get_task(person)
    await annotate(login)
    await submit(person)
    await person.expect_edit("Thank you!")

    # Graded and no attempt left: the password is forgotten by the time the candidate is
    # thanked...
    assert await db.fetchval("SELECT cvat_password IS NULL FROM candidates") is True
    await person.send("🔑 My credentials")
    answer = await person.expect_message("no longer keeps your CVAT password")
    assert login.password not in answer.text
    # ...and the account stays usable for CVAT_DEACTIVATE_AFTER_DAYS (7) after the grading.
    account = cvat.users_by_name(login.username)
    assert account is not None and account.is_active
    await db.execute("UPDATE metrics SET graded_at = now() - interval '8 days'")

    async def deactivated() -> bool:
        return not account.is_active

    await _until(deactivated, "deactivating the account")
    await find(hr, "@lena_l")
    card = await hr.expect_message("deactivated")
    assert "🔓 Reactivate CVAT account" in str(card.buttons)
    await hr.press("🔓 Reactivate CVAT account")
    await hr.expect_message("can log in again")
    assert account.is_active

    # HR allow one more attempt: its login is a new account; the old one, whose password the
    # bot no longer has, is deleted.
    await find(hr, "@lena_l")
    await hr.expect_message("Lena")
    await hr.press("➕ One more attempt")
    await hr.expect_message("one more attempt?")
    await hr.press("✅ Yes, allow")
    await person.expect_message("the recruiter allowed you one more attempt")
    second = await get_task(person, new_attempt=True)
    assert second.username != login.username
    assert cvat.users_by_name(login.username) is None
    await annotate(second)  # the new login works


async def test_deleted_data_takes_the_account_along_and_a_return_is_marked(
    user: TelegramUser, hr_user: TelegramUser, cvat: CvatServer, db: Database
) -> None:
    await user.send("/start")
    login = await get_task(user)
    await user.send("🔑 My credentials")  # an action of their own in the action log
    await user.expect_message("Your CVAT login")
    await find(hr_user, "@anna_s")
    await hr_user.expect_message("Anna Smith")
    await hr_user.press("🧹 Delete data")
    await hr_user.expect_message("This cannot be undone")
    await hr_user.press("🕳 Forget this person")
    await hr_user.expect_edit("is deleted", timeout=10)
    assert cvat.users_by_name(login.username) is None
    assert not cvat.tasks  # their task went with the account
    for table, column in (("candidates", "telegram_id"), ("telegram_users", "telegram_id"),
                          ("fsm_storage", "user_id"), ("action_log", "actor_id")):
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = %s",
                                 (user.id,)) == 0, table
    tombstone = await db.fetchone("SELECT telegram_hash, attempts_used FROM deleted_candidates")
    assert tombstone is not None and str(user.id) not in tombstone["telegram_hash"]

    # The same person starts again: a new candidate with fresh attempts, marked for HR.
    await user.send("/start")
    again = await get_task(user)
    assert again.username != login.username
    await find(hr_user, "@anna_s")
    card = await hr_user.expect_message("Anna Smith")
    assert "Returning: their data was deleted on" in card.text
