"""Two deployments of the bot on one CVAT (a staging bot beside production, a database reset or
restored from an older backup): each with its own database, neither ever hands the other's
tasks or accounts to its candidates, also when it resumes builds a crash interrupted, and also
when it carries the other's mark (a backup of the other's database)."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from config.env import Settings
from connection import AsyncCvatClient, CvatClient
from db import Database
from sandbox.candidate import TASK_SET, annotate
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer
from tasks_generator.attempts import task_name
from tasks_generator.installation import installation_mark
from tasks_generator.pool import pooled_task_name
from tests.conftest import TEMPLATE_DB, BotApp, PgServer
from tests.flow import get_task, read_login, wait_for_pool
from tests.test_pool import POOL_ON

SECOND_BOT_TOKEN = "7012345679:AAF-second-bot-token-for-the-sandbox-0123"
pytestmark = pytest.mark.slow


@pytest.fixture
async def second_db(pg_server: PgServer) -> AsyncIterator[Database]:
    """Another fresh, migrated database: the second deployment's."""
    name = f"cbt_{uuid.uuid4().hex[:12]}"
    pg_server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    database = Database(pg_server.url(name))
    try:
        yield database
    finally:
        await database.close()
        with contextlib.suppress(Exception):
            pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def recorded(db: Database) -> tuple[set[int], set[int], dict[int, int]]:
    """(CVAT task ids, CVAT user ids, job id -> assignee) a deployment's database holds."""
    tasks = {r["cvat_task_id"] for r in await db.fetchall(
        "SELECT cvat_task_id FROM attempts UNION SELECT cvat_task_id FROM pool_tasks")}
    users = {r["cvat_user_id"] for r in await db.fetchall(
        "SELECT cvat_user_id FROM candidates UNION SELECT cvat_user_id FROM pool_accounts")}
    given = {r["cvat_job_id"]: r["cvat_user_id"] for r in await db.fetchall(
        "SELECT a.cvat_job_id, c.cvat_user_id FROM attempts a JOIN candidates c"
        " ON c.id = a.candidate_id WHERE a.cvat_job_id IS NOT NULL")}
    return tasks - {None}, users - {None}, given


@pytest.mark.parametrize("shared_mark", [False, True],
                         ids=["another-deployment", "restored-from-an-older-backup"])
async def test_two_bots_on_one_cvat_never_hand_out_each_others_tasks_or_accounts(
        telegram: TelegramServer, cvat: CvatServer, settings: Settings, db: Database,
        second_db: Database, shared_mark: bool) -> None:
    # Deployment A: one candidate built on demand, one from its warm pool; both annotate.
    first = BotApp(settings, db)
    await first.start()
    anna = telegram.user(4101, first_name="Anna", last_name="Smith")
    anna_job, _ = await annotate(await get_task(anna))
    await first.stop()
    first = BotApp(dataclasses.replace(settings, **POOL_ON), db)
    await first.start()
    await wait_for_pool(db, 3, 3)
    boris = telegram.user(4102, first_name="Boris", last_name="Ivanov")
    boris_login = await get_task(boris)
    boris_job, _ = await annotate(boris_login)
    await wait_for_pool(db, 3, 3)
    await first.stop()
    a_tasks, a_users, a_given = await recorded(db)
    a_mark = await db.run(installation_mark)
    shapes = {job: len(cvat.jobs[job].shapes) for job in (anna_job, boris_job)}

    # Deployment B: its own database (with A's mark if it is a backup of A's from before any
    # of this), and what a crash left half made in it: its candidate #1's attempt #1, three
    # pooled tasks, and a pooled account under the name of the one A gave Boris (a backup
    # would hold its password too). The rows are dated as a restore makes them: well after
    # A's objects (longer than the minute CVAT's clock and the database's may differ by).
    later = "now() + interval '2 minutes'"
    if shared_mark:
        await second_db.execute("INSERT INTO installation (mark) VALUES (%s)", (a_mark,))
    mark = await second_db.run(installation_mark)
    assert (mark == a_mark) is shared_mark
    clara_id = await second_db.fetchval(
        "INSERT INTO candidates (telegram_id, full_name, created_at)"
        f" VALUES (4201, 'Clara', {later}) RETURNING id")
    attempt_id = await second_db.fetchval(
        "INSERT INTO attempts (candidate_id, number, task_set, image_subset, lease_until,"
        f" created_at) VALUES (%s, 1, %s, %s, now() - interval '1 min', {later}) RETURNING id",
        (clara_id, TASK_SET.name, list(TASK_SET.reference_images)))
    await second_db.execute("UPDATE attempts SET cvat_task_name = %s WHERE id = %s",
                            (task_name(clara_id, 1, attempt_id, mark), attempt_id))
    for row_id, subset in zip((1, 2, 3), (0, 0, 1), strict=True):
        await second_db.execute(
            "INSERT INTO pool_tasks (id, task_set, image_subset, cvat_task_name, lease_until,"
            f" created_at) VALUES (%s, %s, %s, %s, now() - interval '1 min', {later})",
            (row_id, TASK_SET.name, list(TASK_SET.draw(rng=random.Random(subset))),
             pooled_task_name(row_id, mark)))
    await second_db.execute("SELECT setval(pg_get_serial_sequence('pool_tasks', 'id'), 3)")
    await second_db.execute(
        "INSERT INTO pool_accounts (cvat_username, cvat_password, lease_until, created_at)"
        f" VALUES (%s, %s, now() - interval '1 min', {later})",
        (boris_login.username, boris_login.password if shared_mark else "Other-Passw0rd-42"))
    if shared_mark:  # the collisions are real: the same names as A's
        assert task_name(clara_id, 1, attempt_id, mark) in {t.name for t in cvat.tasks.values()}
        assert pooled_task_name(1, mark) in {t.name for t in cvat.tasks.values()}

    telegram.add_bot(SECOND_BOT_TOKEN, username="second_test_bot", first_name="Second")
    second = BotApp(dataclasses.replace(settings, **POOL_ON, bot_token=SECOND_BOT_TOKEN),
                    second_db)
    await second.start()
    try:
        clara = telegram.user(4201, first_name="Clara", bot=SECOND_BOT_TOKEN)
        await clara.expect_message("Your test task is ready", timeout=20)
        clara_login = read_login(await clara.expect_message("Your CVAT login"))
        await wait_for_pool(second_db, 3, 3, within=30)
        dmitri = telegram.user(4202, first_name="Dmitri", last_name="Orlov",
                               bot=SECOND_BOT_TOKEN)
        dmitri_login = await get_task(dmitri)
        await wait_for_pool(second_db, 3, 3, within=30)
    finally:
        await second.stop()

    b_tasks, b_users, b_given = await recorded(second_db)
    assert not b_tasks & a_tasks and not b_users & a_users
    # Every job B gave its candidates is in a task B made, assigned to an account B made.
    for job_id, user_id in b_given.items():
        assert cvat.jobs[job_id].task_id in b_tasks - a_tasks
        assert cvat.jobs[job_id].assignee_id == user_id and user_id in b_users - a_users
    assert {clara_login.username, dmitri_login.username}.isdisjoint(
        {cvat.users[u].username for u in a_users})
    # A's candidates still have their jobs, their work and their logins; nothing of A's went.
    for job_id, user_id in a_given.items():
        assert cvat.jobs[job_id].assignee_id == user_id
    assert {job: len(cvat.jobs[job].shapes) for job in shapes} == shapes
    assert a_tasks <= set(cvat.tasks) and a_users <= set(cvat.users)
    admin = AsyncCvatClient(CvatClient(cvat.base_url, settings.cvat_admin_username,
                                       settings.cvat_admin_password))
    try:
        assert await admin.verify_credentials(boris_login.username, boris_login.password)
        assert cvat.users_by_name(boris_login.username).first_name == "Boris"
    finally:
        await admin.close()
