"""CVAT jobs: list, read, assign; the candidate's work read within a byte limit; labels and
frames."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from connection.errors import CvatError, CvatTaskProcessingError
from connection.flow import Flow
from connection.http import CvatCore, Endpoint, as_mapping, body_of
from connection.models import V_JOB_TYPES, V_SIMPLE_FILTERS, CvatJob
from connection.operations.server import equals, id_filter, server_version

logger = logging.getLogger("connection")

JOBS = Endpoint("GET", "/api/jobs")  # paginated
JOB = Endpoint("GET", "/api/jobs/{id}", parse=CvatJob.from_api)
JOB_UPDATE = Endpoint("PATCH", "/api/jobs/{id}", parse=CvatJob.from_api)
# A candidate's work: untrusted, so measured before anything parses it.
JOB_ANNOTATIONS = Endpoint("GET", "/api/jobs/{id}/annotations/", stream=True)
JOB_META = Endpoint("GET", "/api/jobs/{id}/data/meta", parse=as_mapping)
LABELS = Endpoint("GET", "/api/labels")  # paginated
TASK_OF_OLD = Endpoint("GET", "/api/tasks/{id}")  # its labels, before 2.4


def annotation_job(cvat: CvatCore, task_id: int, expected_size: int) -> Flow[CvatJob]:
    """The first annotation job of a processed task; CvatTaskProcessingError unless its jobs
    exist and cover `expected_size` frames (an empty task has none)."""
    jobs = sorted((yield from list_jobs(cvat, task_id)), key=lambda j: j.start_frame)
    frames = sum(j.frame_count or 0 for j in jobs)
    if not jobs or frames != expected_size:
        raise CvatTaskProcessingError(
            f"CVAT reports task {task_id} processed but it has {len(jobs)} job(s) over "
            f"{frames} images instead of {expected_size} (the task stays empty). Delete it "
            "and create it again; check file names and formats.",
            details={"task_id": task_id, "jobs": len(jobs), "frames": frames})
    logger.info("CVAT task %d ready: %d images, job %d", task_id, frames, jobs[0].id)
    return jobs[0]


def list_jobs(cvat: CvatCore, task_id: int,
              type: str | None = "annotation") -> Flow[list[CvatJob]]:
    """Jobs of a task, only of this `type` ('annotation' skips ground-truth jobs) if given."""
    version = yield from server_version(cvat)
    params = equals(version, "task_id", task_id)
    if type and version.at_least(V_JOB_TYPES):
        params["type"] = type
    jobs = [CvatJob.from_api(item) for item in (yield from cvat.paginate(JOBS, params))]
    return [j for j in jobs if j.task_id == task_id and (not type or j.type == type)]


def get_job(cvat: CvatCore, job_id: int) -> Flow[CvatJob]:
    """GET /api/jobs/{id}."""
    return (yield from cvat.call(JOB, JOB.at(id=job_id)))


def jobs_by_id(cvat: CvatCore, ids: Sequence[int]) -> Flow[dict[int, CvatJob]]:
    """Those of these jobs that exist, by id: one list call per hundred, not one each."""
    found = yield from cvat.paginate(JOBS, id_filter(ids))
    return {job.id: job for job in map(CvatJob.from_api, found)}


def assign_job(cvat: CvatCore, job_id: int, user_id: int | None) -> Flow[CvatJob]:
    """Make `user_id` the job's assignee (None unassigns) and verify CVAT applied it."""
    job = yield from cvat.call(JOB_UPDATE, JOB_UPDATE.at(id=job_id),
                               json_body={"assignee": user_id})
    if job.assignee_id != user_id:
        raise CvatError(f"CVAT did not assign job {job_id} to user {user_id}: its assignee "
                        f"is {job.assignee_id}")
    logger.info("CVAT job %d assignee set to %s", job_id, user_id)
    return job


def get_job_annotations_raw(cvat: CvatCore, job_id: int, max_bytes: int) -> Flow[bytes]:
    """The job's annotations as the JSON bytes CVAT sent, read up to `max_bytes`
    (CvatResponseTooLarge past it): a candidate's work is untrusted, so it is measured
    before anything parses it."""
    return (yield from cvat.read_within(JOB_ANNOTATIONS, JOB_ANNOTATIONS.at(id=job_id),
                                        max_bytes))


def get_labels(cvat: CvatCore, task_id: int | None = None,
               job_id: int | None = None) -> Flow[list[dict[str, Any]]]:
    """Labels (with attribute ids) of a task or a job, all pages; assignees need job_id."""
    if (task_id is None) == (job_id is None):
        raise ValueError("give exactly one of task_id or job_id")
    if not (yield from server_version(cvat)).at_least(V_SIMPLE_FILTERS):
        # before 2.4 labels were embedded in the task/job objects
        owner = TASK_OF_OLD.at(id=task_id) if task_id else JOB.at(id=job_id)
        response = yield from cvat.send(JOB, owner)
        embedded = as_mapping(body_of(response)).get("labels")
        if isinstance(embedded, list):
            return embedded
    params = {"task_id": task_id} if task_id is not None else {"job_id": job_id}
    return (yield from cvat.paginate(LABELS, params))


def get_job_meta(cvat: CvatCore, job_id: int) -> Flow[dict[str, Any]]:
    """GET /api/jobs/{id}/data/meta (the job's frames)."""
    return (yield from cvat.call(JOB_META, JOB_META.at(id=job_id)))
