"""The bot against a real CVAT, not the stand-in: skipped unless REAL_CVAT_URL is set, with a
superuser in REAL_CVAT_USERNAME and REAL_CVAT_PASSWORD (../shared/realcvat brings up a CVAT
2.73 on this machine: REAL_CVAT_URL=http://127.0.0.1:8080 REAL_CVAT_USERNAME=admin
REAL_CVAT_PASSWORD=AdminPass-123 ./run.sh test tests/test_real_cvat.py).

The candidate's journey, the warm pool, HR deleting an account, and work built to be
expensive; Telegram is the stand-in,
PostgreSQL real. Whatever a test made on that CVAT is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import log
from config.env import Settings
from connection import AsyncCvatClient, CvatAuthError, CvatForbidden, CvatNotFound
from db import Database
from sandbox.candidate import (
    TASK_SET,
    annotate,
    candidate_client,
    candidate_job,
    perfect_shapes,
    save_shapes,
)
from sandbox.telegram import TelegramServer
from tasks_generator.guide import guide_markdown
from tasks_generator.pool import PoolKeeper
from tests.conftest import HR_ADMIN_ID, BotApp, make_settings
from tests.flow import attempt_images, delete_from_cvat, get_task, submit, wait_for_pool
from tests.test_guide import read_guide
from tests.test_hr import find
from tests.test_pool import POOL_ON

REAL_CVAT_URL = os.environ.get("REAL_CVAT_URL", "")
pytestmark = [pytest.mark.skipif(not REAL_CVAT_URL, reason="REAL_CVAT_URL is not set"),
              pytest.mark.slow]
StartBot = Callable[..., Awaitable[BotApp]]


@pytest.fixture
def real_settings(telegram: TelegramServer, database_url: str, log_dir: object,
                  tmp_path: object) -> Settings:
    """Settings pointing at the real CVAT and this test's database."""
    username = os.environ.get("REAL_CVAT_USERNAME", "")
    password = os.environ.get("REAL_CVAT_PASSWORD", "")
    assert username and password, "set REAL_CVAT_USERNAME and REAL_CVAT_PASSWORD (a superuser)"
    log.register_secret(password)
    return make_settings(TELEGRAM_API_URL=telegram.base_url, CVAT_URL=REAL_CVAT_URL,
                         CVAT_ADMIN_USERNAME=username, CVAT_ADMIN_PASSWORD=password,
                         DATABASE_URL=database_url, DATA_DIR=f"{tmp_path}/data",
                         LOG_DIR=str(log_dir), THROTTLE_BURST="1000")


@pytest.fixture
async def admin(real_settings: Settings) -> AsyncIterator[AsyncCvatClient]:
    """The superuser's client, for looking at what the bot did."""
    client = AsyncCvatClient.from_settings(real_settings)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def start_bot(real_settings: Settings, db: Database,
                    admin: AsyncCvatClient) -> AsyncIterator[StartBot]:
    """Start the production bot against the real CVAT (settings changed as asked); at the end
    stop it and delete every task and account its database knows from CVAT."""
    apps: list[BotApp] = []

    async def start(**changes: object) -> BotApp:
        app = BotApp(dataclasses.replace(real_settings, **changes), db)
        await app.start()
        apps.append(app)
        return app

    try:
        yield start
    finally:
        for app in apps:
            await app.stop()
        await delete_from_cvat(db, admin)


async def test_a_candidate_takes_the_test_on_a_real_cvat(
        telegram: TelegramServer, start_bot: StartBot, db: Database,
        admin: AsyncCvatClient) -> None:
    await start_bot()
    user = telegram.user(7101, first_name="Real", last_name="Candidate", username="real_cand")
    await user.send("/start")
    await user.expect_message("Hello")
    login = await get_task(user)
    job_id, frames = await annotate(login)  # as a person: the account sees exactly one job
    assert frames == list(await attempt_images(db, user.id))
    # The guide sits in the CVAT task, and the candidate (a worker on the job) can read it.
    assert await asyncio.to_thread(read_guide, login) == guide_markdown(TASK_SET)
    job = await admin.get_job(job_id)
    assert (await admin.get_user(job.assignee_id)).username == login.username
    assert (await admin.get_user(job.assignee_id)).groups == ("worker",)
    await submit(user)
    await user.expect_edit("Thank you!", timeout=60)
    graded = await db.fetchone("SELECT m.car_iou, m.plate_iou, m.plate_accuracy FROM metrics m"
                               " JOIN attempts a ON a.id = m.attempt_id")
    assert graded == {"car_iou": pytest.approx(1.0), "plate_iou": pytest.approx(1.0),
                      "plate_accuracy": pytest.approx(1.0)}
    assert (await admin.get_job(job_id)).assignee_id is None  # locked: CVAT refuses edits now


async def test_the_warm_pool_on_a_real_cvat(
        telegram: TelegramServer, start_bot: StartBot, db: Database, admin: AsyncCvatClient,
        real_settings: Settings) -> None:
    await start_bot(**POOL_ON)
    await wait_for_pool(db, 3, 3, within=120)
    account = await db.fetchone("SELECT cvat_username, cvat_user_id FROM pool_accounts"
                                " WHERE status = 'ready' ORDER BY id LIMIT 1")
    task = await db.fetchone("SELECT cvat_task_id, cvat_job_id FROM pool_tasks WHERE status ="
                             " 'ready' ORDER BY id LIMIT 1")
    assert not (await admin.get_user(account["cvat_user_id"])).is_active  # until handed out
    user = telegram.user(7201, first_name="Pooled", last_name="Person")
    login = await get_task(user)
    assert login.username == account["cvat_username"]
    job_id, _ = await annotate(login)
    assert job_id == task["cvat_job_id"]
    handed = await admin.get_user(account["cvat_user_id"])
    assert handed.is_active and (handed.first_name, handed.last_name) == ("Pooled", "Person")
    await wait_for_pool(db, 3, 3, within=120)
    # A pooled task deleted by hand on CVAT: the keeper's check drops it, the pool replaces it.
    gone = await db.fetchone("SELECT cvat_task_id FROM pool_tasks WHERE status = 'ready'"
                             " ORDER BY id LIMIT 1")
    await admin.delete_task(gone["cvat_task_id"])
    keeper = PoolKeeper(db, admin, dataclasses.replace(real_settings, **POOL_ON), TASK_SET)
    assert await keeper.check() == 1
    await wait_for_pool(db, 3, 3, within=120)
    ready = await db.fetchall("SELECT cvat_task_id FROM pool_tasks WHERE status = 'ready'")
    assert gone["cvat_task_id"] not in {r["cvat_task_id"] for r in ready}


async def test_hr_deletes_a_candidates_account_on_a_real_cvat(
        telegram: TelegramServer, start_bot: StartBot, db: Database,
        admin: AsyncCvatClient) -> None:
    await start_bot()
    user = telegram.user(7301, first_name="Leaving", username="leaving_cand")
    login = await get_task(user)
    user_id = await db.fetchval("SELECT cvat_user_id FROM candidates")
    hr = telegram.user(HR_ADMIN_ID, first_name="Helen", username="helen_hr")
    await find(hr, "@leaving_cand")
    await hr.expect_message("Leaving")
    await hr.press("🗑 Delete CVAT account")
    await hr.expect_message("Delete the CVAT account")
    await hr.press("🗑 Yes, delete")
    await hr.expect_edit("is deleted", timeout=30)
    with pytest.raises(CvatNotFound):
        await admin.get_user(user_id)
    candidate = candidate_client(login)
    try:
        with pytest.raises(CvatAuthError):  # the candidate cannot sign in any more
            await candidate.whoami()
    finally:
        await candidate.close()


async def test_work_built_to_be_expensive_on_a_real_cvat(
        telegram: TelegramServer, start_bot: StartBot, db: Database,
        admin: AsyncCvatClient) -> None:
    """CVAT 2.73 saves a 100,000-vertex polygon and a 20,000 x 20,000 px mask from a worker;
    the bot refuses to grade them, names the image and the limit, and gives the job back."""
    await start_bot()
    user = telegram.user(7401, first_name="Heavy", username="heavy_cand")
    login = await get_task(user)
    client = candidate_client(login)
    try:
        job_id, frames, labels = await candidate_job(client)
        car = next(lb["id"] for lb in labels if lb["name"] == "car")
        n = 100_000
        polygon = [v for i in range(n) for v in (400 + 250 * math.cos(2 * math.pi * i / n),
                                                  300 + 200 * math.sin(2 * math.pi * i / n))]
        hostile = [*perfect_shapes(frames, labels),
                   {"type": "polygon", "frame": 0, "label_id": car, "points": polygon},
                   {"type": "mask", "frame": 1, "label_id": car,
                    "points": [0, 20_000 * 20_000, 0, 0, 19_999, 19_999]}]
        await save_shapes(client, job_id, hostile)
        await submit(user)
        answer = await user.expect_edit("I cannot check this work", timeout=60)
        assert f"on image {frames[0]} a shape has 100,000 points" in answer.text
        assert (await admin.get_job(job_id)).assignee_id is not None  # given back to fix
        assert await db.fetchval("SELECT status FROM attempts") == "ready"
        # Fixed: graded, and from then on CVAT refuses the candidate's edits.
        await save_shapes(client, job_id, perfect_shapes(frames, labels))
        await submit(user)
        await user.expect_edit("Thank you!", timeout=60)
        assert await db.fetchval("SELECT band FROM metrics") == "pass"
        with pytest.raises(CvatForbidden):
            await save_shapes(client, job_id, [])
    finally:
        await client.close()
