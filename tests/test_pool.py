"""The warm pool: accounts and tasks made in advance, handed out in one CVAT round trip, refilled
in the background, checked against CVAT, kept across restarts and within their size."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from config.env import Settings
from connection import AsyncCvatClient, CvatClient
from db import Database
from sandbox.candidate import TASK_SET, annotate
from sandbox.cvat import CvatServer
from sandbox.cvat_client import AsyncSandboxCvatClient
from sandbox.telegram import TelegramServer, TelegramUser
from tasks_generator.pool import PoolKeeper, pool_counts
from tasks_generator.task_set import load_task_set
from tests.conftest import CVAT_ADMIN_PASSWORD, CVAT_ADMIN_USERNAME, HANG, BotApp
from tests.flow import bot_process_env, get_task, start_bot_process, submit, wait_for_pool

POOL_ON = {"pool_accounts": 3, "pool_tasks": 3, "pool_accounts_refill_below": 3,
           "pool_tasks_refill_below": 3}
StartApp = Callable[..., Awaitable[BotApp]]


@pytest.fixture
def pool_app(app_with: StartApp) -> StartApp:
    """Start the production bot with the warm pool on (3 and 3) and some settings changed."""

    async def start(**changes: object) -> BotApp:
        return await app_with(**{**POOL_ON, **changes})

    return start


def pooled_names(cvat: CvatServer) -> list[str]:
    return sorted(t.name for t in cvat.tasks.values() if t.name.startswith("Annotation test"))


def candidate_users(cvat: CvatServer) -> list[str]:
    return sorted(u.username for u in cvat.users.values() if u.username.startswith("cand"))


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("inactive", [True, False], ids=["inactive-accounts", "active-accounts"])
async def test_warm_pool_gives_credentials_after_one_cvat_round_trip(
        pool_app: StartApp, telegram: TelegramServer, cvat: CvatServer, db: Database,
        inactive: bool) -> None:
    # Latency makes the round trips visible; refilling waits until two are taken, so every
    # CVAT call made between the press and the credentials is the candidate's.
    cvat.latency = 0.15
    await pool_app(pool_accounts_refill_below=2, pool_tasks_refill_below=2,
                   pool_inactive_accounts=inactive)
    await wait_for_pool(db, 3, 3)
    pooled = await db.fetchone("SELECT cvat_username, cvat_password, cvat_user_id FROM"
                               " pool_accounts WHERE status = 'ready' ORDER BY id LIMIT 1")
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))
    if inactive:  # nobody can use a pooled account before it is handed out
        assert await admin.verify_credentials(pooled["cvat_username"],
                                              pooled["cvat_password"]) is None
    user = telegram.user(5001, first_name="Maria", last_name="Lopez", language_code="en")
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    before = len(cvat.request_times)
    await user.press("✅ Yes, create my task")
    credentials = await user.expect_message("Your CVAT login", timeout=10)
    path = cvat.request_times[before:]
    assert pooled["cvat_username"] in credentials.text
    job = next(j for j in cvat.jobs.values() if j.assignee_id == pooled["cvat_user_id"])
    expected = {("PATCH", f"/api/jobs/{job.id}")}
    if inactive:
        expected.add(("PATCH", f"/api/users/{pooled['cvat_user_id']}"))
    assert {(method, where) for method, where, _, _ in path} == expected
    assert len(path) == len(expected)
    if inactive:  # activation and assignment went out together: one round trip
        assert overlap(path[0][2:], path[1][2:])
        account = cvat.users[pooled["cvat_user_id"]]
        assert account.is_active and (account.first_name, account.last_name) == ("Maria",
                                                                                   "Lopez")
    await user.expect_message("What to do")
    # The candidate works and is graded as with a task built for them.
    login = await admin.verify_credentials(pooled["cvat_username"], pooled["cvat_password"])
    assert login is not None
    await annotate_and_submit(user, credentials)
    await admin.close()
    counts = await pool_counts(db)
    assert (counts.accounts_ready, counts.tasks_ready) == (2, 2)


async def annotate_and_submit(user: TelegramUser, credentials: object) -> None:
    from tests.flow import read_login

    await annotate(read_login(credentials))  # type: ignore[arg-type]
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)


async def test_twenty_candidates_at_once_drain_and_refill_without_a_double_hand_out(
        pool_app: StartApp, telegram: TelegramServer, cvat: CvatServer, db: Database) -> None:
    cvat.latency = 0.02
    await pool_app()
    await wait_for_pool(db, 3, 3)
    sizes: list[tuple[int, int]] = []

    async def watch() -> None:
        while True:
            counts = await pool_counts(db)
            sizes.append((counts.accounts_ready + counts.accounts_creating,
                          counts.tasks_ready + counts.tasks_creating))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    users = [telegram.user(6000 + i, first_name=f"Cand{i}", language_code="en")
             for i in range(20)]
    logins = await asyncio.gather(*(get_task(u) for u in users))
    await wait_for_pool(db, 3, 3)
    watcher.cancel()
    assert max(a for a, _ in sizes) <= 3 and max(t for _, t in sizes) <= 3
    # Twenty different accounts, each assigned exactly one job, none shared.
    assert len({login.username for login in logins}) == 20
    handed = await db.fetchall("SELECT candidate_id, cvat_username, cvat_password"
                               " FROM pool_accounts WHERE status = 'handed_out'")
    # The pool forgets a password at hand-out: the candidate's row has it from then on.
    assert all(r["cvat_password"] is None for r in handed)
    tasks = await db.fetchall("SELECT attempt_id, cvat_task_id FROM pool_tasks"
                              " WHERE status = 'handed_out'")
    # The pool served the first comers (its two first-attempt tasks), the rest were built.
    assert len(handed) >= 3 and len(tasks) >= 2
    assert len({r["candidate_id"] for r in handed}) == len(handed)
    assert len({r["attempt_id"] for r in tasks}) == len(tasks)
    by_name = {u.username: u.id for u in cvat.users.values()}
    assignees = [j.assignee_id for j in cvat.jobs.values() if j.assignee_id is not None]
    assert sorted(assignees) == sorted(by_name[login.username] for login in logins)
    attempts = await db.fetchall("SELECT cvat_task_id FROM attempts WHERE status = 'ready'")
    assert len({r["cvat_task_id"] for r in attempts}) == 20
    # On CVAT: the 20 candidates' accounts and tasks plus a full pool, nothing more.
    assert len(candidate_users(cvat)) == 23
    assert len(cvat.tasks) == 23
    assert all(cvat.users[by_name[login.username]].is_active for login in logins)


async def test_a_pooled_task_deleted_on_cvat_is_never_handed_out(
        pool_app: StartApp, telegram: TelegramServer, cvat: CvatServer, db: Database) -> None:
    await pool_app()
    await wait_for_pool(db, 3, 3)
    # The task next in line, and the account next in line, deleted by hand on CVAT.
    row = await db.fetchone("SELECT cvat_task_id, image_subset FROM pool_tasks"
                            " WHERE status = 'ready' ORDER BY id LIMIT 1")
    first = tuple(row["image_subset"])
    account = await db.fetchone("SELECT cvat_user_id FROM pool_accounts WHERE status = 'ready'"
                                " ORDER BY id LIMIT 1")
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))
    await admin.delete_task(row["cvat_task_id"])
    await admin.delete_user(account["cvat_user_id"])
    await admin.close()
    user = telegram.user(7001, first_name="Ivan", language_code="en")
    login = await get_task(user)
    job_id, frames = await annotate(login)
    job = cvat.jobs[job_id]
    assert job.task_id != row["cvat_task_id"] and job.task_id in cvat.tasks
    assert frames == list(first)
    assert cvat.users[job.assignee_id].username == login.username
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    attempt = await db.fetchone("SELECT status, cvat_task_id FROM attempts")
    assert attempt == {"status": "graded", "cvat_task_id": job.task_id}


async def test_the_keeper_replaces_what_was_deleted_on_cvat(
        pool_app: StartApp, cvat: CvatServer, db: Database) -> None:
    await pool_app(pool_check_interval_seconds=1)
    await wait_for_pool(db, 3, 3)
    tasks = await db.fetchall("SELECT cvat_task_id FROM pool_tasks WHERE status = 'ready'")
    users = await db.fetchall("SELECT cvat_user_id FROM pool_accounts WHERE status = 'ready'")
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))
    await admin.delete_task(tasks[0]["cvat_task_id"])
    await admin.delete_user(users[0]["cvat_user_id"])
    await admin.close()
    deadline = time.monotonic() + HANG
    while True:
        now_tasks = {r["cvat_task_id"] for r in await db.fetchall(
            "SELECT cvat_task_id FROM pool_tasks WHERE status = 'ready'")}
        now_users = {r["cvat_user_id"] for r in await db.fetchall(
            "SELECT cvat_user_id FROM pool_accounts WHERE status = 'ready'")}
        if (len(now_tasks) == 3 and len(now_users) == 3
                and tasks[0]["cvat_task_id"] not in now_tasks
                and users[0]["cvat_user_id"] not in now_users):
            break
        assert time.monotonic() < deadline, "the gone task and account were not replaced"
        await asyncio.sleep(0.1)
    assert now_tasks <= set(cvat.tasks) and now_users <= set(cvat.users)


async def test_second_attempt_takes_a_pooled_task_only_without_repeats(
        pool_app: StartApp, telegram: TelegramServer, db: Database) -> None:
    await pool_app()
    await wait_for_pool(db, 3, 3)
    ready = await db.fetchall("SELECT image_subset FROM pool_tasks WHERE status = 'ready'")
    # Every pooled task is a draw of its own, stratified as an attempt's is.
    assert all(TASK_SET.fits(r["image_subset"]) for r in ready)
    assert len({tuple(r["image_subset"]) for r in ready}) == 3
    user = telegram.user(8001, first_name="Zoe", language_code="en")
    first = await get_task(user)
    _, first_frames = await annotate(first)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=20)
    await wait_for_pool(db, 3, 3)
    fitting = [r["id"] for r in await db.fetchall(
        "SELECT id FROM pool_tasks WHERE status = 'ready' AND NOT image_subset && %s::text[]"
        " ORDER BY id", (first_frames,))]
    second = await get_task(user, new_attempt=True)
    assert second.username == first.username
    _, frames = await annotate(second)
    assert not set(frames) & set(first_frames)  # nothing the candidate had before
    taken = await db.fetchval("SELECT p.id FROM pool_tasks p JOIN attempts a"
                              " ON a.id = p.attempt_id WHERE a.number = 2")
    # The oldest pooled task without a seen image, or (none fits) a task built on demand.
    assert taken == (fitting[0] if fitting else None)


async def test_pool_survives_a_restart_and_a_crash_mid_build_without_growing(
        settings: Settings, cvat: CvatServer, db: Database) -> None:
    pool_settings = dataclasses.replace(settings, **POOL_ON, build_lease_seconds=2)
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))
    # A keeper stops while CVAT hangs on every image upload: rows are left half made.
    cvat.fail_next("POST", r"/api/tasks/\d+/data", hang=True, count=10)
    doomed = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD,
                                        timeout=1.0, retries=0))
    keeper = asyncio.create_task(PoolKeeper(db, doomed, pool_settings, TASK_SET).run())
    deadline = time.monotonic() + HANG
    while len(pooled_names(cvat)) < 3 or (await pool_counts(db)).accounts_ready < 3:
        assert time.monotonic() < deadline, "the pool never started its tasks"
        await asyncio.sleep(0.05)
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    await doomed.close()
    counts = await pool_counts(db)
    assert (counts.accounts_ready, counts.tasks_ready, counts.tasks_creating) == (3, 0, 3)
    # A clean stop frees its half-made rows for the next process at once...
    assert await db.fetchval("SELECT count(*) FROM pool_tasks WHERE lease_until IS NOT NULL") \
        == 0
    # ...a crash does not: its leases have to run out first (2 s here).
    await db.execute("UPDATE pool_tasks SET lease_until = now() + interval '2 seconds'")
    cvat.clear_faults()
    users_before = candidate_users(cvat)
    second = asyncio.create_task(PoolKeeper(db, admin, pool_settings, TASK_SET).run())
    try:
        await wait_for_pool(db, 3, 3)
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    # The half-made tasks were finished (found by name), not made a second time.
    assert len(pooled_names(cvat)) == 3 == len(set(pooled_names(cvat)))
    assert all(len(t.frames) == 12 for t in cvat.tasks.values())
    assert candidate_users(cvat) == users_before
    # A restart with the pool full: nothing is made or deleted, the same things are reused.
    ready = await db.fetchall("SELECT id FROM pool_tasks WHERE status = 'ready' ORDER BY id")
    third = asyncio.create_task(PoolKeeper(db, admin, pool_settings, TASK_SET).run())
    await asyncio.sleep(1.5)
    third.cancel()
    await asyncio.gather(third, return_exceptions=True)
    assert await db.fetchall("SELECT id FROM pool_tasks WHERE status = 'ready' ORDER BY id") \
        == ready
    assert len(pooled_names(cvat)) == 3
    await admin.close()


async def test_a_smaller_pool_or_none_deletes_what_is_over(
        settings: Settings, cvat: CvatServer, db: Database) -> None:
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))

    async def keep(**sizes: int) -> None:
        keeper = PoolKeeper(db, admin, dataclasses.replace(settings, **{**POOL_ON, **sizes}),
                            TASK_SET)
        for _ in range(3):
            await keeper.refill()

    await keep()
    assert (len(candidate_users(cvat)), len(pooled_names(cvat))) == (3, 3)
    await keep(pool_accounts=1, pool_tasks=1)
    assert (len(candidate_users(cvat)), len(pooled_names(cvat))) == (1, 1)
    # Switched off: the keeper deletes the rest and stops by itself.
    off = dataclasses.replace(settings, pool_accounts=0, pool_tasks=0)
    await asyncio.wait_for(PoolKeeper(db, admin, off, TASK_SET).run(), HANG)
    assert (candidate_users(cvat), pooled_names(cvat)) == ([], [])
    assert await db.fetchval("SELECT count(*) FROM pool_tasks") == 0
    await admin.close()


async def test_pool_off_registers_and_creates_the_task_at_the_same_time(
        pool_app: StartApp, telegram: TelegramServer, cvat: CvatServer, db: Database) -> None:
    cvat.latency = 0.2
    await pool_app(pool_accounts=0, pool_tasks=0)
    user = telegram.user(9001, first_name="Omar", language_code="en")
    await get_task(user)
    times = {(m, p.rstrip("0123456789")): (a, b) for m, p, a, b in cvat.request_times}
    # The account (register, look up, set the role) and the task (look up its name, create,
    # upload) are two chains of calls; the task is created while the account is being made.
    register = times[("POST", "/api/auth/register")]
    role = times[("PATCH", "/api/users/")]
    create = times[("POST", "/api/tasks")]
    assert register[0] < create[0] < role[1]
    assert await db.fetchval("SELECT count(*) FROM pool_accounts") == 0
    assert pooled_names(cvat) == []


async def test_a_bot_killed_while_filling_the_pool_never_makes_more_than_its_size(
        telegram: TelegramServer, cvat: CvatServer, database_url: str, db: Database,
        tmp_path: Path) -> None:
    cvat.processing_time = 3.0  # the pool's tasks are mid-processing when the bot dies
    env = bot_process_env(telegram.base_url, cvat.base_url, database_url, tmp_path,
                          BUILD_LEASE_SECONDS="2")
    bot = await start_bot_process(env)
    try:
        deadline = time.monotonic() + HANG
        while sum("/data" in path for _, path, *_ in cvat.request_log) < 3:
            assert time.monotonic() < deadline, "the pool never started uploading"
            await asyncio.sleep(0.05)
        bot.send_signal(signal.SIGKILL)
        await bot.wait()
        counts = await pool_counts(db)
        assert counts.tasks_ready == 0 and counts.tasks_creating == 3
        cvat.processing_time = 0.2
        bot = await start_bot_process(env)
        await wait_for_pool(db, 3, 3)
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
            await asyncio.wait_for(bot.wait(), HANG)
    # The interrupted tasks were finished under their names, not made again; no extra account.
    assert len(pooled_names(cvat)) == 3 == len(set(pooled_names(cvat)))
    assert len(cvat.tasks) == 3 and all(len(t.frames) == 12 for t in cvat.tasks.values())
    assert len(candidate_users(cvat)) == 3


async def test_tasks_of_images_no_attempt_gets_any_more_are_replaced(
        settings: Settings, cvat: CvatServer, db: Database) -> None:
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))
    pool_settings = dataclasses.replace(settings, **POOL_ON)
    for task_set in (TASK_SET, load_task_set(TASK_SET.folder, 8)):  # IMAGES_PER_TASK changed
        keeper = PoolKeeper(db, admin, pool_settings, task_set)
        for _ in range(3):
            await keeper.refill()
    await admin.close()
    assert sorted(len(t.frames) for t in cvat.tasks.values()) == [8, 8, 8]
    subsets = await db.fetchall("SELECT image_subset FROM pool_tasks WHERE status = 'ready'")
    assert all(len(r["image_subset"]) == 8 for r in subsets) and len(subsets) == 3


async def test_one_pooled_task_failing_unforeseen_does_not_stop_the_others(
        settings: Settings, cvat: CvatServer, db: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    # CVAT (or a proxy before it) answers the job list of one pooled task with a body no CVAT
    # sends: that build fails with an error nobody foresaw, not a CVAT error.
    cvat.fail_next("GET", r"^/api/jobs\?task_id=", status=200,
                   body={"count": 1, "next": None, "previous": None, "results": [{"id": None}]})
    admin = AsyncCvatClient(CvatClient(cvat.base_url, CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD))
    keeper = asyncio.create_task(PoolKeeper(db, admin, dataclasses.replace(settings, **POOL_ON),
                                            TASK_SET).run())
    try:
        deadline = time.monotonic() + 20
        while (await pool_counts(db)).tasks_ready < 2 or (await pool_counts(db)).accounts_ready < 3:
            assert time.monotonic() < deadline, "the other pooled things were not made"
            await asyncio.sleep(0.05)
        broken = await db.fetchone("SELECT id, cvat_task_id, failures, lease_until > now()"
                                   " + interval '5 seconds' AS paused FROM pool_tasks"
                                   " WHERE status = 'creating'")
        assert broken["failures"] == 1 and broken["paused"]
        assert f"pool_tasks row {broken['id']} failed" in caplog.text
        assert "TypeError" in caplog.text
        # Not retried in a tight loop: nothing more is asked about that task for a while,
        # while the keeper goes on looking every second.
        seen = len(cvat.request_log)
        await asyncio.sleep(2.5)
        assert not [p for _, p, *_ in cvat.request_log[seen:] if str(broken["cvat_task_id"]) in p]
        assert not keeper.done()
        # When its pause is over it is finished under its name: three tasks, none made twice.
        await db.execute("UPDATE pool_tasks SET lease_until = now() WHERE id = %s",
                         (broken["id"],))
        await wait_for_pool(db, 3, 3)
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await admin.close()
    assert len(pooled_names(cvat)) == 3 == len(cvat.tasks)


async def test_the_check_is_two_list_calls_and_leaves_what_is_not_ours_alone(
        settings: Settings, cvat: CvatServer, db: Database) -> None:
    admin = AsyncSandboxCvatClient.connect(cvat.base_url, CVAT_ADMIN_USERNAME,
                                           CVAT_ADMIN_PASSWORD)
    keeper = PoolKeeper(db, admin, dataclasses.replace(settings, **POOL_ON), TASK_SET)
    for _ in range(3):
        await keeper.refill()
    await wait_for_pool(db, 3, 3)
    task = await db.fetchone("SELECT cvat_task_id, cvat_job_id FROM pool_tasks ORDER BY id"
                             " LIMIT 1")
    account = await db.fetchone("SELECT cvat_user_id FROM pool_accounts ORDER BY id LIMIT 1")
    # By hand on CVAT: somebody takes a pooled job for a colleague, another activates an
    # account; CVAT is reset under a third, which now has another task's job id.
    colleague = await admin.register_user("colleague", "Colle4gue-Passw0rd", "c@example.com")
    await admin.assign_job(task["cvat_job_id"], colleague.id)
    await admin.set_user_active(account["cvat_user_id"], True)
    await db.execute("UPDATE pool_tasks SET cvat_job_id = %s WHERE cvat_task_id = (SELECT"
                     " max(cvat_task_id) FROM pool_tasks)", (task["cvat_job_id"],))
    before = len(cvat.request_log)
    assert await keeper.check() == 3
    assert [(m, p) for m, p, *_ in cvat.request_log[before:]] == [("GET", "/api/users"),
                                                                  ("GET", "/api/jobs")]
    # Left alone on CVAT, as they are; replaced in the pool by new ones.
    assert cvat.jobs[task["cvat_job_id"]].assignee_id == colleague.id
    assert cvat.users[account["cvat_user_id"]].is_active
    assert len(cvat.tasks) == 3
    for _ in range(3):
        await keeper.refill()
    await wait_for_pool(db, 3, 3)
    assert len(cvat.tasks) == 5 and len(candidate_users(cvat)) == 4
    ready = await db.fetchall("SELECT cvat_task_id FROM pool_tasks WHERE status = 'ready'")
    assert task["cvat_task_id"] not in {r["cvat_task_id"] for r in ready}
    await admin.close()
