"""The bot's side of the work done in workers: each call queues a job and awaits its outcome,
which comes back as the same objects (and the same exceptions) as when the bot did the work
itself. The bot process makes no CVAT call and runs no grading."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot_files.jobs import JobKind, JobQueue, JobQueueName, wait_event, worker_name
from config.env import Settings
from db import DatabaseUnavailable
from tasks_generator.to_handlers import Credentials, Progress, TaskRequest
from tasks_metrics.to_handlers import GradingProcesses, SubmitOutcome

logger = logging.getLogger(__name__)


async def request_test_task(jobs: JobQueue, *, telegram_id: int, username: str | None,
                            full_name: str, progress: Progress,
                            new_attempt: bool = False) -> TaskRequest:
    """Find or build the candidate's test task in a worker, showing its progress; raises
    CvatError as the build did. A task this bot learns of after another process told the
    candidate (this bot was stopped too long) is "taken_over"."""
    async def show(changed: dict[str, Any]) -> None:
        for stage, (done, total) in changed.items():
            await progress(stage, done, total)

    job_id = await jobs.enqueue(JobKind.BUILD, {
        "telegram_id": telegram_id, "username": username, "full_name": full_name,
        "new_attempt": new_attempt})
    result: TaskRequest = await jobs.outcome(job_id, show)
    if result.kind == "created" and not await jobs.claim_delivery(job_id):
        return TaskRequest("taken_over", attempt=result.attempt, used=result.used,
                           allowed=result.allowed)
    return result


async def check_work(jobs: JobQueue, telegram_id: int) -> SubmitOutcome:
    """🔎 Check my work, in a worker (see tasks_metrics.submission.check_work)."""
    outcome: SubmitOutcome = await jobs.run(JobKind.CHECK, {"telegram_id": telegram_id})
    return outcome


async def submit_work(jobs: JobQueue, telegram_id: int) -> SubmitOutcome:
    """Submit, in a worker (see tasks_metrics.submission.submit_work); a worker that dies
    mid-way is replaced and the submission finished once."""
    outcome: SubmitOutcome = await jobs.run(JobKind.SUBMIT, {"telegram_id": telegram_id})
    return outcome


class RemoteGrader:
    """The grading processes as the bot's code calls them (`check`, `grade`, `pictures`,
    `scorecard`), each call done by a worker's own: the bot starts no grading process."""

    METHODS = frozenset({"check", "grade", "pictures", "scorecard"})

    def __init__(self, jobs: JobQueue, settings: Settings) -> None:
        self.jobs = jobs
        # The rules the bot's part of a re-grade (the flags) reads; no process is started.
        self.flag_rules = GradingProcesses.from_settings(settings).flag_rules

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method not in self.METHODS:
            raise AttributeError(method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.jobs.run(JobKind.GRADER, {"method": method},
                                       arguments=(args, kwargs))

        return call

    async def close(self) -> None:
        """Nothing to close here: the processes are the workers'."""


Deliver = Callable[[int, Credentials], Awaitable[None]]


class Postman:
    """Tells candidates what was finished while no bot waited for it: logins of builds a
    worker resumed after a crash (queued for the bot), and of builds whose asking bot stopped
    before the build ended. Each is claimed in the database before it is sent: one bot sends
    it, once."""

    def __init__(self, jobs: JobQueue, deliver: Deliver, settings: Settings) -> None:
        self.jobs = jobs
        self.deliver = deliver
        self.grace = timedelta(seconds=settings.build_lease_seconds)
        self.name = worker_name("bot")

    async def run(self) -> None:
        """Until cancelled; outages only postpone a delivery."""
        listener = self.jobs.listening()
        while True:
            try:
                await self.run_once()
            except DatabaseUnavailable as exc:
                logger.warning("logins not delivered now: %s", exc)
            except Exception:
                logger.exception("delivery pass failed; the next one tries again")
            await wait_event(listener.queued[JobQueueName.BOT], self.jobs.poll * 5)

    async def run_once(self) -> int:
        """Deliver what is due; how many logins went out."""
        sent = 0
        while (job := await self.jobs.claim(self.name, JobQueueName.BOT)) is not None:
            if job.kind == JobKind.CREDENTIALS:
                p = job.payload
                await self.deliver(p["telegram_id"], Credentials(
                    p["url"], p["username"], p["password"], p["attempt_number"], p["images"]))
                sent += 1
            await self.jobs.finish(job, self.name, True)
        for job, result in await self.jobs.undelivered(JobKind.BUILD, self.grace):
            if isinstance(result, TaskRequest) and result.kind == "created" \
                    and result.credentials is not None:
                await self.deliver(job.payload["telegram_id"], result.credentials)
                sent += 1
        return sent
