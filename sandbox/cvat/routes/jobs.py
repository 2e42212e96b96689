"""Jobs: /api/jobs and /api/jobs/{id} (read, patch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..listing import filter_rows, paginate
from ..models import now_iso
from ..rest import ApiError, caller, cvat_response, forbidden, job_of, json_body, origin, state_of
from .users import user_basic

if TYPE_CHECKING:
    from ..models import Job, User
    from ..state import CvatState

routes = web.RouteTableDef()

STAGES = ("annotation", "validation", "acceptance")
STATES = ("new", "in progress", "completed", "rejected")


def _job_json(st: CvatState, job: Job, me: User, base: str) -> dict[str, Any]:
    task = st.tasks[job.task_id]
    return {
        "url": f"{base}/api/jobs/{job.id}",
        "id": job.id,
        "task_id": job.task_id,
        "task_name": task.name if st.can_view_task(me, task) else None,
        "project_id": None,
        "project_name": None,
        "assignee": user_basic(st.users.get(job.assignee_id or 0), base),
        "guide_id": st.guide_of(job.task_id),
        "dimension": "2d",
        "mode": "annotation",
        "media_type": "image",
        "bug_tracker": task.bug_tracker or None,
        "status": job.status,
        "stage": job.stage,
        "state": job.state,
        "frame_count": job.stop_frame - job.start_frame + 1,
        "start_frame": job.start_frame,
        "stop_frame": job.stop_frame,
        "data_chunk_size": 72,
        "data_compressed_chunk_type": "imageset",
        "data_original_chunk_type": "imageset",
        "created_date": job.created_date,
        "updated_date": job.updated_date,
        "issues": {"url": f"{base}/api/issues?job_id={job.id}", "count": 0},
        "labels": {"url": f"{base}/api/labels?job_id={job.id}"},
        "type": job.type,
        "organization": None,
        "target_storage": None,
        "source_storage": None,
        "assignee_updated_date": job.assignee_updated_date,
        "parent_job_id": None,
        "replicas_count": 0,
        "consensus_replicas": 0,
    }


@routes.get("/api/jobs")
async def jobs_list(request: web.Request) -> web.Response:
    """GET /api/jobs (visible jobs only)."""
    st = state_of(request)
    me = caller(request)
    base = origin(request)
    rows = []
    for job in st.jobs.values():
        if not st.can_view_job(me, job):
            continue
        task = st.tasks[job.task_id]
        assignee = st.users.get(job.assignee_id or 0)
        row = {
            "id": job.id,
            "task_id": job.task_id,
            "type": job.type,
            "state": job.state,
            "stage": job.stage,
            "assignee": assignee.username if assignee else None,
            "task_name": task.name,
            "dimension": "2d",
            "media_type": "image",
            "mode": "annotation",
            "project_id": None,
            "updated_date": job.updated_date,
            "created_date": job.created_date,
        }
        rows.append((row, _job_json(st, job, me, base)))
    simple = ("task_id", "project_id", "type", "state", "stage", "assignee", "dimension",
              "media_type", "mode", "task_name")  # fmt: skip
    result = filter_rows(request, rows, simple, ("task_name", "assignee", "state"))
    return cvat_response(paginate(request, result))


@routes.get(r"/api/jobs/{id:\d+}")
async def job_get(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}."""
    job = job_of(request)
    return cvat_response(_job_json(state_of(request), job, caller(request), origin(request)))


@routes.patch(r"/api/jobs/{id:\d+}")
async def job_patch(request: web.Request) -> web.Response:
    """PATCH /api/jobs/{id}: assignee/stage need task staff or admin; state the assignee."""
    st = state_of(request)
    me = caller(request)
    job = job_of(request)
    task = st.tasks[job.task_id]
    data = await json_body(request)
    staff = st.is_admin(me) or st.is_task_staff(me, task)
    if not staff and ({"assignee", "stage"} & set(data)):
        raise forbidden()
    errors: dict[str, list[str]] = {}
    if "assignee" in data:
        aid = data["assignee"]
        if aid is not None and (isinstance(aid, bool) or not isinstance(aid, int)):
            errors["assignee"] = [
                f"Incorrect type. Expected pk value, received {type(aid).__name__}."
            ]
        elif aid is not None and aid not in st.users:
            errors["assignee"] = [f'Invalid pk "{aid}" - object does not exist.']
    if "stage" in data and data["stage"] not in STAGES:
        errors["stage"] = [f'"{data["stage"]}" is not a valid choice.']
    if "state" in data and data["state"] not in STATES:
        errors["state"] = [f'"{data["state"]}" is not a valid choice.']
    if errors:
        raise ApiError(400, errors)
    now = now_iso()
    if "assignee" in data and data["assignee"] != job.assignee_id:
        job.assignee_id = data["assignee"]
        job.assignee_updated_date = now
    if "stage" in data:
        job.stage = data["stage"]
        if "state" not in data:
            job.state = "new"
    if "state" in data:
        job.state = data["state"]
    job.updated_date = now_iso()
    return cvat_response(_job_json(st, job, me, origin(request)))
