"""A faithful in-memory CVAT 2.73 stand-in (the subset of the REST API the bot uses).

This module is the front (`CvatServer`: start, stop, the knobs, the state for assertions).
The parts behind it:
- `state.py`: the stores, the knobs, who may see what, shared by every part;
- `middleware.py`: the request log, faults (`faults.py`), CPU costs (`costs.py`), schema
  validation (`schema.py`) and authentication;
- `routes/`: the REST API, one module per resource;
- `processing.py`: task creation in the background; `shapes.py`: annotation checks;
  `export.py`: the dataset zip; `rest.py`, `listing.py`: what the routes share.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.forward import Forward

from .costs import CpuBudget, CvatCosts
from .faults import Fault, Hold
from .middleware import MIDDLEWARES
from .models import Guide, Job, RqRequest, Task, User
from .rest import STATE, ApiError
from .routes import add_routes
from .state import CvatState

__all__ = ["ApiError", "CvatServer", "Hold"]

log = logging.getLogger(__name__)


class CvatServer:
    """In-process CVAT 2.x stand-in; see the package docstring for the knobs."""

    costs: Forward[CvatCosts] = Forward("state")
    cpu: Forward[CpuBudget] = Forward("state")
    seed: Forward[int | None] = Forward("state")
    version: Forward[str] = Forward("state")
    version_tuple: Forward[tuple[int, int, int]] = Forward("state")
    validate_schema: Forward[bool] = Forward("state")
    latency: Forward[float] = Forward("state")
    processing_time: Forward[float] = Forward("state")
    error_rate: Forward[float] = Forward("state")
    share_dir: Forward[Path | None] = Forward("state")
    request_ttl: Forward[float] = Forward("state")
    empty_task_failure: Forward[bool] = Forward("state")
    request_log: Forward[list[tuple[str, str, int, str | None]]] = Forward("state")
    request_times: Forward[list[tuple[str, str, float, float]]] = Forward("state")
    schema_violations: Forward[list[tuple[str, str, str]]] = Forward("state")
    delay_log: Forward[list[tuple[float, float]]] = Forward("state")
    users: Forward[dict[int, User]] = Forward("state")
    tasks: Forward[dict[int, Task]] = Forward("state")
    jobs: Forward[dict[int, Job]] = Forward("state")
    guides: Forward[dict[int, Guide]] = Forward("state")
    requests: Forward[dict[str, RqRequest]] = Forward("state")
    sessions: Forward[dict[str, tuple[int, str]]] = Forward("state")
    # add_user(username, password, *, email, first_name, last_name, groups, is_superuser,
    # is_staff): a user made directly (like `manage.py createsuperuser`), unvalidated.
    add_user: Forward[Callable[..., User]] = Forward("state")
    # users_by_name(name): the user with this exact username, or None.
    users_by_name: Forward[Callable[[str], User | None]] = Forward("state")

    def __init__(
        self,
        admin: tuple[str, str] = ("admin", "Adm1n-Passw0rd"),
        version: str = "2.73.0",
        validate_schema: bool = False,
        *,
        latency: float = 0.0,
        processing_time: float = 0.5,
        error_rate: float = 0.0,
        seed: int | None = None,
        share_dir: str | Path | None = None,
        request_ttl: float = 500.0,
        schema_path: str | Path | None = None,
        costs: CvatCosts | None = None,
    ) -> None:
        self.state = CvatState(
            version=version,
            validate_schema=validate_schema,
            latency=latency,
            processing_time=processing_time,
            error_rate=error_rate,
            seed=seed,
            share_dir=share_dir,
            request_ttl=request_ttl,
            schema_path=schema_path,
            costs=costs,
        )
        self._runner: web.AppRunner | None = None
        self._site_port: int | None = None
        self._host = "127.0.0.1"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.add_user(admin[0], admin[1], groups=["admin"], is_superuser=True, is_staff=True)

    # ------------------------------------------------------------------ public helpers

    @property
    def cpu_seconds(self) -> float:
        """Server and import-worker CPU charged so far (`cpu.spent` by kind)."""
        return self.state.cpu_seconds

    @property
    def base_url(self) -> str:
        """http://host:port of the running server."""
        if self._site_port is None:
            raise RuntimeError("server is not started")
        return f"http://{self._host}:{self._site_port}"

    def annotations(self, job_id: int) -> dict[str, Any]:
        """The job's stored annotations as GET /api/jobs/{id}/annotations returns them."""
        job = self.state.jobs[job_id]
        return self.state.annotations_json(job.shapes, job.tracks, job.tags)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 503,
        count: int = 1,
        drop: bool = False,
        hang: bool = False,
        after: bool = False,
        body: Any = None,
    ) -> None:
        """Make the next `count` matching calls fail (status, dropped connection or hang).

        With after=True the call is executed first and only its answer is replaced
        (the 'gateway timed out but the server did it' case). With `body` the answer is that
        JSON with `status` (a proxy, or a server version, answering something unexpected).
        """
        self.state.faults.fail_next(
            Fault(method.upper(), re.compile(path_regex), status, count, drop, hang, after, body)
        )

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Pause the next matching call until the returned hold is released: a test can then
        act in exactly the window between two calls of a client (a race, staged)."""
        return self.state.faults.hold_next(method, path_regex)

    def clear_faults(self) -> None:
        """Forget all pending fail_next rules."""
        self.state.faults.clear()

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        """Build the aiohttp application (routes and middlewares)."""
        app = web.Application(middlewares=MIDDLEWARES, client_max_size=1024**3)
        app[STATE] = self.state
        add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening (port 0 picks a free port; see base_url)."""
        st = self.state
        if st.validate_schema and st.openapi is None:
            from .schema import DEFAULT_SCHEMA, load_openapi

            st.openapi = await asyncio.to_thread(load_openapi, st.schema_path or DEFAULT_SCHEMA)
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._site_port = sockets[0].getsockname()[1] if sockets else port
        self._host = host
        log.info("CVAT stand-in %s listening on %s", st.version, self.base_url)

    async def stop(self) -> None:
        """Stop the server and its background jobs."""
        self.state.faults.release_all()
        await self.state.stop_background()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Run the server on its own event loop in a daemon thread; returns base_url."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start(host, port))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="cvat-standin", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self.base_url

    def stop_thread(self) -> None:
        """Stop a server started with start_in_thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
