"""What the handlers use from tasks_new: the same building as tasks_generator, for the next
attempt (allowed while attempts remain and any cooldown has passed)."""

from __future__ import annotations

from config.env import Settings
from connection import AsyncCvatClient
from db import Database
from tasks_generator.generation import Progress
from tasks_generator.task_set import TaskSet
from tasks_generator.to_handlers import TaskRequest, request_test_task


async def request_new_attempt(
    db: Database,
    cvat: AsyncCvatClient,
    settings: Settings,
    task_set: TaskSet,
    *,
    telegram_id: int,
    username: str | None,
    full_name: str,
    progress: Progress,
) -> TaskRequest:
    """Start the candidate's next attempt (or report why not: no attempts left, cooldown)."""
    return await request_test_task(
        db, cvat, settings, task_set, telegram_id=telegram_id, username=username,
        full_name=full_name, progress=progress, new_attempt=True,
    )


__all__ = ["TaskRequest", "request_new_attempt"]
