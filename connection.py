"""CVAT REST client: a token signed in for once, no cookies, bounded retries, typed results.

`CvatClient` is blocking (one pooled `requests.Session`); `AsyncCvatClient` runs the same calls in
worker threads so an asyncio event loop never blocks. Both work with CVAT 2.3 ... 2.73: the server
version is read once and used where the API differs (user lookup, waiting for task data, rq_id).

Authentication: CVAT runs its password hasher (PBKDF2, a million rounds: 0.2-0.45 s of server
CPU) on every request that carries HTTP Basic, whatever the endpoint. So the client signs in once
(`POST /api/auth/login` -> `Authorization: Token <key>`), keeps the token in memory only, shares
it with every client of the same account (`with_own_connections`), and signs in again when CVAT
answers 401 (the token is deleted by any logout of that account). Personal access tokens (2.48+)
do not fit: CVAT refuses them for changing and deleting users, even for a superuser.

Retries: only idempotent calls (GET, PUT, DELETE, PATCH with absolute values) are re-sent, on
connection errors, timeouts, 502/503/504 and 429. A POST is never re-sent blindly: the operations
that POST (register, create task, upload, export) first look whether the effect already exists,
and after an ambiguous failure look again before reporting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import http.cookiejar
import inspect
import io
import json
import logging
import mimetypes
import random
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

import log

if TYPE_CHECKING:
    from config.env import Settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# --- API paths (the schema spells some with a trailing slash; the server answers both) ---
PATH_ABOUT = "/api/server/about"
PATH_REGISTER = "/api/auth/register"
PATH_LOGIN = "/api/auth/login"
PATH_USERS = "/api/users"
PATH_USER = "/api/users/{id}"
PATH_USER_SELF = "/api/users/self"
PATH_TASKS = "/api/tasks"
PATH_TASK = "/api/tasks/{id}"
PATH_TASK_DATA = "/api/tasks/{id}/data/"
PATH_TASK_META = "/api/tasks/{id}/data/meta"
PATH_TASK_STATUS = "/api/tasks/{id}/status"  # before 2.16 (deprecated later)
PATH_JOBS = "/api/jobs"
PATH_JOB = "/api/jobs/{id}"
PATH_JOB_ANNOTATIONS = "/api/jobs/{id}/annotations/"
PATH_JOB_DATA = "/api/jobs/{id}/data"
PATH_JOB_META = "/api/jobs/{id}/data/meta"
PATH_JOB_EXPORT = "/api/jobs/{id}/dataset/export"
PATH_LABELS = "/api/labels"
PATH_REQUEST = "/api/requests/{id}"
PATH_GUIDES = "/api/guides"

MEDIA_TYPE = "application/vnd.cvat+json"
EXPORT_FORMAT = "CVAT for images 1.1"
PAGE_SIZE = 100
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF = 10.0
MAX_RETRY_AFTER = 30.0
# Waiting for CVAT to process a task's images: the first look after this long, then 1.5 times
# longer each time (at most 1 s). CVAT 2.73 reports no progress for small image tasks, so the
# polls cannot aim at the end; this bounds them to a few per task.
FIRST_POLL = 0.1
# CVAT's clock and the database's may differ a little: an object dated up to this much before
# the row that asked for it still counts as made for it. (What it guards against, a database
# restored from an older backup, takes longer than this to happen.)
CLOCK_SLACK = timedelta(seconds=60)

# Version gates (first release with the behaviour).
V_SIMPLE_FILTERS = (2, 4)  # ?username=, ?task_id=, /api/labels, task "jobs" summary
V_JOB_TYPES = (2, 5)  # ground-truth jobs, ?type= filter on /api/jobs
V_REQUESTS_API = (2, 16)  # /api/requests/{rq_id}, rq_id in POST /data response
V_NEW_RQ_ID = (2, 38)  # rq_id "action=create&target=task&target_id=N"
V_SUPERUSER_ONLY = (2, 55)  # groups visible/writable only for is_superuser (was is_staff)
V_GUIDES = (2, 5)  # annotation guides of tasks and projects (/api/guides, guide_id)
V_QUALITY_OPTIONAL = (2, 65)  # image_quality no longer validated on Upload-Multiple requests

DEFAULT_LABELS: tuple[dict[str, Any], ...] = (
    {"name": "car", "type": "rectangle", "attributes": []},
    {
        "name": "plate",
        "type": "rectangle",
        "attributes": [
            {"name": "plate", "mutable": False, "input_type": "text",
             "default_value": "", "values": [""]},
        ],
    },
)

ProgressCallback = Callable[[int, int], None]
FractionCallback = Callable[[float], None]


# --------------------------------------------------------------------------------- exceptions


class CvatError(Exception):
    """Base of every CVAT client error: CVAT's own message, HTTP status and field errors."""

    def __init__(self, message: str, *, status: int | None = None, details: Any = None) -> None:
        message = log.redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


class CvatUnavailable(CvatError):
    """CVAT could not be reached, timed out, or kept answering 5xx/429 after the retries."""


class CvatRejected(CvatError):
    """CVAT refused the request as invalid (4xx); `details` holds its field errors."""


class CvatNotFound(CvatError):
    """The object does not exist (404)."""


class CvatForbidden(CvatError):
    """The account may not do this (403)."""


class CvatMisconfigured(CvatError):
    """The bot's CVAT account or the server is set up wrongly; an engineer must fix it."""


class CvatAuthError(CvatMisconfigured):
    """CVAT did not accept the username/password (401)."""


class CvatResponseTooLarge(CvatError):
    """CVAT's answer is larger than the caller accepts (`size` bytes, or more; `limit`)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"CVAT's answer is over {limit} bytes ({size} read)")
        self.size = size
        self.limit = limit


class CvatTaskProcessingError(CvatError):
    """CVAT failed to turn uploaded images into task data, or left the task empty."""


# ----------------------------------------------------------------------------- typed results


def _parse_dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _ref_id(value: Any) -> int | None:
    """The id of a nested reference that may be an object, a bare id or null."""
    if isinstance(value, Mapping):
        ref = value.get("id")
        return ref if isinstance(ref, int) else None
    return value if isinstance(value, int) else None


@dataclass(frozen=True, order=True)
class CvatVersion:
    """A CVAT server version such as 2.73.0."""

    major: int
    minor: int
    patch: int
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> CvatVersion:
        """Parse '2.73.0', 'v2.3.0' or '2.20.0-dev'."""
        match = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
        if not match:
            raise CvatMisconfigured(f"CVAT reported an unreadable server version {text!r}")
        major, minor, patch = (int(g) if g else 0 for g in match.groups())
        return cls(major, minor, patch, text.strip())

    def at_least(self, version: tuple[int, int]) -> bool:
        """True when this version is the given (major, minor) or newer."""
        return (self.major, self.minor) >= version

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class CvatUser:
    """A CVAT account; `groups` is None when CVAT did not show them to the caller."""

    id: int
    username: str
    groups: tuple[str, ...] | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None
    is_staff: bool | None = None
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    last_login: datetime | None = None
    date_joined: datetime | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CvatUser:
        """Build from a CVAT user object (full or basic serializer)."""
        groups = data.get("groups")
        return cls(
            id=int(data["id"]),
            username=str(data["username"]),
            groups=tuple(groups) if isinstance(groups, list) else None,
            is_active=data.get("is_active"),
            is_superuser=data.get("is_superuser"),
            is_staff=data.get("is_staff"),
            email=data.get("email") or "",
            first_name=data.get("first_name") or "",
            last_name=data.get("last_name") or "",
            last_login=_parse_dt(data.get("last_login")),
            date_joined=_parse_dt(data.get("date_joined")),
        )


@dataclass(frozen=True)
class CvatTask:
    """A CVAT task; `size` is the number of frames, `jobs_count` the number of jobs."""

    id: int
    name: str
    size: int
    jobs_count: int
    status: str | None = None
    media_type: str = ""
    dimension: str = ""
    image_quality: int | None = None
    owner_id: int | None = None
    assignee_id: int | None = None
    created_date: datetime | None = None
    updated_date: datetime | None = None
    guide_id: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_data(self) -> bool:
        """True once CVAT has attached media to the task (it cannot be attached twice)."""
        return bool(self.media_type) or self.size > 0

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CvatTask:
        """Build from a CVAT task object (2.4+ `jobs` summary or older `segments`)."""
        jobs = data.get("jobs")
        if isinstance(jobs, Mapping):
            jobs_count = int(jobs.get("count") or 0)
        else:
            jobs_count = sum(len(s.get("jobs") or []) for s in data.get("segments") or [])
        return cls(
            id=int(data["id"]),
            name=str(data.get("name") or ""),
            size=int(data.get("size") or 0),
            jobs_count=jobs_count,
            status=data.get("status"),
            media_type=data.get("media_type") or data.get("mode") or "",
            dimension=data.get("dimension") or "",
            image_quality=data.get("image_quality"),
            owner_id=_ref_id(data.get("owner")),
            assignee_id=_ref_id(data.get("assignee")),
            created_date=_parse_dt(data.get("created_date")),
            updated_date=_parse_dt(data.get("updated_date")),
            guide_id=_ref_id(data.get("guide_id")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CvatJob:
    """A CVAT job with its assignee, state, stage and change dates."""

    id: int
    task_id: int
    assignee_id: int | None
    state: str | None
    stage: str | None
    updated_date: datetime | None
    assignee_updated_date: datetime | None
    start_frame: int
    stop_frame: int
    frame_count: int | None = None
    type: str = "annotation"
    assignee_username: str | None = None
    task_name: str | None = None
    created_date: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CvatJob:
        """Build from a CVAT job object."""
        assignee = data.get("assignee")
        start, stop = int(data.get("start_frame") or 0), int(data.get("stop_frame") or 0)
        return cls(
            id=int(data["id"]),
            task_id=int(data.get("task_id") or 0),
            assignee_id=_ref_id(assignee),
            state=data.get("state"),
            stage=data.get("stage"),
            updated_date=_parse_dt(data.get("updated_date")),
            assignee_updated_date=_parse_dt(data.get("assignee_updated_date")),
            start_frame=start,
            stop_frame=stop,
            frame_count=data.get("frame_count", stop - start + 1),
            type=data.get("type") or "annotation",
            assignee_username=assignee.get("username") if isinstance(assignee, Mapping) else None,
            task_name=data.get("task_name"),
            created_date=_parse_dt(data.get("created_date")),
            raw=dict(data),
        )


# ------------------------------------------------------------------------------------ helpers


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Auth hook that sends no credentials (and keeps requests from reading ~/.netrc)."""
    return request


class _TokenAuth(AuthBase):
    """`Authorization: Token <key>` on one request."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Token {self.key}"
        return request


def made_since(created: datetime | None, not_before: datetime | None) -> bool:
    """Whether an object CVAT dates `created` can be the one that a row dated `not_before`
    asked for: one made before the row existed belongs to someone else (another deployment,
    or this one before its database was restored from an older backup)."""
    if not_before is None:
        return True
    return created is not None and created >= not_before - CLOCK_SLACK


def _new_session(pool_size: int, connect_retries: int) -> requests.Session:
    """A pooled session that refuses every cookie (a `sessionid` would beat Basic auth)."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.headers.update({"Accept": MEDIA_TYPE})
    # urllib3 only re-tries establishing a connection (nothing was sent yet): safe for any method.
    retry = Retry(total=connect_retries, connect=connect_retries, read=False, status=0, other=0,
                  redirect=0, raise_on_status=False, allowed_methods=None)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _is_json(response: requests.Response) -> bool:
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return ctype in ("application/json", MEDIA_TYPE) or ctype.endswith("+json")


def _body(response: requests.Response) -> Any:
    """The response parsed as JSON when it is JSON (CVAT's media type included), else text."""
    if not response.content:
        return None
    if _is_json(response):
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


def _describe(body: Any) -> str:
    """CVAT's error body in plain words: 'detail', field errors, or a bare list."""
    if body is None or body == "":
        return ""
    if isinstance(body, Mapping):
        if isinstance(body.get("detail"), str) and len(body) == 1:
            return body["detail"]
        parts = []
        for key, value in body.items():
            text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            # "field - message" (a "password1: ..." would be masked by log.redact's patterns)
            parts.append(text if key in ("detail", "non_field_errors") else f"{key} - {text}")
        return "; ".join(parts)
    if isinstance(body, list):
        return "; ".join(map(str, body))
    text = re.sub(r"<[^>]+>", " ", str(body))  # an HTML error page from a proxy
    return re.sub(r"\s+", " ", text).strip()[:300]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _same_username(a: str, b: str) -> bool:
    return a == b


def _batches(files: Sequence[tuple[str, bytes]], size: int,
             max_bytes: int | None) -> list[Sequence[tuple[str, bytes]]]:
    """Files in upload batches: `size` files each, or (with `max_bytes`) as many as fit in that
    many bytes, at least one."""
    if max_bytes is None:
        return [files[i:i + size] for i in range(0, len(files), size)]
    batches: list[Sequence[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    used = 0
    for item in files:
        if current and used + len(item[1]) > max_bytes:
            batches.append(current)
            current, used = [], 0
        current.append(item)
        used += len(item[1])
    batches.append(current)
    return batches


def _form(fields: Mapping[str, Any], files: Sequence[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    """A multipart body: the fields, then the files as CVAT wants them (`client_files[i]`)."""
    form: list[tuple[str, Any]] = [(k, (None, str(v))) for k, v in fields.items()]
    for index, (name, content) in enumerate(files):
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        form.append((f"client_files[{index}]", (name, content, ctype)))
    return form


def _id_filter(ids: Sequence[int]) -> dict[str, str]:
    """The `filter=` of a list call for these ids (CVAT's JSON logic `in`)."""
    return {"filter": json.dumps({"in": [{"var": "id"}, sorted(set(ids))]})}


def _next_poll_delay(delay: float, poll: float, elapsed: float, progress: float | None) -> float:
    """When to ask again: 1.5 times longer than the last wait (at most 1 s), or sooner, at
    half the time CVAT's own progress says is left, so the wait ends soon after the
    processing does. Never below `poll`."""
    grown = min(delay * 1.5, max(poll, 1.0))
    if progress is not None and 0 < progress < 1:
        remaining = elapsed * (1 - progress) / progress
        return max(min(grown, remaining / 2), poll, 0.05)
    return grown


def task_create_rq_id(version: CvatVersion, task_id: int) -> str:
    """The rq_id CVAT gives the data-processing request of a task on this server version."""
    if version.at_least(V_NEW_RQ_ID):
        return f"action=create&target=task&target_id={task_id}"
    return f"create:task-{task_id}"


# ------------------------------------------------------------------------------------- client


class CvatSignIn:
    """One account's CVAT token: fetched with the password once, kept in memory, shared by every
    client of that account; the password goes out again only when CVAT refuses the token."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._key: str | None = None
        self._lock = threading.Lock()

    def key(self, client: CvatClient) -> str:
        """The token, signing in through `client` first when there is none (one thread signs
        in, the others wait for its token)."""
        with self._lock:
            if self._key is None:
                self._key = client._sign_in(self.username, self._password)
            return self._key

    def forget(self, key: str) -> None:
        """CVAT refused this token: the next call signs in again (unless another thread
        already has)."""
        with self._lock:
            if self._key == key:
                self._key = None


class CvatClient:
    """Blocking CVAT REST client acting as one account, with a token (see the module's notes)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        pool_size: int = 10,
    ) -> None:
        if not re.match(r"^https?://", base_url or ""):
            raise ValueError(f"CVAT address must start with http:// or https://, got {base_url!r}")
        log.register_secret(password)
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self._session = _new_session(pool_size, connect_retries=1)
        self._anon_session = _new_session(4, connect_retries=1)  # sign-in, registration
        self._signin = CvatSignIn(username, password)
        self._version: CvatVersion | None = None
        self._version_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> CvatClient:
        """Admin client from the bot's settings (CVAT_URL, CVAT_ADMIN_*, CVAT_TIMEOUT)."""
        return cls(settings.cvat_url, settings.cvat_admin_username,
                   settings.cvat_admin_password, timeout=settings.cvat_timeout, **kwargs)

    def for_user(self, username: str, password: str) -> CvatClient:
        """A client acting as another account (e.g. a candidate) on the same server."""
        other = CvatClient(self.base_url, username, password, timeout=self.timeout,
                           retries=self.retries, backoff=self.backoff)
        other._version = self._version
        return other

    def with_own_connections(self) -> CvatClient:
        """The same account on connections of its own, sharing this client's sign-in: its
        calls never queue behind this one's, and the password is not sent again."""
        other = self.for_user(self.username, self._password)
        other._signin = self._signin
        return other

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
        self._anon_session.close()

    def __enter__(self) -> CvatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CvatClient({self.base_url!r}, user={self.username!r})"

    # ------------------------------------------------------------ request/response handling

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, MAX_RETRY_AFTER)
        else:
            delay = min(self.backoff * (2 ** attempt), MAX_BACKOFF)
            delay *= random.uniform(0.5, 1.0)  # jitter, not cryptography
        time.sleep(delay)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
        anonymous: bool = False,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one call with the account's token (or anonymously, or with `auth`); retry if
        idempotent; raise the matching CvatError on failure (with `stream`, the body is left
        to the caller to read)."""
        call = functools.partial(self._send, method.upper(), path, params=params,
                                 json_body=json_body, files=files, headers=headers, retry=retry,
                                 timeout=timeout, stream=stream)
        if anonymous:
            return call(session=self._anon_session, auth=_no_auth)
        if auth is not None:
            return call(session=self._session, auth=auth)
        key = self._signin.key(self)
        try:
            return call(session=self._session, auth=_TokenAuth(key))
        except CvatAuthError:
            # CVAT checks the token before it does anything else, so a call refused with 401
            # did nothing: once signed in again it is sent once more, whatever its method.
            self._signin.forget(key)
            return call(session=self._session, auth=_TokenAuth(self._signin.key(self)))

    def _sign_in(self, username: str, password: str) -> str:
        """POST /api/auth/login on the cookie-less session: the account's token."""
        try:
            # CVAT keeps one token per account and creates nothing else a repeat would
            # duplicate, so this POST may be re-sent after a lost answer.
            answer = self._json("POST", PATH_LOGIN, anonymous=True, retry=True,
                                json_body={"username": username, "password": password})
        except CvatRejected as exc:
            if exc.status != 400:
                raise
            raise CvatAuthError(
                f"CVAT did not accept the username/password of {username!r} "
                f"({_describe(exc.details) or 'no details'}). "
                "Check the account exists, is active and the password is right.",
                status=exc.status, details=exc.details) from exc
        key = answer.get("key") if isinstance(answer, Mapping) else None
        if not key:
            raise CvatMisconfigured(f"CVAT signed {username!r} in without giving a token: "
                                    "is e-mail verification on?")
        log.register_secret(str(key))
        logger.info("signed in to CVAT at %s as %s", self.base_url, username)
        return str(key)

    def _send(
        self,
        method: str,
        path: str,
        *,
        session: requests.Session,
        auth: Any,
        params: Mapping[str, Any] | None,
        json_body: Any,
        files: Any,
        headers: Mapping[str, str] | None,
        retry: bool | None,
        timeout: float | None,
        stream: bool = False,
    ) -> requests.Response:
        """One call, re-sent after connection errors and 5xx/429 when `retry` (by default:
        when its method is idempotent)."""
        if retry is None:
            retry = method in IDEMPOTENT_METHODS
        attempts = self.retries + 1 if retry else 1
        limit = timeout or self.timeout
        where = f"{method} {path}"
        for attempt in range(attempts):
            last = attempt == attempts - 1
            started = time.monotonic()
            try:
                response = session.request(
                    method, self._url(path), params=params, json=json_body, files=files,
                    headers=dict(headers or {}), auth=auth,
                    timeout=(min(limit, 10.0), limit), allow_redirects=False, stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                reason = (f"no answer within {limit:.0f} s"
                          if isinstance(exc, requests.Timeout) else "connection failed")
                if last:
                    tried = f" after {attempt + 1} attempts" if attempt else ""
                    raise CvatUnavailable(
                        f"CVAT at {self.base_url} is unavailable: {where}: {reason}{tried} "
                        f"({type(exc).__name__})"
                    ) from exc
                logger.warning("CVAT %s: %s, retrying (%d/%d)", where, reason, attempt + 1,
                               attempts - 1)
                self._sleep_before_retry(attempt, None)
                continue
            except requests.RequestException as exc:
                raise CvatError(f"CVAT request {where} could not be sent: {exc}") from exc
            logger.debug("CVAT %s -> %s in %.2f s", where, response.status_code,
                         time.monotonic() - started)
            if response.status_code in RETRY_STATUSES and not last:
                logger.warning("CVAT %s answered %s, retrying (%d/%d)", where,
                               response.status_code, attempt + 1, attempts - 1)
                self._sleep_before_retry(attempt, _retry_after(response))
                continue
            if response.status_code >= 400:
                raise self._error(response, where, attempt + 1)
            if 300 <= response.status_code < 400:
                raise CvatMisconfigured(
                    f"CVAT answered {where} with a redirect to "
                    f"{response.headers.get('Location')!r}: set CVAT_URL to the address CVAT "
                    "really serves (scheme, host and port)", status=response.status_code)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, response: requests.Response, where: str, attempts: int) -> CvatError:
        """Map an error response to the exception an engineer can act on."""
        status = response.status_code
        body = _body(response)
        text = _describe(body) or response.reason or "no details"
        if status == 401:
            return CvatAuthError(
                f"CVAT did not accept the username/password of {self.username!r} ({where}: "
                f"{text}). Check the account exists, is active and the password is right.",
                status=status, details=body)
        if status == 403:
            return CvatForbidden(f"CVAT account {self.username!r} may not do {where}: {text}",
                                 status=status, details=body)
        if status == 404:
            return CvatNotFound(f"CVAT has no such object: {where}: {text}",
                                status=status, details=body)
        if status in RETRY_STATUSES or status >= 500:
            tried = f" after {attempts} attempts" if attempts > 1 else ""
            return CvatUnavailable(
                f"CVAT at {self.base_url} failed {where} with HTTP {status}{tried}: {text}",
                status=status, details=body)
        if status in (405, 410):
            return CvatError(
                f"CVAT {self._version or ''} does not support {where} (HTTP {status}): {text}",
                status=status, details=body)
        return CvatRejected(f"CVAT rejected {where} (HTTP {status}): {text}",
                            status=status, details=body)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a call and return its parsed body."""
        return _body(self._request(method, path, **kwargs))

    def _paginate(self, path: str, params: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield every result of a paginated list, page by page (never following `next`)."""
        page = 1
        seen = 0
        while True:
            query = {**(params or {}), "page": page, "page_size": PAGE_SIZE}
            data = self._json("GET", path, params=query, **kwargs)
            if isinstance(data, list):  # a non-paginated list (old endpoints)
                yield from data
                return
            results = data.get("results") or []
            yield from results
            seen += len(results)
            count = int(data.get("count") or 0)
            if not results or seen >= count:
                return
            page += 1

    # ----------------------------------------------------------------------------- server

    def about(self) -> dict[str, Any]:
        """GET /api/server/about."""
        return self._json("GET", PATH_ABOUT)

    def server_version(self) -> CvatVersion:
        """The server's version, read once and cached."""
        if self._version is None:
            with self._version_lock:
                if self._version is None:
                    self._version = CvatVersion.parse(str(self.about().get("version", "")))
                    logger.info("CVAT at %s is version %s", self.base_url, self._version)
        return self._version

    def whoami(self) -> CvatUser:
        """The account this client acts as (a cheap authentication check)."""
        return CvatUser.from_api(self._json("GET", PATH_USER_SELF))

    def check_admin(self) -> CvatUser:
        """Check the credentials work and the account is a superuser; else CvatMisconfigured."""
        try:
            version = self.server_version()
            me = self.whoami()
        except CvatAuthError as exc:
            raise CvatMisconfigured(
                f"CVAT at {self.base_url} did not accept the admin account {self.username!r}: "
                "check CVAT_ADMIN_USERNAME and CVAT_ADMIN_PASSWORD", status=exc.status,
                details=exc.details) from exc
        privileged = me.is_superuser if version.at_least(V_SUPERUSER_ONLY) else (
            me.is_superuser or me.is_staff)
        if not privileged:
            need = "superuser" if version.at_least(V_SUPERUSER_ONLY) else "staff or superuser"
            raise CvatMisconfigured(
                f"CVAT account {self.username!r} is not a {need} on CVAT {version}: CVAT would "
                "silently ignore role changes. Make it one with `manage.py createsuperuser` "
                "(or tick 'superuser status' in /admin) and set it in CVAT_ADMIN_USERNAME.")
        if me.is_active is False:
            raise CvatMisconfigured(f"CVAT account {self.username!r} is deactivated")
        return me

    # ------------------------------------------------------------------------------ users

    def verify_credentials(self, username: str, password: str) -> CvatUser | None:
        """The account if this username/password logs in (GET /api/users/self), else None."""
        log.register_secret(password)
        try:
            data = self._json("GET", PATH_USER_SELF, auth=(username, password))
        except CvatAuthError:
            return None
        return CvatUser.from_api(data)

    def find_user(self, username: str) -> CvatUser | None:
        """The user with exactly this username, or None (exact match confirmed client-side)."""
        if self.server_version().at_least(V_SIMPLE_FILTERS):
            params = {"username": username}
        else:  # 2.0-2.3 silently ignore ?username= and return everybody
            params = {"filter": json.dumps({"==": [{"var": "username"}, username]})}
        for item in self._paginate(PATH_USERS, params):
            if _same_username(str(item.get("username")), username):
                return CvatUser.from_api(item)
        return None

    def get_user(self, user_id: int) -> CvatUser:
        """GET /api/users/{id}."""
        return CvatUser.from_api(self._json("GET", PATH_USER.format(id=user_id)))

    def users_by_id(self, ids: Sequence[int]) -> dict[int, CvatUser]:
        """Those of these users that exist, by id: one list call per hundred, not one each."""
        return {user.id: user for user in map(CvatUser.from_api,
                                              self._paginate(PATH_USERS, _id_filter(ids)))}

    def register_user(
        self,
        username: str,
        password: str,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        existing_ok: bool = True,
        not_before: datetime | None = None,
    ) -> CvatUser:
        """Register an account and return it with its id (the 201 answer carries none).

        Never re-sent blindly: with `existing_ok` (resuming after a crash) it first looks the
        username up; if it exists, `password` logs in to it and it joined CVAT no earlier than
        `not_before`, a previous attempt created it and that user is returned; otherwise
        CvatRejected ("username taken"). After an ambiguous failure (timeout, dropped
        connection, 5xx) it looks again before raising CvatUnavailable. The registration goes
        out anonymously on a cookie-less session: CVAT logs the new user in with a cookie.
        """
        log.register_secret(password)
        if existing_ok:
            existing = self._existing_registration(username, password, not_before)
            if existing is not None:
                logger.info("CVAT user %s (id %d) already registered by an earlier attempt",
                            username, existing.id)
                return existing
        body = {"username": username, "email": email, "password1": password,
                "password2": password}
        body.update({k: v for k, v in (("first_name", first_name), ("last_name", last_name)) if v})
        try:
            answer = self._json("POST", PATH_REGISTER, json_body=body, anonymous=True)
        except CvatUnavailable:
            existing = self._existing_registration(username, password, not_before)
            if existing is None:
                raise
            logger.info("CVAT registration of %s failed in transit but the user exists", username)
            return existing
        if isinstance(answer, Mapping) and answer.get("email_verification_required"):
            raise CvatMisconfigured(
                f"CVAT registered {username!r} but requires e-mail verification, so the "
                "account cannot log in: switch off mandatory e-mail verification on the server")
        user = self.find_user(username)
        if user is None:
            raise CvatError(f"CVAT accepted the registration of {username!r} but the user "
                            "cannot be found afterwards")
        logger.info("CVAT user %s registered with id %d", username, user.id)
        return user

    def _existing_registration(self, username: str, password: str,
                               not_before: datetime | None) -> CvatUser | None:
        """The account an earlier attempt registered under this name, None if there is none;
        CvatRejected if the name belongs to someone else (an older account, or another
        password). The password is checked with HTTP Basic: a probe that, unlike signing in,
        leaves the account's last login alone."""
        user = self.find_user(username)
        if user is None:
            return None
        if not made_since(user.date_joined, not_before) or \
                self.verify_credentials(username, password) is None:
            raise CvatRejected(
                f"CVAT username {username!r} is already taken by another account",
                status=400, details={"username": ["A user with that username already exists."]})
        return user

    def set_groups(self, user_id: int, groups: Sequence[str]) -> CvatUser:
        """Replace a user's groups (e.g. ["worker"]) and verify CVAT applied the change."""
        wanted = list(groups)
        data = self._json("PATCH", PATH_USER.format(id=user_id), json_body={"groups": wanted})
        echoed = data.get("groups") if isinstance(data, Mapping) else None
        if echoed is None:
            raise CvatMisconfigured(
                f"CVAT silently ignored the role change of user {user_id}: the account "
                f"{self.username!r} is not a superuser (CVAT only lets superusers change groups)")
        if sorted(echoed) != sorted(wanted):
            raise CvatMisconfigured(
                f"CVAT did not apply the role change of user {user_id}: asked for {wanted}, "
                f"it has {echoed}")
        logger.info("CVAT user %d now has groups %s", user_id, echoed)
        return CvatUser.from_api(data)

    def set_user_active(self, user_id: int, active: bool) -> CvatUser:
        """Enable or disable logging in for a user and verify the echo."""
        data = self._json("PATCH", PATH_USER.format(id=user_id), json_body={"is_active": active})
        if data.get("is_active") is not active:
            raise CvatMisconfigured(
                f"CVAT did not change is_active of user {user_id}: the account "
                f"{self.username!r} is probably not a superuser")
        return CvatUser.from_api(data)

    def update_user(self, user_id: int, *, groups: Sequence[str] | None = None,
                    is_active: bool | None = None, first_name: str | None = None,
                    last_name: str | None = None) -> CvatUser:
        """Change several things of a user in one PATCH and verify CVAT applied the
        permission fields (it silently ignores them for a caller who is not a superuser)."""
        body: dict[str, Any] = {}
        if groups is not None:
            body["groups"] = list(groups)
        if is_active is not None:
            body["is_active"] = is_active
        if first_name is not None:
            body["first_name"] = first_name[:150]
        if last_name is not None:
            body["last_name"] = last_name[:150]
        data = self._json("PATCH", PATH_USER.format(id=user_id), json_body=body)
        echoed_groups = data.get("groups") if isinstance(data, Mapping) else None
        echoed_active = data.get("is_active") if isinstance(data, Mapping) else None
        if (groups is not None and sorted(echoed_groups or []) != sorted(body["groups"])) or (
                is_active is not None and echoed_active is not is_active):
            raise CvatMisconfigured(
                f"CVAT did not apply {sorted(body)} to user {user_id} (it has groups "
                f"{echoed_groups}, is_active {echoed_active}): the account {self.username!r} "
                "is probably not a superuser")
        return CvatUser.from_api(data)

    def _delete(self, path: str, what: str) -> bool:
        """DELETE something; True if deleted now, False if it was already gone (404)."""
        try:
            self._request("DELETE", path)
        except CvatNotFound:
            return False
        logger.info("CVAT %s deleted", what)
        return True

    def delete_user(self, user_id: int) -> bool:
        """Delete a user; True if deleted now, False if it was already gone (404)."""
        return self._delete(PATH_USER.format(id=user_id), f"user {user_id}")

    # ------------------------------------------------------------------------------ tasks

    def find_tasks(self, name: str | None = None) -> list[CvatTask]:
        """Tasks visible to this account, only those named exactly `name` if given."""
        params: dict[str, Any] = {}
        if name is not None:
            if self.server_version().at_least(V_SIMPLE_FILTERS):
                params["name"] = name
            else:
                params["filter"] = json.dumps({"==": [{"var": "name"}, name]})
        tasks = [CvatTask.from_api(item) for item in self._paginate(PATH_TASKS, params)]
        return [t for t in tasks if name is None or t.name == name]

    def get_task(self, task_id: int) -> CvatTask:
        """GET /api/tasks/{id}."""
        return CvatTask.from_api(self._json("GET", PATH_TASK.format(id=task_id)))

    def create_task(
        self,
        name: str,
        labels: Sequence[Mapping[str, Any]] = DEFAULT_LABELS,
        *,
        existing_ok: bool = True,
        not_before: datetime | None = None,
    ) -> CvatTask:
        """Create an empty task with these labels; the name must be unique.

        Never re-sent blindly: with `existing_ok` (resuming after a crash) it first looks for a
        task with exactly this name made no earlier than `not_before` (a previous attempt) and
        returns it (check `has_data` before uploading); after an ambiguous failure it looks
        again before raising CvatUnavailable. A task of that name made earlier is someone
        else's and is never returned.
        """
        if existing_ok:
            found = self._tasks_made_since(name, not_before)
            if found:
                logger.info("CVAT task %r already exists (id %d)", name, found[0].id)
                return found[0]
        body = {"name": name, "labels": copy.deepcopy([dict(lb) for lb in labels])}
        try:
            data = self._json("POST", PATH_TASKS, json_body=body)
        except CvatUnavailable:
            found = self._tasks_made_since(name, not_before)
            if not found:
                raise
            logger.info("CVAT task %r was created despite the failed answer", name)
            return found[0]
        task = CvatTask.from_api(data)
        logger.info("CVAT task %r created with id %d", name, task.id)
        return task

    def _tasks_made_since(self, name: str, not_before: datetime | None) -> list[CvatTask]:
        return [t for t in self.find_tasks(name=name) if made_since(t.created_date, not_before)]

    def add_task_guide(self, task_id: int, markdown: str) -> int | None:
        """Attach an annotation guide (Markdown) to a task: CVAT shows it beside the task's
        jobs. Its id, or None on a CVAT without guides (before 2.5). A task has at most one
        guide, so this is never re-sent blindly: after an ambiguous failure the task is read,
        and a guide that arrived is taken."""
        if not self.server_version().at_least(V_GUIDES):
            return None
        try:
            data = self._json("POST", PATH_GUIDES,
                              json_body={"task_id": task_id, "markdown": markdown})
        except CvatUnavailable:
            guide_id = self.get_task(task_id).guide_id
            if guide_id is None:
                raise
            return guide_id
        logger.info("CVAT task %d has guide %s", task_id, data.get("id"))
        return int(data["id"])

    def delete_task(self, task_id: int) -> bool:
        """Delete a task; True if deleted now, False if it was already gone (404)."""
        return self._delete(PATH_TASK.format(id=task_id), f"task {task_id}")

    def upload_images(
        self,
        task_id: int,
        files: Sequence[tuple[str, bytes]],
        *,
        image_quality: int = 70,
        batch_size: int = 4,
        batch_bytes: int | None = None,
        sorting_method: str = "lexicographical",
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Upload images to an empty task in batches and return the processing rq_id.

        Uses Upload-Start, one Upload-Multiple request per batch (`on_progress(k, n)` after
        each) and Upload-Finish. With `batch_bytes` a batch holds files up to that many bytes
        (at least one) instead of `batch_size` files, and an upload that fits in one batch goes
        as a single request (Upload-Start and Upload-Finish together). These POSTs are never
        re-sent: a failure raises and the task should be deleted and created again (re-sent
        files would be appended to). A task that already has data is refused by CVAT at the
        start (CvatRejected). Frames are ordered by `sorting_method`, so map annotations to
        files by name.
        """
        names = [name for name, _ in files]
        if not files:
            raise ValueError("upload_images needs at least one file")
        if len(set(names)) != len(names) or not all(names):
            raise ValueError("image file names must be non-empty and unique")
        if not 1 <= image_quality <= 100:
            raise ValueError("image_quality must be between 1 and 100")
        total = len(files)
        batches = _batches(files, max(1, batch_size), batch_bytes)
        finish = {"image_quality": image_quality, "sorting_method": sorting_method}
        if on_progress:
            on_progress(0, total)
        if batch_bytes is not None and len(batches) == 1:
            rq_id = self._finish_data(task_id, finish, files=files,
                                      headers={"Upload-Start": "true", "Upload-Finish": "true"})
            if on_progress:
                on_progress(total, total)
            return rq_id
        # Before 2.65 every Upload-Multiple request is validated and needs image_quality.
        quality_in_batches = not self.server_version().at_least(V_QUALITY_OPTIONAL)
        extra = {"image_quality": image_quality} if quality_in_batches else {}
        self._post_data(task_id, headers={"Upload-Start": "true"})
        done = 0
        for batch in batches:
            self._post_data(task_id, files=_form(extra, batch),
                            headers={"Upload-Multiple": "true"})
            done += len(batch)
            logger.debug("CVAT task %d: uploaded %d/%d images", task_id, done, total)
            if on_progress:
                on_progress(done, total)
        return self._finish_data(task_id, finish, headers={"Upload-Finish": "true"})

    def attach_server_files(
        self,
        task_id: int,
        paths: Sequence[str],
        *,
        image_quality: int = 70,
        sorting_method: str = "lexicographical",
    ) -> str:
        """Attach files from CVAT's share (paths relative to it) to an empty task; rq_id back."""
        if not paths:
            raise ValueError("attach_server_files needs at least one path")
        body = {"image_quality": image_quality, "sorting_method": sorting_method,
                "server_files": list(paths)}
        return self._finish_data(task_id, body, headers={})

    def _finish_data(self, task_id: int, body: Mapping[str, Any], headers: Mapping[str, str],
                     files: Sequence[tuple[str, bytes]] = ()) -> str:
        """POST the final data request (with these files, if any); return the rq_id (also
        after a 409 or lost answer)."""
        version = self.server_version()
        fallback = task_create_rq_id(version, task_id)
        try:
            if files:
                response = self._post_data(task_id, files=_form(body, files), headers=headers)
            else:
                response = self._post_data(task_id, json_body=dict(body), headers=headers)
        except CvatRejected as exc:
            if exc.status == 409 and isinstance(exc.details, Mapping):
                logger.info("CVAT task %d: processing already queued", task_id)
                return str(exc.details.get("rq_id") or fallback)
            raise
        except CvatUnavailable:
            if version.at_least(V_REQUESTS_API) and self._request_exists(fallback):
                logger.info("CVAT task %d: data request arrived despite the failed answer",
                            task_id)
                return fallback
            raise
        data = _body(response)
        rq_id = data.get("rq_id") if isinstance(data, Mapping) else None
        return str(rq_id or fallback)

    def _post_data(self, task_id: int, **kwargs: Any) -> requests.Response:
        """POST /api/tasks/{id}/data; CVAT's refusal to add data twice in plain words."""
        try:
            return self._request("POST", PATH_TASK_DATA.format(id=task_id), **kwargs)
        except CvatRejected as exc:
            if exc.status == 400 and "Adding more data" in exc.message:
                raise CvatRejected(
                    f"CVAT task {task_id} already has data; data cannot be added twice: "
                    "delete the task and create a new one",
                    status=exc.status, details=exc.details) from exc
            raise

    def _request_exists(self, rq_id: str) -> bool:
        try:
            self.get_request(rq_id)
        except CvatNotFound:
            return False
        return True

    def get_request(self, rq_id: str) -> dict[str, Any]:
        """GET /api/requests/{rq_id} (CVAT 2.16+), rq_id percent-encoded."""
        return self._json("GET", PATH_REQUEST.format(id=quote(rq_id, safe="")))

    def wait_for_data(
        self,
        task_id: int,
        rq_id: str | None,
        *,
        expected_size: int,
        timeout: float = 300.0,
        poll: float = 0.5,
        on_progress: FractionCallback | None = None,
    ) -> CvatTask:
        """Wait until CVAT has processed the task's data, then verify it is not empty.

        Polls /api/requests/{rq_id} (2.16+) or /api/tasks/{id}/status (older). Raises
        CvatTaskProcessingError when processing failed, did not end within `timeout`, or left a
        task whose size is not `expected_size` or that has no job. `on_progress(fraction)`
        gets values in 0..1.
        """
        self._wait_processed(task_id, rq_id, timeout, poll, on_progress)
        return self._verify_task_data(task_id, expected_size)

    def wait_for_job(
        self,
        task_id: int,
        rq_id: str | None,
        *,
        expected_size: int,
        timeout: float = 300.0,
        poll: float = FIRST_POLL,
    ) -> CvatJob:
        """Wait as wait_for_data does, then return the task's (first) annotation job, verified
        in the same call to cover `expected_size` frames: one list call instead of reading the
        task, its frames and its jobs one after another."""
        self._wait_processed(task_id, rq_id, timeout, poll, None)
        return self.annotation_job(task_id, expected_size)

    def annotation_job(self, task_id: int, expected_size: int) -> CvatJob:
        """The first annotation job of a processed task; CvatTaskProcessingError unless its
        jobs exist and cover `expected_size` frames (an empty task has none)."""
        jobs = sorted(self.list_jobs(task_id), key=lambda j: j.start_frame)
        frames = sum(j.frame_count or 0 for j in jobs)
        if not jobs or frames != expected_size:
            raise CvatTaskProcessingError(
                f"CVAT reports task {task_id} processed but it has {len(jobs)} job(s) over "
                f"{frames} images instead of {expected_size} (the task stays empty). Delete it "
                "and create it again; check file names and formats.",
                details={"task_id": task_id, "jobs": len(jobs), "frames": frames})
        logger.info("CVAT task %d ready: %d images, job %d", task_id, frames, jobs[0].id)
        return jobs[0]

    def _wait_processed(self, task_id: int, rq_id: str | None, timeout: float, poll: float,
                        on_progress: FractionCallback | None) -> None:
        """Poll until CVAT finished processing the task's data (first after `poll` seconds,
        then 1.5 times longer each time); CvatTaskProcessingError if it failed or timed out."""
        version = self.server_version()
        use_requests = version.at_least(V_REQUESTS_API)
        rq_id = rq_id or task_create_rq_id(version, task_id)
        started = time.monotonic()
        deadline = started + timeout
        delay = max(0.05, poll)
        while True:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            state, message, progress = (self._poll_request(rq_id) if use_requests
                                        else self._poll_status(task_id))
            if on_progress and progress is not None:
                on_progress(progress)
            if state == "failed":
                raise CvatTaskProcessingError(
                    f"CVAT could not process the images of task {task_id}: "
                    f"{message or 'no reason given'}. Delete the task and create it again.",
                    details={"rq_id": rq_id, "message": message})
            if state in ("finished", "gone"):
                return
            delay = _next_poll_delay(delay, poll, time.monotonic() - started, progress)
            if time.monotonic() + delay > deadline:
                raise CvatTaskProcessingError(
                    f"CVAT did not finish processing the images of task {task_id} within "
                    f"{timeout:.0f} s (last state: {state}). Delete the task and create it "
                    "again; check CVAT's workers if this repeats.",
                    details={"rq_id": rq_id, "state": state})

    def _poll_request(self, rq_id: str) -> tuple[str, str, float | None]:
        try:
            data = self.get_request(rq_id)
        except CvatNotFound:
            # Finished requests expire after ~8 minutes; the task itself tells the truth.
            return "gone", "", None
        status = str(data.get("status") or "").lower()
        if status not in ("queued", "started", "finished", "failed"):
            status = "queued"
        progress = data.get("progress")
        return status, str(data.get("message") or ""), (
            float(progress) if isinstance(progress, (int, float)) else None)

    def _poll_status(self, task_id: int) -> tuple[str, str, float | None]:
        data = self._json("GET", PATH_TASK_STATUS.format(id=task_id))
        state = str(data.get("state") or "").lower()
        progress = data.get("progress")
        fraction = float(progress) / 100.0 if isinstance(progress, (int, float)) else None
        return state or "queued", str(data.get("message") or ""), fraction

    def _verify_task_data(self, task_id: int, expected_size: int) -> CvatTask:
        """Fail loudly unless the task has `expected_size` frames and at least one job."""
        task = self.get_task(task_id)
        problems = []
        if task.size != expected_size:
            problems.append(f"it has {task.size} images instead of {expected_size}")
        if task.jobs_count < 1:
            problems.append("it has no job")
        if not problems:
            frames = len(self.get_task_meta(task_id).get("frames") or [])
            if frames != expected_size:
                problems.append(f"its data lists {frames} frames instead of {expected_size}")
        if problems:
            raise CvatTaskProcessingError(
                f"CVAT reports task {task_id} processed but {' and '.join(problems)} (the task "
                "stays empty). Delete it and create it again; check file names and formats.",
                details={"task_id": task_id, "size": task.size, "jobs": task.jobs_count})
        logger.info("CVAT task %d ready: %d images, %d job(s)", task_id, task.size,
                    task.jobs_count)
        return task

    def get_task_meta(self, task_id: int) -> dict[str, Any]:
        """GET /api/tasks/{id}/data/meta (frames with names and sizes)."""
        return self._json("GET", PATH_TASK_META.format(id=task_id))

    # ------------------------------------------------------------------------------- jobs

    def list_jobs(self, task_id: int, type: str | None = "annotation") -> list[CvatJob]:
        """Jobs of a task, only of this `type` ('annotation' skips ground-truth jobs) if given."""
        version = self.server_version()
        if version.at_least(V_SIMPLE_FILTERS):
            params: dict[str, Any] = {"task_id": task_id}
            if type and version.at_least(V_JOB_TYPES):
                params["type"] = type
        else:
            params = {"filter": json.dumps({"==": [{"var": "task_id"}, task_id]})}
        jobs = [CvatJob.from_api(item) for item in self._paginate(PATH_JOBS, params)]
        return [j for j in jobs if j.task_id == task_id and (not type or j.type == type)]

    def visible_jobs(self) -> list[CvatJob]:
        """Every job this account can see (a candidate: only the job assigned to them)."""
        return [CvatJob.from_api(item) for item in self._paginate(PATH_JOBS)]

    def get_job(self, job_id: int) -> CvatJob:
        """GET /api/jobs/{id}."""
        return CvatJob.from_api(self._json("GET", PATH_JOB.format(id=job_id)))

    def jobs_by_id(self, ids: Sequence[int]) -> dict[int, CvatJob]:
        """Those of these jobs that exist, by id: one list call per hundred, not one each."""
        return {job.id: job for job in map(CvatJob.from_api,
                                           self._paginate(PATH_JOBS, _id_filter(ids)))}

    def assign_job(self, job_id: int, user_id: int | None) -> CvatJob:
        """Make `user_id` the job's assignee (None unassigns) and verify CVAT applied it."""
        data = self._json("PATCH", PATH_JOB.format(id=job_id), json_body={"assignee": user_id})
        job = CvatJob.from_api(data)
        if job.assignee_id != user_id:
            raise CvatError(f"CVAT did not assign job {job_id} to user {user_id}: its assignee "
                            f"is {job.assignee_id}")
        logger.info("CVAT job %d assignee set to %s", job_id, user_id)
        return job

    def update_job(self, job_id: int, state: str | None = None,
                   stage: str | None = None) -> CvatJob:
        """Set a job's state and/or stage (CVAT resets state to 'new' if only stage is given)."""
        body = {k: v for k, v in (("state", state), ("stage", stage)) if v is not None}
        if not body:
            return self.get_job(job_id)
        job = CvatJob.from_api(self._json("PATCH", PATH_JOB.format(id=job_id), json_body=body))
        if (state and job.state != state) or (stage and job.stage != stage):
            raise CvatError(f"CVAT did not apply {body} to job {job_id}: state={job.state} "
                            f"stage={job.stage}")
        return job

    def get_job_annotations(self, job_id: int) -> dict[str, Any]:
        """The job's annotations: {version, tags, shapes, tracks[, intervals]}."""
        return self._json("GET", PATH_JOB_ANNOTATIONS.format(id=job_id))

    def get_job_annotations_raw(self, job_id: int, max_bytes: int) -> bytes:
        """The job's annotations as the JSON bytes CVAT sent, read up to `max_bytes`
        (CvatResponseTooLarge past it): a candidate's work is untrusted, so it is measured
        before anything parses it."""
        response = self._request("GET", PATH_JOB_ANNOTATIONS.format(id=job_id), stream=True)
        with contextlib.closing(response):
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise CvatResponseTooLarge(int(declared), max_bytes)
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise CvatResponseTooLarge(size, max_bytes)
                    chunks.append(chunk)
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                raise CvatUnavailable(f"CVAT at {self.base_url} broke off the annotations of "
                                      f"job {job_id} ({type(exc).__name__})") from exc
        return b"".join(chunks)

    def put_job_annotations(self, job_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Replace all annotations of a job (as the acting account) and return CVAT's echo."""
        body = {"version": 0, "tags": [], "shapes": [], "tracks": [], **dict(data)}
        return self._json("PUT", PATH_JOB_ANNOTATIONS.format(id=job_id), json_body=body)

    def get_labels(self, task_id: int | None = None, job_id: int | None = None) -> list[dict]:
        """Labels (with attribute ids) of a task or a job, all pages; assignees need job_id."""
        if (task_id is None) == (job_id is None):
            raise ValueError("give exactly one of task_id or job_id")
        if not self.server_version().at_least(V_SIMPLE_FILTERS):
            # before 2.4 labels were embedded in the task/job objects
            path = PATH_TASK.format(id=task_id) if task_id else PATH_JOB.format(id=job_id)
            embedded = self._json("GET", path).get("labels")
            if isinstance(embedded, list):
                return embedded
        params = {"task_id": task_id} if task_id is not None else {"job_id": job_id}
        return list(self._paginate(PATH_LABELS, params))

    def get_job_meta(self, job_id: int) -> dict[str, Any]:
        """GET /api/jobs/{id}/data/meta (the job's frames)."""
        return self._json("GET", PATH_JOB_META.format(id=job_id))

    def get_frame(self, job_id: int, number: int, *, quality: str = "original") -> bytes:
        """One frame's image bytes (task-absolute frame number)."""
        response = self._request("GET", PATH_JOB_DATA.format(id=job_id),
                                 params={"type": "frame", "number": number, "quality": quality})
        return response.content

    def export_job_xml(self, job_id: int, *, timeout: float = 300.0, poll: float = 0.5) -> bytes:
        """The job's annotations as CVAT-for-images 1.1 XML (annotations.xml of the export)."""
        path = PATH_JOB_EXPORT.format(id=job_id)
        params = {"format": EXPORT_FORMAT, "save_images": "false"}
        try:
            answer = self._json("POST", path, params=params)
        except CvatRejected as exc:
            if exc.status != 409 or not isinstance(exc.details, Mapping):
                raise
            answer = exc.details  # an export of the same job is already running: join it
        rq_id = str(answer.get("rq_id") or "") if isinstance(answer, Mapping) else ""
        if not rq_id:
            raise CvatError(f"CVAT started an export of job {job_id} without a request id")
        deadline = time.monotonic() + timeout
        delay = max(0.05, poll)
        while True:
            request = self.get_request(rq_id)
            status = str(request.get("status") or "").lower()
            if status == "failed":
                raise CvatError(f"CVAT could not export job {job_id}: "
                                f"{request.get('message') or 'no reason given'}")
            if status == "finished":
                break
            if time.monotonic() + delay > deadline:
                raise CvatUnavailable(f"CVAT did not finish exporting job {job_id} within "
                                      f"{timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        result_url = request.get("result_url")
        if not result_url:
            raise CvatError(f"CVAT finished exporting job {job_id} but gave no result_url")
        # result_url is absolute and may carry a wrong host behind a proxy: keep path + query.
        parts = urlsplit(str(result_url))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        content = self._request("GET", target).content
        return _annotations_xml(content, job_id)


def _annotations_xml(content: bytes, job_id: int) -> bytes:
    """annotations.xml from an export archive (or the content itself if it is XML)."""
    if content.lstrip().startswith(b"<"):
        return content
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "annotations.xml"]
            if not names:
                raise CvatError(f"the export of job {job_id} has no annotations.xml "
                                f"(files: {archive.namelist()[:10]})")
            return archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise CvatError(f"the export of job {job_id} is not a zip archive") from exc


# ------------------------------------------------------------------------------ async client


def threadsafe_callback(
    callback: Callable[P, Any], loop: asyncio.AbstractEventLoop | None = None
) -> Callable[P, None]:
    """Wrap a callback so calls from a worker thread run on `loop` (the running loop by default).

    A coroutine function is scheduled as a task on the loop.
    """
    target = loop or asyncio.get_running_loop()

    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        result = callback(*args, **kwargs)
        if inspect.isawaitable(result):
            target.create_task(result)  # type: ignore[arg-type]

    def call(*args: P.args, **kwargs: P.kwargs) -> None:
        target.call_soon_threadsafe(functools.partial(run, *args, **kwargs))

    return call


class AsyncCvatClient:
    """Async facade: every CvatClient operation runs in a bounded thread pool.

    `on_progress` callbacks run in the worker thread; wrap them with `threadsafe_callback`
    (or pass `on_progress_in_loop=True` where offered) to have them called on the event loop.
    Cancelling an awaiting coroutine does not stop the HTTP call already under way.
    """

    def __init__(self, client: CvatClient, *, max_workers: int = 8) -> None:
        self.client = client
        self._executor = ThreadPoolExecutor(max_workers=max_workers,
                                            thread_name_prefix="cvat")

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AsyncCvatClient:
        """Async admin client from the bot's settings."""
        return cls(CvatClient.from_settings(settings, **kwargs))

    def for_user(self, username: str, password: str) -> AsyncCvatClient:
        """An async client acting as another account (shares nothing but the address)."""
        return AsyncCvatClient(self.client.for_user(username, password), max_workers=2)

    def with_own_connections(self) -> AsyncCvatClient:
        """The same account on threads and connections of its own, sharing the sign-in (see
        CvatClient.with_own_connections)."""
        return AsyncCvatClient(self.client.with_own_connections())

    async def _run(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    async def close(self) -> None:
        """Finish running calls, then close the pool and the connections."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self.client.close()

    async def __aenter__(self) -> AsyncCvatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def about(self) -> dict[str, Any]:
        """See CvatClient.about."""
        return await self._run(self.client.about)

    async def server_version(self) -> CvatVersion:
        """See CvatClient.server_version."""
        return await self._run(self.client.server_version)

    async def check_admin(self) -> CvatUser:
        """See CvatClient.check_admin."""
        return await self._run(self.client.check_admin)

    async def whoami(self) -> CvatUser:
        """See CvatClient.whoami."""
        return await self._run(self.client.whoami)

    async def verify_credentials(self, username: str, password: str) -> CvatUser | None:
        """See CvatClient.verify_credentials."""
        return await self._run(self.client.verify_credentials, username, password)

    async def register_user(self, username: str, password: str, email: str,
                            first_name: str = "", last_name: str = "", *,
                            existing_ok: bool = True,
                            not_before: datetime | None = None) -> CvatUser:
        """See CvatClient.register_user."""
        return await self._run(self.client.register_user, username, password, email,
                               first_name, last_name, existing_ok=existing_ok,
                               not_before=not_before)

    async def find_user(self, username: str) -> CvatUser | None:
        """See CvatClient.find_user."""
        return await self._run(self.client.find_user, username)

    async def get_user(self, user_id: int) -> CvatUser:
        """See CvatClient.get_user."""
        return await self._run(self.client.get_user, user_id)

    async def users_by_id(self, ids: Sequence[int]) -> dict[int, CvatUser]:
        """See CvatClient.users_by_id."""
        return await self._run(self.client.users_by_id, ids)

    async def set_groups(self, user_id: int, groups: Sequence[str]) -> CvatUser:
        """See CvatClient.set_groups."""
        return await self._run(self.client.set_groups, user_id, groups)

    async def set_user_active(self, user_id: int, active: bool) -> CvatUser:
        """See CvatClient.set_user_active."""
        return await self._run(self.client.set_user_active, user_id, active)

    async def update_user(self, user_id: int, *, groups: Sequence[str] | None = None,
                          is_active: bool | None = None, first_name: str | None = None,
                          last_name: str | None = None) -> CvatUser:
        """See CvatClient.update_user."""
        return await self._run(self.client.update_user, user_id, groups=groups,
                               is_active=is_active, first_name=first_name, last_name=last_name)

    async def delete_user(self, user_id: int) -> bool:
        """See CvatClient.delete_user."""
        return await self._run(self.client.delete_user, user_id)

    async def create_task(self, name: str, labels: Sequence[Mapping[str, Any]] = DEFAULT_LABELS,
                          *, existing_ok: bool = True,
                          not_before: datetime | None = None) -> CvatTask:
        """See CvatClient.create_task."""
        return await self._run(self.client.create_task, name, labels, existing_ok=existing_ok,
                               not_before=not_before)

    async def find_tasks(self, name: str | None = None) -> list[CvatTask]:
        """See CvatClient.find_tasks."""
        return await self._run(self.client.find_tasks, name)

    async def get_task(self, task_id: int) -> CvatTask:
        """See CvatClient.get_task."""
        return await self._run(self.client.get_task, task_id)

    async def delete_task(self, task_id: int) -> bool:
        """See CvatClient.delete_task."""
        return await self._run(self.client.delete_task, task_id)

    async def upload_images(self, task_id: int, files: Sequence[tuple[str, bytes]], *,
                            image_quality: int = 70, batch_size: int = 4,
                            batch_bytes: int | None = None,
                            sorting_method: str = "lexicographical",
                            on_progress: ProgressCallback | None = None,
                            on_progress_in_loop: bool = False) -> str:
        """See CvatClient.upload_images; `on_progress_in_loop` calls on_progress on the loop."""
        if on_progress and on_progress_in_loop:
            on_progress = threadsafe_callback(on_progress)
        return await self._run(self.client.upload_images, task_id, files,
                               image_quality=image_quality, batch_size=batch_size,
                               batch_bytes=batch_bytes, sorting_method=sorting_method,
                               on_progress=on_progress)

    async def attach_server_files(self, task_id: int, paths: Sequence[str], *,
                                  image_quality: int = 70,
                                  sorting_method: str = "lexicographical") -> str:
        """See CvatClient.attach_server_files."""
        return await self._run(self.client.attach_server_files, task_id, paths,
                               image_quality=image_quality, sorting_method=sorting_method)

    async def get_request(self, rq_id: str) -> dict[str, Any]:
        """See CvatClient.get_request."""
        return await self._run(self.client.get_request, rq_id)

    async def wait_for_data(self, task_id: int, rq_id: str | None, *, expected_size: int,
                            timeout: float = 300.0,  # noqa: ASYNC109
                            poll: float = 0.5,
                            on_progress: FractionCallback | None = None,
                            on_progress_in_loop: bool = False) -> CvatTask:
        """See CvatClient.wait_for_data; `on_progress_in_loop` calls on_progress on the loop."""
        if on_progress and on_progress_in_loop:
            on_progress = threadsafe_callback(on_progress)
        return await self._run(self.client.wait_for_data, task_id, rq_id,
                               expected_size=expected_size, timeout=timeout, poll=poll,
                               on_progress=on_progress)

    async def wait_for_job(self, task_id: int, rq_id: str | None, *, expected_size: int,
                           timeout: float = 300.0,  # noqa: ASYNC109
                           poll: float = FIRST_POLL) -> CvatJob:
        """See CvatClient.wait_for_job."""
        return await self._run(self.client.wait_for_job, task_id, rq_id,
                               expected_size=expected_size, timeout=timeout, poll=poll)

    async def annotation_job(self, task_id: int, expected_size: int) -> CvatJob:
        """See CvatClient.annotation_job."""
        return await self._run(self.client.annotation_job, task_id, expected_size)

    async def get_task_meta(self, task_id: int) -> dict[str, Any]:
        """See CvatClient.get_task_meta."""
        return await self._run(self.client.get_task_meta, task_id)

    async def list_jobs(self, task_id: int, type: str | None = "annotation") -> list[CvatJob]:
        """See CvatClient.list_jobs."""
        return await self._run(self.client.list_jobs, task_id, type)

    async def visible_jobs(self) -> list[CvatJob]:
        """See CvatClient.visible_jobs."""
        return await self._run(self.client.visible_jobs)

    async def get_job(self, job_id: int) -> CvatJob:
        """See CvatClient.get_job."""
        return await self._run(self.client.get_job, job_id)

    async def jobs_by_id(self, ids: Sequence[int]) -> dict[int, CvatJob]:
        """See CvatClient.jobs_by_id."""
        return await self._run(self.client.jobs_by_id, ids)

    async def add_task_guide(self, task_id: int, markdown: str) -> int | None:
        """See CvatClient.add_task_guide."""
        return await self._run(self.client.add_task_guide, task_id, markdown)

    async def assign_job(self, job_id: int, user_id: int | None) -> CvatJob:
        """See CvatClient.assign_job."""
        return await self._run(self.client.assign_job, job_id, user_id)

    async def update_job(self, job_id: int, state: str | None = None,
                         stage: str | None = None) -> CvatJob:
        """See CvatClient.update_job."""
        return await self._run(self.client.update_job, job_id, state, stage)

    async def get_job_annotations(self, job_id: int) -> dict[str, Any]:
        """See CvatClient.get_job_annotations."""
        return await self._run(self.client.get_job_annotations, job_id)

    async def get_job_annotations_raw(self, job_id: int, max_bytes: int) -> bytes:
        """See CvatClient.get_job_annotations_raw."""
        return await self._run(self.client.get_job_annotations_raw, job_id, max_bytes)

    async def put_job_annotations(self, job_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """See CvatClient.put_job_annotations."""
        return await self._run(self.client.put_job_annotations, job_id, data)

    async def get_labels(self, task_id: int | None = None,
                         job_id: int | None = None) -> list[dict]:
        """See CvatClient.get_labels."""
        return await self._run(self.client.get_labels, task_id, job_id)

    async def get_job_meta(self, job_id: int) -> dict[str, Any]:
        """See CvatClient.get_job_meta."""
        return await self._run(self.client.get_job_meta, job_id)

    async def get_frame(self, job_id: int, number: int, *, quality: str = "original") -> bytes:
        """See CvatClient.get_frame."""
        return await self._run(self.client.get_frame, job_id, number, quality=quality)

    async def export_job_xml(self, job_id: int, *, timeout: float = 300.0,  # noqa: ASYNC109
                             poll: float = 0.5) -> bytes:
        """See CvatClient.export_job_xml."""
        return await self._run(self.client.export_job_xml, job_id, timeout=timeout, poll=poll)
