"""Annotation guides: /api/guides and /api/guides/{id}.

CVAT 2.5+: a task (or a project) has at most one guide, in Markdown; whoever may change the
task may write it, whoever may see the task or one of its jobs may read it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..models import Guide, now_iso
from ..rest import ApiError, caller, cvat_response, forbidden, json_body, not_found, state_of

if TYPE_CHECKING:
    from ..models import Task, User
    from ..state import CvatState

routes = web.RouteTableDef()


def _check_version(st: CvatState) -> None:
    if st.version_tuple < (2, 5, 0):
        raise ApiError(404, {"detail": "Not found."})


def _check_access(st: CvatState, user: User, task: Task, *, write: bool) -> None:
    staff = st.is_admin(user) or user.id in (task.owner_id, task.assignee_id)
    job_staff = any(job.assignee_id == user.id for job in st.task_jobs(task))
    if not (staff or (not write and (st.is_task_staff(user, task) or job_staff))):
        raise forbidden()


def _guide(request: web.Request, *, write: bool) -> Guide:
    st = state_of(request)
    _check_version(st)
    guide = st.guides.get(int(request.match_info["id"]))
    if guide is None:
        raise not_found("AnnotationGuide")
    _check_access(st, caller(request), st.tasks[guide.task_id], write=write)
    return guide


@routes.post("/api/guides")
async def guide_create(request: web.Request) -> web.Response:
    """POST /api/guides {task_id | project_id, markdown}."""
    st = state_of(request)
    _check_version(st)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    task_id, project_id = data.get("task_id"), data.get("project_id")
    if task_id is None and project_id is None:
        raise ApiError(400, ["One of project_id or task_id must be specified"])
    if task_id is not None and project_id is not None:
        raise ApiError(400, ["Both project_id and task_id must not be specified"])
    if project_id is not None:  # the stand-in has no projects
        raise ApiError(400, [f"The specified project #{project_id} does not exist."])
    task = st.tasks.get(int(task_id))
    if task is None:
        raise ApiError(400, [f"The specified task #{task_id} does not exist."])
    _check_access(st, caller(request), task, write=True)
    if st.guide_of(task.id) is not None:
        # The task's one-to-one guide exists: CVAT's database refuses the second row and
        # the unhandled IntegrityError is a 500.
        raise ApiError(500, None)
    # A DRF CharField trims the text (trim_whitespace): seen on CVAT 2.73, a trailing
    # newline does not survive the round trip.
    guide = Guide(id=st.next_id("guide"), task_id=task.id,
                  markdown=str(data.get("markdown") or "").strip())
    st.guides[guide.id] = guide
    return cvat_response(guide.to_json(), status=201)


@routes.get(r"/api/guides/{id:\d+}")
async def guide_get(request: web.Request) -> web.Response:
    """GET /api/guides/{id}."""
    return cvat_response(_guide(request, write=False).to_json())


@routes.patch(r"/api/guides/{id:\d+}")
async def guide_patch(request: web.Request) -> web.Response:
    """PATCH /api/guides/{id} {markdown}."""
    guide = _guide(request, write=True)
    data = await json_body(request)
    if isinstance(data, dict) and "markdown" in data:
        guide.markdown = str(data["markdown"] or "").strip()
        guide.updated_date = now_iso()
    return cvat_response(guide.to_json())


@routes.delete(r"/api/guides/{id:\d+}")
async def guide_delete(request: web.Request) -> web.Response:
    """DELETE /api/guides/{id}."""
    guide = _guide(request, write=True)
    del state_of(request).guides[guide.id]
    return web.Response(status=204)
