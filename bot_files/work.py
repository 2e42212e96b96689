"""The bot's side of the work done in workers: each call queues a job and awaits its outcome,
which comes back as the same objects (and the same exceptions) as when the bot did the work
itself. The bot process makes no CVAT call and runs no grading."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bot_files.jobs import JobKind, JobQueue, JobQueueName, wait_event, worker_name
from config.env import Settings
from db import DatabaseUnavailable
from tasks_generator.to_handlers import Credentials, Progress, TaskRequest, TaskRequestKind
from tasks_metrics.to_handlers import (
    Exports,
    GradingProcesses,
    KeyVersion,
    ObjectStats,
    SubmitOutcome,
)

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
    if result.kind == TaskRequestKind.CREATED and not await jobs.claim_delivery(job_id):
        return TaskRequest(TaskRequestKind.TAKEN_OVER, attempt=result.attempt, used=result.used,
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


class Call(StrEnum):
    """The named calls a worker makes for HR (`JobKind.CALL`): what needs CVAT, pandas,
    openpyxl, numpy or Pillow, none of which the bot's process loads."""

    DELETE_CVAT_ACCOUNT = "delete_cvat_account"
    DELETE_DATA = "delete_data"
    REACTIVATE = "reactivate"
    EXPORT = "export"
    CALIBRATION_FILE = "calibration_file"
    KEY_SUSPECTS = "key_suspects"
    DESCRIBE_OBJECT = "describe_object"
    CHECK_CVAT = "check_cvat"


@dataclass(frozen=True)
class ExportFiles:
    """The export as a worker made it: the files and figures, and the score chart (None
    when nobody is graded)."""

    exports: Exports
    chart: bytes | None


@dataclass(frozen=True)
class CalibrationFile:
    """The calibration sheet of the key in force."""

    version: int
    xlsx: bytes


class WorkerCalls:
    """HR's heavy or CVAT work, each call a job a worker runs (bot_files.worker.CALLS); the
    outcome (a value, or the exception raised, e.g. CvatError) comes back here."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs

    async def call(self, name: Call, *args: Any) -> Any:
        """Run `name` with `args` in a worker; its value, or its exception raised here. The
        job is deleted once read (or given up): an export's files hold personal data that a
        deletion must not leave behind in the queue."""
        job_id = await self.jobs.enqueue(JobKind.CALL, {"call": name}, arguments=args)
        try:
            return await self.jobs.outcome(job_id)
        finally:
            try:
                await self.jobs.forget(job_id)
            except DatabaseUnavailable as exc:  # the old-jobs keeper deletes it later
                logger.warning("job %s not deleted now: %s", job_id, exc)

    async def delete_cvat_account(self, actor: int, candidate_id: int) -> str:
        """"deleted", "already_gone" or "no_account"."""
        outcome: str = await self.call(Call.DELETE_CVAT_ACCOUNT, actor, candidate_id)
        return outcome

    async def delete_data(self, actor: int, candidate_id: int, mode: str) -> str:
        """The candidate's data deleted (with the CVAT account, by `mode`)."""
        outcome: str = await self.call(Call.DELETE_DATA, actor, candidate_id, mode)
        return outcome

    async def reactivate(self, actor: int, candidate_id: int) -> str:
        """A deactivated CVAT account let in again."""
        outcome: str = await self.call(Call.REACTIVATE, actor, candidate_id)
        return outcome

    async def export(self, language: str) -> ExportFiles | None:
        """Every candidate as XLSX and CSV, with the chart, in `language`; None if there is
        no candidate."""
        files: ExportFiles | None = await self.call(Call.EXPORT, language)
        return files

    async def calibration_file(self) -> CalibrationFile:
        """The calibration of the key in force as XLSX."""
        sheet: CalibrationFile = await self.call(Call.CALIBRATION_FILE)
        return sheet

    async def key_suspects(self, limit: int) -> tuple[KeyVersion, list[tuple[ObjectStats, str]]]:
        """The key in force and its `limit` most probable errors, each described."""
        found: tuple[KeyVersion, list[tuple[ObjectStats, str]]] = await self.call(
            Call.KEY_SUSPECTS, limit)
        return found

    async def describe_object(self, image: str, number: int) -> str:
        """Object `number` of `image` in the key in force, in words (KeyChangeError if none)."""
        words: str = await self.call(Call.DESCRIBE_OBJECT, image, number)
        return words

    async def check_cvat(self) -> str | None:
        """What is wrong with CVAT's admin login, as a worker sees it (None: fine)."""
        problem: str | None = await self.call(Call.CHECK_CVAT)
        return problem


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
            if isinstance(result, TaskRequest) and result.kind == TaskRequestKind.CREATED \
                    and result.credentials is not None:
                await self.deliver(job.payload["telegram_id"], result.credentials)
                sent += 1
        return sent
