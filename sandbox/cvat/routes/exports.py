"""Dataset exports: POST /api/{tasks,jobs}/{id}/dataset/export and the download of the zip."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from aiohttp import web

from .. import export
from ..models import RqRequest, now_iso
from ..rest import ApiError, caller, cvat_response, forbidden, job_of, state_of, task_of

if TYPE_CHECKING:
    from ..models import Job, Task
    from ..state import CvatState

log = logging.getLogger("sandbox.cvat.server")
routes = web.RouteTableDef()


@routes.post(r"/api/tasks/{id:\d+}/dataset/export")
async def task_export(request: web.Request) -> web.Response:
    """POST /api/tasks/{id}/dataset/export?format=..."""
    task = task_of(request)
    jobs = state_of(request).task_jobs(task) if task.has_data else []
    return await _start_export(request, "task", task.id, task, jobs)


@routes.get(r"/api/tasks/{id:\d+}/dataset/download")
async def task_download(request: web.Request) -> web.Response:
    """GET result_url: the prepared zip."""
    return _download(request)


@routes.post(r"/api/jobs/{id:\d+}/dataset/export")
async def job_export(request: web.Request) -> web.Response:
    """POST /api/jobs/{id}/dataset/export?format=CVAT%20for%20images%201.1."""
    job = job_of(request)
    task = state_of(request).tasks[job.task_id]
    return await _start_export(request, "job", job.id, task, [job])


@routes.get(r"/api/jobs/{id:\d+}/dataset/download")
async def job_download(request: web.Request) -> web.Response:
    """GET result_url: the prepared zip."""
    return _download(request)


async def _start_export(
    request: web.Request, target: str, target_id: int, task: Task, jobs: list[Job]
) -> web.Response:
    st = state_of(request)
    fmt = request.query.get("format")
    if not fmt:
        raise ApiError(400, {"format": ["This field is required."]})
    if fmt != export.FORMAT_NAME:
        raise ApiError(400, ["Unknown format specified for the request"])
    if not task.has_data:
        raise ApiError(400, ["Data is not uploaded for the task yet"])
    me = caller(request)
    save_images = str(request.query.get("save_images")).lower() in ("1", "true", "yes", "on")
    rq_id = (
        f"action=export&target={target}&target_id={target_id}&subresource="
        f"{'dataset' if save_images else 'annotations'}&format={quote_plus(fmt)}"
        f"&user_id={me.id}"
    )
    current = st.live_request(rq_id)
    if current is not None and current.status in ("queued", "started"):
        return cvat_response({"rq_id": rq_id}, 409)
    rq = RqRequest(
        id=rq_id,
        action="export",
        target=target,
        target_id=target_id,
        owner_id=me.id,
        task_id=task.id,
        job_id=target_id if target == "job" else None,
        format=fmt,
        save_images=save_images,
    )
    st.requests[rq_id] = rq
    st.spawn(_run_export(st, rq, task, jobs, target))
    return cvat_response({"rq_id": rq_id}, 202)


async def _run_export(
    st: CvatState, rq: RqRequest, task: Task, jobs: list[Job], scope: str
) -> None:
    try:
        await asyncio.sleep(min(0.05, st.processing_time / 4))
        rq.status = "started"
        rq.started_date = now_iso()
        await asyncio.sleep(min(0.2, st.processing_time / 2))
        owner = st.users.get(task.owner_id or 0)
        assignee_id = jobs[0].assignee_id if scope == "job" and jobs else task.assignee_id
        xml = export.build_annotations_xml(
            task, jobs, owner, st.users.get(assignee_id or 0), scope
        )
        frames = task.frames if rq.save_images else None
        if rq.save_images and scope == "job" and jobs:
            frames = task.frames[jobs[0].start_frame : jobs[0].stop_frame + 1]
        rq.result = export.build_zip(xml, frames)
        name = f"{scope}_{rq.target_id}-{now_iso()[:19].replace(':', '_')}"
        rq.result_filename = f"{name}-cvat for images 1.1.zip"
        rq.status = "finished"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - surfaced through the request API
        log.warning("export %s failed: %s", rq.id, exc)
        rq.fail(str(exc))
    rq.close(24 * 3600)


def _download(request: web.Request) -> web.Response:
    rq = state_of(request).live_request(request.query.get("rq_id", ""))
    me = caller(request)
    if rq is None or rq.result is None or rq.status != "finished":
        raise ApiError(404, {"detail": "Not found."})
    if rq.owner_id != me.id:
        raise forbidden()
    return web.Response(
        body=rq.result,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{rq.result_filename}"',
        },
    )
