"""Annotations of a job or a whole task: GET, PUT, PATCH ?action=create|update|delete, DELETE
on /api/jobs/{id}/annotations and /api/tasks/{id}/annotations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..models import now_iso
from ..rest import (
    ApiError,
    caller,
    cvat_response,
    forbidden,
    job_of,
    json_body,
    route_both,
    state_of,
    task_of,
)
from ..shapes import Annotations, assign_ids, normalize

if TYPE_CHECKING:
    from ..models import Job, Task
    from ..state import CvatState

routes = web.RouteTableDef()

JOB_PATH = r"/api/jobs/{id:\d+}/annotations"
TASK_PATH = r"/api/tasks/{id:\d+}/annotations"


def _touch(st: CvatState, jobs: list[Job]) -> None:
    now = now_iso()
    for job in jobs:
        job.updated_date = now
        st.tasks[job.task_id].updated_date = now


def _check_export_params(request: web.Request) -> None:
    if "format" in request.query or "action" in request.query:
        raise ApiError(410, {"detail": "This endpoint is no longer supported for export"})


def _writable_job(request: web.Request) -> Job:
    job = job_of(request)
    me = caller(request)
    if me.privilege is None and not me.is_superuser:
        raise forbidden()
    return job


def _annotation_jobs(st: CvatState, task: Task) -> list[Job]:
    if not task.has_data:
        raise ApiError(400, ["Data is not uploaded for the task yet"])
    return [j for j in st.task_jobs(task) if j.type == "annotation"]


# ---------------------------------------------------------------------- a job's
@route_both(routes, "GET", JOB_PATH)
async def job_annotations_get(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}/annotations."""
    job = job_of(request)
    _check_export_params(request)
    return cvat_response(state_of(request).annotations_json(job.shapes, job.tracks, job.tags))


@route_both(routes, "PUT", JOB_PATH)
async def job_annotations_put(request: web.Request) -> web.Response:
    """PUT /api/jobs/{id}/annotations: replace everything."""
    st = state_of(request)
    job = _writable_job(request)
    task = st.tasks[job.task_id]
    shapes, tracks, tags = normalize(
        task, await json_body(request), job.start_frame, job.stop_frame
    )
    changed = bool(job.shapes or job.tracks or job.tags or shapes or tracks or tags)
    assign_ids(st, shapes, tracks, tags)
    job.shapes, job.tracks, job.tags = shapes, tracks, tags
    if changed:
        _touch(st, [job])
    return cvat_response(st.annotations_json(shapes, tracks, tags))


@route_both(routes, "PATCH", JOB_PATH)
async def job_annotations_patch(request: web.Request) -> web.Response:
    """PATCH /api/jobs/{id}/annotations?action=create|update|delete."""
    job = _writable_job(request)
    task = state_of(request).tasks[job.task_id]
    return await _patch_annotations(request, [job], task)


@route_both(routes, "DELETE", JOB_PATH)
async def job_annotations_delete(request: web.Request) -> web.Response:
    """DELETE /api/jobs/{id}/annotations."""
    job = _writable_job(request)
    if job.shapes or job.tracks or job.tags:
        job.shapes, job.tracks, job.tags = [], [], []
        _touch(state_of(request), [job])
    return web.Response(status=204)


# ---------------------------------------------------------------------- a task's
@route_both(routes, "GET", TASK_PATH)
async def task_annotations_get(request: web.Request) -> web.Response:
    """GET /api/tasks/{id}/annotations (merged annotation jobs)."""
    st = state_of(request)
    task = task_of(request)
    _check_export_params(request)
    jobs = _annotation_jobs(st, task)
    shapes = [s for j in jobs for s in j.shapes]
    tracks = [t for j in jobs for t in j.tracks]
    tags = [t for j in jobs for t in j.tags]
    return cvat_response(st.annotations_json(shapes, tracks, tags))


@route_both(routes, "PUT", TASK_PATH)
async def task_annotations_put(request: web.Request) -> web.Response:
    """PUT /api/tasks/{id}/annotations: replace across the task's jobs."""
    st = state_of(request)
    task = task_of(request)
    jobs = _annotation_jobs(st, task)
    shapes, tracks, tags = normalize(task, await json_body(request), 0, len(task.frames) - 1)
    assign_ids(st, shapes, tracks, tags)
    touched = []
    for job in jobs:
        new = _in_job(job, (shapes, tracks, tags))
        if job.shapes or job.tracks or job.tags or any(new):
            touched.append(job)
        job.shapes, job.tracks, job.tags = new
    _touch(st, touched)
    return cvat_response(st.annotations_json(shapes, tracks, tags))


@route_both(routes, "PATCH", TASK_PATH)
async def task_annotations_patch(request: web.Request) -> web.Response:
    """PATCH /api/tasks/{id}/annotations?action=..."""
    task = task_of(request)
    return await _patch_annotations(request, _annotation_jobs(state_of(request), task), task)


@route_both(routes, "DELETE", TASK_PATH)
async def task_annotations_delete(request: web.Request) -> web.Response:
    """DELETE /api/tasks/{id}/annotations."""
    st = state_of(request)
    task = task_of(request)
    jobs = _annotation_jobs(st, task)
    touched = [j for j in jobs if j.shapes or j.tracks or j.tags]
    for job in touched:
        job.shapes, job.tracks, job.tags = [], [], []
    _touch(st, touched)
    return web.Response(status=204)


# ---------------------------------------------------------------------- PATCH
def _in_job(job: Job, data: Annotations, default_frame: bool = False) -> Annotations:
    """The objects of `data` whose frame is in the job (no frame: the job's start, with
    default_frame, as PATCH reads them)."""

    def mine(o: dict[str, Any]) -> bool:
        frame = int(o.get("frame", job.start_frame)) if default_frame else o["frame"]
        return job.start_frame <= frame <= job.stop_frame

    shapes, tracks, tags = data
    return ([s for s in shapes if mine(s)], [t for t in tracks if mine(t)],
            [t for t in tags if mine(t)])  # fmt: skip


async def _patch_annotations(
    request: web.Request, jobs: list[Job], task: Task
) -> web.Response:
    st = state_of(request)
    action = request.query.get("action")
    if action not in ("create", "update", "delete"):
        raise ApiError(400, ["Please specify a correct 'action' for the request"])
    start = min(j.start_frame for j in jobs)
    stop = max(j.stop_frame for j in jobs)
    raw = await json_body(request)
    if action == "delete":
        # delete only needs ids; keep the echo as CVAT does
        shapes = [dict(s) for s in raw.get("shapes") or []]
        tracks = [dict(t) for t in raw.get("tracks") or []]
        tags = [dict(t) for t in raw.get("tags") or []]
    else:
        shapes, tracks, tags = normalize(task, raw, start, stop)
    touched: list[Job] = []
    for job in jobs:
        part = _in_job(job, (shapes, tracks, tags), default_frame=True)
        if action == "delete":
            part = (shapes, tracks, tags)
        if _patch_objects(st, job, action, part):
            touched.append(job)
    _touch(st, touched)
    return cvat_response(st.annotations_json(shapes, tracks, tags))


def _patch_objects(st: CvatState, job: Job, action: str, data: Annotations) -> bool:
    shapes, tracks, tags = data
    if action == "create":
        assign_ids(st, shapes, tracks, tags)
        job.shapes.extend(shapes)
        job.tracks.extend(tracks)
        job.tags.extend(tags)
        return bool(shapes or tracks or tags)
    changed = False
    for stored, given in ((job.shapes, shapes), (job.tracks, tracks), (job.tags, tags)):
        index = {o["id"]: i for i, o in enumerate(stored)}
        removed: set[int] = set()
        for obj in given:
            i = index.get(obj.get("id"))
            if i is None:
                continue
            changed = True
            if action == "update":
                if "shapes" in obj:
                    for ts in obj["shapes"]:
                        if ts.get("id") is None:
                            ts["id"] = st.next_id("track_shape")
                stored[i] = obj
            else:
                removed.add(i)
        if removed:
            stored[:] = [o for i, o in enumerate(stored) if i not in removed]
    return changed
