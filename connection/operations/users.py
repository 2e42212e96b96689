"""CVAT accounts: find, register (never twice), change, delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import log
from connection.errors import (
    CvatAuthError,
    CvatError,
    CvatMisconfigured,
    CvatRejected,
    CvatUnavailable,
)
from connection.flow import Flow
from connection.http import CREATED, DELETED, CvatCore, Endpoint, as_mapping
from connection.models import CvatUser, made_since
from connection.operations.server import USER_SELF, delete, equals, id_filter, server_version

logger = logging.getLogger("connection")

USERS = Endpoint("GET", "/api/users")  # paginated
USER = Endpoint("GET", "/api/users/{id}", parse=CvatUser.from_api)
# PATCH with absolute values: safe to re-send.
USER_UPDATE = Endpoint("PATCH", "/api/users/{id}", parse=as_mapping)
USER_DELETE = Endpoint("DELETE", "/api/users/{id}", expect=DELETED)
REGISTER = Endpoint("POST", "/api/auth/register", expect=CREATED, parse=as_mapping,
                    anonymous=True)  # CVAT logs the new user in with a cookie: keep none


def verify_credentials(cvat: CvatCore, username: str, password: str) -> Flow[CvatUser | None]:
    """The account if this username/password logs in (GET /api/users/self with HTTP Basic:
    unlike signing in, it leaves the account's last login alone), else None."""
    try:
        return (yield from cvat.call(USER_SELF, auth=(username, password)))
    except CvatAuthError:
        return None


def find_user(cvat: CvatCore, username: str) -> Flow[CvatUser | None]:
    """The user with exactly this username, or None (exact match confirmed client-side)."""
    version = yield from server_version(cvat)
    found = yield from cvat.paginate(USERS, equals(version, "username", username))
    return next((CvatUser.from_api(item) for item in found
                 if str(item.get("username")) == username), None)


def get_user(cvat: CvatCore, user_id: int) -> Flow[CvatUser]:
    """GET /api/users/{id}."""
    return (yield from cvat.call(USER, USER.at(id=user_id)))


def users_by_id(cvat: CvatCore, ids: Sequence[int]) -> Flow[dict[int, CvatUser]]:
    """Those of these users that exist, by id: one list call per hundred, not one each."""
    found = yield from cvat.paginate(USERS, id_filter(ids))
    return {user.id: user for user in map(CvatUser.from_api, found)}


def register_user(
    cvat: CvatCore,
    username: str,
    password: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
    *,
    existing_ok: bool = True,
    not_before: datetime | None = None,
) -> Flow[CvatUser]:
    """Register an account and return it with its id (the 201 answer carries none).

    Never re-sent blindly: with `existing_ok` (resuming after a crash) it first looks the
    username up; if it exists, `password` logs in to it and it joined CVAT no earlier than
    `not_before`, a previous attempt created it and that user is returned; otherwise
    CvatRejected ("username taken"). After an ambiguous failure (timeout, dropped connection,
    5xx) it looks again before raising CvatUnavailable. The registration goes out anonymously
    on a cookie-less session: CVAT logs the new user in with a cookie.
    """
    log.register_secret(password)
    if existing_ok:
        existing = yield from _existing_registration(cvat, username, password, not_before)
        if existing is not None:
            logger.info("CVAT user %s (id %d) already registered by an earlier attempt",
                        username, existing.id)
            return existing
    body = {"username": username, "email": email, "password1": password,
            "password2": password}
    body.update({k: v for k, v in (("first_name", first_name), ("last_name", last_name)) if v})
    try:
        answer = yield from cvat.call(REGISTER, json_body=body)
    except CvatUnavailable:
        existing = yield from _existing_registration(cvat, username, password, not_before)
        if existing is None:
            raise
        logger.info("CVAT registration of %s failed in transit but the user exists", username)
        return existing
    if answer.get("email_verification_required"):
        raise CvatMisconfigured(
            f"CVAT registered {username!r} but requires e-mail verification, so the "
            "account cannot log in: switch off mandatory e-mail verification on the server")
    user = yield from find_user(cvat, username)
    if user is None:
        raise CvatError(f"CVAT accepted the registration of {username!r} but the user "
                        "cannot be found afterwards")
    logger.info("CVAT user %s registered with id %d", username, user.id)
    return user


def _existing_registration(cvat: CvatCore, username: str, password: str,
                           not_before: datetime | None) -> Flow[CvatUser | None]:
    """The account an earlier attempt registered under this name, None if there is none;
    CvatRejected if the name belongs to someone else (an older account, or another
    password)."""
    user = yield from find_user(cvat, username)
    if user is None:
        return None
    if made_since(user.date_joined, not_before):
        if (yield from verify_credentials(cvat, username, password)) is not None:
            return user
    raise CvatRejected(
        f"CVAT username {username!r} is already taken by another account",
        status=400, details={"username": ["A user with that username already exists."]})


def set_groups(cvat: CvatCore, user_id: int, groups: Sequence[str]) -> Flow[CvatUser]:
    """Replace a user's groups (e.g. ["worker"]) and verify CVAT applied the change."""
    wanted = list(groups)
    data = yield from cvat.call(USER_UPDATE, USER_UPDATE.at(id=user_id),
                                json_body={"groups": wanted})
    echoed = data.get("groups")
    if echoed is None:
        raise CvatMisconfigured(
            f"CVAT silently ignored the role change of user {user_id}: the account "
            f"{cvat.username!r} is not a superuser (CVAT only lets superusers change groups)")
    if sorted(echoed) != sorted(wanted):
        raise CvatMisconfigured(
            f"CVAT did not apply the role change of user {user_id}: asked for {wanted}, "
            f"it has {echoed}")
    logger.info("CVAT user %d now has groups %s", user_id, echoed)
    return CvatUser.from_api(data)


def update_user(cvat: CvatCore, user_id: int, *, groups: Sequence[str] | None = None,
                is_active: bool | None = None, first_name: str | None = None,
                last_name: str | None = None) -> Flow[CvatUser]:
    """Change several things of a user in one PATCH and verify CVAT applied the permission
    fields (it silently ignores them for a caller who is not a superuser)."""
    body: dict[str, Any] = {}
    if groups is not None:
        body["groups"] = list(groups)
    if is_active is not None:
        body["is_active"] = is_active
    if first_name is not None:
        body["first_name"] = first_name[:150]
    if last_name is not None:
        body["last_name"] = last_name[:150]
    data = yield from cvat.call(USER_UPDATE, USER_UPDATE.at(id=user_id), json_body=body)
    echoed_groups, echoed_active = data.get("groups"), data.get("is_active")
    if (groups is not None and sorted(echoed_groups or []) != sorted(body["groups"])) or (
            is_active is not None and echoed_active is not is_active):
        raise CvatMisconfigured(
            f"CVAT did not apply {sorted(body)} to user {user_id} (it has groups "
            f"{echoed_groups}, is_active {echoed_active}): the account {cvat.username!r} "
            "is probably not a superuser")
    return CvatUser.from_api(data)


def delete_user(cvat: CvatCore, user_id: int) -> Flow[bool]:
    """Delete a user; True if deleted now, False if it was already gone (404)."""
    return (yield from delete(cvat, USER_DELETE, user_id, "user"))
