"""Server and authentication: /api/server/about and /api/auth/{register,login,logout}."""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..models import new_token, now_iso
from ..passwords import password_errors, similarity_errors
from ..rest import USER, ApiError, cvat_response, json_body, origin, state_of

if TYPE_CHECKING:
    from ..models import User
    from ..state import CvatState

log = logging.getLogger("sandbox.cvat.server")
routes = web.RouteTableDef()

USERNAME_RE = re.compile(r"^[\w.@+-]+\Z")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ABOUT_DESCRIPTION = (
    "CVAT is completely re-designed and re-implemented version of Video Annotation Tool from "
    "Irvine, California tool. It is free, online, interactive video and image annotation tool "
    "for computer vision. It is being used by our team to annotate million of objects with "
    "different properties. Many UI and UX decisions are based on feedbacks from professional "
    "data annotation team."
)


@routes.get("/api/server/about")
async def about(request: web.Request) -> web.Response:
    """GET /api/server/about."""
    return cvat_response(
        {
            "name": "Computer Vision Annotation Tool",
            "description": ABOUT_DESCRIPTION,
            "version": state_of(request).version,
            "logo_url": f"{origin(request)}/static/logo.svg",
            "subtitle": "Open Data Annotation Platform",
        }
    )


def _login_response(
    st: CvatState, user: User, body: dict[str, Any], status: int
) -> web.Response:
    session_id = secrets.token_hex(16)
    csrf = secrets.token_hex(16)
    st.sessions[session_id] = (user.id, csrf)
    user.last_login = now_iso()
    resp = cvat_response(body, status)
    resp.set_cookie("sessionid", session_id, httponly=True, samesite="Lax", path="/")
    resp.set_cookie("csrftoken", csrf, samesite="Lax", path="/")
    return resp


def _register_errors(st: CvatState, data: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of a registration, as dj-rest-auth/allauth/Django word them."""
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
        elif any(u.username.lower() == username.lower() for u in st.users.values()):
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
    return errors


@routes.post("/api/auth/register")
async def register(request: web.Request) -> web.Response:
    """POST /api/auth/register with dj-rest-auth/allauth/Django validation."""
    st = state_of(request)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    errors = _register_errors(st, data)
    if errors:
        raise ApiError(400, errors)
    username = str(data["username"])
    email = str(data.get("email") or "").strip().lower()
    if data["password1"] != data["password2"]:
        raise ApiError(400, {"non_field_errors": ["The two password fields didn't match."]})
    if email and any(u.email == email for u in st.users.values()):
        raise ApiError(400, ["A user is already registered with this e-mail address."])
    first = str(data.get("first_name") or "")
    last = str(data.get("last_name") or "")
    similar = similarity_errors(
        str(data["password1"]),
        {"username": username, "first_name": first, "last_name": last, "email": email},
    )
    if similar:
        raise ApiError(400, {"non_field_errors": similar})
    user = st.add_user(
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
    return _login_response(st, user, body, 201)


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    """POST /api/auth/login: token plus session cookies."""
    st = state_of(request)
    data = await json_body(request)
    password = str(data.get("password") or "")
    user = None
    if data.get("username"):
        user = st.users_by_name(str(data["username"]))
    elif data.get("email"):
        matches = [u for u in st.users.values() if u.email == str(data["email"]).lower()]
        user = matches[0] if len(matches) == 1 else None
    if user is None or not user.is_active or user.password != password:
        raise ApiError(
            400, {"non_field_errors": ["Unable to log in with provided credentials."]}
        )
    if not user.token:
        user.token = new_token()
    return _login_response(st, user, {"key": user.token}, 200)


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    """POST /api/auth/logout: deletes the user's token and the session."""
    user: User | None = request[USER]
    if user is not None:
        user.token = None
    sid = request.cookies.get("sessionid")
    if sid:
        state_of(request).sessions.pop(sid, None)
    resp = cvat_response({"detail": "Successfully logged out."})
    resp.del_cookie("sessionid")
    return resp
