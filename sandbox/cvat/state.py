"""The state of the CVAT stand-in, shared by its routes and middlewares: the stores (users,
tasks, jobs, guides, requests, sessions), the knobs, what was logged, and who may see what."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from .costs import CpuBudget, CvatCosts
from .faults import Faults
from .models import Guide, Job, RqRequest, Task, User, new_token

__all__ = ["CvatState", "parse_version"]


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version string such as "2.73.0"."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


class CvatState:
    """Everything the stand-in keeps; `CvatServer` exposes its public parts as attributes."""

    def __init__(
        self,
        *,
        version: str,
        validate_schema: bool,
        latency: float,
        processing_time: float,
        error_rate: float,
        seed: int | None,
        share_dir: str | Path | None,
        request_ttl: float,
        schema_path: str | Path | None,
        costs: CvatCosts | None,
    ) -> None:
        self.costs = costs or CvatCosts()
        self.version = version
        self.version_tuple = parse_version(version)
        self.validate_schema = validate_schema
        self.latency = latency
        self.processing_time = processing_time
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self._seed = seed
        self.share_dir = Path(share_dir) if share_dir else None
        self.request_ttl = request_ttl
        self.empty_task_failure = False
        self.request_log: list[tuple[str, str, int, str | None]] = []
        # (method, path, start, end) in time.monotonic(): which calls ran at the same time.
        self.request_times: list[tuple[str, str, float, float]] = []
        self.schema_violations: list[tuple[str, str, str]] = []
        self.users: dict[int, User] = {}
        self.tasks: dict[int, Task] = {}
        self.jobs: dict[int, Job] = {}
        self.guides: dict[int, Guide] = {}
        self.requests: dict[str, RqRequest] = {}
        self.sessions: dict[str, tuple[int, str]] = {}
        self.faults = Faults()
        self.delay_log: list[tuple[float, float]] = []
        self.schema_path = schema_path
        self.openapi: Any = None
        self._counters: dict[str, int] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ knobs
    @property
    def costs(self) -> CvatCosts:
        """What requests and task processing cost (see costs.py); setting it starts a new
        budget of cores and a new count of `cpu_seconds`."""
        return self._costs

    @costs.setter
    def costs(self, value: CvatCosts) -> None:
        self._costs = value
        self.cpu = CpuBudget(value.server_cores, value.hash_cores)
        self.import_slots = (asyncio.Semaphore(value.import_workers)
                             if value.import_workers else None)

    @property
    def cpu_seconds(self) -> float:
        """Server and import-worker CPU charged so far (`cpu.spent` by kind)."""
        return self.cpu.total

    @property
    def seed(self) -> int | None:
        """Seed of the fault-injection random generator (setting it reseeds)."""
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self._seed = value
        self.rng = random.Random(value)

    # ------------------------------------------------------------------ ids, time, tasks
    def next_id(self, kind: str) -> int:
        """The next id of a kind of object (user, task, job, label, shape...)."""
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

    async def injected_sleep(self, seconds: float) -> None:
        """A delay the knobs asked for, recorded in `delay_log` as (start, end) monotonic times so
        a benchmark can subtract exactly the time a client spent waiting on injected delays."""
        start = time.monotonic()
        await asyncio.sleep(seconds)
        self.delay_log.append((start, time.monotonic()))

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run background work (task processing, exports) until done or `stop_background`."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop_background(self) -> None:
        """Cancel the background work and wait for it to end."""
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ------------------------------------------------------------------ users
    def add_user(
        self,
        username: str,
        password: str,
        *,
        email: str = "",
        first_name: str = "",
        last_name: str = "",
        groups: list[str] | None = None,
        is_superuser: bool = False,
        is_staff: bool = False,
    ) -> User:
        """Create a user directly (like `manage.py createsuperuser`), bypassing validation."""
        user = User(
            id=self.next_id("user"),
            username=username,
            password=password,
            email=email.lower(),
            first_name=first_name,
            last_name=last_name,
            groups=list(groups if groups is not None else ["user"]),
            is_superuser=is_superuser,
            is_staff=is_staff,
            token=new_token(),
        )
        self.users[user.id] = user
        return user

    def users_by_name(self, name: str) -> User | None:
        """The user with this exact username, or None."""
        for user in self.users.values():
            if user.username == name:
                return user
        return None

    def drop_sessions(self, user_id: int) -> None:
        """Log a user out of every session."""
        for sid in [s for s, (uid, _) in self.sessions.items() if uid == user_id]:
            del self.sessions[sid]

    # ------------------------------------------------------------------ who may see what
    @staticmethod
    def is_admin(user: User) -> bool:
        """A superuser, or a user whose highest group is admin."""
        return user.is_superuser or user.is_admin

    def task_jobs(self, task: Task) -> list[Job]:
        """The task's jobs by id."""
        return sorted((j for j in self.jobs.values() if j.task_id == task.id), key=lambda j: j.id)

    @staticmethod
    def is_task_staff(user: User, task: Task) -> bool:
        """The task's owner or assignee."""
        return user.id in (task.owner_id, task.assignee_id)

    def can_view_task(self, user: User, task: Task) -> bool:
        """An admin or the task's staff."""
        return self.is_admin(user) or self.is_task_staff(user, task)

    def can_view_job(self, user: User, job: Job) -> bool:
        """An admin, the job's assignee or its task's staff."""
        task = self.tasks.get(job.task_id)
        return (
            self.is_admin(user)
            or job.assignee_id == user.id
            or (task is not None and self.is_task_staff(user, task))
        )

    def guide_of(self, task_id: int) -> int | None:
        """The id of the task's annotation guide, if it has one."""
        return next((g.id for g in self.guides.values() if g.task_id == task_id), None)

    # ------------------------------------------------------------------ requests, annotations
    def live_request(self, rq_id: str) -> RqRequest | None:
        """A request unless it is unknown or finished longer than `request_ttl` ago."""
        rq = self.requests.get(rq_id)
        if rq is None:
            return None
        if rq.finished_at is not None and rq.status == "finished":
            if time.monotonic() - rq.finished_at > self.request_ttl:
                del self.requests[rq_id]
                return None
        return rq

    def annotations_json(
        self, shapes: list[dict[str, Any]], tracks: list[dict[str, Any]], tags: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Annotations as CVAT answers them (`intervals` from 2.66)."""
        body: dict[str, Any] = {
            "version": 0,
            "tags": [dict(t) for t in tags],
            "shapes": [dict(s) for s in shapes],
            "tracks": [dict(t) for t in tracks],
        }
        if self.version_tuple >= (2, 66, 0):
            body["intervals"] = []
        return body
