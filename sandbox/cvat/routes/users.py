"""Users: /api/users, /api/users/self and /api/users/{id} (read, patch, delete), and the
user serializers other resources embed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..listing import filter_rows, paginate
from ..rest import (
    ApiError,
    caller,
    cvat_response,
    forbidden,
    json_body,
    not_found,
    origin,
    state_of,
)

if TYPE_CHECKING:
    from ..models import User
    from ..state import CvatState

log = logging.getLogger("sandbox.cvat.server")
routes = web.RouteTableDef()

IAM_ROLES = ("admin", "user", "worker")


def user_basic(user: User | None, base: str) -> dict[str, Any] | None:
    """BasicUserSerializer (None for no user)."""
    if user is None:
        return None
    return {
        "url": f"{base}/api/users/{user.id}",
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
    }


def user_full(user: User, base: str) -> dict[str, Any]:
    """UserSerializer: the basic fields plus e-mail, groups and flags."""
    data = user_basic(user, base) or {}
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


def _full_serializer(st: CvatState, user: User) -> bool:
    """Whether this caller sees other users in full (2.55+: superusers; before: staff)."""
    if st.version_tuple >= (2, 55, 0):
        return user.is_superuser
    return user.is_staff


def _user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": user.is_active,
        "email": user.email,
    }


def _target(request: web.Request) -> User:
    user = state_of(request).users.get(int(request.match_info["id"]))
    if user is None:
        raise not_found("User")
    return user


@routes.get("/api/users")
async def users_list(request: web.Request) -> web.Response:
    """GET /api/users."""
    st = state_of(request)
    me = caller(request)
    base = origin(request)
    visible = list(st.users.values()) if st.is_admin(me) else [me]
    full = _full_serializer(st, me)
    rows = [
        (_user_row(u), user_full(u, base) if full else user_basic(u, base) or {})
        for u in visible
    ]
    simple: tuple[str, ...] = ("id", "is_active", "first_name", "last_name")
    if st.version_tuple >= (2, 4, 0):
        simple = ("username", *simple)
    result = filter_rows(request, rows, simple, ("username", "first_name", "last_name"))
    return cvat_response(paginate(request, result))


@routes.get("/api/users/self")
async def users_self(request: web.Request) -> web.Response:
    """GET /api/users/self."""
    return cvat_response(user_full(caller(request), origin(request)))


@routes.get(r"/api/users/{id:\d+}")
async def user_get(request: web.Request) -> web.Response:
    """GET /api/users/{id}."""
    st = state_of(request)
    me = caller(request)
    target = _target(request)
    is_self = target.id == me.id
    if not (is_self or st.is_admin(me)):
        raise forbidden()
    full = _full_serializer(st, me) or is_self
    base = origin(request)
    return cvat_response(user_full(target, base) if full else user_basic(target, base))


@routes.patch(r"/api/users/{id:\d+}")
async def user_patch(request: web.Request) -> web.Response:
    """PATCH /api/users/{id}: groups replace; ignored unless the caller is a superuser."""
    st = state_of(request)
    me = caller(request)
    target = _target(request)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    is_self = target.id == me.id
    admin = st.is_admin(me)
    perm_fields = {"groups", "is_active", "is_staff", "is_superuser"}
    if not (admin or is_self) or (not admin and perm_fields & set(data)):
        raise forbidden()
    full = _full_serializer(st, me)
    errors = _patch_errors(data, full)
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
            st.drop_sessions(target.id)
    base = origin(request)
    return cvat_response(user_full(target, base) if full else user_basic(target, base))


def _patch_errors(data: dict[str, Any], full: bool) -> dict[str, list[str]]:
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
    return errors


@routes.delete(r"/api/users/{id:\d+}")
async def user_delete(request: web.Request) -> web.Response:
    """DELETE /api/users/{id}: owner/assignee FKs become null."""
    st = state_of(request)
    me = caller(request)
    target = _target(request)
    if not (st.is_admin(me) or target.id == me.id):
        raise forbidden()
    del st.users[target.id]
    st.drop_sessions(target.id)
    for task in st.tasks.values():
        if task.owner_id == target.id:
            task.owner_id = None
        if task.assignee_id == target.id:
            task.assignee_id = None
    for job in st.jobs.values():
        if job.assignee_id == target.id:
            job.assignee_id = None
    log.info("deleted user %s", target.username)
    return web.Response(status=204)
