"""A task's data: POST /api/tasks/{id}/data (CVAT's Upload-Start/Multiple/Finish protocol)
and the deprecated GET /api/tasks/{id}/status."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from aiohttp import web

from ..models import RqRequest
from ..processing import DataRequest, create_task_data
from ..rest import USER, ApiError, cvat_response, read_form, route_both, state_of, task_of

if TYPE_CHECKING:
    from ..state import CvatState

log = logging.getLogger("sandbox.cvat.server")
routes = web.RouteTableDef()

SORTING_METHODS = {"lexicographical", "natural", "predefined", "random"}


def create_rq_id(st: CvatState, task_id: int) -> str:
    """The id of a task's creation request (its form changed in 2.38)."""
    if st.version_tuple >= (2, 38, 0):
        return f"action=create&target=task&target_id={task_id}"
    return f"create:task-{task_id}"


@route_both(routes, "POST", r"/api/tasks/{id:\d+}/data")
async def task_data_post(request: web.Request) -> web.Response:
    """POST /api/tasks/{id}/data with CVAT's Upload-Start/Multiple/Finish protocol."""
    st = state_of(request)
    task = task_of(request)
    if task.has_data:
        raise ApiError(400, ["Adding more data is not supported"])
    rq_id = create_rq_id(st, task.id)
    current = st.requests.get(rq_id)
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
    fields, files = await read_form(request)
    if multiple and not finish:
        if "image_quality" in fields or st.version_tuple < (2, 65, 0):
            _check_image_quality(st, fields)
        _append_uploads(task.upload_files, files)
        return web.Response(status=200)
    # one request (no headers or Start+Finish) or the finishing request
    if not (finish and not start):
        task.upload_files = []
    _append_uploads(task.upload_files, files)
    _check_image_quality(st, fields)
    sorting = fields.get("sorting_method", ["lexicographical"])[0]
    if sorting not in SORTING_METHODS:
        raise ApiError(400, {"sorting_method": [f'"{sorting}" is not a valid choice.']})
    quality = fields.get("image_quality", [None])[0]
    data = DataRequest(
        uploads=list(task.upload_files),
        server_files=_indexed(fields, "server_files"),
        sorting=sorting,
        order=_indexed(fields, "upload_file_order"),
        quality=int(quality) if quality not in (None, "") else None,
    )
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
    st.requests[rq_id] = rq
    st.spawn(create_task_data(st, task, rq, data))
    log.info("task %s data accepted: %d client files", task.id, len(data.uploads))
    return cvat_response({"rq_id": rq_id}, 202)


def _check_image_quality(st: CvatState, fields: dict[str, list[str]]) -> None:
    raw = fields.get("image_quality", [None])[0]
    if raw in (None, ""):
        if st.version_tuple < (2, 65, 0):
            raise ApiError(400, {"image_quality": ["This field is required."]})
        return
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, {"image_quality": ["A valid integer is required."]}) from None
    minimum = 1 if st.version_tuple >= (2, 65, 0) else 0
    if value < minimum:
        raise ApiError(
            400,
            {"image_quality": [f"Ensure this value is greater than or equal to {minimum}."]},
        )
    if value > 100:
        raise ApiError(400, {"image_quality": ["Ensure this value is less than or equal to 100."]})


def _append_uploads(
    uploads: list[tuple[str, bytes]], files: list[tuple[str, str, bytes]]
) -> None:
    for field_name, filename, content in files:
        if re.fullmatch(r"client_files\[\d+\]", field_name):
            uploads.append((filename, content))
        # plain `client_files` keys are not parsed by CVAT: the files are lost


def _indexed(fields: dict[str, list[str]], name: str) -> list[str]:
    items = []
    for key, values in fields.items():
        m = re.fullmatch(re.escape(name) + r"\[(\d+)\]", key)
        if m:
            items.append((int(m.group(1)), values[0]))
    return [v for _, v in sorted(items)]


@routes.get(r"/api/tasks/{id:\d+}/status")
async def task_status(request: web.Request) -> web.Response:
    """GET /api/tasks/{id}/status (deprecated; 'Finished' when no request exists)."""
    st = state_of(request)
    task = task_of(request)
    rq = st.live_request(create_rq_id(st, task.id))
    headers = {"Deprecation": "true"} if st.version_tuple >= (2, 16, 0) else {}
    if rq is None:
        body = {"state": "Finished", "message": "", "progress": 0}
    else:
        body = {
            "state": rq.status.capitalize(),
            "message": rq.message,
            "progress": rq.progress if rq.status == "started" else 0,
        }
    return cvat_response(body, headers=headers)
