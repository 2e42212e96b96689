"""A faithful in-memory CVAT 2.73 stand-in (the subset of the REST API the bot uses)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import logging
import random
import re
import secrets
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

from aiohttp import MultipartReader, web
from aiohttp.streams import StreamReader
from PIL import Image

from . import export
from .costs import CpuBudget, CvatCosts
from .models import (
    AttributeSpec,
    Frame,
    Guide,
    Job,
    Label,
    RqRequest,
    Task,
    User,
    iso_after,
    new_token,
    now_iso,
)
from .passwords import password_errors, similarity_errors

log = logging.getLogger(__name__)

CVAT_JSON = "application/vnd.cvat+json"
NO_PERMISSION = "You do not have permission to perform this action."
USERNAME_RE = re.compile(r"^[\w.@+-]+\Z")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
IAM_ROLES = ("admin", "user", "worker")
SHAPE_TYPES = {
    "rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton",
}  # fmt: skip
LABEL_TYPES = {
    "any", "rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask",
    "skeleton", "tag",
}  # fmt: skip
INPUT_TYPES = {"checkbox", "radio", "number", "text", "select"}
SORTING_METHODS = {"lexicographical", "natural", "predefined", "random"}
PALETTE = ["#2080c0", "#a0a0a0", "#fa3253", "#33ddff", "#34d1b7", "#ff6037", "#b83df5", "#ddff33"]
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
USER: web.RequestKey[Any] = web.RequestKey("cvat_user", object)
LOGGED: web.RequestKey[bool] = web.RequestKey("cvat_logged", bool)
ANONYMOUS_OK = ("/api/server/about", "/api/auth/register", "/api/auth/login", "/api/auth/logout")
ABOUT_DESCRIPTION = (
    "CVAT is completely re-designed and re-implemented version of Video Annotation Tool from "
    "Irvine, California tool. It is free, online, interactive video and image annotation tool "
    "for computer vision. It is being used by our team to annotate million of objects with "
    "different properties. Many UI and UX decisions are based on feedbacks from professional "
    "data annotation team."
)


class ApiError(Exception):
    """An error answer: status plus JSON body (dict, list or None for an empty body)."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _forbidden() -> ApiError:
    return ApiError(403, {"detail": NO_PERMISSION})


def _not_found(model: str) -> ApiError:
    return ApiError(404, {"detail": f"No {model} matches the given query."})


def cvat_response(body: Any, status: int = 200, headers: dict[str, str] | None = None):
    """A JSON answer with CVAT's media type (no charset suffix, like DRF)."""
    hdrs = {"Content-Type": CVAT_JSON, **(headers or {})}
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return web.Response(body=data, status=status, headers=hdrs)


@dataclass
class _Fault:
    method: str
    path_re: re.Pattern[str]
    status: int
    count: int
    drop: bool
    hang: bool
    after: bool
    body: Any = None


@dataclass
class Hold:
    """A call paused on its way in (`CvatServer.hold_next`): `reached` is set when it arrives;
    it goes on (and is answered as usual) once `release()` is called."""

    method: str
    path_re: re.Pattern[str]
    reached: asyncio.Event
    released: asyncio.Event

    def release(self) -> None:
        """Let the held call go on."""
        self.released.set()


def _parse_version(version: str) -> tuple[int, int, int]:
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _bool_param(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


class CvatServer:
    """In-process CVAT 2.x stand-in; see the package docstring for the knobs."""

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
        self.costs = costs or CvatCosts()
        self.version = version
        self.version_tuple = _parse_version(version)
        self.validate_schema = validate_schema
        self.latency = latency
        self.processing_time = processing_time
        self.error_rate = error_rate
        self._rng = random.Random(seed)
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
        self._faults: list[_Fault] = []
        self._holds: list[Hold] = []
        self.delay_log: list[tuple[float, float]] = []
        self._counters: dict[str, int] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._hangs: set[asyncio.Future[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._site_port: int | None = None
        self._host = "127.0.0.1"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._schema_path = schema_path
        self._openapi: Any = None
        self.add_user(admin[0], admin[1], groups=["admin"], is_superuser=True, is_staff=True)

    # ------------------------------------------------------------------ public helpers

    @property
    def costs(self) -> CvatCosts:
        """What requests and task processing cost (see costs.py); setting it starts a new
        budget of cores and a new count of `cpu_seconds`."""
        return self._costs

    @costs.setter
    def costs(self, value: CvatCosts) -> None:
        self._costs = value
        self.cpu = CpuBudget(value.server_cores, value.hash_cores)
        self._import_slots = (asyncio.Semaphore(value.import_workers)
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
        self._rng = random.Random(value)

    @property
    def base_url(self) -> str:
        """http://host:port of the running server."""
        if self._site_port is None:
            raise RuntimeError("server is not started")
        return f"http://{self._host}:{self._site_port}"

    def _next_id(self, kind: str) -> int:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

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
            id=self._next_id("user"),
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

    def annotations(self, job_id: int) -> dict[str, Any]:
        """The job's stored annotations as GET /api/jobs/{id}/annotations returns them."""
        job = self.jobs[job_id]
        return self._annotations_json(job.shapes, job.tracks, job.tags)

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
        self._faults.append(
            _Fault(method.upper(), re.compile(path_regex), status, count, drop, hang, after,
                   body)
        )

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Pause the next matching call until the returned hold is released: a test can then
        act in exactly the window between two calls of a client (a race, staged)."""
        hold = Hold(method.upper(), re.compile(path_regex), asyncio.Event(), asyncio.Event())
        self._holds.append(hold)
        return hold

    async def _injected_sleep(self, seconds: float) -> None:
        """A delay the knobs asked for, recorded in `delay_log` as (start, end) monotonic times so
        a benchmark can subtract exactly the time a client spent waiting on injected delays."""
        start = time.monotonic()
        await asyncio.sleep(seconds)
        self.delay_log.append((start, time.monotonic()))

    def clear_faults(self) -> None:
        """Forget all pending fail_next rules."""
        self._faults.clear()

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        """Build the aiohttp application (routes and middlewares)."""
        app = web.Application(
            middlewares=[self._log_mw, self._fault_mw, self._cost_mw, self._schema_mw,
                         self._api_mw],
            client_max_size=1024**3,
        )
        r = app.router
        both = self._route_both
        r.add_get("/api/server/about", self.h_about)
        r.add_post("/api/auth/register", self.h_register)
        r.add_post("/api/auth/login", self.h_login)
        r.add_post("/api/auth/logout", self.h_logout)
        r.add_get("/api/users", self.h_users_list)
        r.add_get("/api/users/self", self.h_users_self)
        r.add_get(r"/api/users/{id:\d+}", self.h_user_get)
        r.add_patch(r"/api/users/{id:\d+}", self.h_user_patch)
        r.add_delete(r"/api/users/{id:\d+}", self.h_user_delete)
        r.add_get("/api/tasks", self.h_tasks_list)
        r.add_post("/api/tasks", self.h_task_create)
        r.add_get(r"/api/tasks/{id:\d+}", self.h_task_get)
        r.add_patch(r"/api/tasks/{id:\d+}", self.h_task_patch)
        r.add_delete(r"/api/tasks/{id:\d+}", self.h_task_delete)
        both(r, "POST", r"/api/tasks/{id:\d+}/data", self.h_task_data_post)
        both(r, "GET", r"/api/tasks/{id:\d+}/data", self.h_task_data_get)
        r.add_get(r"/api/tasks/{id:\d+}/data/meta", self.h_task_meta)
        r.add_get(r"/api/tasks/{id:\d+}/status", self.h_task_status)
        both(r, "GET", r"/api/tasks/{id:\d+}/annotations", self.h_task_ann_get)
        both(r, "PUT", r"/api/tasks/{id:\d+}/annotations", self.h_task_ann_put)
        both(r, "PATCH", r"/api/tasks/{id:\d+}/annotations", self.h_task_ann_patch)
        both(r, "DELETE", r"/api/tasks/{id:\d+}/annotations", self.h_task_ann_delete)
        r.add_post(r"/api/tasks/{id:\d+}/dataset/export", self.h_task_export)
        r.add_get(r"/api/tasks/{id:\d+}/dataset/download", self.h_download)
        r.add_get("/api/jobs", self.h_jobs_list)
        r.add_get(r"/api/jobs/{id:\d+}", self.h_job_get)
        r.add_patch(r"/api/jobs/{id:\d+}", self.h_job_patch)
        r.add_get(r"/api/jobs/{id:\d+}/data", self.h_job_data)
        r.add_get(r"/api/jobs/{id:\d+}/data/meta", self.h_job_meta)
        both(r, "GET", r"/api/jobs/{id:\d+}/annotations", self.h_job_ann_get)
        both(r, "PUT", r"/api/jobs/{id:\d+}/annotations", self.h_job_ann_put)
        both(r, "PATCH", r"/api/jobs/{id:\d+}/annotations", self.h_job_ann_patch)
        both(r, "DELETE", r"/api/jobs/{id:\d+}/annotations", self.h_job_ann_delete)
        r.add_post(r"/api/jobs/{id:\d+}/dataset/export", self.h_job_export)
        r.add_get(r"/api/jobs/{id:\d+}/dataset/download", self.h_download)
        r.add_get("/api/labels", self.h_labels_list)
        r.add_post("/api/guides", self.h_guide_create)
        r.add_get(r"/api/guides/{id:\d+}", self.h_guide_get)
        r.add_patch(r"/api/guides/{id:\d+}", self.h_guide_patch)
        r.add_delete(r"/api/guides/{id:\d+}", self.h_guide_delete)
        r.add_get("/api/requests", self.h_requests_list)
        r.add_get("/api/requests/{rq_id}", self.h_request_get)
        return app

    @staticmethod
    def _route_both(router: web.UrlDispatcher, method: str, path: str, handler: Any) -> None:
        router.add_route(method, path, handler)
        router.add_route(method, path + "/", handler)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening (port 0 picks a free port; see base_url)."""
        if self.validate_schema and self._openapi is None:
            from .schema import DEFAULT_SCHEMA, load_openapi

            self._openapi = await asyncio.to_thread(
                load_openapi, self._schema_path or DEFAULT_SCHEMA
            )
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._site_port = sockets[0].getsockname()[1] if sockets else port
        self._host = host
        log.info("CVAT stand-in %s listening on %s", self.version, self.base_url)

    async def stop(self) -> None:
        """Stop the server and its background jobs."""
        for hold in self._holds:
            hold.release()
        for fut in list(self._hangs):
            fut.cancel()
        for task in list(self._bg):
            task.cancel()
        if self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)
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

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # ------------------------------------------------------------------ middlewares

    @web.middleware
    async def _log_mw(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        request[USER] = None
        status = 0
        started = time.monotonic()
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            user = request.get(USER)
            self.request_times.append((request.method, request.path, started, time.monotonic()))
            if not request.get(LOGGED):
                self.request_log.append(
                    (request.method, request.path, status, user.username if user else None)
                )

    @web.middleware
    async def _fault_mw(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        if self.latency > 0:
            await self._injected_sleep(self.latency)
        hold = next((h for h in self._holds if not h.reached.is_set()
                     and h.method in ("*", request.method)
                     and h.path_re.search(request.path_qs)), None)
        if hold is not None:
            hold.reached.set()
            await hold.released.wait()
        fault = self._match_fault(request)
        if fault is not None and not fault.after:
            return await self._apply_fault(request, fault)
        if fault is None and self.error_rate > 0 and self._rng.random() < self.error_rate:
            return self._error_page(self._rng.choice([500, 502, 503]))
        resp = await handler(request)
        if fault is not None:
            return await self._apply_fault(request, fault)
        return resp

    def _match_fault(self, request: web.Request) -> _Fault | None:
        for fault in self._faults:
            if fault.method in ("*", request.method) and fault.path_re.search(request.path_qs):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _apply_fault(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.hang:
            request[LOGGED] = True
            self.request_log.append((request.method, request.path, 0, None))
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._hangs.add(fut)
            try:
                await fut
            finally:
                self._hangs.discard(fut)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault.body is not None:
            return cvat_response(fault.body, fault.status)
        return self._error_page(fault.status)

    @web.middleware
    async def _cost_mw(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        """Charge what the request costs a real CVAT's server, on the shared cores."""
        if not self._costs.free:
            scheme = request.headers.get("Authorization", "").partition(" ")[0].lower() or None
            if scheme is None and "sessionid" in request.cookies:
                scheme = "session"
            hashing, work = self._costs.of_request(request.method, request.path, scheme)
            await self.cpu.spend(hashing=hashing, requests=work)
        return await handler(request)

    @staticmethod
    def _error_page(status: int) -> web.Response:
        texts = {
            500: "<h1>Server Error (500)</h1>",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        ctype = "text/html" if status == 500 else "text/plain"
        return web.Response(status=status, text=texts.get(status, "Error"), content_type=ctype)

    @web.middleware
    async def _schema_mw(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        if not self.validate_schema or self._openapi is None:
            return await handler(request)
        from .schema import OARequest, OAResponse, validate_request, validate_response

        body = await request.read() if request.can_read_body else b""
        ctype_in = request.headers.get("Content-Type", "")
        if ctype_in.startswith("multipart/form-data"):
            # openapi-core neither maps `name[i]` keys to arrays nor casts form strings:
            # validate the equivalent JSON document (DataRequest is also declared for JSON)
            try:
                fields, files = await self._read_form(request)
                body = json.dumps(_form_as_json(fields, files)).encode()
                ctype_in = "application/json"
            except ValueError as exc:
                log.warning("cannot parse multipart body for validation: %s", exc)
        proto = request.headers.get("X-Forwarded-Proto", request.scheme)
        oreq = OARequest(
            host_url=f"{proto}://{request.host}",
            path=request.path,
            method=request.method,
            query=request.query_string,
            headers=dict(request.headers),
            cookies=dict(request.cookies),
            body=body or None,
            content_type=ctype_in,
        )
        resp = await handler(request)
        errors = validate_request(
            self._openapi, oreq, resp.status, request.path.rstrip("/") in ANONYMOUS_OK
        )
        if isinstance(resp, web.Response) and resp.status < 500:
            data = resp.body if isinstance(resp.body, bytes) else b""
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
            if ctype in ("", CVAT_JSON, "application/json"):
                oresp = OAResponse(resp.status, ctype, dict(resp.headers), data)
                errors += [
                    f"response {resp.status}: {m}"
                    for m in validate_response(self._openapi, oreq, oresp)
                ]
        for message in errors:
            log.warning("schema violation: %s %s: %s", request.method, request.path, message)
            self.schema_violations.append((request.method, request.path, message))
        return resp

    @web.middleware
    async def _api_mw(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        try:
            request[USER] = self._authenticate(request)
            anonymous_ok = request.path.rstrip("/") in ANONYMOUS_OK
            if request[USER] is None and not anonymous_ok:
                raise ApiError(401, {"detail": "Authentication credentials were not provided."})
            return await handler(request)
        except ApiError as exc:
            headers = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="api"'
            if exc.body is None:
                return web.Response(status=exc.status)
            return cvat_response(exc.body, exc.status, headers)

    def _authenticate(self, request: web.Request) -> User | None:
        """DRF authentication order: Token, (Bearer), Session (+CSRF), Basic."""
        header = request.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() == "token":
            for user in self.users.values():
                if user.token and secrets.compare_digest(user.token, cred.strip()):
                    if not user.is_active:
                        raise ApiError(401, {"detail": "User inactive or deleted."})
                    return user
            raise ApiError(401, {"detail": "Invalid token."})
        if scheme.lower() == "bearer":
            raise ApiError(401, {"detail": "Invalid token."})
        session_id = request.cookies.get("sessionid")
        if session_id and session_id in self.sessions:
            user_id, _csrf = self.sessions[session_id]
            user = self.users.get(user_id)
            if user is not None and user.is_active:
                if request.method in UNSAFE:
                    self._check_csrf(request)
                return user
        if scheme.lower() == "basic":
            try:
                raw = base64.b64decode(cred.strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise ApiError(
                    401,
                    {"detail": "Invalid basic header. Credentials not correctly base64 encoded."},
                ) from None
            username, sep, password = raw.partition(":")
            if not sep:
                raise ApiError(401, {"detail": "Invalid basic header. No credentials provided."})
            user = self.users_by_name(username)
            if (
                user is None
                or not user.is_active
                or not secrets.compare_digest(user.password.encode(), password.encode())
            ):
                raise ApiError(401, {"detail": "Invalid username/password."})
            return user
        return None

    @staticmethod
    def _check_csrf(request: web.Request) -> None:
        cookie = request.cookies.get("csrftoken")
        if not cookie:
            raise ApiError(403, {"detail": "CSRF Failed: CSRF cookie not set."})
        sent = request.headers.get("X-CSRFToken")
        if not sent:
            raise ApiError(403, {"detail": "CSRF Failed: CSRF token missing."})
        if sent != cookie:
            raise ApiError(
                403,
                {"detail": "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect."},
            )

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _origin(request: web.Request) -> str:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme)
        host = request.headers.get("X-Forwarded-Host", request.host)
        return f"{proto}://{host}"

    @staticmethod
    async def _json_body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from None

    @staticmethod
    def _is_admin(user: User) -> bool:
        return user.is_superuser or user.is_admin

    def _full_user_serializer(self, caller: User) -> bool:
        if self.version_tuple >= (2, 55, 0):
            return caller.is_superuser
        return caller.is_staff

    def _user_basic(self, user: User | None, origin: str) -> dict[str, Any] | None:
        if user is None:
            return None
        return {
            "url": f"{origin}/api/users/{user.id}",
            "id": user.id,
            "username": user.username,
            "first_name": user.first_name,
            "last_name": user.last_name,
        }

    def _user_full(self, user: User, origin: str) -> dict[str, Any]:
        data = self._user_basic(user, origin) or {}
        data.update(
            {
                "email": user.email,
                "groups": list(user.groups),
                "is_staff": user.is_staff,
                "is_superuser": user.is_superuser,
                "is_active": user.is_active,
                "last_login": user.last_login,
                "date_joined": user.date_joined,
                "has_analytics_access": False,
            }
        )
        return data

    def _paginate(self, request: web.Request, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """DRF PageNumberPagination with CVAT's `page_size=all`."""
        q = request.query
        size_raw = q.get("page_size")
        if size_raw == "all":
            return {"count": len(rows), "next": None, "previous": None, "results": rows}
        size = 10
        if size_raw:
            try:
                size = max(int(size_raw), 1)
            except ValueError:
                size = 10
        page_raw = q.get("page", "1")
        try:
            page = int(page_raw) if page_raw != "last" else max((len(rows) - 1) // size + 1, 1)
        except ValueError:
            raise ApiError(404, {"detail": "Invalid page."}) from None
        pages = max((len(rows) - 1) // size + 1, 1)
        if page < 1 or page > pages:
            raise ApiError(404, {"detail": "Invalid page."})
        chunk = rows[(page - 1) * size : page * size]
        base = f"{self._origin(request)}{request.path}"

        def url(p: int | None) -> str:
            params = [(k, v) for k, v in q.items() if k != "page"]
            if p is not None:
                params.append(("page", str(p)))
            return base + ("?" + urlencode(params) if params else "")

        nxt = url(page + 1) if page < pages else None
        prev = None if page == 1 else (url(None) if page == 2 else url(page - 1))
        return {"count": len(rows), "next": nxt, "previous": prev, "results": chunk}

    def _filter_rows(
        self,
        request: web.Request,
        rows: list[tuple[dict[str, Any], dict[str, Any]]],
        simple: tuple[str, ...],
        search: tuple[str, ...],
        default_sort: str = "-id",
    ) -> list[dict[str, Any]]:
        """Apply CVAT's simple filters, `filter=` JSON logic, `search=` and `sort=`."""
        q = request.query
        out = rows
        for name in simple:
            if name in q:
                want = q[name]
                out = [r for r in out if _eq(r[0].get(name), want)]
        if q.get("filter"):
            try:
                logic = json.loads(q["filter"])
            except ValueError:
                raise ApiError(400, {"detail": "filter: Json syntax should be used"}) from None
            out = [r for r in out if _json_logic(logic, r[0])]
        if q.get("search"):
            needle = q["search"].lower()
            out = [r for r in out if any(needle in str(r[0].get(f) or "").lower() for f in search)]
        sort = q.get("sort") or default_sort
        for key in reversed([s.strip() for s in sort.split(",") if s.strip()]):
            desc = key.startswith("-")
            field = key.lstrip("-")
            out = sorted(
                out,
                key=lambda r, f=field: (r[0].get(f) is None, r[0].get(f) or 0),
                reverse=desc,
            )
        return [r[1] for r in out]

    # ------------------------------------------------------------------ server / auth

    async def h_about(self, request: web.Request) -> web.Response:
        """GET /api/server/about."""
        return cvat_response(
            {
                "name": "Computer Vision Annotation Tool",
                "description": ABOUT_DESCRIPTION,
                "version": self.version,
                "logo_url": f"{self._origin(request)}/static/logo.svg",
                "subtitle": "Open Data Annotation Platform",
            }
        )

    def _login_response(self, user: User, body: dict[str, Any], status: int) -> web.Response:
        session_id = secrets.token_hex(16)
        csrf = secrets.token_hex(16)
        self.sessions[session_id] = (user.id, csrf)
        user.last_login = now_iso()
        resp = cvat_response(body, status)
        resp.set_cookie("sessionid", session_id, httponly=True, samesite="Lax", path="/")
        resp.set_cookie("csrftoken", csrf, samesite="Lax", path="/")
        return resp

    async def h_register(self, request: web.Request) -> web.Response:
        """POST /api/auth/register with dj-rest-auth/allauth/Django validation."""
        data = await self._json_body(request)
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        errors: dict[str, list[str]] = {}
        username = data.get("username")
        if username is None or username == "":
            errors["username"] = [
                "This field is required." if username is None else "This field may not be blank."
            ]
        else:
            username = str(username)
            if len(username) < 5:
                errors["username"] = ["Ensure this field has at least 5 characters."]
            elif len(username) > 150:
                errors["username"] = ["Ensure this field has no more than 150 characters."]
            elif not USERNAME_RE.match(username):
                errors["username"] = [
                    "Enter a valid username. This value may contain only letters, numbers, "
                    "and @/./+/-/_ characters."
                ]
            elif any(u.username.lower() == username.lower() for u in self.users.values()):
                errors["username"] = ["A user with that username already exists."]
        email = str(data.get("email") or "").strip().lower()
        if email and not EMAIL_RE.match(email):
            errors["email"] = ["Enter a valid email address."]
        for name in ("first_name", "last_name"):
            if name in data and len(str(data[name])) > 150:
                errors[name] = ["Ensure this field has no more than 150 characters."]
        for name in ("password1", "password2"):
            if not data.get(name):
                errors[name] = [
                    "This field is required."
                    if name not in data
                    else "This field may not be blank."
                ]
        if "password1" not in errors:
            pw_errors = password_errors(str(data["password1"]))
            if pw_errors:
                errors["password1"] = pw_errors
        if errors:
            raise ApiError(400, errors)
        if data["password1"] != data["password2"]:
            raise ApiError(400, {"non_field_errors": ["The two password fields didn't match."]})
        if email and any(u.email == email for u in self.users.values()):
            raise ApiError(400, ["A user is already registered with this e-mail address."])
        first = str(data.get("first_name") or "")
        last = str(data.get("last_name") or "")
        similar = similarity_errors(
            str(data["password1"]),
            {"username": username, "first_name": first, "last_name": last, "email": email},
        )
        if similar:
            raise ApiError(400, {"non_field_errors": similar})
        user = self.add_user(
            username, str(data["password1"]), email=email, first_name=first, last_name=last
        )
        log.info("registered user %s (id %s)", user.username, user.id)
        body = {
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email_verification_required": False,
            "key": user.token,
        }
        return self._login_response(user, body, 201)

    async def h_login(self, request: web.Request) -> web.Response:
        """POST /api/auth/login: token plus session cookies."""
        data = await self._json_body(request)
        password = str(data.get("password") or "")
        user = None
        if data.get("username"):
            user = self.users_by_name(str(data["username"]))
        elif data.get("email"):
            matches = [u for u in self.users.values() if u.email == str(data["email"]).lower()]
            user = matches[0] if len(matches) == 1 else None
        if user is None or not user.is_active or user.password != password:
            raise ApiError(
                400, {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        if not user.token:
            user.token = new_token()
        return self._login_response(user, {"key": user.token}, 200)

    async def h_logout(self, request: web.Request) -> web.Response:
        """POST /api/auth/logout: deletes the user's token and the session."""
        user: User | None = request[USER]
        if user is not None:
            user.token = None
        sid = request.cookies.get("sessionid")
        if sid:
            self.sessions.pop(sid, None)
        resp = cvat_response({"detail": "Successfully logged out."})
        resp.del_cookie("sessionid")
        return resp

    # ------------------------------------------------------------------ users

    def _user_row(self, user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "is_active": user.is_active,
            "email": user.email,
        }

    async def h_users_list(self, request: web.Request) -> web.Response:
        """GET /api/users."""
        caller: User = request[USER]
        origin = self._origin(request)
        visible = list(self.users.values()) if self._is_admin(caller) else [caller]
        full = self._full_user_serializer(caller)
        rows = [
            (
                self._user_row(u),
                self._user_full(u, origin) if full else self._user_basic(u, origin) or {},
            )
            for u in visible
        ]
        simple: tuple[str, ...] = ("id", "is_active", "first_name", "last_name")
        if self.version_tuple >= (2, 4, 0):
            simple = ("username", *simple)
        result = self._filter_rows(request, rows, simple, ("username", "first_name", "last_name"))
        return cvat_response(self._paginate(request, result))

    async def h_users_self(self, request: web.Request) -> web.Response:
        """GET /api/users/self."""
        return cvat_response(self._user_full(request[USER], self._origin(request)))

    def _get_user(self, request: web.Request) -> User:
        user = self.users.get(int(request.match_info["id"]))
        if user is None:
            raise _not_found("User")
        return user

    async def h_user_get(self, request: web.Request) -> web.Response:
        """GET /api/users/{id}."""
        caller: User = request[USER]
        target = self._get_user(request)
        is_self = target.id == caller.id
        if not (is_self or self._is_admin(caller)):
            raise _forbidden()
        full = self._full_user_serializer(caller) or is_self
        origin = self._origin(request)
        return cvat_response(
            self._user_full(target, origin) if full else self._user_basic(target, origin)
        )

    async def h_user_patch(self, request: web.Request) -> web.Response:
        """PATCH /api/users/{id}: groups replace; ignored unless the caller is a superuser."""
        caller: User = request[USER]
        target = self._get_user(request)
        data = await self._json_body(request)
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        is_self = target.id == caller.id
        admin = self._is_admin(caller)
        perm_fields = {"groups", "is_active", "is_staff", "is_superuser"}
        if not (admin or is_self) or (not admin and perm_fields & set(data)):
            raise _forbidden()
        full = self._full_user_serializer(caller)
        errors: dict[str, list[str]] = {}
        if full and "groups" in data:
            groups = data["groups"]
            if not isinstance(groups, list):
                errors["groups"] = [
                    f'Expected a list of items but got type "{type(groups).__name__}".'
                ]
            else:
                for g in groups:
                    if g not in IAM_ROLES:
                        errors["groups"] = [f"Object with name={g} does not exist."]
                        break
        for name in ("first_name", "last_name"):
            if name in data and len(str(data[name])) > 150:
                errors[name] = ["Ensure this field has no more than 150 characters."]
        if errors:
            raise ApiError(400, errors)
        for name in ("first_name", "last_name"):
            if name in data:
                setattr(target, name, str(data[name]))
        if full:
            if "email" in data:
                target.email = str(data["email"]).lower()
            if "groups" in data:
                target.groups = list(dict.fromkeys(data["groups"]))
            for name in ("is_active", "is_staff", "is_superuser"):
                if name in data:
                    setattr(target, name, bool(data[name]))
            if not target.is_active:
                self._drop_sessions(target.id)
        origin = self._origin(request)
        return cvat_response(
            self._user_full(target, origin) if full else self._user_basic(target, origin)
        )

    def _drop_sessions(self, user_id: int) -> None:
        for sid in [s for s, (uid, _) in self.sessions.items() if uid == user_id]:
            del self.sessions[sid]

    async def h_user_delete(self, request: web.Request) -> web.Response:
        """DELETE /api/users/{id}: owner/assignee FKs become null."""
        caller: User = request[USER]
        target = self._get_user(request)
        if not (self._is_admin(caller) or target.id == caller.id):
            raise _forbidden()
        del self.users[target.id]
        self._drop_sessions(target.id)
        for task in self.tasks.values():
            if task.owner_id == target.id:
                task.owner_id = None
            if task.assignee_id == target.id:
                task.assignee_id = None
        for job in self.jobs.values():
            if job.assignee_id == target.id:
                job.assignee_id = None
        log.info("deleted user %s", target.username)
        return web.Response(status=204)

    # ------------------------------------------------------------------ permissions

    def _task_jobs(self, task: Task) -> list[Job]:
        return sorted((j for j in self.jobs.values() if j.task_id == task.id), key=lambda j: j.id)

    def _is_task_staff(self, user: User, task: Task) -> bool:
        return user.id in (task.owner_id, task.assignee_id)

    def _can_view_task(self, user: User, task: Task) -> bool:
        return self._is_admin(user) or self._is_task_staff(user, task)

    def _can_view_job(self, user: User, job: Job) -> bool:
        task = self.tasks.get(job.task_id)
        return (
            self._is_admin(user)
            or job.assignee_id == user.id
            or (task is not None and self._is_task_staff(user, task))
        )

    def _get_task(self, request: web.Request, check: str = "view") -> Task:
        task = self.tasks.get(int(request.match_info["id"]))
        if task is None:
            raise _not_found("Task")
        user: User = request[USER]
        if check == "delete":
            ok = self._is_admin(user) or user.id == task.owner_id
        else:
            ok = self._can_view_task(user, task)
        if not ok:
            raise _forbidden()
        return task

    def _get_job(self, request: web.Request) -> Job:
        job = self.jobs.get(int(request.match_info["id"]))
        if job is None:
            raise _not_found("Job")
        if not self._can_view_job(request[USER], job):
            raise _forbidden()
        return job

    # ------------------------------------------------------------------ tasks

    def _task_json(self, task: Task, origin: str) -> dict[str, Any]:
        jobs = self._task_jobs(task)
        data: dict[str, Any] = {
            "url": f"{origin}/api/tasks/{task.id}",
            "id": task.id,
            "name": task.name,
            "project_id": None,
            "project_name": None,
            "owner": self._user_basic(self.users.get(task.owner_id or 0), origin),
            "assignee": self._user_basic(self.users.get(task.assignee_id or 0), origin),
            "bug_tracker": task.bug_tracker,
            "created_date": task.created_date,
            "updated_date": task.updated_date,
            "overlap": task.overlap,
            "segment_size": task.segment_size,
            "status": _task_status(jobs),
        }
        if task.has_data:
            data.update(
                {
                    "data_chunk_size": 72,
                    "data_original_chunk_type": "imageset",
                    "data_compressed_chunk_type": "imageset",
                    "data_cloud_storage_id": None,
                }
            )
        data["guide_id"] = self._guide_of(task.id)
        if task.has_data:
            data["size"] = len(task.frames)
            data["image_quality"] = task.image_quality
        data.update(
            {
                "data": task.data_id,
                "dimension": "2d" if task.has_data else "",
                "mode": "annotation" if task.has_data else "",
                "media_type": task.media_type,
                "subset": task.subset,
                "organization_id": None,
                "organization": None,
                "target_storage": None,
                "source_storage": None,
                "jobs": {
                    "count": len(jobs),
                    "completed": sum(1 for j in jobs if j.state == "completed"),
                    "validation": sum(1 for j in jobs if j.stage == "validation"),
                    "url": f"{origin}/api/jobs?task_id={task.id}",
                },
                "labels": {"url": f"{origin}/api/labels?task_id={task.id}"},
                "assignee_updated_date": task.assignee_updated_date,
                "validation_mode": None,
                "consensus_enabled": False,
            }
        )
        return data

    def _parse_labels(self, task_id: int, raw: Any, existing: list[Label]) -> list[Label]:
        if not isinstance(raw, list):
            raise ApiError(400, {"labels": ['Expected a list of items but got type "dict".']})
        labels: list[Label] = []
        names = {lb.name for lb in existing}
        for item in raw:
            if not isinstance(item, dict) or not item.get("name"):
                raise ApiError(400, {"labels": [{"name": ["This field is required."]}]})
            name = str(item["name"])
            if len(name) > 64:
                raise ApiError(
                    400,
                    {"labels": [{"name": ["Ensure this field has no more than 64 characters."]}]},
                )
            if name in names:
                raise ApiError(400, {"labels": ["All label names must be unique"]})
            names.add(name)
            ltype = item.get("type", "any")
            if ltype not in LABEL_TYPES:
                raise ApiError(400, {"labels": [{"type": [f'"{ltype}" is not a valid choice.']}]})
            attrs: list[AttributeSpec] = []
            attr_names: set[str] = set()
            for a in item.get("attributes") or []:
                missing = [k for k in ("name", "mutable", "input_type", "values") if k not in a]
                if missing:
                    raise ApiError(
                        400,
                        {
                            "labels": [
                                {"attributes": [{k: ["This field is required."] for k in missing}]}
                            ]
                        },
                    )
                if a["input_type"] not in INPUT_TYPES:
                    raise ApiError(
                        400,
                        {"labels": [{"attributes": [{"input_type": [
                            f'"{a["input_type"]}" is not a valid choice.']}]}]},
                    )  # fmt: skip
                if a["name"] in attr_names:
                    raise ApiError(400, {"labels": ["Attribute names must be unique"]})
                attr_names.add(a["name"])
                values = [str(v) for v in a.get("values") or []]
                default = a.get("default_value")
                if default is None or default == "":
                    default = (
                        values[0]
                        if values and a["input_type"] != "text"
                        else (values[0] if values else "")
                    )
                attrs.append(
                    AttributeSpec(
                        id=self._next_id("attribute"),
                        name=str(a["name"]),
                        mutable=bool(a["mutable"]),
                        input_type=a["input_type"],
                        default_value=str(default),
                        values=values,
                    )
                )
            color = item.get("color") or PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]
            labels.append(
                Label(
                    id=self._next_id("label"),
                    task_id=task_id,
                    name=name,
                    color=color,
                    type=ltype,
                    attributes=attrs,
                )
            )
        return labels

    async def h_task_create(self, request: web.Request) -> web.Response:
        """POST /api/tasks: a worker gets 403."""
        caller: User = request[USER]
        privilege = 0 if caller.is_superuser else caller.privilege
        if privilege is None or privilege > 75:
            raise _forbidden()
        data = await self._json_body(request)
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        name = data.get("name")
        if not name:
            raise ApiError(
                400,
                {
                    "name": [
                        "This field is required."
                        if name is None
                        else "This field may not be blank."
                    ]
                },
            )
        if len(str(name)) > 256:
            raise ApiError(400, {"name": ["Ensure this field has no more than 256 characters."]})
        labels_raw = data.get("labels")
        if not labels_raw and self.version_tuple < (2, 46, 0) and not data.get("project_id"):
            raise ApiError(400, {"label_set": ["Label set or project_id must be present"]})
        owner_id = caller.id
        if data.get("owner_id") is not None:
            if not self._is_admin(caller) and data["owner_id"] != caller.id:
                raise _forbidden()
            if data["owner_id"] not in self.users:
                raise ApiError(
                    400, {"owner_id": [f'Invalid pk "{data["owner_id"]}" - object does not exist.']}
                )
            owner_id = int(data["owner_id"])
        assignee_id = data.get("assignee_id")
        if assignee_id is not None and assignee_id not in self.users:
            raise ApiError(
                400, {"assignee_id": [f'Invalid pk "{assignee_id}" - object does not exist.']}
            )
        seg = data.get("segment_size") or 0
        if not isinstance(seg, int) or seg < 0:
            raise ApiError(
                400, {"segment_size": ["Ensure this value is greater than or equal to 0."]}
            )
        task_id = self._next_id("task")
        labels = self._parse_labels(task_id, labels_raw or [], [])
        task = Task(
            id=task_id,
            name=str(name),
            owner_id=owner_id,
            assignee_id=assignee_id,
            bug_tracker=str(data.get("bug_tracker") or ""),
            subset=str(data.get("subset") or ""),
            segment_size=seg,
            overlap=data.get("overlap"),
            labels=labels,
        )
        if assignee_id is not None:
            task.assignee_updated_date = task.created_date
        self.tasks[task.id] = task
        log.info("task %s created by %s", task.id, caller.username)
        return cvat_response(self._task_json(task, self._origin(request)), 201)

    async def h_tasks_list(self, request: web.Request) -> web.Response:
        """GET /api/tasks (only visible tasks)."""
        caller: User = request[USER]
        origin = self._origin(request)
        rows = []
        for task in self.tasks.values():
            if not self._can_view_task(caller, task):
                continue
            owner = self.users.get(task.owner_id or 0)
            assignee = self.users.get(task.assignee_id or 0)
            jobs = self._task_jobs(task)
            row = {
                "id": task.id,
                "name": task.name,
                "owner": owner.username if owner else None,
                "assignee": assignee.username if assignee else None,
                "status": _task_status(jobs),
                "mode": "annotation" if task.has_data else "",
                "dimension": "2d" if task.has_data else "",
                "subset": task.subset,
                "updated_date": task.updated_date,
                "created_date": task.created_date,
            }
            rows.append((row, self._task_json(task, origin)))
        simple = ("name", "owner", "assignee", "status", "mode", "dimension", "subset", "id")
        result = self._filter_rows(request, rows, simple, ("name", "owner", "assignee", "subset"))
        return cvat_response(self._paginate(request, result))

    async def h_task_get(self, request: web.Request) -> web.Response:
        """GET /api/tasks/{id}."""
        task = self._get_task(request)
        return cvat_response(self._task_json(task, self._origin(request)))

    async def h_task_patch(self, request: web.Request) -> web.Response:
        """PATCH /api/tasks/{id}: name, assignee_id, owner_id, bug_tracker, subset, labels."""
        caller: User = request[USER]
        task = self._get_task(request)
        data = await self._json_body(request)
        if "owner_id" in data:
            if not (self._is_admin(caller) or caller.id == task.owner_id):
                raise _forbidden()
            if data["owner_id"] is not None and data["owner_id"] not in self.users:
                raise ApiError(
                    400, {"owner_id": [f'Invalid pk "{data["owner_id"]}" - object does not exist.']}
                )
            task.owner_id = data["owner_id"]
        if "assignee_id" in data:
            aid = data["assignee_id"]
            if aid is not None and aid not in self.users:
                raise ApiError(
                    400, {"assignee_id": [f'Invalid pk "{aid}" - object does not exist.']}
                )
            if aid != task.assignee_id:
                task.assignee_updated_date = now_iso()
            task.assignee_id = aid
        if "name" in data:
            if not data["name"]:
                raise ApiError(400, {"name": ["This field may not be blank."]})
            task.name = str(data["name"])
        for name in ("bug_tracker", "subset"):
            if name in data:
                setattr(task, name, str(data[name] or ""))
        if "labels" in data:
            new = [lb for lb in data["labels"] if not lb.get("id")]
            task.labels.extend(self._parse_labels(task.id, new, task.labels))
        task.updated_date = now_iso()
        return cvat_response(self._task_json(task, self._origin(request)))

    async def h_task_delete(self, request: web.Request) -> web.Response:
        """DELETE /api/tasks/{id}."""
        task = self._get_task(request, "delete")
        for job in self._task_jobs(task):
            del self.jobs[job.id]
        guide_id = self._guide_of(task.id)
        if guide_id is not None:
            del self.guides[guide_id]
        del self.tasks[task.id]
        return web.Response(status=204)

    # ------------------------------------------------------------------ annotation guides
    # CVAT 2.5+: a task (or a project) has at most one guide, in Markdown; whoever may change
    # the task may write it, whoever may see the task or one of its jobs may read it.

    def _guide_of(self, task_id: int) -> int | None:
        return next((g.id for g in self.guides.values() if g.task_id == task_id), None)

    def _guide(self, request: web.Request, *, write: bool) -> Guide:
        if self.version_tuple < (2, 5, 0):
            raise ApiError(404, {"detail": "Not found."})
        guide = self.guides.get(int(request.match_info["id"]))
        if guide is None:
            raise _not_found("AnnotationGuide")
        self._check_guide_access(request[USER], self.tasks[guide.task_id], write=write)
        return guide

    def _check_guide_access(self, user: User, task: Task, *, write: bool) -> None:
        staff = self._is_admin(user) or user.id in (task.owner_id, task.assignee_id)
        job_staff = any(job.assignee_id == user.id for job in self._task_jobs(task))
        if not (staff or (not write and (self._is_task_staff(user, task) or job_staff))):
            raise _forbidden()

    async def h_guide_create(self, request: web.Request) -> web.Response:
        """POST /api/guides {task_id | project_id, markdown}."""
        if self.version_tuple < (2, 5, 0):
            raise ApiError(404, {"detail": "Not found."})
        data = await self._json_body(request)
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        task_id, project_id = data.get("task_id"), data.get("project_id")
        if task_id is None and project_id is None:
            raise ApiError(400, ["One of project_id or task_id must be specified"])
        if task_id is not None and project_id is not None:
            raise ApiError(400, ["Both project_id and task_id must not be specified"])
        if project_id is not None:  # the stand-in has no projects
            raise ApiError(400, [f"The specified project #{project_id} does not exist."])
        task = self.tasks.get(int(task_id))
        if task is None:
            raise ApiError(400, [f"The specified task #{task_id} does not exist."])
        self._check_guide_access(request[USER], task, write=True)
        if self._guide_of(task.id) is not None:
            # The task's one-to-one guide exists: CVAT's database refuses the second row and
            # the unhandled IntegrityError is a 500.
            raise ApiError(500, None)
        # A DRF CharField trims the text (trim_whitespace): seen on CVAT 2.73, a trailing
        # newline does not survive the round trip.
        guide = Guide(id=self._next_id("guide"), task_id=task.id,
                      markdown=str(data.get("markdown") or "").strip())
        self.guides[guide.id] = guide
        return cvat_response(guide.to_json(), status=201)

    async def h_guide_get(self, request: web.Request) -> web.Response:
        """GET /api/guides/{id}."""
        return cvat_response(self._guide(request, write=False).to_json())

    async def h_guide_patch(self, request: web.Request) -> web.Response:
        """PATCH /api/guides/{id} {markdown}."""
        guide = self._guide(request, write=True)
        data = await self._json_body(request)
        if isinstance(data, dict) and "markdown" in data:
            guide.markdown = str(data["markdown"] or "").strip()
            guide.updated_date = now_iso()
        return cvat_response(guide.to_json())

    async def h_guide_delete(self, request: web.Request) -> web.Response:
        """DELETE /api/guides/{id}."""
        guide = self._guide(request, write=True)
        del self.guides[guide.id]
        return web.Response(status=204)

    # ------------------------------------------------------------------ task data

    def _create_rq_id(self, task_id: int) -> str:
        if self.version_tuple >= (2, 38, 0):
            return f"action=create&target=task&target_id={task_id}"
        return f"create:task-{task_id}"

    async def h_task_data_post(self, request: web.Request) -> web.Response:
        """POST /api/tasks/{id}/data with CVAT's Upload-Start/Multiple/Finish protocol."""
        task = self._get_task(request)
        if task.has_data:
            raise ApiError(400, ["Adding more data is not supported"])
        rq_id = self._create_rq_id(task.id)
        current = self.requests.get(rq_id)
        if current is not None and current.status in ("queued", "started"):
            raise ApiError(409, {"rq_id": rq_id})
        headers = request.headers
        start = "Upload-Start" in headers
        finish = "Upload-Finish" in headers
        multiple = "Upload-Multiple" in headers
        if start and not finish:
            task.upload_files = []
            task.upload_started = True
            return web.Response(status=202)
        fields, files = await self._read_form(request)
        if multiple and not finish:
            if "image_quality" in fields or self.version_tuple < (2, 65, 0):
                self._check_image_quality(fields)
            self._append_uploads(task, files)
            return web.Response(status=200)
        # one request (no headers or Start+Finish) or the finishing request
        if not (finish and not start):
            task.upload_files = []
        self._append_uploads(task, files)
        self._check_image_quality(fields)
        sorting = fields.get("sorting_method", ["lexicographical"])[0]
        if sorting not in SORTING_METHODS:
            raise ApiError(400, {"sorting_method": [f'"{sorting}" is not a valid choice.']})
        server_files = _indexed(fields, "server_files")
        order = _indexed(fields, "upload_file_order")
        quality = fields.get("image_quality", [None])[0]
        uploads = list(task.upload_files)
        task.upload_files = []
        task.upload_started = False
        rq = RqRequest(
            id=rq_id,
            action="create",
            target="task",
            target_id=task.id,
            owner_id=request[USER].id,
            task_id=task.id,
        )
        self.requests[rq_id] = rq
        self._spawn(self._in_import_worker(functools.partial(
            self._process_task, task, rq, uploads, server_files, sorting, order,
            int(quality) if quality not in (None, "") else None,
        )))  # fmt: skip
        log.info("task %s data accepted: %d client files", task.id, len(uploads))
        return cvat_response({"rq_id": rq_id}, 202)

    def _check_image_quality(self, fields: dict[str, list[str]]) -> None:
        raw = fields.get("image_quality", [None])[0]
        if raw in (None, ""):
            if self.version_tuple < (2, 65, 0):
                raise ApiError(400, {"image_quality": ["This field is required."]})
            return
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, {"image_quality": ["A valid integer is required."]}) from None
        minimum = 1 if self.version_tuple >= (2, 65, 0) else 0
        if value < minimum:
            raise ApiError(
                400,
                {"image_quality": [f"Ensure this value is greater than or equal to {minimum}."]},
            )
        if value > 100:
            raise ApiError(
                400, {"image_quality": ["Ensure this value is less than or equal to 100."]}
            )

    @staticmethod
    def _append_uploads(task: Task, files: list[tuple[str, str, bytes]]) -> None:
        for field_name, filename, content in files:
            if re.fullmatch(r"client_files\[\d+\]", field_name):
                task.upload_files.append((filename, content))
            # plain `client_files` keys are not parsed by CVAT: the files are lost

    @staticmethod
    async def _read_form(
        request: web.Request,
    ) -> tuple[dict[str, list[str]], list[tuple[str, str, bytes]]]:
        fields: dict[str, list[str]] = {}
        files: list[tuple[str, str, bytes]] = []
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            reader = MultipartReader(request.headers, _bytes_stream(await request.read()))
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = getattr(part, "name", None) or ""
                filename = getattr(part, "filename", None)
                content = await part.read()  # type: ignore[union-attr]
                if filename is not None:
                    files.append((name, filename, bytes(content)))
                else:
                    fields.setdefault(name, []).append(bytes(content).decode("utf-8"))
        elif ctype.startswith("application/json"):
            raw = await request.read()
            if raw:
                data = json.loads(raw)
                for key, value in data.items():
                    if isinstance(value, list):
                        for i, v in enumerate(value):
                            fields.setdefault(f"{key}[{i}]", []).append(str(v))
                    else:
                        fields.setdefault(key, []).append(str(value))
        elif ctype.startswith("application/x-www-form-urlencoded"):
            post = await request.post()
            for key, value in post.items():
                fields.setdefault(key, []).append(str(value))
        return fields, files

    async def _process_task(
        self,
        task: Task,
        rq: RqRequest,
        uploads: list[tuple[str, bytes]],
        server_files: list[str],
        sorting: str,
        order: list[str],
        quality: int | None,
    ) -> None:
        try:
            await self._injected_sleep(min(0.02, self.processing_time / 10))
            rq.status = "started"
            rq.started_date = now_iso()
            files = list(uploads)
            for rel in server_files:
                content = self._read_share(rel)
                if content is None:
                    raise ValueError(f"The file '{rel}' does not exist in the share")
                files.append((rel, content))
            if not files:
                raise ValueError("No media data found")
            if quality is None:
                raise ValueError(
                    "The 'image_quality' parameter is required for tasks with image data"
                )
            files = self._sort_files(files, sorting, order)
            frames: list[Frame] = []
            step = self.processing_time / max(len(files), 1)
            for idx, (name, content) in enumerate(files):
                await self._injected_sleep(step)
                try:
                    width, height = await asyncio.to_thread(_image_size, content)
                except Exception as exc:  # noqa: BLE001 - Pillow raises many types
                    raise ValueError(f"cannot identify image file '{name}': {exc}") from None
                frames.append(Frame(name=name, width=width, height=height, content=content))
                if self._costs.progress:
                    rq.progress = (idx + 1) / len(files)
            if task.id not in self.tasks:
                # Deleted while processing: CVAT's worker fails the job, nothing is created.
                raise ValueError(f"The task {task.id} was deleted")
            if self.empty_task_failure:
                log.info("task %s: empty_task_failure knob, no media stored", task.id)
            else:
                self._initialize_task(task, frames, quality)
            rq.status = "finished"
            rq.progress = 0.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - surfaced through the request API
            log.info("task %s creation failed: %s", task.id, exc)
            rq.status = "failed"
            rq.message = str(exc)
        rq.finished_date = now_iso()
        rq.finished_at = time.monotonic()
        ttl = self.request_ttl if rq.status == "finished" else 7 * 24 * 3600
        rq.expiry_date = iso_after(rq.finished_date, ttl)

    async def _in_import_worker(self, processing: Callable[[], Awaitable[None]]) -> None:
        """Run a task's processing as CVAT's import worker does: one task at a time when the
        costs say so (the rest stay queued), its time counted as the worker's CPU."""
        async with self._import_slots or contextlib.nullcontext():
            started = time.monotonic()
            try:
                await processing()
            finally:
                self.cpu.count(time.monotonic() - started, "import")

    def _read_share(self, rel: str) -> bytes | None:
        if self.share_dir is None:
            return None
        base = self.share_dir.resolve()
        path = (base / rel.lstrip("/")).resolve()
        if base not in path.parents or not path.is_file():
            return None
        return path.read_bytes()

    def _sort_files(
        self, files: list[tuple[str, bytes]], sorting: str, order: list[str]
    ) -> list[tuple[str, bytes]]:
        if sorting == "lexicographical":
            return sorted(files, key=lambda f: f[0])
        if sorting == "natural":
            return sorted(files, key=lambda f: _natural_key(f[0]))
        if sorting == "random":
            shuffled = list(files)
            self._rng.shuffle(shuffled)
            return shuffled
        if order:
            by_name = {name: (name, content) for name, content in files}
            missing = [n for n in order if n not in by_name]
            if missing or len(order) != len(files):
                raise ValueError(
                    "Some files were not found in the upload_file_order list or in the "
                    f"uploaded files: {missing or sorted(set(by_name) - set(order))}"
                )
            return [by_name[n] for n in order]
        return list(files)

    def _initialize_task(self, task: Task, frames: list[Frame], quality: int) -> None:
        now = now_iso()
        task.frames = frames
        task.media_type = "image"
        task.image_quality = quality
        task.data_id = self._next_id("data")
        task.chunks_updated_date = now
        size = len(frames)
        seg = task.segment_size if 0 < task.segment_size < size else size
        task.segment_size = seg
        task.overlap = task.overlap or 0
        start = 0
        while start < size:
            stop = min(start + seg, size) - 1
            job = Job(id=self._next_id("job"), task_id=task.id, start_frame=start, stop_frame=stop)
            self.jobs[job.id] = job
            start = stop + 1
        task.updated_date = now_iso()

    def _rq_json(self, rq: RqRequest, origin: str) -> dict[str, Any]:
        owner = self.users.get(rq.owner_id)
        op_type = "create:task" if rq.action == "create" else "export:dataset"
        result_url = None
        if rq.action == "export" and rq.status == "finished":
            result_url = f"{origin}/api/{rq.target}s/{rq.target_id}/dataset/download?" + urlencode(
                {"rq_id": rq.id}
            )
        return {
            "status": rq.status,
            "message": rq.message,
            "id": rq.id,
            "operation": {
                "type": op_type,
                "target": rq.target,
                "project_id": None,
                "task_id": rq.task_id,
                "job_id": rq.job_id,
                "org_id": None,
                "format": rq.format,
                "lightweight": None if rq.action == "create" else not rq.save_images,
            },
            "progress": rq.progress,
            "created_date": rq.created_date,
            "started_date": rq.started_date,
            "finished_date": rq.finished_date,
            "expiry_date": rq.expiry_date,
            "owner": {"id": rq.owner_id, "username": owner.username if owner else None},
            "result_url": result_url,
            "result_id": None,
        }

    def _live_request(self, rq_id: str) -> RqRequest | None:
        rq = self.requests.get(rq_id)
        if rq is None:
            return None
        if rq.finished_at is not None and rq.status == "finished":
            if time.monotonic() - rq.finished_at > self.request_ttl:
                del self.requests[rq_id]
                return None
        return rq

    async def h_request_get(self, request: web.Request) -> web.Response:
        """GET /api/requests/{rq_id} (absent before 2.16)."""
        if self.version_tuple < (2, 16, 0):
            raise web.HTTPNotFound()
        rq_id = request.match_info["rq_id"]
        rq = self._live_request(rq_id)
        caller: User = request[USER]
        if rq is None:
            raise ApiError(404, {"detail": "Not found."})
        if rq.owner_id != caller.id and not self._is_admin(caller):
            raise _forbidden()
        return cvat_response(self._rq_json(rq, self._origin(request)))

    async def h_requests_list(self, request: web.Request) -> web.Response:
        """GET /api/requests: the caller's own requests."""
        if self.version_tuple < (2, 16, 0):
            raise web.HTTPNotFound()
        caller: User = request[USER]
        origin = self._origin(request)
        rows = []
        for rq_id in list(self.requests):
            rq = self._live_request(rq_id)
            if rq is None or rq.owner_id != caller.id:
                continue
            row = {
                "action": rq.action,
                "target": rq.target,
                "task_id": rq.task_id,
                "job_id": rq.job_id,
                "status": rq.status,
                "format": rq.format,
                "created_date": rq.created_date,
                "subresource": "dataset" if rq.action == "export" else None,
                "project_id": None,
            }
            rows.append((row, self._rq_json(rq, origin)))
        simple = ("action", "target", "task_id", "job_id", "status", "format", "subresource",
                  "project_id")  # fmt: skip
        result = self._filter_rows(request, rows, simple, (), default_sort="-created_date")
        return cvat_response(self._paginate(request, result))

    async def h_task_status(self, request: web.Request) -> web.Response:
        """GET /api/tasks/{id}/status (deprecated; 'Finished' when no request exists)."""
        task = self._get_task(request)
        rq = self._live_request(self._create_rq_id(task.id))
        headers = {"Deprecation": "true"} if self.version_tuple >= (2, 16, 0) else {}
        if rq is None:
            body = {"state": "Finished", "message": "", "progress": 0}
        else:
            body = {
                "state": rq.status.capitalize(),
                "message": rq.message,
                "progress": rq.progress if rq.status == "started" else 0,
            }
        return cvat_response(body, headers=headers)

    def _meta_json(self, task: Task, start: int, stop: int) -> dict[str, Any]:
        return {
            "chapters": None,
            "chunks_updated_date": task.chunks_updated_date,
            "chunk_size": 72,
            "size": stop - start + 1,
            "image_quality": task.image_quality,
            "start_frame": start,
            "stop_frame": stop,
            "frame_filter": "",
            "frames": [
                {
                    "width": f.width,
                    "height": f.height,
                    "name": f.name,
                    "related_files": 0,
                    "has_related_context": False,
                }
                for f in task.frames[start : stop + 1]
            ],
            "deleted_frames": [],
            "included_frames": None,
            "storage": "local",
            "cloud_storage_id": None,
        }

    async def h_task_meta(self, request: web.Request) -> web.Response:
        """GET /api/tasks/{id}/data/meta."""
        task = self._get_task(request)
        if not task.has_data:
            raise ApiError(400, ["Data is not uploaded for the task yet"])
        return cvat_response(self._meta_json(task, 0, len(task.frames) - 1))

    async def h_job_meta(self, request: web.Request) -> web.Response:
        """GET /api/jobs/{id}/data/meta."""
        job = self._get_job(request)
        task = self.tasks[job.task_id]
        return cvat_response(self._meta_json(task, job.start_frame, job.stop_frame))

    async def _frame_response(
        self, request: web.Request, task: Task, start: int, stop: int
    ) -> web.Response:
        q = request.query
        kind = q.get("type")
        if kind != "frame":
            raise ApiError(400, ["Only type=frame is supported by the stand-in"])
        try:
            number = int(q.get("number", ""))
        except ValueError:
            raise ApiError(400, ["The frame number should be an integer"]) from None
        if number < start or number > stop:
            raise ApiError(400, [f"The frame number should be in the [{start}, {stop}] range"])
        frame = task.frames[number]
        quality = q.get("quality", "compressed")
        if quality == "original":
            data = frame.content
            ctype = Image.MIME.get(_image_format(frame.content) or "", "image/jpeg")
        else:
            data = await asyncio.to_thread(_compress, frame.content, task.image_quality or 70)
            ctype = "image/jpeg"
        return web.Response(body=data, headers={"Content-Type": ctype})

    async def h_job_data(self, request: web.Request) -> web.Response:
        """GET /api/jobs/{id}/data?type=frame&number=N&quality=..."""
        job = self._get_job(request)
        return await self._frame_response(
            request, self.tasks[job.task_id], job.start_frame, job.stop_frame
        )

    async def h_task_data_get(self, request: web.Request) -> web.Response:
        """GET /api/tasks/{id}/data?type=frame&number=N."""
        task = self._get_task(request)
        if not task.has_data:
            raise ApiError(400, ["Data is not uploaded for the task yet"])
        return await self._frame_response(request, task, 0, len(task.frames) - 1)

    # ------------------------------------------------------------------ jobs

    def _job_json(self, job: Job, caller: User, origin: str) -> dict[str, Any]:
        task = self.tasks[job.task_id]
        return {
            "url": f"{origin}/api/jobs/{job.id}",
            "id": job.id,
            "task_id": job.task_id,
            "task_name": task.name if self._can_view_task(caller, task) else None,
            "project_id": None,
            "project_name": None,
            "assignee": self._user_basic(self.users.get(job.assignee_id or 0), origin),
            "guide_id": self._guide_of(job.task_id),
            "dimension": "2d",
            "mode": "annotation",
            "media_type": "image",
            "bug_tracker": task.bug_tracker or None,
            "status": job.status,
            "stage": job.stage,
            "state": job.state,
            "frame_count": job.stop_frame - job.start_frame + 1,
            "start_frame": job.start_frame,
            "stop_frame": job.stop_frame,
            "data_chunk_size": 72,
            "data_compressed_chunk_type": "imageset",
            "data_original_chunk_type": "imageset",
            "created_date": job.created_date,
            "updated_date": job.updated_date,
            "issues": {"url": f"{origin}/api/issues?job_id={job.id}", "count": 0},
            "labels": {"url": f"{origin}/api/labels?job_id={job.id}"},
            "type": job.type,
            "organization": None,
            "target_storage": None,
            "source_storage": None,
            "assignee_updated_date": job.assignee_updated_date,
            "parent_job_id": None,
            "replicas_count": 0,
            "consensus_replicas": 0,
        }

    async def h_jobs_list(self, request: web.Request) -> web.Response:
        """GET /api/jobs (visible jobs only)."""
        caller: User = request[USER]
        origin = self._origin(request)
        rows = []
        for job in self.jobs.values():
            if not self._can_view_job(caller, job):
                continue
            task = self.tasks[job.task_id]
            assignee = self.users.get(job.assignee_id or 0)
            row = {
                "id": job.id,
                "task_id": job.task_id,
                "type": job.type,
                "state": job.state,
                "stage": job.stage,
                "assignee": assignee.username if assignee else None,
                "task_name": task.name,
                "dimension": "2d",
                "media_type": "image",
                "mode": "annotation",
                "project_id": None,
                "updated_date": job.updated_date,
                "created_date": job.created_date,
            }
            rows.append((row, self._job_json(job, caller, origin)))
        simple = ("task_id", "project_id", "type", "state", "stage", "assignee", "dimension",
                  "media_type", "mode", "task_name")  # fmt: skip
        result = self._filter_rows(request, rows, simple, ("task_name", "assignee", "state"))
        return cvat_response(self._paginate(request, result))

    async def h_job_get(self, request: web.Request) -> web.Response:
        """GET /api/jobs/{id}."""
        job = self._get_job(request)
        return cvat_response(self._job_json(job, request[USER], self._origin(request)))

    async def h_job_patch(self, request: web.Request) -> web.Response:
        """PATCH /api/jobs/{id}: assignee/stage need task staff or admin; state the assignee."""
        caller: User = request[USER]
        job = self._get_job(request)
        task = self.tasks[job.task_id]
        data = await self._json_body(request)
        staff = self._is_admin(caller) or self._is_task_staff(caller, task)
        if not staff and ({"assignee", "stage"} & set(data)):
            raise _forbidden()
        errors: dict[str, list[str]] = {}
        if "assignee" in data:
            aid = data["assignee"]
            if aid is not None and (isinstance(aid, bool) or not isinstance(aid, int)):
                errors["assignee"] = [
                    f"Incorrect type. Expected pk value, received {type(aid).__name__}."
                ]
            elif aid is not None and aid not in self.users:
                errors["assignee"] = [f'Invalid pk "{aid}" - object does not exist.']
        if "stage" in data and data["stage"] not in ("annotation", "validation", "acceptance"):
            errors["stage"] = [f'"{data["stage"]}" is not a valid choice.']
        if "state" in data and data["state"] not in ("new", "in progress", "completed", "rejected"):
            errors["state"] = [f'"{data["state"]}" is not a valid choice.']
        if errors:
            raise ApiError(400, errors)
        now = now_iso()
        if "assignee" in data and data["assignee"] != job.assignee_id:
            job.assignee_id = data["assignee"]
            job.assignee_updated_date = now
        if "stage" in data:
            job.stage = data["stage"]
            if "state" not in data:
                job.state = "new"
        if "state" in data:
            job.state = data["state"]
        job.updated_date = now_iso()
        return cvat_response(self._job_json(job, caller, self._origin(request)))

    # ------------------------------------------------------------------ labels

    async def h_labels_list(self, request: web.Request) -> web.Response:
        """GET /api/labels?task_id=|job_id= (paginated)."""
        caller: User = request[USER]
        q = request.query
        labels: list[Label] = []
        if "job_id" in q:
            job = self.jobs.get(_int_or_400(q["job_id"], "job_id"))
            if job is None:
                raise _not_found("Job")
            if not self._can_view_job(caller, job):
                raise _forbidden()
            labels = list(self.tasks[job.task_id].labels)
        elif "task_id" in q:
            task = self.tasks.get(_int_or_400(q["task_id"], "task_id"))
            if task is None:
                raise _not_found("Task")
            if not self._can_view_task(caller, task):
                raise _forbidden()
            labels = list(task.labels)
        else:
            for task in self.tasks.values():
                if self._can_view_task(caller, task) or any(
                    self._can_view_job(caller, j) for j in self._task_jobs(task)
                ):
                    labels.extend(task.labels)
        rows = [({"id": lb.id, "name": lb.name, "type": lb.type}, lb.to_json()) for lb in labels]
        result = self._filter_rows(request, rows, ("name", "type"), ("name",), default_sort="id")
        return cvat_response(self._paginate(request, result))

    # ------------------------------------------------------------------ annotations

    def _annotations_json(
        self, shapes: list[dict[str, Any]], tracks: list[dict[str, Any]], tags: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": 0,
            "tags": [dict(t) for t in tags],
            "shapes": [dict(s) for s in shapes],
            "tracks": [dict(t) for t in tracks],
        }
        if self.version_tuple >= (2, 66, 0):
            body["intervals"] = []
        return body

    def _fill_attrs(
        self, raw: Any, label: Label, mutable: bool | None, where: str
    ) -> list[dict[str, Any]]:
        specs = {a.id: a for a in label.attributes}
        given: dict[int, str] = {}
        for item in raw or []:
            try:
                spec_id = int(item["spec_id"])
            except (KeyError, TypeError, ValueError):
                raise ApiError(400, {where: [{"attributes": ["spec_id is required"]}]}) from None
            if spec_id not in specs:
                raise ApiError(
                    400, [f"Attribute spec {spec_id} does not belong to the label '{label.name}'"]
                )
            value = item.get("value", "")
            given[spec_id] = value if isinstance(value, str) else json.dumps(value)
        out = []
        for spec in label.attributes:
            if mutable is not None and spec.mutable != mutable:
                continue
            out.append({"spec_id": spec.id, "value": given.get(spec.id, spec.default_value)})
        return out

    def _norm_geometry(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        kind = raw.get("type")
        if kind not in SHAPE_TYPES:
            raise ApiError(400, {where: [{"type": [f'"{kind}" is not a valid choice.']}]})
        try:
            points = [float(p) for p in raw.get("points") or []]
            rotation = float(raw.get("rotation") or 0.0)
            frame = int(raw["frame"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, {where: [{"frame": ["This field is required."]}]}) from None
        return {
            "type": kind,
            "occluded": bool(raw.get("occluded", False)),
            "outside": bool(raw.get("outside", False)),
            "z_order": int(raw.get("z_order") or 0),
            "rotation": rotation % 360.0,
            "points": points,
            "frame": frame,
        }

    def _label_of(self, task: Task, raw: dict[str, Any]) -> Label:
        for label in task.labels:
            if label.id == raw.get("label_id"):
                return label
        raise ApiError(400, [f"Label {raw.get('label_id')!r} is not found in the task"])

    @staticmethod
    def _check_frame(frame: int, start: int, stop: int) -> None:
        if frame < start or frame > stop:
            raise ApiError(
                400, [f"The frame #{frame} is out of the job frame range [{start}, {stop}]"]
            )

    def _norm_shape(self, task: Task, raw: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
        label = self._label_of(task, raw)
        # CVAT 2.73 stores a shape or a keyframe at any frame, inside the job or not (tried on
        # a real server: frame 500 of a 3-frame job, a keyframe at 1,000,000), and a mask of
        # any size: what it saves is the bot's to bound (tasks_metrics.limits).
        geo = self._norm_geometry(raw, "shapes")
        shape = {
            **geo,
            "id": raw.get("id"),
            "label_id": label.id,
            "group": int(raw.get("group") or 0),
            "source": raw.get("source") or "manual",
            "score": float(raw.get("score", 1.0) if raw.get("score") is not None else 1.0),
            "attributes": self._fill_attrs(raw.get("attributes"), label, None, "shapes"),
            "elements": [],
        }
        return shape

    def _norm_track(self, task: Task, raw: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
        label = self._label_of(task, raw)
        shapes = []
        for s in raw.get("shapes") or []:
            geo = self._norm_geometry(s, "tracks")  # at any frame, as in _norm_shape
            shapes.append(
                {
                    **geo,
                    "id": s.get("id"),
                    "attributes": self._fill_attrs(s.get("attributes"), label, True, "tracks"),
                }
            )
        if not shapes:
            raise ApiError(400, {"tracks": [{"shapes": ["This list may not be empty."]}]})
        shapes.sort(key=lambda s: s["frame"])
        frame = int(raw.get("frame", shapes[0]["frame"]))
        self._check_frame(frame, start, stop)
        return {
            "id": raw.get("id"),
            "label_id": label.id,
            "frame": frame,
            "group": int(raw.get("group") or 0),
            "source": raw.get("source") or "manual",
            "shapes": shapes,
            "attributes": self._fill_attrs(raw.get("attributes"), label, False, "tracks"),
            "elements": [],
        }

    def _norm_tag(self, task: Task, raw: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
        label = self._label_of(task, raw)
        try:
            frame = int(raw["frame"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, {"tags": [{"frame": ["This field is required."]}]}) from None
        self._check_frame(frame, start, stop)
        return {
            "id": raw.get("id"),
            "label_id": label.id,
            "frame": frame,
            "group": int(raw.get("group") or 0),
            "source": raw.get("source") or "manual",
            "attributes": self._fill_attrs(raw.get("attributes"), label, None, "tags"),
        }

    def _normalize(
        self, task: Task, data: Any, start: int, stop: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        for key in ("shapes", "tracks", "tags"):
            if key in data and not isinstance(data[key], list):
                raise ApiError(400, {key: ['Expected a list of items but got type "dict".']})
        shapes = [self._norm_shape(task, s, start, stop) for s in data.get("shapes") or []]
        tracks = [self._norm_track(task, t, start, stop) for t in data.get("tracks") or []]
        tags = [self._norm_tag(task, t, start, stop) for t in data.get("tags") or []]
        return shapes, tracks, tags

    def _assign_ids(
        self, shapes: list[dict[str, Any]], tracks: list[dict[str, Any]], tags: list[dict[str, Any]]
    ) -> None:
        for s in shapes:
            s["id"] = self._next_id("shape")
        for t in tracks:
            t["id"] = self._next_id("track")
            for ts in t["shapes"]:
                ts["id"] = self._next_id("track_shape")
        for t in tags:
            t["id"] = self._next_id("tag")

    def _touch(self, jobs: list[Job]) -> None:
        now = now_iso()
        for job in jobs:
            job.updated_date = now
            self.tasks[job.task_id].updated_date = now

    def _check_job_write(self, request: web.Request, job: Job) -> None:
        caller: User = request[USER]
        if caller.privilege is None and not caller.is_superuser:
            raise _forbidden()

    async def h_job_ann_get(self, request: web.Request) -> web.Response:
        """GET /api/jobs/{id}/annotations."""
        job = self._get_job(request)
        if "format" in request.query or "action" in request.query:
            raise ApiError(410, {"detail": "This endpoint is no longer supported for export"})
        return cvat_response(self._annotations_json(job.shapes, job.tracks, job.tags))

    async def h_job_ann_put(self, request: web.Request) -> web.Response:
        """PUT /api/jobs/{id}/annotations: replace everything."""
        job = self._get_job(request)
        self._check_job_write(request, job)
        task = self.tasks[job.task_id]
        shapes, tracks, tags = self._normalize(
            task, await self._json_body(request), job.start_frame, job.stop_frame
        )
        changed = bool(job.shapes or job.tracks or job.tags or shapes or tracks or tags)
        self._assign_ids(shapes, tracks, tags)
        job.shapes, job.tracks, job.tags = shapes, tracks, tags
        if changed:
            self._touch([job])
        return cvat_response(self._annotations_json(shapes, tracks, tags))

    def _patch_objects(
        self, job: Job, action: str, data: tuple[list[Any], list[Any], list[Any]]
    ) -> bool:
        shapes, tracks, tags = data
        if action == "create":
            self._assign_ids(shapes, tracks, tags)
            job.shapes.extend(shapes)
            job.tracks.extend(tracks)
            job.tags.extend(tags)
            return bool(shapes or tracks or tags)
        changed = False
        for stored, given in ((job.shapes, shapes), (job.tracks, tracks), (job.tags, tags)):
            index = {o["id"]: i for i, o in enumerate(stored)}
            removed: set[int] = set()
            for obj in given:
                i = index.get(obj.get("id"))
                if i is None:
                    continue
                changed = True
                if action == "update":
                    if "shapes" in obj:
                        for ts in obj["shapes"]:
                            if ts.get("id") is None:
                                ts["id"] = self._next_id("track_shape")
                    stored[i] = obj
                else:
                    removed.add(i)
            if removed:
                stored[:] = [o for i, o in enumerate(stored) if i not in removed]
        return changed

    async def _patch_annotations(self, request: web.Request, jobs: list[Job], task: Task):
        action = request.query.get("action")
        if action not in ("create", "update", "delete"):
            raise ApiError(400, ["Please specify a correct 'action' for the request"])
        start = min(j.start_frame for j in jobs)
        stop = max(j.stop_frame for j in jobs)
        raw = await self._json_body(request)
        if action == "delete":
            # delete only needs ids; keep the echo as CVAT does
            shapes = [dict(s) for s in raw.get("shapes") or []]
            tracks = [dict(t) for t in raw.get("tracks") or []]
            tags = [dict(t) for t in raw.get("tags") or []]
        else:
            shapes, tracks, tags = self._normalize(task, raw, start, stop)
        touched: list[Job] = []
        for job in jobs:

            def mine(o: dict[str, Any], j: Job = job) -> bool:
                return j.start_frame <= int(o.get("frame", j.start_frame)) <= j.stop_frame

            part = ([s for s in shapes if mine(s)], [t for t in tracks if mine(t)],
                    [t for t in tags if mine(t)])  # fmt: skip
            if action == "delete":
                part = (shapes, tracks, tags)
            if self._patch_objects(job, action, part):
                touched.append(job)
        self._touch(touched)
        return cvat_response(self._annotations_json(shapes, tracks, tags))

    async def h_job_ann_patch(self, request: web.Request) -> web.Response:
        """PATCH /api/jobs/{id}/annotations?action=create|update|delete."""
        job = self._get_job(request)
        self._check_job_write(request, job)
        return await self._patch_annotations(request, [job], self.tasks[job.task_id])

    async def h_job_ann_delete(self, request: web.Request) -> web.Response:
        """DELETE /api/jobs/{id}/annotations."""
        job = self._get_job(request)
        self._check_job_write(request, job)
        if job.shapes or job.tracks or job.tags:
            job.shapes, job.tracks, job.tags = [], [], []
            self._touch([job])
        return web.Response(status=204)

    def _annotation_jobs(self, task: Task) -> list[Job]:
        if not task.has_data:
            raise ApiError(400, ["Data is not uploaded for the task yet"])
        return [j for j in self._task_jobs(task) if j.type == "annotation"]

    async def h_task_ann_get(self, request: web.Request) -> web.Response:
        """GET /api/tasks/{id}/annotations (merged annotation jobs)."""
        task = self._get_task(request)
        if "format" in request.query or "action" in request.query:
            raise ApiError(410, {"detail": "This endpoint is no longer supported for export"})
        jobs = self._annotation_jobs(task)
        shapes = [s for j in jobs for s in j.shapes]
        tracks = [t for j in jobs for t in j.tracks]
        tags = [t for j in jobs for t in j.tags]
        return cvat_response(self._annotations_json(shapes, tracks, tags))

    async def h_task_ann_put(self, request: web.Request) -> web.Response:
        """PUT /api/tasks/{id}/annotations: replace across the task's jobs."""
        task = self._get_task(request)
        jobs = self._annotation_jobs(task)
        shapes, tracks, tags = self._normalize(
            task, await self._json_body(request), 0, len(task.frames) - 1
        )
        self._assign_ids(shapes, tracks, tags)
        touched = []
        for job in jobs:

            def mine(o: dict[str, Any], j: Job = job) -> bool:
                return j.start_frame <= o["frame"] <= j.stop_frame

            new = ([s for s in shapes if mine(s)], [t for t in tracks if mine(t)],
                   [t for t in tags if mine(t)])  # fmt: skip
            if job.shapes or job.tracks or job.tags or any(new):
                touched.append(job)
            job.shapes, job.tracks, job.tags = new
        self._touch(touched)
        return cvat_response(self._annotations_json(shapes, tracks, tags))

    async def h_task_ann_patch(self, request: web.Request) -> web.Response:
        """PATCH /api/tasks/{id}/annotations?action=..."""
        task = self._get_task(request)
        return await self._patch_annotations(request, self._annotation_jobs(task), task)

    async def h_task_ann_delete(self, request: web.Request) -> web.Response:
        """DELETE /api/tasks/{id}/annotations."""
        task = self._get_task(request)
        jobs = self._annotation_jobs(task)
        touched = [j for j in jobs if j.shapes or j.tracks or j.tags]
        for job in touched:
            job.shapes, job.tracks, job.tags = [], [], []
        self._touch(touched)
        return web.Response(status=204)

    # ------------------------------------------------------------------ export

    async def _start_export(
        self, request: web.Request, target: str, target_id: int, task: Task, jobs: list[Job]
    ) -> web.Response:
        fmt = request.query.get("format")
        if not fmt:
            raise ApiError(400, {"format": ["This field is required."]})
        if fmt != export.FORMAT_NAME:
            raise ApiError(400, ["Unknown format specified for the request"])
        if not task.has_data:
            raise ApiError(400, ["Data is not uploaded for the task yet"])
        caller: User = request[USER]
        save_images = _bool_param(request.query.get("save_images"))
        rq_id = (
            f"action=export&target={target}&target_id={target_id}&subresource="
            f"{'dataset' if save_images else 'annotations'}&format={quote_plus(fmt)}"
            f"&user_id={caller.id}"
        )
        current = self._live_request(rq_id)
        if current is not None and current.status in ("queued", "started"):
            return cvat_response({"rq_id": rq_id}, 409)
        rq = RqRequest(
            id=rq_id,
            action="export",
            target=target,
            target_id=target_id,
            owner_id=caller.id,
            task_id=task.id,
            job_id=target_id if target == "job" else None,
            format=fmt,
            save_images=save_images,
        )
        self.requests[rq_id] = rq
        self._spawn(self._run_export(rq, task, jobs, target))
        return cvat_response({"rq_id": rq_id}, 202)

    async def _run_export(self, rq: RqRequest, task: Task, jobs: list[Job], scope: str) -> None:
        try:
            await asyncio.sleep(min(0.05, self.processing_time / 4))
            rq.status = "started"
            rq.started_date = now_iso()
            await asyncio.sleep(min(0.2, self.processing_time / 2))
            owner = self.users.get(task.owner_id or 0)
            assignee_id = jobs[0].assignee_id if scope == "job" and jobs else task.assignee_id
            xml = export.build_annotations_xml(
                task, jobs, owner, self.users.get(assignee_id or 0), scope
            )
            frames = task.frames if rq.save_images else None
            if rq.save_images and scope == "job" and jobs:
                frames = task.frames[jobs[0].start_frame : jobs[0].stop_frame + 1]
            rq.result = export.build_zip(xml, frames)
            name = f"{scope}_{rq.target_id}-{now_iso()[:19].replace(':', '_')}"
            rq.result_filename = f"{name}-cvat for images 1.1.zip"
            rq.status = "finished"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - surfaced through the request API
            log.warning("export %s failed: %s", rq.id, exc)
            rq.status = "failed"
            rq.message = str(exc)
        rq.finished_date = now_iso()
        rq.finished_at = time.monotonic()
        rq.expiry_date = iso_after(rq.finished_date, 24 * 3600)

    async def h_job_export(self, request: web.Request) -> web.Response:
        """POST /api/jobs/{id}/dataset/export?format=CVAT%20for%20images%201.1."""
        job = self._get_job(request)
        return await self._start_export(request, "job", job.id, self.tasks[job.task_id], [job])

    async def h_task_export(self, request: web.Request) -> web.Response:
        """POST /api/tasks/{id}/dataset/export?format=..."""
        task = self._get_task(request)
        jobs = self._task_jobs(task) if task.has_data else []
        return await self._start_export(request, "task", task.id, task, jobs)

    async def h_download(self, request: web.Request) -> web.Response:
        """GET result_url: the prepared zip."""
        rq_id = request.query.get("rq_id", "")
        rq = self._live_request(rq_id)
        caller: User = request[USER]
        if rq is None or rq.result is None or rq.status != "finished":
            raise ApiError(404, {"detail": "Not found."})
        if rq.owner_id != caller.id:
            raise _forbidden()
        return web.Response(
            body=rq.result,
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{rq.result_filename}"',
            },
        )


# ---------------------------------------------------------------------- module helpers


def _task_status(jobs: list[Job]) -> str:
    if jobs and all(j.stage == "acceptance" for j in jobs):
        return "completed"
    if any(j.stage == "validation" for j in jobs):
        return "validation"
    return "annotation"


def _indexed(fields: dict[str, list[str]], name: str) -> list[str]:
    items = []
    for key, values in fields.items():
        m = re.fullmatch(re.escape(name) + r"\[(\d+)\]", key)
        if m:
            items.append((int(m.group(1)), values[0]))
    return [v for _, v in sorted(items)]


def _int_or_400(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, {name: ["A valid integer is required."]}) from None


def _eq(value: Any, want: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == want.lower() or (want in ("1", "0") and value == (want == "1"))
    if value is None:
        return False
    return str(value) == want


def _json_logic(rule: Any, row: dict[str, Any]) -> Any:
    """A small JSON-logic evaluator (the operators CVAT's filter backend accepts)."""
    if not isinstance(rule, dict):
        return rule
    if len(rule) != 1:
        raise ApiError(400, {"detail": "filter: invalid rule"})
    op, args = next(iter(rule.items()))
    if op == "var":
        name = args[0] if isinstance(args, list) else args
        if name not in row:
            raise ApiError(400, {"detail": f"filter: unknown field {name!r}"})
        return row[name]
    if not isinstance(args, list):
        args = [args]
    if op == "and":
        return all(_json_logic(a, row) for a in args)
    if op == "or":
        return any(_json_logic(a, row) for a in args)
    if op == "!":
        return not _json_logic(args[0], row)
    vals = [_json_logic(a, row) for a in args]
    try:
        if op in ("==", "==="):
            return vals[0] == vals[1]
        if op in ("!=", "!=="):
            return vals[0] != vals[1]
        if op == "<":
            return vals[0] is not None and vals[0] < vals[1]
        if op == "<=":
            return vals[0] is not None and vals[0] <= vals[1]
        if op == ">":
            return vals[0] is not None and vals[0] > vals[1]
        if op == ">=":
            return vals[0] is not None and vals[0] >= vals[1]
        if op == "in":
            return vals[1] is not None and vals[0] in vals[1]
    except TypeError:
        return False
    raise ApiError(400, {"detail": f"filter: unsupported operator {op!r}"})


def _image_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as img:
        img.load()
        return img.size


def _image_format(content: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(content)) as img:
            return img.format
    except Exception:  # noqa: BLE001 - any decoder error means 'unknown'
        return None


def _compress(content: bytes, quality: int) -> bytes:
    with Image.open(io.BytesIO(content)) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=max(1, min(quality, 95)))
        return out.getvalue()


class _NoFlowControl:
    """A protocol stand-in for a StreamReader that is fed from memory."""

    _reading_paused = False
    connected = True

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        """No flow control for in-memory data."""

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        """No flow control for in-memory data."""


def _bytes_stream(data: bytes) -> StreamReader:
    stream = StreamReader(
        _NoFlowControl(),  # type: ignore[arg-type]
        2**30,
        loop=asyncio.get_running_loop(),
    )
    stream.feed_data(data)
    stream.feed_eof()
    return stream


def _form_as_json(
    fields: dict[str, list[str]], files: list[tuple[str, str, bytes]]
) -> dict[str, Any]:
    """The JSON equivalent of a CVAT multipart form (`a[i]` keys become arrays)."""
    out: dict[str, Any] = {}
    indexed: dict[str, list[tuple[int, str]]] = {}
    pairs = [(k, v) for k, vs in fields.items() for v in vs]
    for name, filename, _ in files:
        if re.fullmatch(r".+\[\d+\]", name):
            pairs.append((name, filename))
        else:  # repeated plain keys: an array in OpenAPI terms (CVAT itself ignores them)
            out.setdefault(name, []).append(filename)
    for key, value in pairs:
        m = re.fullmatch(r"(.+)\[(\d+)\]", key)
        if m:
            indexed.setdefault(m.group(1), []).append((int(m.group(2)), value))
        elif re.fullmatch(r"-?\d+", value):
            out[key] = int(value)
        elif value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            out[key] = value
    for key, items in indexed.items():
        out[key] = [v for _, v in sorted(items)]
    return out
