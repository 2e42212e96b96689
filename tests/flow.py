"""Helpers for end-to-end tests: a candidate who takes the test through the bot and does the
annotation on the CVAT stand-in with the login the bot sent, as a person would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.env import PROJECT_DIR
from connection import AsyncCvatClient, CvatClient, CvatError
from db import Database
from sandbox.telegram import BotMessage, TelegramUser
from tasks_generator.pool import pool_counts
from tasks_generator.task_set import load_task_set
from tests.bench.tasks import DEFAULT_SET_XML

TASK_SET = load_task_set(DEFAULT_SET_XML.parent)
# Seconds a test waits for something the bot does before calling it a hang. The waits return
# as soon as the event happens; only a hang (or a bug) ever reaches this bound, however busy
# the machine is, so it is the same for every wait.
HANG = 90.0


@dataclass(frozen=True)
class Login:
    """The credentials as the candidate read them in the chat."""

    url: str
    username: str
    password: str


def read_login(message: BotMessage) -> Login:
    """Login, password and link from the credentials message."""
    text = message.text
    url = re.search(r"(?:Link|Ссылка): (\S+)", text)
    username = re.search(r"(?:Login|Логин): (\S+)", text)
    password = re.search(r"(?:Password|Пароль): (\S+)", text)
    assert url and username and password, f"no credentials in: {text!r}"
    return Login(url.group(1), username.group(1), password.group(1))


async def get_task(user: TelegramUser, *, new_attempt: bool = False) -> Login:
    """Ask for a (new) task, confirm, and wait for the credentials."""
    await user.send("🔁 New attempt" if new_attempt else "📝 Get a test task")
    await user.expect_message("Start attempt" if new_attempt else "Ready to start?")
    await user.press("✅ Yes, start a new attempt" if new_attempt else "✅ Yes, create my task")
    # Waits for the events themselves; the bound (the stand-in's expect_at_least in the
    # suite) is only for a hang.
    await user.expect_edit("Your test task is ready")
    login = read_login(await user.expect_message("Your CVAT login"))
    await user.expect_message("What to do")
    return login


async def attempt_images(db: Database, telegram_id: int, number: int = 1) -> tuple[str, ...]:
    """The images drawn for a candidate's attempt (every attempt draws its own)."""
    images = await db.fetchval(
        "SELECT a.image_subset FROM attempts a JOIN candidates c ON c.id = a.candidate_id"
        " WHERE c.telegram_id = %s AND a.number = %s", (telegram_id, number))
    assert images, f"candidate {telegram_id} has no attempt {number}"
    return tuple(images)


def text_update(user: TelegramUser, text: str) -> dict[str, Any]:
    """A Bot API update with a text message from this user in their private chat, as Telegram
    would post it (for feeding the dispatcher directly)."""
    number = next(_update_ids)
    return {"update_id": number, "message": {
        "message_id": number, "date": 0, "chat": user.as_chat(), "from": user.as_user(),
        "text": text}}


_update_ids = itertools.count(1_000_000)


def candidate_client(login: Login) -> AsyncCvatClient:
    """A CVAT client logged in as the candidate."""
    return AsyncCvatClient(CvatClient(login.url, login.username, login.password))


def perfect_shapes(frames: list[str], labels: list[dict[str, Any]],
                   only: set[str] | None = None, plate_texts: dict[str, str] | None = None,
                   ) -> list[dict[str, Any]]:
    """The ground truth itself, as the candidate would save it (optionally on some images only,
    optionally with some plate texts replaced: {right text: typed text})."""
    label_id = {lb["name"]: lb["id"] for lb in labels}
    spec_id = next(a["id"] for lb in labels if lb["name"] == "plate" for a in lb["attributes"])
    shapes = []
    for frame, name in enumerate(frames):
        if only is not None and name not in only:
            continue
        for shape in TASK_SET.ground_truth.images[name].shapes:
            attributes = []
            if shape.label == "plate":
                text = (plate_texts or {}).get(shape.text, shape.text)
                attributes = [{"spec_id": spec_id, "value": text}]
            shapes.append({
                "type": "rectangle", "frame": frame, "label_id": label_id[shape.label],
                "points": list(shape.points), "rotation": 0.0, "occluded": False,
                "outside": False, "z_order": 0, "group": 0, "source": "manual",
                "attributes": attributes,
            })
    return shapes


# The labels of a job as CVAT lists them (ids as the stand-in numbers them).
LABELS = [{"id": 1, "name": "car", "attributes": []},
          {"id": 2, "name": "plate", "attributes": [{"id": 3, "name": "plate"}]}]


def stored_work(images: list[str], shapes: list[dict[str, Any]]) -> str:
    """A submission as the bot stores it at Submit (attempts.submitted_annotations)."""
    from tasks_metrics.submission import stored_copy

    meta = {"start_frame": 0, "frames": [{"name": n, "width": 800, "height": 600}
                                         for n in images]}
    return stored_copy(json.dumps({"version": 0, "tags": [], "shapes": shapes, "tracks": []})
                       .encode(), LABELS, meta).decode()


async def candidate_job(client: AsyncCvatClient) -> tuple[int, list[str], list[dict[str, Any]]]:
    """The candidate's single job as they see it: its id, frame names and labels."""
    jobs = await client.visible_jobs()
    assert len(jobs) == 1, f"the candidate sees {len(jobs)} jobs"
    job = jobs[0]
    meta = await client.get_job_meta(job.id)
    # Frames from CVAT's share are named by their path there; the set names them by file.
    frames = [f["name"].rsplit("/", 1)[-1] for f in meta["frames"]]
    return job.id, frames, await client.get_labels(job_id=job.id)


async def save_shapes(client: AsyncCvatClient, job_id: int,
                      shapes: list[dict[str, Any]]) -> None:
    """Replace the job's annotations with `shapes`, as the candidate's CVAT UI saves them."""
    await client.put_job_annotations(job_id, {"version": 0, "tags": [], "shapes": shapes,
                                              "tracks": []})


async def annotate(login: Login, **options: Any) -> tuple[int, list[str]]:
    """Log in as the candidate, find their single job, save annotations; (job id, frames)."""
    client = candidate_client(login)
    try:
        job_id, frames, labels = await candidate_job(client)
        await save_shapes(client, job_id, perfect_shapes(frames, labels, **options))
        return job_id, frames
    finally:
        await client.close()


def bot_process_env(telegram_url: str, cvat_url: str, database_url: str, tmp_path: Path,
                    **extra: str) -> dict[str, str]:
    """The environment of `python main.py` against the stand-ins and this test's database."""
    from tests.conftest import BOT_TOKEN, CVAT_ADMIN_PASSWORD, CVAT_ADMIN_USERNAME

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({
        "ENV_FILE": str(tmp_path / "none.env"), "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram_url, "CVAT_URL": cvat_url,
        "CVAT_ADMIN_USERNAME": CVAT_ADMIN_USERNAME, "CVAT_ADMIN_PASSWORD": CVAT_ADMIN_PASSWORD,
        "DATABASE_URL": database_url, "LOG_DIR": str(tmp_path / "logs"),
        "LOG_TO_CONSOLE": "false", **extra,
    })
    return env


async def start_bot_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python main.py` as production starts it (with WORKERS worker processes of its own)."""
    return await asyncio.create_subprocess_exec(sys.executable, str(PROJECT_DIR / "main.py"),
                                                cwd=PROJECT_DIR, env=env)


async def start_worker_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python main.py worker`, as `./run.sh worker` starts it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_DIR / "main.py"), "worker", cwd=PROJECT_DIR, env=env)


async def wait_for_pool(db: Database, accounts: int, tasks: int, within: float = HANG) -> None:
    """Until exactly this many accounts and tasks are ready and none is being made."""
    deadline = time.monotonic() + within
    while True:
        counts = await pool_counts(db)
        if (counts.accounts_ready, counts.tasks_ready, counts.accounts_creating,
                counts.tasks_creating) == (accounts, tasks, 0, 0):
            return
        assert time.monotonic() < deadline, f"pool never reached {accounts}/{tasks}: {counts}"
        await asyncio.sleep(0.05)


async def delete_from_cvat(db: Database, admin: AsyncCvatClient) -> None:
    """Delete every task and account this database knows from CVAT (a real one is not thrown
    away after a run, as the stand-in is)."""
    tasks = await db.fetchall("SELECT cvat_task_id AS id FROM attempts UNION"
                              " SELECT cvat_task_id FROM pool_tasks")
    users = await db.fetchall("SELECT cvat_user_id AS id FROM candidates UNION"
                              " SELECT cvat_user_id FROM pool_accounts")
    for delete, rows in ((admin.delete_task, tasks), (admin.delete_user, users)):
        for row in rows:
            if row["id"] is not None:
                with contextlib.suppress(CvatError):
                    await delete(row["id"])


async def submit(user: TelegramUser) -> None:
    """✅ Submit and confirm it, as a candidate does (English texts)."""
    await user.send("✅ Submit")
    await user.expect_message("for grading?")
    await user.press("✅ Yes, submit it")
