"""Background requests (task creation, exports): /api/requests and /api/requests/{rq_id}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from ..listing import filter_rows, paginate
from ..rest import ApiError, caller, cvat_response, forbidden, origin, state_of

if TYPE_CHECKING:
    from ..models import RqRequest
    from ..state import CvatState

routes = web.RouteTableDef()


def _rq_json(st: CvatState, rq: RqRequest, base: str) -> dict[str, Any]:
    owner = st.users.get(rq.owner_id)
    op_type = "create:task" if rq.action == "create" else "export:dataset"
    result_url = None
    if rq.action == "export" and rq.status == "finished":
        result_url = f"{base}/api/{rq.target}s/{rq.target_id}/dataset/download?" + urlencode(
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


def _check_version(st: CvatState) -> None:
    if st.version_tuple < (2, 16, 0):
        raise web.HTTPNotFound()


@routes.get("/api/requests")
async def requests_list(request: web.Request) -> web.Response:
    """GET /api/requests: the caller's own requests."""
    st = state_of(request)
    _check_version(st)
    me = caller(request)
    base = origin(request)
    rows = []
    for rq_id in list(st.requests):
        rq = st.live_request(rq_id)
        if rq is None or rq.owner_id != me.id:
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
        rows.append((row, _rq_json(st, rq, base)))
    simple = ("action", "target", "task_id", "job_id", "status", "format", "subresource",
              "project_id")  # fmt: skip
    result = filter_rows(request, rows, simple, (), default_sort="-created_date")
    return cvat_response(paginate(request, result))


@routes.get("/api/requests/{rq_id}")
async def request_get(request: web.Request) -> web.Response:
    """GET /api/requests/{rq_id} (absent before 2.16)."""
    st = state_of(request)
    _check_version(st)
    rq = st.live_request(request.match_info["rq_id"])
    me = caller(request)
    if rq is None:
        raise ApiError(404, {"detail": "Not found."})
    if rq.owner_id != me.id and not st.is_admin(me):
        raise forbidden()
    return cvat_response(_rq_json(st, rq, origin(request)))
