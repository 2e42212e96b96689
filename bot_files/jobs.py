"""The durable job queue in PostgreSQL between the bot, which talks, and the workers, which work.

The bot enqueues a job (a kind and a JSON payload) and awaits its outcome; a worker claims it
(FOR UPDATE SKIP LOCKED), holds it under a lease it renews, reports progress into the row, and
stores the outcome: the value, or the exception the work raised, pickled, so the bot gets back
the same dataclasses and raises the same exception classes as when it did the work itself. A
worker that dies stops renewing its lease; the job is then claimed again, up to `max_tries`.
Every write of a worker is fenced by `locked_by`: one that lost its lease changes nothing.

LISTEN/NOTIFY on one channel wakes workers (a job is queued) and waiters (a job moved); a slow
poll covers a lost notification or a listener connection that broke.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import logging
import os
import pickle
import secrets
import socket
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg2
import psycopg2.extensions

from db import Database
from log import jsonb

logger = logging.getLogger(__name__)

CHANNEL = "jobs"
POLL_SECONDS = 2.0  # the fallback when a notification is missed


class JobStatus(StrEnum):
    """A job's life: queued -> running -> done (a value or a raised exception), or failed
    (its workers died `max_tries` times)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobQueueName(StrEnum):
    """Who takes the jobs: workers, or the bot (messages that work done elsewhere causes)."""

    WORK = "work"
    BOT = "bot"


class JobKind(StrEnum):
    """What a job does. Workers: build a test task, check or submit the work, a grading or
    an HR call. The bot: send
    the login of a task a worker finished after the asking bot stopped."""

    BUILD = "build"
    CHECK = "check"
    SUBMIT = "submit"
    GRADER = "grader"  # one call of the grading processes (HR's pictures, cards, re-grades)
    CALL = "call"  # one named worker call for HR (CVAT account actions, exports, calibration)
    CREDENTIALS = "credentials"


class JobFailed(Exception):
    """The job could not be finished: its workers died `max_tries` times."""


@dataclass(frozen=True)
class Job:
    """One claimed job."""

    id: int
    kind: str
    payload: dict[str, Any]
    tries: int
    created_at: datetime
    arguments: Any = None

    @property
    def retried(self) -> bool:
        """Whether a worker took it before (and died on it)."""
        return self.tries > 1


# --- outcomes: pickled, and unpickled only into our own classes -------------------------------

_OUR_PACKAGES = ("bot_files.", "config.", "connection.", "create_users.", "tasks_generator.",
                 "tasks_metrics.", "tasks_new.")
_OUR_MODULES = {"connection", "db"}
_STDLIB = {"datetime", "decimal", "zoneinfo", "collections", "enum", "uuid", "pathlib",
           "_pickle", "copyreg"}
_SAFE_BUILTINS = {"set", "frozenset", "tuple", "list", "dict", "int", "float", "str", "bytes",
                  "bool", "complex", "bytearray", "object", "range", "slice"}


class _OurUnpickler(pickle.Unpickler):
    """Unpickles only our project's classes, plain data and exception classes: an outcome is
    read from the database, never trusted to name any callable it likes."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "copyreg" and name not in ("_reconstructor", "__newobj__"):
            raise pickle.UnpicklingError(f"copyreg.{name} is not allowed")
        if module == "builtins":
            value = getattr(builtins, name, None)
            if name in _SAFE_BUILTINS or (isinstance(value, type)
                                          and issubclass(value, BaseException)):
                return value
            raise pickle.UnpicklingError(f"builtins.{name} is not allowed")
        if (module in _OUR_MODULES or module.startswith(_OUR_PACKAGES)
                or module.split(".")[0] in _STDLIB):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def read_only(mapping: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    """A read-only view of `mapping` (how one is unpickled)."""
    return types.MappingProxyType(mapping)


def rebuilt_exception(cls: type[BaseException], args: tuple[Any, ...],
                      state: dict[str, Any]) -> BaseException:
    """An exception as it was, without calling its __init__ (whose parameters may differ from
    its args)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _Pickler(pickle.Pickler):
    """Pickles a read-only mapping (frozen dataclasses hold them) as one again, and an
    exception field by field."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.MappingProxyType):
            return read_only, (dict(obj),)
        if isinstance(obj, BaseException):
            return rebuilt_exception, (type(obj), obj.args, dict(vars(obj)))
        return NotImplemented


def dump_outcome(value: Any) -> bytes:
    """The stored form of a value or an exception."""
    if isinstance(value, BaseException):
        value.__traceback__ = None
        value.__context__ = value.__cause__ = None
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return out.getvalue()


def load_outcome(data: bytes) -> Any:
    """A stored value or exception, back."""
    return _OurUnpickler(io.BytesIO(data)).load()


def storable(outcome: Any) -> tuple[bytes, bool]:
    """The outcome pickled, and whether it is an exception; what cannot be stored and read
    back becomes a JobFailed naming it."""
    try:
        data = dump_outcome(outcome)
        load_outcome(data)
    except (pickle.PickleError, TypeError, AttributeError, ValueError) as exc:
        logger.error("outcome %s cannot be stored: %s", type(outcome).__name__, exc)
        words = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) \
            else f"its outcome cannot be stored ({exc})"
        return dump_outcome(JobFailed(words)), True
    return data, isinstance(outcome, BaseException)


# --- notifications ----------------------------------------------------------------------------


class Listener:
    """One connection LISTENing on the jobs channel; sets an event per job id awaited, and
    a queue's `queued` event when a job is queued there. If the connection breaks, everyone
    falls back to polling until it is back."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.queued = {name: asyncio.Event() for name in JobQueueName}
        self._waiting: dict[int, asyncio.Event] = {}
        self._conn: psycopg2.extensions.connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Listener:
        """Listen in the background (reconnecting after a failure)."""
        self._task = asyncio.create_task(self._run(), name="jobs-listener")
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop()

    def event_for(self, job_id: int) -> asyncio.Event:
        """The event set whenever job `job_id` moves (until `forget`)."""
        return self._waiting.setdefault(job_id, asyncio.Event())

    def forget(self, job_id: int) -> None:
        """No one awaits job `job_id` any longer."""
        self._waiting.pop(job_id, None)

    def _connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.dsn, connect_timeout=5, application_name="jobs-listener",
                                keepalives=1, keepalives_idle=30, keepalives_interval=5,
                                keepalives_count=3)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        return conn

    def _drop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(self._conn.fileno())
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._conn = await asyncio.to_thread(self._connect)
                broken = asyncio.Event()
                loop.add_reader(self._conn.fileno(), self._read, broken)
                await broken.wait()
            except (psycopg2.Error, OSError) as exc:
                logger.warning("job notifications paused (polling meanwhile): %s", exc)
            self._drop()
            self._wake_all()
            await asyncio.sleep(POLL_SECONDS)

    def _read(self, broken: asyncio.Event) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.poll()
        except (psycopg2.Error, OSError):
            broken.set()
            return
        while conn.notifies:
            note = conn.notifies.pop(0)
            if note.payload.startswith("queued:"):
                event = self.queued.get(note.payload.removeprefix("queued:"))
                if event is not None:
                    event.set()
                continue
            with contextlib.suppress(ValueError):
                event = self._waiting.get(int(note.payload))
                if event is not None:
                    event.set()

    def _wake_all(self) -> None:
        for event in self.queued.values():
            event.set()
        for event in self._waiting.values():
            event.set()


async def wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` pass, then clear it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    event.clear()


# --- the queue --------------------------------------------------------------------------------

Progress = Callable[[dict[str, Any]], Awaitable[None]]

_ENQUEUE = (
    "INSERT INTO jobs (queue, kind, payload, arguments, dedupe, max_tries)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (dedupe) WHERE status IN ('queued', 'running')"
    " DO UPDATE SET dedupe = EXCLUDED.dedupe RETURNING id")
_FAIL_EXHAUSTED = (
    "UPDATE jobs SET status = 'failed', finished_at = now(), locked_by = NULL,"
    " error = 'its worker stopped ' || tries || ' times'"
    " WHERE queue = %s AND status = 'running' AND locked_until < now() AND tries >= max_tries"
    " RETURNING id")
_CLAIM = (
    "UPDATE jobs SET status = 'running', tries = tries + 1, locked_by = %s,"
    " locked_until = now() + %s, started_at = now()"
    " WHERE id = (SELECT id FROM jobs WHERE queue = %s AND ("
    "   (status = 'queued' AND run_after <= now())"
    "   OR (status = 'running' AND locked_until < now() AND tries < max_tries))"
    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, kind, payload, tries, created_at, arguments")
_FINISH = (
    "UPDATE jobs SET status = 'done', result = %s, raised = %s, error = %s, finished_at = now(),"
    " locked_by = NULL, locked_until = NULL"
    " WHERE id = %s AND locked_by = %s AND status = 'running'")
_OUTCOME = "SELECT status, progress, result, raised, error FROM jobs WHERE id = %s"


def _notify(job_id: int | str) -> str:
    return f"SELECT pg_notify('{CHANNEL}', '{job_id}')"


class JobQueue:
    """Enqueue, claim, renew, report and finish jobs; await their outcome."""

    def __init__(self, db: Database, *, lease: timedelta, listener: Listener | None = None,
                 poll: float = POLL_SECONDS) -> None:
        self.db = db
        self.lease = lease
        self.listener = listener
        self.poll = poll

    def listening(self) -> Listener:
        """The listener (started on first use, if not given one)."""
        if self.listener is None:
            self.listener = Listener(self.db.dsn).start()
        return self.listener

    async def close(self) -> None:
        """Stop listening."""
        if self.listener is not None:
            await self.listener.close()
            self.listener = None

    # --- the side that asks ---------------------------------------------------------------

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedupe: str | None = None,
                      queue: JobQueueName = JobQueueName.WORK, max_tries: int = 3,
                      arguments: Any = None) -> int:
        """Queue a job (or join the unfinished one with the same `dedupe`) and wake a worker;
        its id. `arguments`, if given, go pickled (bytes, our dataclasses)."""
        blob = None if arguments is None else psycopg2.Binary(dump_outcome(arguments))

        def work(cur: Any) -> int:
            cur.execute(_ENQUEUE, (queue, kind, jsonb(payload), blob, dedupe, max_tries))
            job_id = int(cur.fetchone()["id"])
            cur.execute(_notify(f"queued:{queue}"))
            return job_id

        return await self.db.run(work)

    async def run(self, kind: str, payload: dict[str, Any], *, dedupe: str | None = None,
                  progress: Progress | None = None, arguments: Any = None) -> Any:
        """Queue a job and await its outcome: return its value or raise its exception."""
        job_id = await self.enqueue(kind, payload, dedupe=dedupe, arguments=arguments)
        return await self.outcome(job_id, progress)

    async def outcome(self, job_id: int, progress: Progress | None = None) -> Any:
        """Await the job's end, passing its progress on as it changes; its value, or its
        exception raised here."""
        listener = self.listening()
        event = listener.event_for(job_id)
        shown: dict[str, Any] = {}
        try:
            while True:
                row = await self.db.fetchone(_OUTCOME, (job_id,))
                if row is None:
                    raise JobFailed(f"job {job_id} is gone")
                if progress is not None and row["progress"] != shown:
                    changed = {k: v for k, v in row["progress"].items() if shown.get(k) != v}
                    shown = row["progress"]
                    await progress(changed)
                if row["status"] == JobStatus.FAILED:
                    raise JobFailed(f"job {job_id}: {row['error']}")
                if row["status"] == JobStatus.DONE:
                    value = load_outcome(bytes(row["result"]))
                    if row["raised"]:
                        raise value
                    return value
                await wait_event(event, self.poll)
        finally:
            listener.forget(job_id)

    async def forget(self, job_id: int) -> None:
        """Delete the job, whatever its state (a one-off whose outcome no one reads again; a
        worker running it finds it gone and its outcome is dropped)."""
        await self.db.execute("DELETE FROM jobs WHERE id = %s", (job_id,))

    async def claim_delivery(self, job_id: int) -> bool:
        """Take the telling of the job's outcome to the user (False: someone did already)."""
        return await self.db.execute(
            "UPDATE jobs SET delivered_at = now() WHERE id = %s AND delivered_at IS NULL",
            (job_id,)) == 1

    async def undelivered(self, kind: str, older_than: timedelta) -> list[tuple[Job, Any]]:
        """Finished jobs of `kind` whose outcome no one told the user (the waiting bot
        stopped), each claimed for telling now, with its value (exceptions are left)."""
        rows = await self.db.fetchall(
            "UPDATE jobs SET delivered_at = now() WHERE id IN (SELECT id FROM jobs"
            " WHERE status = 'done' AND delivered_at IS NULL AND kind = %s"
            " AND finished_at < now() - %s ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, kind, payload, tries, created_at, result, raised",
            (kind, older_than))
        return [(Job(r["id"], r["kind"], r["payload"], r["tries"], r["created_at"]),
                 load_outcome(bytes(r["result"])))
                for r in rows if not r["raised"] and r["result"] is not None]

    # --- the side that works --------------------------------------------------------------

    async def claim(self, worker: str,
                    queue: JobQueueName = JobQueueName.WORK) -> Job | None:
        """The next job due (or one whose worker died), now this worker's; None if none."""
        def work(cur: Any) -> Job | None:
            cur.execute(_FAIL_EXHAUSTED, (queue,))
            for row in cur.fetchall():
                cur.execute(_notify(row["id"]))
            cur.execute(_CLAIM, (worker, self.lease, queue))
            row = cur.fetchone()
            if row is None:
                return None
            arguments = row["arguments"]
            return Job(row["id"], row["kind"], row["payload"], row["tries"], row["created_at"],
                       None if arguments is None else load_outcome(bytes(arguments)))

        return await self.db.run(work)

    async def renew(self, job: Job, worker: str) -> bool:
        """Extend this worker's lease on the job (False: it is not this worker's any more)."""
        return await self.db.execute(
            "UPDATE jobs SET locked_until = now() + %s WHERE id = %s AND locked_by = %s"
            " AND status = 'running'", (self.lease, job.id, worker)) == 1

    async def report(self, job: Job, worker: str, progress: dict[str, Any]) -> None:
        """Merge `progress` into the job's and wake its waiter."""
        def work(cur: Any) -> None:
            cur.execute("UPDATE jobs SET progress = progress || %s::jsonb"
                        " WHERE id = %s AND locked_by = %s", (jsonb(progress), job.id,
                                                               worker))
            cur.execute(_notify(job.id))

        await self.db.run(work)

    async def finish(self, job: Job, worker: str, outcome: Any) -> bool:
        """Store the job's outcome (a value or an exception) and wake its waiter; False if the
        job was no longer this worker's (another took it over: its outcome counts)."""
        data, raised = storable(outcome)
        error = f"{type(outcome).__name__}: {outcome}"[:500] if raised else None

        def work(cur: Any) -> bool:
            cur.execute(_FINISH, (psycopg2.Binary(data), raised, error, job.id, worker))
            if cur.rowcount != 1:
                return False
            cur.execute(_notify(job.id))
            return True

        return await self.db.run(work)

    async def forget_old(self, older_than: timedelta) -> int:
        """Delete finished jobs older than `older_than` (their outcomes hold logins)."""
        return await self.db.execute(
            "DELETE FROM jobs WHERE status IN ('done', 'failed') AND finished_at < now() - %s",
            (older_than,))

    async def building_for(self, candidate_id: int) -> bool:
        """Whether the candidate has a build job queued or running (it resumes their attempt)."""
        return bool(await self.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM jobs j JOIN candidates c"
            " ON c.telegram_id = (j.payload->>'telegram_id')::bigint"
            " WHERE c.id = %s AND j.kind = %s AND j.status IN ('queued', 'running'))",
            (candidate_id, JobKind.BUILD)))


def worker_name(role: str) -> str:
    """A name unique to this process run, for `locked_by`: role, host, pid, a random tag."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"

