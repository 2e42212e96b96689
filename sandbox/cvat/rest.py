"""What every route of the CVAT stand-in shares: the error answer, CVAT's JSON response, the
request's caller and state, the body readers, and the lookups with their permission checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import MultipartReader, web
from aiohttp.streams import StreamReader

if TYPE_CHECKING:
    from .models import Job, Task, User
    from .state import CvatState

__all__ = [
    "CVAT_JSON",
    "LOGGED",
    "STATE",
    "USER",
    "ApiError",
    "caller",
    "cvat_response",
    "error_page",
    "forbidden",
    "job_of",
    "json_body",
    "not_found",
    "origin",
    "read_form",
    "route_both",
    "state_of",
    "task_of",
]

CVAT_JSON = "application/vnd.cvat+json"
NO_PERMISSION = "You do not have permission to perform this action."
USER: web.RequestKey[Any] = web.RequestKey("cvat_user", object)
LOGGED: web.RequestKey[bool] = web.RequestKey("cvat_logged", bool)
STATE: web.AppKey[CvatState] = web.AppKey("cvat_state")


class ApiError(Exception):
    """An error answer: status plus JSON body (dict, list or None for an empty body)."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def forbidden() -> ApiError:
    """403 as DRF words it."""
    return ApiError(403, {"detail": NO_PERMISSION})


def not_found(model: str) -> ApiError:
    """404 for a model as Django words it."""
    return ApiError(404, {"detail": f"No {model} matches the given query."})


def cvat_response(body: Any, status: int = 200, headers: dict[str, str] | None = None):
    """A JSON answer with CVAT's media type (no charset suffix, like DRF)."""
    hdrs = {"Content-Type": CVAT_JSON, **(headers or {})}
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return web.Response(body=data, status=status, headers=hdrs)


def error_page(status: int) -> web.Response:
    """The page a proxy or Django shows for a server error (not JSON)."""
    texts = {
        500: "<h1>Server Error (500)</h1>",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    ctype = "text/html" if status == 500 else "text/plain"
    return web.Response(status=status, text=texts.get(status, "Error"), content_type=ctype)


def route_both(
    routes: web.RouteTableDef, method: str, path: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler at `path` and `path/` (CVAT answers both; GET without HEAD)."""
    extra: dict[str, Any] = {"allow_head": False} if method == "GET" else {}

    def deco(handler: Callable[..., Any]) -> Callable[..., Any]:
        routes.route(method, path, **extra)(handler)
        routes.route(method, path + "/", **extra)(handler)
        return handler

    return deco


# ---------------------------------------------------------------------- the request
def state_of(request: web.Request) -> CvatState:
    """The stand-in's state."""
    return request.app[STATE]


def caller(request: web.Request) -> User:
    """The authenticated user (routes outside ANONYMOUS_OK always have one)."""
    return request[USER]


def origin(request: web.Request) -> str:
    """scheme://host as the client sees it (behind a proxy too)."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    host = request.headers.get("X-Forwarded-Host", request.host)
    return f"{proto}://{host}"


async def json_body(request: web.Request) -> Any:
    """The JSON body ({} when empty); 400 as DRF words a parse error."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from None


def task_of(request: web.Request, check: str = "view") -> Task:
    """The task of the path's id, if the caller may view it (check="delete": delete it)."""
    st = state_of(request)
    task = st.tasks.get(int(request.match_info["id"]))
    if task is None:
        raise not_found("Task")
    user = caller(request)
    if check == "delete":
        ok = st.is_admin(user) or user.id == task.owner_id
    else:
        ok = st.can_view_task(user, task)
    if not ok:
        raise forbidden()
    return task


def job_of(request: web.Request) -> Job:
    """The job of the path's id, if the caller may view it."""
    st = state_of(request)
    job = st.jobs.get(int(request.match_info["id"]))
    if job is None:
        raise not_found("Job")
    if not st.can_view_job(caller(request), job):
        raise forbidden()
    return job


async def read_form(
    request: web.Request,
) -> tuple[dict[str, list[str]], list[tuple[str, str, bytes]]]:
    """A form's fields and file parts, from a multipart, JSON or urlencoded body."""
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
