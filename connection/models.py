"""What CVAT answers, typed: server version, users, tasks, jobs; and the rules for telling
an object made for us from an older one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connection.errors import CvatMisconfigured

# CVAT's clock and the database's may differ a little: an object dated up to this much before
# the row that asked for it still counts as made for it. (What it guards against, a database
# restored from an older backup, takes longer than this to happen.)
CLOCK_SLACK = timedelta(seconds=60)

# Version gates (first release with the behaviour).
V_SIMPLE_FILTERS = (2, 4)  # ?username=, ?task_id=, /api/labels, task "jobs" summary
V_JOB_TYPES = (2, 5)  # ground-truth jobs, ?type= filter on /api/jobs
V_REQUESTS_API = (2, 16)  # /api/requests/{rq_id}, rq_id in POST /data response
V_NEW_RQ_ID = (2, 38)  # rq_id "action=create&target=task&target_id=N"
V_SUPERUSER_ONLY = (2, 55)  # groups visible/writable only for is_superuser (was is_staff)
V_GUIDES = (2, 5)  # annotation guides of tasks and projects (/api/guides, guide_id)
V_QUALITY_OPTIONAL = (2, 65)  # image_quality no longer validated on Upload-Multiple requests

DEFAULT_LABELS: tuple[dict[str, Any], ...] = (
    {"name": "car", "type": "rectangle", "attributes": []},
    {
        "name": "plate",
        "type": "rectangle",
        "attributes": [
            {"name": "plate", "mutable": False, "input_type": "text",
             "default_value": "", "values": [""]},
        ],
    },
)


def _parse_dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _ref_id(value: Any) -> int | None:
    """The id of a nested reference that may be an object, a bare id or null."""
    if isinstance(value, Mapping):
        ref = value.get("id")
        return ref if isinstance(ref, int) else None
    return value if isinstance(value, int) else None


@dataclass(frozen=True, order=True)
class CvatVersion:
    """A CVAT server version such as 2.73.0."""

    major: int
    minor: int
    patch: int
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> CvatVersion:
        """Parse '2.73.0', 'v2.3.0' or '2.20.0-dev'."""
        match = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
        if not match:
            raise CvatMisconfigured(f"CVAT reported an unreadable server version {text!r}")
        major, minor, patch = (int(g) if g else 0 for g in match.groups())
        return cls(major, minor, patch, text.strip())

    def at_least(self, version: tuple[int, int]) -> bool:
        """True when this version is the given (major, minor) or newer."""
        return (self.major, self.minor) >= version

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class CvatUser:
    """A CVAT account; `groups` is None when CVAT did not show them to the caller."""

    id: int
    username: str
    groups: tuple[str, ...] | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None
    is_staff: bool | None = None
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    last_login: datetime | None = None
    date_joined: datetime | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CvatUser:
        """Build from a CVAT user object (full or basic serializer)."""
        groups = data.get("groups")
        return cls(
            id=int(data["id"]),
            username=str(data["username"]),
            groups=tuple(groups) if isinstance(groups, list) else None,
            is_active=data.get("is_active"),
            is_superuser=data.get("is_superuser"),
            is_staff=data.get("is_staff"),
            email=data.get("email") or "",
            first_name=data.get("first_name") or "",
            last_name=data.get("last_name") or "",
            last_login=_parse_dt(data.get("last_login")),
            date_joined=_parse_dt(data.get("date_joined")),
        )


@dataclass(frozen=True)
class CvatTask:
    """A CVAT task; `size` is the number of frames, `jobs_count` the number of jobs."""

    id: int
    name: str
    size: int
    jobs_count: int
    status: str | None = None
    media_type: str = ""
    dimension: str = ""
    image_quality: int | None = None
    owner_id: int | None = None
    assignee_id: int | None = None
    created_date: datetime | None = None
    updated_date: datetime | None = None
    guide_id: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_data(self) -> bool:
        """True once CVAT has attached media to the task (it cannot be attached twice)."""
        return bool(self.media_type) or self.size > 0

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CvatTask:
        """Build from a CVAT task object (2.4+ `jobs` summary or older `segments`)."""
        jobs = data.get("jobs")
        if isinstance(jobs, Mapping):
            jobs_count = int(jobs.get("count") or 0)
        else:
            jobs_count = sum(len(s.get("jobs") or []) for s in data.get("segments") or [])
        return cls(
            id=int(data["id"]),
            name=str(data.get("name") or ""),
            size=int(data.get("size") or 0),
            jobs_count=jobs_count,
            status=data.get("status"),
            media_type=data.get("media_type") or data.get("mode") or "",
            dimension=data.get("dimension") or "",
            image_quality=data.get("image_quality"),
            owner_id=_ref_id(data.get("owner")),
            assignee_id=_ref_id(data.get("assignee")),
            created_date=_parse_dt(data.get("created_date")),
            updated_date=_parse_dt(data.get("updated_date")),
            guide_id=_ref_id(data.get("guide_id")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CvatJob:
    """A CVAT job with its assignee, state, stage and change dates."""

    id: int
    task_id: int
    assignee_id: int | None
    state: str | None
    stage: str | None
    updated_date: datetime | None
    assignee_updated_date: datetime | None
    start_frame: int
    stop_frame: int
    frame_count: int | None = None
    type: str = "annotation"
    assignee_username: str | None = None
    task_name: str | None = None
    created_date: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CvatJob:
        """Build from a CVAT job object."""
        assignee = data.get("assignee")
        start, stop = int(data.get("start_frame") or 0), int(data.get("stop_frame") or 0)
        return cls(
            id=int(data["id"]),
            task_id=int(data.get("task_id") or 0),
            assignee_id=_ref_id(assignee),
            state=data.get("state"),
            stage=data.get("stage"),
            updated_date=_parse_dt(data.get("updated_date")),
            assignee_updated_date=_parse_dt(data.get("assignee_updated_date")),
            start_frame=start,
            stop_frame=stop,
            frame_count=data.get("frame_count", stop - start + 1),
            type=data.get("type") or "annotation",
            assignee_username=assignee.get("username") if isinstance(assignee, Mapping) else None,
            task_name=data.get("task_name"),
            created_date=_parse_dt(data.get("created_date")),
            raw=dict(data),
        )


def made_since(created: datetime | None, not_before: datetime | None) -> bool:
    """Whether an object CVAT dates `created` can be the one that a row dated `not_before`
    asked for: one made before the row existed belongs to someone else (another deployment,
    or this one before its database was restored from an older backup)."""
    if not_before is None:
        return True
    return created is not None and created >= not_before - CLOCK_SLACK


def task_create_rq_id(version: CvatVersion, task_id: int) -> str:
    """The rq_id CVAT gives the data-processing request of a task on this server version."""
    if version.at_least(V_NEW_RQ_ID):
        return f"action=create&target=task&target_id={task_id}"
    return f"create:task-{task_id}"
