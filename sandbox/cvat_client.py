"""The CVAT client for tests, the demo and the benchmark: the bot's client plus what only they
do (act as a candidate, export a job, read a frame, change a job or an account directly, wait
for a task's data and check it whole). Declared the way the bot's operations are
(connection.operations): endpoints, then flows, which both clients here run.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

from connection import AsyncCvatClient, CvatClient, CvatError, CvatTask, CvatUnavailable, Op
from connection.errors import CvatMisconfigured, CvatRejected, CvatTaskProcessingError
from connection.flow import Flow, poll_until
from connection.http import CvatCore, Endpoint, as_mapping
from connection.models import CvatJob, CvatUser
from connection.operations import jobs, tasks, users

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "CVAT for images 1.1"

TASK_META = Endpoint("GET", "/api/tasks/{id}/data/meta", parse=as_mapping)
JOB_ANNOTATIONS = Endpoint("GET", "/api/jobs/{id}/annotations/", parse=as_mapping)
# Replaces everything with the same body: safe to re-send.
JOB_ANNOTATIONS_PUT = Endpoint("PUT", "/api/jobs/{id}/annotations/", parse=as_mapping)
JOB_FRAME = Endpoint("GET", "/api/jobs/{id}/data", parse=lambda body: body)
JOB_EXPORT = Endpoint("POST", "/api/jobs/{id}/dataset/export", expect=frozenset({202}),
                      parse=as_mapping)
EXPORT_RESULT = Endpoint("GET", "{result_url}")  # the path (and query) CVAT gives when done


def visible_jobs(cvat: CvatCore) -> Flow[list[CvatJob]]:
    """Every job this account can see (a candidate: only the job assigned to them)."""
    return [CvatJob.from_api(item) for item in (yield from cvat.paginate(jobs.JOBS))]


def get_job_annotations(cvat: CvatCore, job_id: int) -> Flow[dict[str, Any]]:
    """The job's annotations: {version, tags, shapes, tracks[, intervals]}."""
    return (yield from cvat.call(JOB_ANNOTATIONS, JOB_ANNOTATIONS.at(id=job_id)))


def put_job_annotations(cvat: CvatCore, job_id: int,
                        data: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    """Replace all annotations of a job (as the acting account) and return CVAT's echo."""
    body = {"version": 0, "tags": [], "shapes": [], "tracks": [], **dict(data)}
    return (yield from cvat.call(JOB_ANNOTATIONS_PUT, JOB_ANNOTATIONS_PUT.at(id=job_id),
                                 json_body=body))


def get_frame(cvat: CvatCore, job_id: int, number: int, *,
              quality: str = "original") -> Flow[bytes]:
    """One frame's image bytes (task-absolute frame number)."""
    response = yield from cvat.send(JOB_FRAME, JOB_FRAME.at(id=job_id), params={
        "type": "frame", "number": number, "quality": quality})
    return response.content  # type: ignore[no-any-return]


def update_job(cvat: CvatCore, job_id: int, state: str | None = None,
               stage: str | None = None) -> Flow[CvatJob]:
    """Set a job's state and/or stage (CVAT resets state to 'new' if only stage is given)."""
    body = {k: v for k, v in (("state", state), ("stage", stage)) if v is not None}
    if not body:
        return (yield from jobs.get_job(cvat, job_id))
    job = yield from cvat.call(jobs.JOB_UPDATE, jobs.JOB_UPDATE.at(id=job_id), json_body=body)
    if (state and job.state != state) or (stage and job.stage != stage):
        raise CvatError(f"CVAT did not apply {body} to job {job_id}: state={job.state} "
                        f"stage={job.stage}")
    return job


def set_user_active(cvat: CvatCore, user_id: int, active: bool) -> Flow[CvatUser]:
    """Enable or disable logging in for a user and verify the echo."""
    data = yield from cvat.call(users.USER_UPDATE, users.USER_UPDATE.at(id=user_id),
                                json_body={"is_active": active})
    if data.get("is_active") is not active:
        raise CvatMisconfigured(
            f"CVAT did not change is_active of user {user_id}: the account "
            f"{cvat.username!r} is probably not a superuser")
    return CvatUser.from_api(data)


def get_task_meta(cvat: CvatCore, task_id: int) -> Flow[dict[str, Any]]:
    """GET /api/tasks/{id}/data/meta (frames with names and sizes)."""
    return (yield from cvat.call(TASK_META, TASK_META.at(id=task_id)))


def wait_for_data(
    cvat: CvatCore,
    task_id: int,
    rq_id: str | None,
    *,
    expected_size: int,
    timeout: float = tasks.PROCESSING_TIMEOUT,
    poll: float = 0.5,
    on_progress: tasks.FractionCallback | None = None,
    on_progress_in_loop: bool = True,
) -> Flow[CvatTask]:
    """Wait until CVAT has processed the task's data, then verify the task, its size, its
    jobs and its frames one by one (the bot does it in one call: wait_for_job).
    `on_progress(fraction)` gets values in 0..1, where the flow runs."""
    del on_progress_in_loop
    yield from tasks.wait_processed(cvat, task_id, rq_id, timeout, poll, on_progress)
    task = yield from tasks.get_task(cvat, task_id)
    problems = []
    if task.size != expected_size:
        problems.append(f"it has {task.size} images instead of {expected_size}")
    if task.jobs_count < 1:
        problems.append("it has no job")
    if not problems:
        frames = len((yield from get_task_meta(cvat, task_id)).get("frames") or [])
        if frames != expected_size:
            problems.append(f"its data lists {frames} frames instead of {expected_size}")
    if problems:
        raise CvatTaskProcessingError(
            f"CVAT reports task {task_id} processed but {' and '.join(problems)} (the task "
            "stays empty). Delete it and create it again; check file names and formats.",
            details={"task_id": task_id, "size": task.size, "jobs": task.jobs_count})
    return task


def export_job_xml(cvat: CvatCore, job_id: int, *, timeout: float = 300.0,
                   poll: float = 0.5) -> Flow[bytes]:
    """The job's annotations as CVAT-for-images 1.1 XML (annotations.xml of the export)."""
    params = {"format": EXPORT_FORMAT, "save_images": "false"}
    try:
        answer = yield from cvat.call(JOB_EXPORT, JOB_EXPORT.at(id=job_id), params=params)
    except CvatRejected as exc:
        if exc.status != 409 or not isinstance(exc.details, Mapping):
            raise
        answer = dict(exc.details)  # an export of the same job is already running: join it
    rq_id = str(answer.get("rq_id") or "")
    if not rq_id:
        raise CvatError(f"CVAT started an export of job {job_id} without a request id")

    def probe() -> Flow[tuple[bool, dict[str, Any]]]:
        request = yield from tasks.get_request(cvat, rq_id)
        status = str(request.get("status") or "").lower()
        if status == "failed":
            raise CvatError(f"CVAT could not export job {job_id}: "
                            f"{request.get('message') or 'no reason given'}")
        return status == "finished", request

    request = yield from poll_until(
        probe, timeout=timeout, first_delay=0.0,
        next_delay=lambda delay, _elapsed, _answer: min(max(delay * 1.5, poll), 2.0),
        timed_out=lambda _answer: CvatUnavailable(
            f"CVAT did not finish exporting job {job_id} within {timeout:.0f} s"))
    result_url = request.get("result_url")
    if not result_url:
        raise CvatError(f"CVAT finished exporting job {job_id} but gave no result_url")
    # result_url is absolute and may carry a wrong host behind a proxy: keep path + query.
    parts = urlsplit(str(result_url))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    response = yield from cvat.send(EXPORT_RESULT, target)
    return _annotations_xml(response.content, job_id)


def _annotations_xml(content: bytes, job_id: int) -> bytes:
    """annotations.xml from an export archive (or the content itself if it is XML)."""
    if content.lstrip().startswith(b"<"):
        return content
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "annotations.xml"]
            if not names:
                raise CvatError(f"the export of job {job_id} has no annotations.xml "
                                f"(files: {archive.namelist()[:10]})")
            return archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise CvatError(f"the export of job {job_id} is not a zip archive") from exc


class SandboxOperations:
    """The test-side operations, declared once for both clients below."""

    visible_jobs = Op(visible_jobs)
    get_job_annotations = Op(get_job_annotations)
    put_job_annotations = Op(put_job_annotations)
    get_frame = Op(get_frame)
    update_job = Op(update_job)
    set_user_active = Op(set_user_active)
    get_task_meta = Op(get_task_meta)
    wait_for_data = Op(wait_for_data)
    export_job_xml = Op(export_job_xml)


class SandboxCvatClient(SandboxOperations, CvatClient):
    """The blocking client with the test-side operations."""

    def for_user(self, username: str, password: str) -> Self:
        """A client acting as another account (e.g. a candidate) on the same server."""
        return self.as_account(username, password)


class AsyncSandboxCvatClient(SandboxOperations, AsyncCvatClient):
    """The async client with the test-side operations."""

    @classmethod
    def connect(cls, base_url: str, username: str, password: str, **options: Any) -> Self:
        """A client of this account on that server (`options` as CvatClient takes them)."""
        return cls(CvatClient(base_url, username, password, **options))

    def for_user(self, username: str, password: str) -> Self:
        """An async client acting as another account (shares nothing but the address)."""
        return type(self)(self.client.as_account(username, password), max_workers=2)
