"""A task's or a job's media: GET .../data/meta and GET .../data?type=frame&number=N."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any

from aiohttp import web
from PIL import Image

from ..rest import ApiError, cvat_response, job_of, route_both, state_of, task_of

if TYPE_CHECKING:
    from ..models import Task

routes = web.RouteTableDef()


def _meta_json(task: Task, start: int, stop: int) -> dict[str, Any]:
    return {
        "chapters": None,
        "chunks_updated_date": task.chunks_updated_date,
        "chunk_size": 72,
        "size": stop - start + 1,
        "image_quality": task.image_quality,
        "start_frame": start,
        "stop_frame": stop,
        "frame_filter": "",
        "frames": [
            {
                "width": f.width,
                "height": f.height,
                "name": f.name,
                "related_files": 0,
                "has_related_context": False,
            }
            for f in task.frames[start : stop + 1]
        ],
        "deleted_frames": [],
        "included_frames": None,
        "storage": "local",
        "cloud_storage_id": None,
    }


def _task_with_data(request: web.Request) -> Task:
    task = task_of(request)
    if not task.has_data:
        raise ApiError(400, ["Data is not uploaded for the task yet"])
    return task


@route_both(routes, "GET", r"/api/tasks/{id:\d+}/data")
async def task_data_get(request: web.Request) -> web.Response:
    """GET /api/tasks/{id}/data?type=frame&number=N."""
    task = _task_with_data(request)
    return await _frame_response(request, task, 0, len(task.frames) - 1)


@routes.get(r"/api/tasks/{id:\d+}/data/meta")
async def task_meta(request: web.Request) -> web.Response:
    """GET /api/tasks/{id}/data/meta."""
    task = _task_with_data(request)
    return cvat_response(_meta_json(task, 0, len(task.frames) - 1))


@routes.get(r"/api/jobs/{id:\d+}/data")
async def job_data(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}/data?type=frame&number=N&quality=..."""
    job = job_of(request)
    task = state_of(request).tasks[job.task_id]
    return await _frame_response(request, task, job.start_frame, job.stop_frame)


@routes.get(r"/api/jobs/{id:\d+}/data/meta")
async def job_meta(request: web.Request) -> web.Response:
    """GET /api/jobs/{id}/data/meta."""
    job = job_of(request)
    task = state_of(request).tasks[job.task_id]
    return cvat_response(_meta_json(task, job.start_frame, job.stop_frame))


async def _frame_response(request: web.Request, task: Task, start: int, stop: int) -> web.Response:
    q = request.query
    kind = q.get("type")
    if kind != "frame":
        raise ApiError(400, ["Only type=frame is supported by the stand-in"])
    try:
        number = int(q.get("number", ""))
    except ValueError:
        raise ApiError(400, ["The frame number should be an integer"]) from None
    if number < start or number > stop:
        raise ApiError(400, [f"The frame number should be in the [{start}, {stop}] range"])
    frame = task.frames[number]
    quality = q.get("quality", "compressed")
    if quality == "original":
        data = frame.content
        ctype = Image.MIME.get(_image_format(frame.content) or "", "image/jpeg")
    else:
        data = await asyncio.to_thread(_compress, frame.content, task.image_quality or 70)
        ctype = "image/jpeg"
    return web.Response(body=data, headers={"Content-Type": ctype})


def _image_format(content: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(content)) as img:
            return img.format
    except Exception:  # noqa: BLE001 - any decoder error means 'unknown'
        return None


def _compress(content: bytes, quality: int) -> bytes:
    with Image.open(io.BytesIO(content)) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=max(1, min(quality, 95)))
        return out.getvalue()
