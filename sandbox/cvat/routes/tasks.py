"""Tasks and their labels: /api/tasks, /api/tasks/{id} and /api/labels."""

from __future__ import annotations

import logging
import zlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..listing import filter_rows, int_or_400, paginate
from ..models import AttributeSpec, Label, Task, now_iso
from ..rest import (
    ApiError,
    caller,
    cvat_response,
    forbidden,
    json_body,
    not_found,
    origin,
    state_of,
    task_of,
)
from .users import user_basic

if TYPE_CHECKING:
    from ..models import Job
    from ..state import CvatState

log = logging.getLogger("sandbox.cvat.server")
routes = web.RouteTableDef()

LABEL_TYPES = {
    "any", "rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask",
    "skeleton", "tag",
}  # fmt: skip
INPUT_TYPES = {"checkbox", "radio", "number", "text", "select"}
PALETTE = ["#2080c0", "#a0a0a0", "#fa3253", "#33ddff", "#34d1b7", "#ff6037", "#b83df5", "#ddff33"]


def task_status(jobs: list[Job]) -> str:
    """The task's status from its jobs' stages."""
    if jobs and all(j.stage == "acceptance" for j in jobs):
        return "completed"
    if any(j.stage == "validation" for j in jobs):
        return "validation"
    return "annotation"


def task_json(st: CvatState, task: Task, base: str) -> dict[str, Any]:
    """TaskReadSerializer, field for field as 2.73 answers."""
    jobs = st.task_jobs(task)
    data: dict[str, Any] = {
        "url": f"{base}/api/tasks/{task.id}",
        "id": task.id,
        "name": task.name,
        "project_id": None,
        "project_name": None,
        "owner": user_basic(st.users.get(task.owner_id or 0), base),
        "assignee": user_basic(st.users.get(task.assignee_id or 0), base),
        "bug_tracker": task.bug_tracker,
        "created_date": task.created_date,
        "updated_date": task.updated_date,
        "overlap": task.overlap,
        "segment_size": task.segment_size,
        "status": task_status(jobs),
    }
    if task.has_data:
        data.update(
            {
                "data_chunk_size": 72,
                "data_original_chunk_type": "imageset",
                "data_compressed_chunk_type": "imageset",
                "data_cloud_storage_id": None,
            }
        )
    data["guide_id"] = st.guide_of(task.id)
    if task.has_data:
        data["size"] = len(task.frames)
        data["image_quality"] = task.image_quality
    data.update(
        {
            "data": task.data_id,
            "dimension": "2d" if task.has_data else "",
            "mode": "annotation" if task.has_data else "",
            "media_type": task.media_type,
            "subset": task.subset,
            "organization_id": None,
            "organization": None,
            "target_storage": None,
            "source_storage": None,
            "jobs": {
                "count": len(jobs),
                "completed": sum(1 for j in jobs if j.state == "completed"),
                "validation": sum(1 for j in jobs if j.stage == "validation"),
                "url": f"{base}/api/jobs?task_id={task.id}",
            },
            "labels": {"url": f"{base}/api/labels?task_id={task.id}"},
            "assignee_updated_date": task.assignee_updated_date,
            "validation_mode": None,
            "consensus_enabled": False,
        }
    )
    return data


def _parse_labels(st: CvatState, task_id: int, raw: Any, existing: list[Label]) -> list[Label]:
    if not isinstance(raw, list):
        raise ApiError(400, {"labels": ['Expected a list of items but got type "dict".']})
    labels: list[Label] = []
    names = {lb.name for lb in existing}
    for item in raw:
        if not isinstance(item, dict) or not item.get("name"):
            raise ApiError(400, {"labels": [{"name": ["This field is required."]}]})
        name = str(item["name"])
        if len(name) > 64:
            raise ApiError(
                400,
                {"labels": [{"name": ["Ensure this field has no more than 64 characters."]}]},
            )
        if name in names:
            raise ApiError(400, {"labels": ["All label names must be unique"]})
        names.add(name)
        ltype = item.get("type", "any")
        if ltype not in LABEL_TYPES:
            raise ApiError(400, {"labels": [{"type": [f'"{ltype}" is not a valid choice.']}]})
        attrs = _parse_attributes(st, item.get("attributes") or [])
        color = item.get("color") or PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]
        labels.append(
            Label(
                id=st.next_id("label"),
                task_id=task_id,
                name=name,
                color=color,
                type=ltype,
                attributes=attrs,
            )
        )
    return labels


def _parse_attributes(st: CvatState, raw: list[Any]) -> list[AttributeSpec]:
    attrs: list[AttributeSpec] = []
    attr_names: set[str] = set()
    for a in raw:
        missing = [k for k in ("name", "mutable", "input_type", "values") if k not in a]
        if missing:
            raise ApiError(
                400,
                {
                    "labels": [
                        {"attributes": [{k: ["This field is required."] for k in missing}]}
                    ]
                },
            )
        if a["input_type"] not in INPUT_TYPES:
            raise ApiError(
                400,
                {"labels": [{"attributes": [{"input_type": [
                    f'"{a["input_type"]}" is not a valid choice.']}]}]},
            )  # fmt: skip
        if a["name"] in attr_names:
            raise ApiError(400, {"labels": ["Attribute names must be unique"]})
        attr_names.add(a["name"])
        values = [str(v) for v in a.get("values") or []]
        default = a.get("default_value")
        if default is None or default == "":
            default = (
                values[0]
                if values and a["input_type"] != "text"
                else (values[0] if values else "")
            )
        attrs.append(
            AttributeSpec(
                id=st.next_id("attribute"),
                name=str(a["name"]),
                mutable=bool(a["mutable"]),
                input_type=a["input_type"],
                default_value=str(default),
                values=values,
            )
        )
    return attrs


@routes.get("/api/tasks")
async def tasks_list(request: web.Request) -> web.Response:
    """GET /api/tasks (only visible tasks)."""
    st = state_of(request)
    me = caller(request)
    base = origin(request)
    rows = []
    for task in st.tasks.values():
        if not st.can_view_task(me, task):
            continue
        owner = st.users.get(task.owner_id or 0)
        assignee = st.users.get(task.assignee_id or 0)
        jobs = st.task_jobs(task)
        row = {
            "id": task.id,
            "name": task.name,
            "owner": owner.username if owner else None,
            "assignee": assignee.username if assignee else None,
            "status": task_status(jobs),
            "mode": "annotation" if task.has_data else "",
            "dimension": "2d" if task.has_data else "",
            "subset": task.subset,
            "updated_date": task.updated_date,
            "created_date": task.created_date,
        }
        rows.append((row, task_json(st, task, base)))
    simple = ("name", "owner", "assignee", "status", "mode", "dimension", "subset", "id")
    result = filter_rows(request, rows, simple, ("name", "owner", "assignee", "subset"))
    return cvat_response(paginate(request, result))


@routes.post("/api/tasks")
async def task_create(request: web.Request) -> web.Response:
    """POST /api/tasks: a worker gets 403."""
    st = state_of(request)
    me = caller(request)
    privilege = 0 if me.is_superuser else me.privilege
    if privilege is None or privilege > 75:
        raise forbidden()
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    name = data.get("name")
    if not name:
        raise ApiError(
            400,
            {
                "name": [
                    "This field is required."
                    if name is None
                    else "This field may not be blank."
                ]
            },
        )
    if len(str(name)) > 256:
        raise ApiError(400, {"name": ["Ensure this field has no more than 256 characters."]})
    labels_raw = data.get("labels")
    if not labels_raw and st.version_tuple < (2, 46, 0) and not data.get("project_id"):
        raise ApiError(400, {"label_set": ["Label set or project_id must be present"]})
    owner_id = me.id
    if data.get("owner_id") is not None:
        if not st.is_admin(me) and data["owner_id"] != me.id:
            raise forbidden()
        if data["owner_id"] not in st.users:
            raise ApiError(
                400, {"owner_id": [f'Invalid pk "{data["owner_id"]}" - object does not exist.']}
            )
        owner_id = int(data["owner_id"])
    assignee_id = data.get("assignee_id")
    if assignee_id is not None and assignee_id not in st.users:
        raise ApiError(
            400, {"assignee_id": [f'Invalid pk "{assignee_id}" - object does not exist.']}
        )
    seg = data.get("segment_size") or 0
    if not isinstance(seg, int) or seg < 0:
        raise ApiError(
            400, {"segment_size": ["Ensure this value is greater than or equal to 0."]}
        )
    task_id = st.next_id("task")
    labels = _parse_labels(st, task_id, labels_raw or [], [])
    task = Task(
        id=task_id,
        name=str(name),
        owner_id=owner_id,
        assignee_id=assignee_id,
        bug_tracker=str(data.get("bug_tracker") or ""),
        subset=str(data.get("subset") or ""),
        segment_size=seg,
        overlap=data.get("overlap"),
        labels=labels,
    )
    if assignee_id is not None:
        task.assignee_updated_date = task.created_date
    st.tasks[task.id] = task
    log.info("task %s created by %s", task.id, me.username)
    return cvat_response(task_json(st, task, origin(request)), 201)


@routes.get(r"/api/tasks/{id:\d+}")
async def task_get(request: web.Request) -> web.Response:
    """GET /api/tasks/{id}."""
    return cvat_response(task_json(state_of(request), task_of(request), origin(request)))


@routes.patch(r"/api/tasks/{id:\d+}")
async def task_patch(request: web.Request) -> web.Response:
    """PATCH /api/tasks/{id}: name, assignee_id, owner_id, bug_tracker, subset, labels."""
    st = state_of(request)
    me = caller(request)
    task = task_of(request)
    data = await json_body(request)
    if "owner_id" in data:
        if not (st.is_admin(me) or me.id == task.owner_id):
            raise forbidden()
        if data["owner_id"] is not None and data["owner_id"] not in st.users:
            raise ApiError(
                400, {"owner_id": [f'Invalid pk "{data["owner_id"]}" - object does not exist.']}
            )
        task.owner_id = data["owner_id"]
    if "assignee_id" in data:
        aid = data["assignee_id"]
        if aid is not None and aid not in st.users:
            raise ApiError(
                400, {"assignee_id": [f'Invalid pk "{aid}" - object does not exist.']}
            )
        if aid != task.assignee_id:
            task.assignee_updated_date = now_iso()
        task.assignee_id = aid
    if "name" in data:
        if not data["name"]:
            raise ApiError(400, {"name": ["This field may not be blank."]})
        task.name = str(data["name"])
    for name in ("bug_tracker", "subset"):
        if name in data:
            setattr(task, name, str(data[name] or ""))
    if "labels" in data:
        new = [lb for lb in data["labels"] if not lb.get("id")]
        task.labels.extend(_parse_labels(st, task.id, new, task.labels))
    task.updated_date = now_iso()
    return cvat_response(task_json(st, task, origin(request)))


@routes.delete(r"/api/tasks/{id:\d+}")
async def task_delete(request: web.Request) -> web.Response:
    """DELETE /api/tasks/{id}."""
    st = state_of(request)
    task = task_of(request, "delete")
    for job in st.task_jobs(task):
        del st.jobs[job.id]
    guide_id = st.guide_of(task.id)
    if guide_id is not None:
        del st.guides[guide_id]
    del st.tasks[task.id]
    return web.Response(status=204)


@routes.get("/api/labels")
async def labels_list(request: web.Request) -> web.Response:
    """GET /api/labels?task_id=|job_id= (paginated)."""
    st = state_of(request)
    me = caller(request)
    q = request.query
    labels: list[Label] = []
    if "job_id" in q:
        job = st.jobs.get(int_or_400(q["job_id"], "job_id"))
        if job is None:
            raise not_found("Job")
        if not st.can_view_job(me, job):
            raise forbidden()
        labels = list(st.tasks[job.task_id].labels)
    elif "task_id" in q:
        task = st.tasks.get(int_or_400(q["task_id"], "task_id"))
        if task is None:
            raise not_found("Task")
        if not st.can_view_task(me, task):
            raise forbidden()
        labels = list(task.labels)
    else:
        for task in st.tasks.values():
            if st.can_view_task(me, task) or any(
                st.can_view_job(me, j) for j in st.task_jobs(task)
            ):
                labels.extend(task.labels)
    rows = [({"id": lb.id, "name": lb.name, "type": lb.type}, lb.to_json()) for lb in labels]
    result = filter_rows(request, rows, ("name", "type"), ("name",), default_sort="id")
    return cvat_response(paginate(request, result))
