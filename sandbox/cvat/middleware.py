"""The CVAT stand-in's middlewares, outermost first: the request log, fault injection, CPU
costs, OpenAPI schema validation, and authentication with CVAT's error answers."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .rest import (
    CVAT_JSON,
    LOGGED,
    USER,
    ApiError,
    cvat_response,
    error_page,
    read_form,
    state_of,
)

if TYPE_CHECKING:
    from .models import User
    from .state import CvatState

__all__ = ["ANONYMOUS_OK", "MIDDLEWARES"]

log = logging.getLogger("sandbox.cvat.server")

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ANONYMOUS_OK = ("/api/server/about", "/api/auth/register", "/api/auth/login", "/api/auth/logout")
Handler = Callable[..., Any]


@web.middleware
async def log_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every call in `request_log` and `request_times`."""
    st = state_of(request)
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
        st.request_times.append((request.method, request.path, started, time.monotonic()))
        if not request.get(LOGGED):
            st.request_log.append(
                (request.method, request.path, status, user.username if user else None)
            )


@web.middleware
async def fault_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, holds, `fail_next` rules and the random error rate."""
    st = state_of(request)
    if st.latency > 0:
        await st.injected_sleep(st.latency)
    await st.faults.wait_if_held(request)
    fault = st.faults.match(request)
    if fault is not None and not fault.after:
        return await st.faults.apply(request, fault, st.request_log)
    if fault is None and st.error_rate > 0 and st.rng.random() < st.error_rate:
        return error_page(st.rng.choice([500, 502, 503]))
    resp = await handler(request)
    if fault is not None:
        return await st.faults.apply(request, fault, st.request_log)
    return resp


@web.middleware
async def cost_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Charge what the request costs a real CVAT's server, on the shared cores."""
    st = state_of(request)
    if not st.costs.free:
        scheme = request.headers.get("Authorization", "").partition(" ")[0].lower() or None
        if scheme is None and "sessionid" in request.cookies:
            scheme = "session"
        hashing, work = st.costs.of_request(request.method, request.path, scheme)
        await st.cpu.spend(hashing=hashing, requests=work)
    return await handler(request)


@web.middleware
async def schema_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the call and its answer against CVAT's OpenAPI schema (`schema_violations`)."""
    st = state_of(request)
    if not st.validate_schema or st.openapi is None:
        return await handler(request)
    from .schema import OARequest, OAResponse, validate_request, validate_response

    body = await request.read() if request.can_read_body else b""
    ctype_in = request.headers.get("Content-Type", "")
    if ctype_in.startswith("multipart/form-data"):
        # openapi-core neither maps `name[i]` keys to arrays nor casts form strings:
        # validate the equivalent JSON document (DataRequest is also declared for JSON)
        try:
            fields, files = await read_form(request)
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
        st.openapi, oreq, resp.status, request.path.rstrip("/") in ANONYMOUS_OK
    )
    if isinstance(resp, web.Response) and resp.status < 500:
        data = resp.body if isinstance(resp.body, bytes) else b""
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype in ("", CVAT_JSON, "application/json"):
            oresp = OAResponse(resp.status, ctype, dict(resp.headers), data)
            errors += [
                f"response {resp.status}: {m}"
                for m in validate_response(st.openapi, oreq, oresp)
            ]
    for message in errors:
        log.warning("schema violation: %s %s: %s", request.method, request.path, message)
        st.schema_violations.append((request.method, request.path, message))
    return resp


@web.middleware
async def api_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the caller; turn an ApiError into CVAT's answer."""
    try:
        request[USER] = _authenticate(state_of(request), request)
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


MIDDLEWARES = (log_mw, fault_mw, cost_mw, schema_mw, api_mw)


def _authenticate(st: CvatState, request: web.Request) -> User | None:
    """DRF authentication order: Token, (Bearer), Session (+CSRF), Basic."""
    header = request.headers.get("Authorization", "")
    scheme, _, cred = header.partition(" ")
    if scheme.lower() == "token":
        for user in st.users.values():
            if user.token and secrets.compare_digest(user.token, cred.strip()):
                if not user.is_active:
                    raise ApiError(401, {"detail": "User inactive or deleted."})
                return user
        raise ApiError(401, {"detail": "Invalid token."})
    if scheme.lower() == "bearer":
        raise ApiError(401, {"detail": "Invalid token."})
    session_id = request.cookies.get("sessionid")
    if session_id and session_id in st.sessions:
        user_id, _csrf = st.sessions[session_id]
        user = st.users.get(user_id)
        if user is not None and user.is_active:
            if request.method in UNSAFE:
                _check_csrf(request)
            return user
    if scheme.lower() == "basic":
        return _basic_user(st, cred)
    return None


def _basic_user(st: CvatState, cred: str) -> User:
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
    user = st.users_by_name(username)
    if (
        user is None
        or not user.is_active
        or not secrets.compare_digest(user.password.encode(), password.encode())
    ):
        raise ApiError(401, {"detail": "Invalid username/password."})
    return user


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
