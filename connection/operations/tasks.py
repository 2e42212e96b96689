"""CVAT tasks: create (never twice), the guide, the images (upload or the share), waiting for
CVAT to process them, delete."""

from __future__ import annotations

import copy
import logging
import mimetypes
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from connection.errors import CvatNotFound, CvatRejected, CvatTaskProcessingError, CvatUnavailable
from connection.flow import Flow, notify, poll_until
from connection.http import CREATED, DELETED, CvatCore, Endpoint, as_mapping, body_of
from connection.models import (
    DEFAULT_LABELS,
    V_GUIDES,
    V_QUALITY_OPTIONAL,
    V_REQUESTS_API,
    CvatJob,
    CvatTask,
    made_since,
    task_create_rq_id,
)
from connection.operations.jobs import annotation_job
from connection.operations.server import delete, equals, server_version

logger = logging.getLogger("connection")

ProgressCallback = Callable[[int, int], Any]
FractionCallback = Callable[[float], Any]

# Waiting for CVAT to process a task's images: the first look after this long, then 1.5 times
# longer each time (at most 1 s). CVAT 2.73 reports no progress for small image tasks, so the
# polls cannot aim at the end; this bounds them to a few per task.
FIRST_POLL = 0.1
PROCESSING_TIMEOUT = 300.0

TASKS = Endpoint("GET", "/api/tasks")  # paginated
TASK = Endpoint("GET", "/api/tasks/{id}", parse=CvatTask.from_api)
TASK_CREATE = Endpoint("POST", "/api/tasks", expect=CREATED, parse=CvatTask.from_api)
TASK_DELETE = Endpoint("DELETE", "/api/tasks/{id}", expect=DELETED)
# Upload-Start/-Multiple 202, Upload-Finish or one request 202 with {"rq_id"}.
TASK_DATA = Endpoint("POST", "/api/tasks/{id}/data/", expect=frozenset({200, 202}))
TASK_STATUS = Endpoint("GET", "/api/tasks/{id}/status", parse=as_mapping)  # before 2.16
REQUEST = Endpoint("GET", "/api/requests/{id}", parse=as_mapping)  # 2.16+
GUIDE_CREATE = Endpoint("POST", "/api/guides", expect=CREATED, parse=as_mapping)


def find_tasks(cvat: CvatCore, name: str | None = None) -> Flow[list[CvatTask]]:
    """Tasks visible to this account, only those named exactly `name` if given."""
    params: dict[str, Any] = {}
    if name is not None:
        params = equals((yield from server_version(cvat)), "name", name)
    found = yield from cvat.paginate(TASKS, params)
    tasks = [CvatTask.from_api(item) for item in found]
    return [t for t in tasks if name is None or t.name == name]


def get_task(cvat: CvatCore, task_id: int) -> Flow[CvatTask]:
    """GET /api/tasks/{id}."""
    return (yield from cvat.call(TASK, TASK.at(id=task_id)))


def create_task(
    cvat: CvatCore,
    name: str,
    labels: Sequence[Mapping[str, Any]] = DEFAULT_LABELS,
    *,
    existing_ok: bool = True,
    not_before: datetime | None = None,
) -> Flow[CvatTask]:
    """Create an empty task with these labels; the name must be unique.

    Never re-sent blindly: with `existing_ok` (resuming after a crash) it first looks for a
    task with exactly this name made no earlier than `not_before` (a previous attempt) and
    returns it (check `has_data` before uploading); after an ambiguous failure it looks again
    before raising CvatUnavailable. A task of that name made earlier is someone else's and is
    never returned.
    """
    if existing_ok:
        found = yield from _tasks_made_since(cvat, name, not_before)
        if found:
            logger.info("CVAT task %r already exists (id %d)", name, found[0].id)
            return found[0]
    body = {"name": name, "labels": copy.deepcopy([dict(lb) for lb in labels])}
    try:
        task = yield from cvat.call(TASK_CREATE, json_body=body)
    except CvatUnavailable:
        found = yield from _tasks_made_since(cvat, name, not_before)
        if not found:
            raise
        logger.info("CVAT task %r was created despite the failed answer", name)
        return found[0]
    logger.info("CVAT task %r created with id %d", name, task.id)
    return task


def _tasks_made_since(cvat: CvatCore, name: str,
                      not_before: datetime | None) -> Flow[list[CvatTask]]:
    tasks = yield from find_tasks(cvat, name)
    return [t for t in tasks if made_since(t.created_date, not_before)]


def add_task_guide(cvat: CvatCore, task_id: int, markdown: str) -> Flow[int | None]:
    """Attach an annotation guide (Markdown) to a task: CVAT shows it beside the task's jobs.
    Its id, or None on a CVAT without guides (before 2.5). A task has at most one guide, so
    this is never re-sent blindly: after an ambiguous failure the task is read, and a guide
    that arrived is taken."""
    if not (yield from server_version(cvat)).at_least(V_GUIDES):
        return None
    try:
        data = yield from cvat.call(GUIDE_CREATE,
                                    json_body={"task_id": task_id, "markdown": markdown})
    except CvatUnavailable:
        guide_id = (yield from get_task(cvat, task_id)).guide_id
        if guide_id is None:
            raise
        return guide_id
    logger.info("CVAT task %d has guide %s", task_id, data.get("id"))
    return int(data["id"])


def delete_task(cvat: CvatCore, task_id: int) -> Flow[bool]:
    """Delete a task; True if deleted now, False if it was already gone (404)."""
    return (yield from delete(cvat, TASK_DELETE, task_id, "task"))


# ------------------------------------------------------------------------------- task data


def _batches(files: Sequence[tuple[str, bytes]], size: int,
             max_bytes: int | None) -> list[Sequence[tuple[str, bytes]]]:
    """Files in upload batches: `size` files each, or (with `max_bytes`) as many as fit in that
    many bytes, at least one."""
    if max_bytes is None:
        return [files[i:i + size] for i in range(0, len(files), size)]
    batches: list[Sequence[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    used = 0
    for item in files:
        if current and used + len(item[1]) > max_bytes:
            batches.append(current)
            current, used = [], 0
        current.append(item)
        used += len(item[1])
    batches.append(current)
    return batches


def _form(fields: Mapping[str, Any], files: Sequence[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    """A multipart body: the fields, then the files as CVAT wants them (`client_files[i]`)."""
    form: list[tuple[str, Any]] = [(k, (None, str(v))) for k, v in fields.items()]
    for index, (name, content) in enumerate(files):
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        form.append((f"client_files[{index}]", (name, content, ctype)))
    return form


def upload_images(
    cvat: CvatCore,
    task_id: int,
    files: Sequence[tuple[str, bytes]],
    *,
    image_quality: int = 70,
    batch_size: int = 4,
    batch_bytes: int | None = None,
    sorting_method: str = "lexicographical",
    on_progress: ProgressCallback | None = None,
    on_progress_in_loop: bool = True,
) -> Flow[str]:
    """Upload images to an empty task in batches and return the processing rq_id.

    Uses Upload-Start, one Upload-Multiple request per batch (`on_progress(k, n)` after each)
    and Upload-Finish. With `batch_bytes` a batch holds files up to that many bytes (at least
    one) instead of `batch_size` files, and an upload that fits in one batch goes as a single
    request (Upload-Start and Upload-Finish together). These POSTs are never re-sent: a failure
    raises and the task should be deleted and created again (re-sent files would be appended
    to). A task that already has data is refused by CVAT at the start (CvatRejected). Frames
    are ordered by `sorting_method`, so map annotations to files by name.

    `on_progress` is called where the flow runs: on the event loop for the async client (an
    awaitable it returns becomes a task), whatever `on_progress_in_loop` says (kept for
    callers written when it ran in a worker thread).
    """
    del on_progress_in_loop
    names = [name for name, _ in files]
    if not files:
        raise ValueError("upload_images needs at least one file")
    if len(set(names)) != len(names) or not all(names):
        raise ValueError("image file names must be non-empty and unique")
    if not 1 <= image_quality <= 100:
        raise ValueError("image_quality must be between 1 and 100")
    total = len(files)
    batches = _batches(files, max(1, batch_size), batch_bytes)
    finish = {"image_quality": image_quality, "sorting_method": sorting_method}
    notify(on_progress, 0, total)
    if batch_bytes is not None and len(batches) == 1:
        rq_id = yield from _finish_data(cvat, task_id, finish, files=files, headers={
            "Upload-Start": "true", "Upload-Finish": "true"})
        notify(on_progress, total, total)
        return rq_id
    # Before 2.65 every Upload-Multiple request is validated and needs image_quality.
    quality_in_batches = not (yield from server_version(cvat)).at_least(V_QUALITY_OPTIONAL)
    extra = {"image_quality": image_quality} if quality_in_batches else {}
    yield from _post_data(cvat, task_id, headers={"Upload-Start": "true"})
    done = 0
    for batch in batches:
        yield from _post_data(cvat, task_id, files=_form(extra, batch),
                              headers={"Upload-Multiple": "true"})
        done += len(batch)
        logger.debug("CVAT task %d: uploaded %d/%d images", task_id, done, total)
        notify(on_progress, done, total)
    return (yield from _finish_data(cvat, task_id, finish, headers={"Upload-Finish": "true"}))


def attach_server_files(
    cvat: CvatCore,
    task_id: int,
    paths: Sequence[str],
    *,
    image_quality: int = 70,
    sorting_method: str = "lexicographical",
) -> Flow[str]:
    """Attach files from CVAT's share (paths relative to it) to an empty task; rq_id back."""
    if not paths:
        raise ValueError("attach_server_files needs at least one path")
    body = {"image_quality": image_quality, "sorting_method": sorting_method,
            "server_files": list(paths)}
    return (yield from _finish_data(cvat, task_id, body, headers={}))


def _finish_data(cvat: CvatCore, task_id: int, body: Mapping[str, Any],
                 headers: Mapping[str, str],
                 files: Sequence[tuple[str, bytes]] = ()) -> Flow[str]:
    """POST the final data request (with these files, if any); return the rq_id (also after
    a 409 or lost answer)."""
    version = yield from server_version(cvat)
    fallback = task_create_rq_id(version, task_id)
    try:
        if files:
            response = yield from _post_data(cvat, task_id, files=_form(body, files),
                                             headers=headers)
        else:
            response = yield from _post_data(cvat, task_id, json_body=dict(body),
                                             headers=headers)
    except CvatRejected as exc:
        if exc.status == 409 and isinstance(exc.details, Mapping):
            logger.info("CVAT task %d: processing already queued", task_id)
            return str(exc.details.get("rq_id") or fallback)
        raise
    except CvatUnavailable:
        if version.at_least(V_REQUESTS_API) and (yield from _request_exists(cvat, fallback)):
            logger.info("CVAT task %d: data request arrived despite the failed answer", task_id)
            return fallback
        raise
    return str(as_mapping(body_of(response)).get("rq_id") or fallback)


def _post_data(cvat: CvatCore, task_id: int, **kwargs: Any) -> Flow[Any]:
    """POST /api/tasks/{id}/data; CVAT's refusal to add data twice in plain words."""
    try:
        return (yield from cvat.send(TASK_DATA, TASK_DATA.at(id=task_id), **kwargs))
    except CvatRejected as exc:
        if exc.status == 400 and "Adding more data" in exc.message:
            raise CvatRejected(
                f"CVAT task {task_id} already has data; data cannot be added twice: "
                "delete the task and create a new one",
                status=exc.status, details=exc.details) from exc
        raise


def _request_exists(cvat: CvatCore, rq_id: str) -> Flow[bool]:
    try:
        yield from get_request(cvat, rq_id)
    except CvatNotFound:
        return False
    return True


def get_request(cvat: CvatCore, rq_id: str) -> Flow[dict[str, Any]]:
    """GET /api/requests/{rq_id} (CVAT 2.16+), rq_id percent-encoded."""
    return (yield from cvat.call(REQUEST, REQUEST.at(id=quote(rq_id, safe=""))))


# ------------------------------------------------------------------------- waiting for data


def _next_poll_delay(delay: float, poll: float, elapsed: float, progress: float | None) -> float:
    """When to ask again: 1.5 times longer than the last wait (at most 1 s), or sooner, at
    half the time CVAT's own progress says is left, so the wait ends soon after the
    processing does. Never below `poll`."""
    grown = min(delay * 1.5, max(poll, 1.0))
    if progress is not None and 0 < progress < 1:
        remaining = elapsed * (1 - progress) / progress
        return max(min(grown, remaining / 2), poll, 0.05)
    return grown


def wait_processed(cvat: CvatCore, task_id: int, rq_id: str | None, timeout: float,
                   poll: float, on_progress: FractionCallback | None) -> Flow[None]:
    """Poll until CVAT finished processing the task's data (first after `poll` seconds, then
    1.5 times longer each time); CvatTaskProcessingError if it failed or timed out. The
    waits are steps of the flow: on the async client they hold no thread."""
    version = yield from server_version(cvat)
    use_requests = version.at_least(V_REQUESTS_API)
    rq_id = rq_id or task_create_rq_id(version, task_id)

    def probe() -> Flow[tuple[bool, tuple[str, float | None]]]:
        state, message, progress = yield from (
            _poll_request(cvat, rq_id) if use_requests else _poll_status(cvat, task_id))
        if progress is not None:
            notify(on_progress, progress)
        if state == "failed":
            raise CvatTaskProcessingError(
                f"CVAT could not process the images of task {task_id}: "
                f"{message or 'no reason given'}. Delete the task and create it again.",
                details={"rq_id": rq_id, "message": message})
        return state in ("finished", "gone"), (state, progress)

    def timed_out(answer: tuple[str, float | None]) -> Exception:
        return CvatTaskProcessingError(
            f"CVAT did not finish processing the images of task {task_id} within "
            f"{timeout:.0f} s (last state: {answer[0]}). Delete the task and create it "
            "again; check CVAT's workers if this repeats.",
            details={"rq_id": rq_id, "state": answer[0]})

    yield from poll_until(
        probe, timeout=timeout, first_delay=max(0.05, poll), timed_out=timed_out,
        next_delay=lambda delay, elapsed, answer: _next_poll_delay(delay, poll, elapsed,
                                                                   answer[1]))


def _poll_request(cvat: CvatCore, rq_id: str) -> Flow[tuple[str, str, float | None]]:
    try:
        data = yield from get_request(cvat, rq_id)
    except CvatNotFound:
        # Finished requests expire after ~8 minutes; the task itself tells the truth.
        return "gone", "", None
    status = str(data.get("status") or "").lower()
    if status not in ("queued", "started", "finished", "failed"):
        status = "queued"
    progress = data.get("progress")
    return status, str(data.get("message") or ""), (
        float(progress) if isinstance(progress, (int, float)) else None)


def _poll_status(cvat: CvatCore, task_id: int) -> Flow[tuple[str, str, float | None]]:
    data = yield from cvat.call(TASK_STATUS, TASK_STATUS.at(id=task_id))
    state = str(data.get("state") or "").lower()
    progress = data.get("progress")
    fraction = float(progress) / 100.0 if isinstance(progress, (int, float)) else None
    return state or "queued", str(data.get("message") or ""), fraction


def wait_for_job(
    cvat: CvatCore,
    task_id: int,
    rq_id: str | None,
    *,
    expected_size: int,
    timeout: float = PROCESSING_TIMEOUT,
    poll: float = FIRST_POLL,
) -> Flow[CvatJob]:
    """Wait until CVAT has processed the task's data, then return the task's (first)
    annotation job, verified to cover `expected_size` frames: one list call instead of reading
    the task, its frames and its jobs one after another."""
    yield from wait_processed(cvat, task_id, rq_id, timeout, poll, None)
    return (yield from annotation_job(cvat, task_id, expected_size))
