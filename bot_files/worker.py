"""A worker: the process that works while the bot talks.

It takes jobs from PostgreSQL (`bot_files.jobs`), up to WORKER_JOBS at a time, each under a
lease it renews, and runs them with its own CVAT client and grading processes: building a test
task, checking and submitting work. One worker of the cluster (the one holding an advisory
lock) also keeps the house: it finishes builds and gradings a crash interrupted, keeps the
warm pool and the finished accounts, closes attempts whose deadline passed, and forgets old
jobs. What the candidate must be told about that work goes back to the bot through the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot_files.jobs import Job, JobKind, JobQueue, JobQueueName, Listener, wait_event, worker_name
from bot_files.presentation.exports import export_locale
from bot_files.presentation.hr import chart_labels
from bot_files.texts import Texts
from bot_files.work import CalibrationFile, Call, ExportFiles, RemoteGrader
from config.env import PROJECT_DIR, Settings
from connection import AsyncCvatClient, CvatError, CvatMisconfigured
from create_users.to_handlers import (
    AccountKeeper,
    delete_candidate_data,
    reactivate_cvat_account,
)
from db import AdvisoryLocks, Database, DatabaseUnavailable, lock_key
from tasks_generator.to_handlers import (
    Credentials,
    PoolKeeper,
    TaskRequest,
    TaskRequestKind,
    TaskSet,
    load_task_set,
    reconcile,
    request_test_task,
)
from tasks_metrics.to_handlers import (
    GradingProcesses,
    KeyVersion,
    ObjectStats,
    SubmitOutcome,
    band_histogram,
    build_exports,
    calibration,
    calibration_xlsx,
    check_work,
    current_key,
    delete_cvat_account,
    describe_object,
    expire_overdue,
    export_rows,
    regrade_for_key,
    regrade_interrupted,
    reopen_abandoned_checks,
    resume_check,
    resume_submission,
    submit_work,
    suspects,
)

logger = logging.getLogger(__name__)

KEEPERS_LOCK = lock_key("workers:keepers")
PR_SET_PDEATHSIG = 1  # prctl option: the signal a child gets when its parent dies
WORKER_NICENESS = 10  # the workers the bot starts yield the CPU to it
PROGRESS_EVERY = 0.5  # seconds between two progress writes of one job (a stage's end always)
JOBS_KEPT = timedelta(days=2)  # finished jobs are forgotten after this (their outcomes hold logins)


@dataclass
class WorkContext:
    """What a job runs with."""

    db: Database
    cvat: AsyncCvatClient
    grader: GradingProcesses
    settings: Settings
    task_set: TaskSet
    queue: JobQueue


class Reporter:
    """The progress callback of a build, written into the job's row (at most every
    PROGRESS_EVERY seconds, and whenever a stage ends)."""

    def __init__(self, queue: JobQueue, job: Job, worker: str) -> None:
        self.queue, self.job, self.worker = queue, job, worker
        self._pending: dict[str, Any] = {}
        self._last = 0.0

    async def __call__(self, stage: str, done: int, total: int) -> None:
        self._pending[stage] = [done, total]
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY and done < total:
            return
        pending, self._pending, self._last = self._pending, {}, now
        try:
            await self.queue.report(self.job, self.worker, pending)
        except DatabaseUnavailable as exc:
            logger.debug("progress of job %s not reported: %s", self.job.id, exc)


JobFunction = Callable[[WorkContext, Job, Reporter], Awaitable[Any]]


async def _build(ctx: WorkContext, job: Job, report: Reporter) -> TaskRequest:
    """Find or build the candidate's test task. A job taken over from a worker that died finds
    the attempt still leased by it for a moment: it waits for that lease to run out."""
    p = job.payload
    give_up = time.monotonic() + 2 * ctx.settings.build_lease_seconds
    while True:
        result = await request_test_task(
            ctx.db, ctx.cvat, ctx.settings, ctx.task_set, telegram_id=p["telegram_id"],
            username=p["username"], full_name=p["full_name"], progress=report,
            new_attempt=p["new_attempt"])
        if result.kind != TaskRequestKind.BUSY or not job.retried or time.monotonic() > give_up:
            return result
        await asyncio.sleep(1)


async def _check(ctx: WorkContext, job: Job, report: Reporter) -> SubmitOutcome:
    """Check my work; a job taken over from a worker that died first takes back its claim."""
    if job.retried:
        await resume_check(ctx.db, job.payload["telegram_id"])
    return await check_work(ctx.db, ctx.cvat, ctx.grader, ctx.settings, job.payload["telegram_id"])


async def _submit(ctx: WorkContext, job: Job, report: Reporter) -> SubmitOutcome:
    """Submit; a job taken over from a worker that died first finishes what that one began."""
    telegram_id = job.payload["telegram_id"]
    if job.retried:
        resumed = await resume_submission(ctx.db, ctx.grader, ctx.settings, telegram_id,
                                          job.created_at)
        if resumed is not None:
            return resumed
    return await submit_work(ctx.db, ctx.cvat, ctx.grader, ctx.settings, telegram_id)


async def _grader(ctx: WorkContext, job: Job, report: Reporter) -> Any:
    """One call of the grading processes, for the bot (see bot_files.work.RemoteGrader)."""
    method = job.payload["method"]
    if method not in RemoteGrader.METHODS:
        raise ValueError(f"no grading call is named {method!r}")
    args, kwargs = job.arguments
    return await getattr(ctx.grader, method)(*args, **kwargs)


# --- HR's calls (bot_files.work.WorkerCalls): CVAT account actions and the heavy files ---------
# A call taken over from a worker that died runs again: each is safe to repeat (a deleted
# account is "already_gone" the second time, a file is made again).


async def _delete_cvat_account(ctx: WorkContext, actor: int, candidate_id: int) -> str:
    return await delete_cvat_account(ctx.db, ctx.cvat, actor, candidate_id)


async def _delete_data(ctx: WorkContext, actor: int, candidate_id: int, mode: str) -> str:
    return await delete_candidate_data(ctx.db, ctx.cvat, actor, candidate_id, mode)


async def _reactivate(ctx: WorkContext, actor: int, candidate_id: int) -> str:
    return await reactivate_cvat_account(ctx.db, ctx.cvat, actor, candidate_id)


async def _export(ctx: WorkContext, language: str) -> ExportFiles | None:
    """The export in the reader's language (pandas, openpyxl, matplotlib: here only)."""
    rows = await export_rows(ctx.db, ctx.settings.attempt_counts)
    if not rows.candidates:
        return None
    t = Texts(language)
    exports = await asyncio.to_thread(build_exports, rows, export_locale(t, ctx.settings))
    chart = await asyncio.to_thread(band_histogram, exports.scores, **chart_labels(t)) \
        if exports.scores else None
    return ExportFiles(exports, chart)


async def _calibration_file(ctx: WorkContext) -> CalibrationFile:
    key, stats = await calibration(ctx.db, ctx.task_set)
    return CalibrationFile(key.version, await asyncio.to_thread(
        calibration_xlsx, stats, ctx.task_set.name))


async def _key_suspects(ctx: WorkContext,
                        limit: int) -> tuple[KeyVersion, list[tuple[ObjectStats, str]]]:
    key, stats = await calibration(ctx.db, ctx.task_set)
    found = suspects(stats)[:limit]
    truth = await asyncio.to_thread(key.truth, ctx.task_set)  # a replaced file is parsed
    return key, [(o, describe_object(truth, o.image, o.number)) for o in found]


async def _describe_object(ctx: WorkContext, image: str, number: int) -> str:
    key = await current_key(ctx.db, ctx.task_set.name)
    truth = await asyncio.to_thread(key.truth, ctx.task_set)
    return describe_object(truth, image, number)


async def _check_cvat(ctx: WorkContext) -> str | None:
    return await check_cvat(ctx.cvat, ctx.settings)


CALLS: dict[str, Callable[..., Awaitable[Any]]] = {
    Call.DELETE_CVAT_ACCOUNT: _delete_cvat_account, Call.DELETE_DATA: _delete_data,
    Call.REACTIVATE: _reactivate, Call.EXPORT: _export,
    Call.CALIBRATION_FILE: _calibration_file, Call.KEY_SUSPECTS: _key_suspects,
    Call.DESCRIBE_OBJECT: _describe_object, Call.CHECK_CVAT: _check_cvat}


async def _call(ctx: WorkContext, job: Job, report: Reporter) -> Any:
    """One of HR's calls, for the bot (see bot_files.work.WorkerCalls)."""
    function = CALLS.get(job.payload["call"])
    if function is None:
        raise ValueError(f"no worker call is named {job.payload['call']!r}")
    return await function(ctx, *job.arguments)


JOBS: dict[str, JobFunction] = {JobKind.BUILD: _build, JobKind.CHECK: _check,
                                JobKind.SUBMIT: _submit, JobKind.GRADER: _grader,
                                JobKind.CALL: _call}


@dataclass
class Worker:
    """One worker: jobs, and (if it holds the cluster's keepers lock) the keepers."""

    settings: Settings
    db: Database
    keepers: bool = True
    name: str = field(default_factory=lambda: worker_name("worker"))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Worker:
        """Open the CVAT client, the grading processes and the queue; start taking jobs."""
        self.cvat = AsyncCvatClient.from_settings(self.settings)
        self.grader = GradingProcesses.from_settings(self.settings)
        self.task_set = load_task_set(self.settings.task_set, self.settings.images_per_task)
        self.listener = Listener(self.db.dsn).start()
        self.queue = JobQueue(self.db, lease=timedelta(seconds=self.settings.build_lease_seconds),
                              listener=self.listener)
        self.ctx = WorkContext(self.db, self.cvat, self.grader, self.settings, self.task_set,
                               self.queue)
        self._tasks.append(asyncio.create_task(self._take_jobs(), name=f"{self.name}-jobs"))
        if self.keepers:
            self._tasks.append(asyncio.create_task(self._keep_house(), name="keepers"))
        logger.info("worker %s started (%d jobs at once)", self.name, self.settings.worker_jobs)
        return self

    async def stop(self, grace: float = 20.0) -> None:
        """Stop taking jobs, give running ones `grace` seconds, then stop them (their leases
        run out and another worker takes them over) and close everything."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._running:
            _, late = await asyncio.wait(self._running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.listener.close()
        await self.grader.close()
        await self.cvat.close()
        logger.info("worker %s stopped", self.name)

    @property
    def keeping(self) -> asyncio.Task[None] | None:
        """The keepers' task (None on a worker started without them)."""
        return next((t for t in self._tasks if t.get_name() == "keepers"), None)

    # --- jobs -----------------------------------------------------------------------------

    async def _take_jobs(self) -> None:
        slots = asyncio.Semaphore(self.settings.worker_jobs)
        while True:
            await slots.acquire()
            try:
                job = await self.queue.claim(self.name)
            except DatabaseUnavailable as exc:
                slots.release()
                logger.warning("no job taken now: %s", exc)
                await asyncio.sleep(self.queue.poll)
                continue
            if job is None:
                slots.release()
                await wait_event(self.listener.queued[JobQueueName.WORK], self.queue.poll)
                continue
            task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
            self._running.add(task)
            task.add_done_callback(lambda done: (self._running.discard(done), slots.release()))

    async def _run(self, job: Job) -> None:
        """Run one job under its lease and store its outcome (a value or what it raised)."""
        function = JOBS.get(job.kind)
        logger.info("job %s (%s) taken, try %d", job.id, job.kind, job.tries)
        lost = asyncio.Event()
        work = asyncio.create_task(self._outcome(function, job))
        beat = asyncio.create_task(self._renew(job, work, lost))
        try:
            outcome = await work
        except asyncio.CancelledError:
            if not lost.is_set():
                raise
            logger.warning("job %s was taken over by another worker; this one stopped", job.id)
            return
        finally:
            beat.cancel()
        for pause in (0.5, 1, 2, 4, None):
            try:
                if not await self.queue.finish(job, self.name, outcome):
                    logger.warning("job %s finished after another worker took it over", job.id)
                return
            except DatabaseUnavailable as exc:
                if pause is None:
                    logger.warning("outcome of job %s not stored (it runs again): %s", job.id,
                                   exc)
                    return
                await asyncio.sleep(pause)

    async def _outcome(self, function: JobFunction | None, job: Job) -> Any:
        if function is None:
            return ValueError(f"no worker job is called {job.kind!r}")
        try:
            return await function(self.ctx, job, Reporter(self.queue, job, self.name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the caller gets it, as if it had done the work itself
            if not isinstance(exc, CvatError):
                logger.exception("job %s (%s) raised", job.id, job.kind)
            return exc

    async def _renew(self, job: Job, work: asyncio.Task[Any], lost: asyncio.Event) -> None:
        every = self.queue.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await self.queue.renew(job, self.name):
                    lost.set()
                    work.cancel()
                    return
            except DatabaseUnavailable as exc:
                logger.warning("lease of job %s not renewed: %s", job.id, exc)

    # --- the keepers (one worker of the cluster) ----------------------------------------------

    async def _keep_house(self) -> None:
        locks = AdvisoryLocks(self.db)
        try:
            while True:
                try:
                    async with locks.hold(KEEPERS_LOCK):
                        logger.info("worker %s keeps the house", self.name)
                        await self._keepers()
                except DatabaseUnavailable as exc:
                    logger.warning("keepers paused: %s", exc)
                    await asyncio.sleep(self.settings.reconcile_interval_seconds)
        finally:
            await locks.close()

    async def _keepers(self) -> None:
        # The warm pool gets its own CVAT connections: a refill never queues in front of a
        # candidate's build. It shares the sign-in.
        pool_cvat = self.cvat.with_own_connections()
        try:
            await asyncio.gather(
                self._recover(),
                PoolKeeper(self.db, pool_cvat, self.settings, self.task_set).run(),
                AccountKeeper(self.db, pool_cvat, self.settings).run(),
                self._expire(pool_cvat))
        finally:
            await pool_cvat.close()

    async def _deliver(self, telegram_id: int, credentials: Credentials) -> None:
        """The login of an attempt finished here goes to the bot, which sends it."""
        await self.queue.enqueue(JobKind.CREDENTIALS, {
            "telegram_id": telegram_id, "url": credentials.url,
            "username": credentials.username, "password": credentials.password,
            "attempt_number": credentials.attempt_number, "images": credentials.images,
        }, queue=JobQueueName.BOT, max_tries=5)

    async def _recover(self) -> None:
        """Finish what a crash interrupted: builds (and send their logins), checks that left
        a job closed, gradings; and re-grade for a changed answer key. Each step handles its
        items one by one; an error here is one no item explains, and the next pass tries
        again."""
        async def leave(attempt: Any) -> bool:
            return await self.queue.building_for(attempt.candidate_id)

        while True:
            try:
                counts = await reconcile(self.db, self.cvat, self.settings, self.task_set,
                                         self._deliver, leave)
                reopened = await reopen_abandoned_checks(self.db, self.cvat)
                regraded = await regrade_interrupted(self.db, self.grader)
                regraded += await regrade_for_key(self.db, self.grader, self.task_set.name)
                forgotten = await self.queue.forget_old(JOBS_KEPT)
                if any(counts.values()) or reopened or regraded or forgotten:
                    logger.info("reconciled: %s, %d jobs reopened, %d graded, %d old jobs"
                                " forgotten", counts, reopened, regraded, forgotten)
            except (DatabaseUnavailable, CvatError) as exc:
                logger.warning("reconciliation stopped for now: %s", exc)
            except Exception:
                logger.exception("reconciliation pass failed; the next one tries again")
            await asyncio.sleep(self.settings.reconcile_interval_seconds)

    async def _expire(self, cvat: AsyncCvatClient) -> None:
        """Close attempts whose deadline passed (the bot tells their candidates)."""
        while True:
            try:
                expired = await expire_overdue(self.db, cvat, self.settings)
                if expired:
                    logger.info("deadlines: %d attempts expired", expired)
            except (DatabaseUnavailable, CvatError) as exc:
                logger.warning("deadlines not looked after now: %s", exc)
            except Exception:
                logger.exception("deadline pass failed; the next one tries again")
            await asyncio.sleep(self.settings.reconcile_interval_seconds)


async def check_cvat(cvat: AsyncCvatClient, settings: Settings) -> str | None:
    """What is wrong with CVAT's admin login (None: fine, or CVAT not answering yet, which is
    only logged: jobs wait and retry)."""
    try:
        await cvat.check_admin()
    except CvatMisconfigured as exc:
        return f"CVAT at {settings.cvat_url}: {exc}"
    except CvatError as exc:
        logger.warning("CVAT at %s is not answering yet: %s", settings.cvat_url, exc)
    return None


def _worker_child() -> None:
    """In the child before exec: a lower CPU priority than the bot's (on a shared machine the
    process that talks goes first; its grading processes inherit it), and SIGTERM when the
    bot that started it dies, even by SIGKILL (Linux; elsewhere a worker outlives a killed
    bot and must be stopped by hand)."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class WorkerProcesses:
    """The worker processes a bot starts (WORKERS of them) and starts again when one dies.
    Each logs into its own folder under the bot's LOG_DIR."""

    RESTART_PAUSE = 2.0

    def __init__(self, count: int, settings: Settings, database_url: str) -> None:
        self.count = count
        self.settings = settings
        self.database_url = database_url
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._task: asyncio.Task[None] | None = None

    def _environ(self, index: int) -> dict[str, str]:
        environ = dict(os.environ, DATABASE_URL=self.database_url,
                       LOG_DIR=str(self.settings.log_dir / f"worker-{index}"))
        environ.pop("WORKERS", None)
        return environ

    async def _start(self, index: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(PROJECT_DIR / "main.py"), "worker", env=self._environ(index),
            cwd=PROJECT_DIR, stdin=asyncio.subprocess.DEVNULL, preexec_fn=_worker_child)
        self.processes[index] = process
        logger.info("worker process %d started (pid %s)", index, process.pid)
        return process

    async def start(self) -> WorkerProcesses:
        """Start them, and a watch that restarts any that dies."""
        for index in range(self.count):
            await self._start(index)
        self._task = asyncio.create_task(self._watch(), name="worker-processes")
        return self

    async def _watch(self) -> None:
        while True:
            waits = {asyncio.create_task(p.wait()): i for i, p in self.processes.items()}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                index = waits[task]
                logger.warning("worker process %d stopped (exit %s); starting it again", index,
                               task.result())
                await asyncio.sleep(self.RESTART_PAUSE)
                await self._start(index)

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM each (a worker finishes or hands back its jobs), SIGKILL after `grace`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
