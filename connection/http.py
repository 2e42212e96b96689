"""The request core: how every CVAT operation goes over the wire.

An `Endpoint` declares one CVAT operation (method, path, the statuses it answers, whether it
may be re-sent, whether it goes out anonymously, how its answer is read). `CvatCore` sends
them: one account on one server, a pooled cookie-less session, a token signed in for once,
bounded retries of what may be re-sent, and every error mapped to the `CvatError` tree.
"""

from __future__ import annotations

import contextlib
import functools
import http.cookiejar
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

import log
from connection.errors import (
    CvatAuthError,
    CvatError,
    CvatForbidden,
    CvatMisconfigured,
    CvatNotFound,
    CvatRejected,
    CvatResponseTooLarge,
    CvatUnavailable,
)
from connection.flow import Blocking, Flow, Sleep, run_blocking
from connection.models import CvatVersion

if TYPE_CHECKING:
    from config.env import Settings

logger = logging.getLogger("connection")

T = TypeVar("T")

MEDIA_TYPE = "application/vnd.cvat+json"
PAGE_SIZE = 100
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF = 10.0
MAX_RETRY_AFTER = 30.0


OK = frozenset({200})
CREATED = frozenset({201})
DELETED = frozenset({204})


def _as_is(body: Any) -> Any:
    return body


def as_mapping(body: Any) -> dict[str, Any]:
    """A JSON object answer as a dict ({} for anything else)."""
    return dict(body) if isinstance(body, Mapping) else {}


@dataclass(frozen=True)
class Endpoint(Generic[T]):
    """One CVAT operation on the wire.

    `expect`: the success statuses CVAT answers (another 2xx is logged, not refused);
    `retry`: may it be re-sent after a connection error or 429/502/503/504 (by default: when
    its method is idempotent; a POST only when a repeat creates nothing new);
    `anonymous`: sent without the account's token, on the session that keeps no cookie;
    `parse`: what the caller gets from the parsed body;
    `stream`: the answer is untrusted and read in chunks, within a byte limit (see
    `CvatCore.read_within`).
    """

    method: str
    path: str
    expect: frozenset[int] = OK
    parse: Callable[[Any], T] = _as_is
    retry: bool | None = None
    anonymous: bool = False
    stream: bool = False

    @property
    def retryable(self) -> bool:
        """Whether a failed exchange may be sent again."""
        return self.method in IDEMPOTENT_METHODS if self.retry is None else self.retry

    def at(self, **ids: object) -> str:
        """The path with its ids filled in."""
        return self.path.format(**ids)


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


def body_of(response: requests.Response) -> Any:
    """The response parsed as JSON when it is JSON (CVAT's media type included), else text."""
    if not response.content:
        return None
    if _is_json(response):
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


def describe(body: Any) -> str:
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


LOGIN = Endpoint("POST", "/api/auth/login", parse=as_mapping,
                 # CVAT keeps one token per account and creates nothing else a repeat would
                 # duplicate, so this POST may be re-sent after a lost answer.
                 retry=True, anonymous=True)


class CvatSignIn:
    """One account's CVAT token: fetched with the password once, kept in memory, shared by every
    client of that account; the password goes out again only when CVAT refuses the token."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._key: str | None = None
        self._lock = threading.Lock()

    def key(self, core: CvatCore) -> str:
        """The token, signing in through `core` first when there is none (one thread signs
        in, the others wait for its token). Blocking: one short call."""
        with self._lock:
            if self._key is None:
                self._key = run_blocking(core.sign_in(self.username, self._password))
            return self._key

    def known(self) -> str | None:
        """The token if there is one already (no wait, no call)."""
        return self._key

    def forget(self, key: str) -> None:
        """CVAT refused this token: the next call signs in again (unless another thread
        already has)."""
        with self._lock:
            if self._key == key:
                self._key = None


class CvatCore:
    """One account on one CVAT server: the connections, the sign-in, the known server version
    and the request core every operation goes through."""

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
        self.version: CvatVersion | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        """A client of the bot's admin account (CVAT_URL, CVAT_ADMIN_*, CVAT_TIMEOUT)."""
        return cls(settings.cvat_url, settings.cvat_admin_username,
                   settings.cvat_admin_password, timeout=settings.cvat_timeout, **kwargs)

    def as_account(self, username: str, password: str) -> Self:
        """A core of this class acting as another account on the same server."""
        other = type(self)(self.base_url, username, password, timeout=self.timeout,
                           retries=self.retries, backoff=self.backoff)
        other.version = self.version
        return other

    def sharing_sign_in(self) -> Self:
        """The same account on connections of its own, sharing this one's sign-in."""
        other = self.as_account(self.username, self._password)
        other._signin = self._signin
        return other

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
        self._anon_session.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, user={self.username!r})"

    # ------------------------------------------------------------------------- the core

    def call(self, endpoint: Endpoint[T], path: str | None = None, **kwargs: Any) -> Flow[T]:
        """Send one operation and return its parsed answer."""
        response = yield from self.send(endpoint, path, **kwargs)
        return endpoint.parse(body_of(response))

    def send(
        self,
        endpoint: Endpoint[Any],
        path: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Flow[requests.Response]:
        """Send one operation (to `path`, the endpoint's own if it has no ids) with the
        account's token, anonymously, or with `auth`; re-sent if the endpoint allows; the
        matching CvatError on failure (a `stream` endpoint's body is left to the caller)."""
        exchange = functools.partial(self._exchange, endpoint, path or endpoint.path,
                                     params=params, json_body=json_body, files=files,
                                     headers=headers)
        if endpoint.anonymous:
            return (yield from exchange(session=self._anon_session, auth=_no_auth))
        if auth is not None:
            return (yield from exchange(session=self._session, auth=auth))
        key = self._signin.known() or (yield Blocking(functools.partial(self._signin.key, self)))
        try:
            return (yield from exchange(session=self._session, auth=_TokenAuth(key)))
        except CvatAuthError:
            # CVAT checks the token before it does anything else, so a call refused with 401
            # did nothing: once signed in again it is sent once more, whatever its method.
            self._signin.forget(key)
            key = yield Blocking(functools.partial(self._signin.key, self))
            return (yield from exchange(session=self._session, auth=_TokenAuth(key)))

    def sign_in(self, username: str, password: str) -> Flow[str]:
        """POST /api/auth/login on the cookie-less session: the account's token."""
        try:
            answer = yield from self.call(LOGIN, json_body={"username": username,
                                                            "password": password})
        except CvatRejected as exc:
            if exc.status != 400:
                raise
            raise CvatAuthError(
                f"CVAT did not accept the username/password of {username!r} "
                f"({describe(exc.details) or 'no details'}). "
                "Check the account exists, is active and the password is right.",
                status=exc.status, details=exc.details) from exc
        key = answer.get("key")
        if not key:
            raise CvatMisconfigured(f"CVAT signed {username!r} in without giving a token: "
                                    "is e-mail verification on?")
        log.register_secret(str(key))
        logger.info("signed in to CVAT at %s as %s", self.base_url, username)
        return str(key)

    def read_within(self, endpoint: Endpoint[Any], path: str, max_bytes: int) -> Flow[bytes]:
        """A `stream` endpoint's answer as the bytes CVAT sent, read up to `max_bytes`
        (CvatResponseTooLarge past it), before anything parses it."""
        response = yield from self.send(endpoint, path)
        return (yield Blocking(functools.partial(self._read, response, max_bytes, path)))

    def _read(self, response: requests.Response, max_bytes: int, path: str) -> bytes:
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
                raise CvatUnavailable(f"CVAT at {self.base_url} broke off GET {path} "
                                      f"({type(exc).__name__})") from exc
        return b"".join(chunks)

    def paginate(self, endpoint: Endpoint[Any],
                 params: Mapping[str, Any] | None = None) -> Flow[list[dict[str, Any]]]:
        """Every result of a paginated list, page by page (never following `next`)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            query = {**(params or {}), "page": page, "page_size": PAGE_SIZE}
            data = yield from self.call(endpoint, params=query)
            if isinstance(data, list):  # a non-paginated list (old endpoints)
                return [*found, *data]
            results = data.get("results") or []
            found.extend(results)
            if not results or len(found) >= int(data.get("count") or 0):
                return found
            page += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> Sleep:
        if retry_after is not None:
            return Sleep(min(retry_after, MAX_RETRY_AFTER))
        delay = min(self.backoff * (2 ** attempt), MAX_BACKOFF)
        return Sleep(delay * random.uniform(0.5, 1.0))  # jitter, not cryptography

    def _exchange(
        self,
        endpoint: Endpoint[Any],
        path: str,
        *,
        session: requests.Session,
        auth: Any,
        params: Mapping[str, Any] | None,
        json_body: Any,
        files: Any,
        headers: Mapping[str, str] | None,
    ) -> Flow[requests.Response]:
        """One call, re-sent after connection errors and 5xx/429 when the endpoint allows."""
        method = endpoint.method
        attempts = self.retries + 1 if endpoint.retryable else 1
        limit = self.timeout
        where = f"{method} {path}"
        send = functools.partial(
            session.request, method, self.base_url + path, params=params, json=json_body,
            files=files, headers=dict(headers or {}), auth=auth,
            timeout=(min(limit, 10.0), limit), allow_redirects=False, stream=endpoint.stream)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            started = time.monotonic()
            try:
                response = yield Blocking(send)
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
                yield self._backoff(attempt, None)
                continue
            except requests.RequestException as exc:
                raise CvatError(f"CVAT request {where} could not be sent: {exc}") from exc
            status = response.status_code
            logger.debug("CVAT %s -> %s in %.2f s", where, status, time.monotonic() - started)
            if status in RETRY_STATUSES and not last:
                logger.warning("CVAT %s answered %s, retrying (%d/%d)", where, status,
                               attempt + 1, attempts - 1)
                yield self._backoff(attempt, _retry_after(response))
                continue
            if status >= 400:
                raise self._error(response, where, attempt + 1)
            if 300 <= status < 400:
                raise CvatMisconfigured(
                    f"CVAT answered {where} with a redirect to "
                    f"{response.headers.get('Location')!r}: set CVAT_URL to the address CVAT "
                    "really serves (scheme, host and port)", status=status)
            if status not in endpoint.expect:
                logger.warning("CVAT %s answered %s, not the expected %s", where, status,
                               sorted(endpoint.expect))
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, response: requests.Response, where: str, attempts: int) -> CvatError:
        """Map an error response to the exception an engineer can act on."""
        status = response.status_code
        body = body_of(response)
        text = describe(body) or response.reason or "no details"
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
                f"CVAT {self.version or ''} does not support {where} (HTTP {status}): {text}",
                status=status, details=body)
        return CvatRejected(f"CVAT rejected {where} (HTTP {status}): {text}",
                            status=status, details=body)
