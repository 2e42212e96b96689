"""The server and the account: version, who we are, whether the bot's account may administer;
with the helpers every resource's operations use."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from connection.errors import CvatAuthError, CvatMisconfigured, CvatNotFound
from connection.flow import Flow
from connection.http import CvatCore, Endpoint, as_mapping
from connection.models import V_SIMPLE_FILTERS, V_SUPERUSER_ONLY, CvatUser, CvatVersion

logger = logging.getLogger("connection")

ABOUT = Endpoint("GET", "/api/server/about", parse=as_mapping)
USER_SELF = Endpoint("GET", "/api/users/self", parse=CvatUser.from_api)


def id_filter(ids: Sequence[int]) -> dict[str, str]:
    """The `filter=` of a list call for these ids (CVAT's JSON logic `in`)."""
    return {"filter": json.dumps({"in": [{"var": "id"}, sorted(set(ids))]})}


def equals(version: CvatVersion, field: str, value: object) -> dict[str, Any]:
    """An exact-match filter of a list call: the simple one (2.4+) or JSON logic (older,
    which silently ignores the simple one and returns everything)."""
    if version.at_least(V_SIMPLE_FILTERS):
        return {field: value}
    return {"filter": json.dumps({"==": [{"var": field}, value]})}


def delete(cvat: CvatCore, endpoint: Endpoint[Any], object_id: int, what: str) -> Flow[bool]:
    """DELETE something; True if deleted now, False if it was already gone (404)."""
    try:
        yield from cvat.send(endpoint, endpoint.at(id=object_id))
    except CvatNotFound:
        return False
    logger.info("CVAT %s %d deleted", what, object_id)
    return True


# ----------------------------------------------------------------------------------- server


def about(cvat: CvatCore) -> Flow[dict[str, Any]]:
    """GET /api/server/about."""
    return (yield from cvat.call(ABOUT))


def server_version(cvat: CvatCore) -> Flow[CvatVersion]:
    """The server's version, read once and kept."""
    if cvat.version is None:
        answer = yield from about(cvat)
        cvat.version = CvatVersion.parse(str(answer.get("version", "")))
        logger.info("CVAT at %s is version %s", cvat.base_url, cvat.version)
    return cvat.version


def whoami(cvat: CvatCore) -> Flow[CvatUser]:
    """The account this client acts as (a cheap authentication check)."""
    return (yield from cvat.call(USER_SELF))


def check_admin(cvat: CvatCore) -> Flow[CvatUser]:
    """Check the credentials work and the account is a superuser; else CvatMisconfigured."""
    try:
        version = yield from server_version(cvat)
        me = yield from whoami(cvat)
    except CvatAuthError as exc:
        raise CvatMisconfigured(
            f"CVAT at {cvat.base_url} did not accept the admin account {cvat.username!r}: "
            "check CVAT_ADMIN_USERNAME and CVAT_ADMIN_PASSWORD", status=exc.status,
            details=exc.details) from exc
    superuser_only = version.at_least(V_SUPERUSER_ONLY)
    if not (me.is_superuser if superuser_only else (me.is_superuser or me.is_staff)):
        need = "superuser" if superuser_only else "staff or superuser"
        raise CvatMisconfigured(
            f"CVAT account {cvat.username!r} is not a {need} on CVAT {version}: CVAT would "
            "silently ignore role changes. Make it one with `manage.py createsuperuser` "
            "(or tick 'superuser status' in /admin) and set it in CVAT_ADMIN_USERNAME.")
    if me.is_active is False:
        raise CvatMisconfigured(f"CVAT account {cvat.username!r} is deactivated")
    return me
