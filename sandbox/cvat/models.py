"""In-memory state of the CVAT stand-in: users, tasks, labels, jobs, requests."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    """Current UTC time the way DRF renders it (microseconds, trailing Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_after(base_iso: str, seconds: float) -> str:
    """An ISO timestamp `seconds` after `base_iso`."""
    base = datetime.strptime(base_iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return datetime.fromtimestamp(base.timestamp() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_token() -> str:
    """A DRF-style 40 hex character token."""
    return secrets.token_hex(20)


@dataclass
class User:
    """A Django user with CVAT's IAM groups."""

    id: int
    username: str
    password: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    groups: list[str] = field(default_factory=lambda: ["user"])
    is_staff: bool = False
    is_superuser: bool = False
    is_active: bool = True
    last_login: str | None = None
    date_joined: str = field(default_factory=now_iso)
    token: str | None = None

    @property
    def privilege(self) -> int | None:
        """CVAT privilege rank: admin 0 < user 75 < worker 100; None without groups."""
        ranks = {"admin": 0, "user": 75, "worker": 100}
        values = [ranks[g] for g in self.groups if g in ranks]
        return min(values) if values else None

    @property
    def is_admin(self) -> bool:
        """True when the highest group is admin (the rego `is_admin`)."""
        return self.privilege == 0


@dataclass
class AttributeSpec:
    """A label attribute (AttributeSpec)."""

    id: int
    name: str
    mutable: bool
    input_type: str
    default_value: str
    values: list[str]

    def to_json(self) -> dict[str, Any]:
        """Serialize as AttributeSerializer does."""
        return {
            "id": self.id,
            "name": self.name,
            "mutable": self.mutable,
            "input_type": self.input_type,
            "default_value": self.default_value,
            "values": list(self.values),
        }


@dataclass
class Label:
    """A task label."""

    id: int
    task_id: int
    name: str
    color: str
    type: str = "any"
    attributes: list[AttributeSpec] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Serialize as LabelSerializer does (as recorded on 2.73)."""
        return {
            "id": self.id,
            "name": self.name,
            "color": self.color,
            "attributes": [a.to_json() for a in self.attributes],
            "type": self.type,
            "sublabels": [],
            "task_id": self.task_id,
            "parent_id": None,
            "has_parent": False,
        }


@dataclass
class Frame:
    """One decoded image of a task."""

    name: str
    width: int
    height: int
    content: bytes


@dataclass
class Task:
    """A CVAT task with its (optional) data."""

    id: int
    name: str
    owner_id: int | None
    assignee_id: int | None = None
    bug_tracker: str = ""
    subset: str = ""
    segment_size: int = 0
    overlap: int | None = None
    labels: list[Label] = field(default_factory=list)
    created_date: str = field(default_factory=now_iso)
    updated_date: str = field(default_factory=now_iso)
    assignee_updated_date: str | None = None
    # data
    data_id: int | None = None
    media_type: str = ""
    image_quality: int | None = None
    frames: list[Frame] = field(default_factory=list)
    chunks_updated_date: str | None = None
    # upload state (UploadMixin)
    upload_files: list[tuple[str, bytes]] = field(default_factory=list)
    upload_started: bool = False

    @property
    def has_data(self) -> bool:
        """True once data processing produced media (Task.is_initialized)."""
        return bool(self.media_type)


@dataclass
class Guide:
    """An annotation guide (Markdown) bound to a task (CVAT: one per task or project)."""

    id: int
    task_id: int
    markdown: str = ""
    created_date: str = field(default_factory=now_iso)
    updated_date: str = field(default_factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        """AnnotationGuideRead."""
        return {"id": self.id, "task_id": self.task_id, "project_id": None,
                "created_date": self.created_date, "updated_date": self.updated_date,
                "markdown": self.markdown}


@dataclass
class Job:
    """An annotation job (one segment of a task)."""

    id: int
    task_id: int
    start_frame: int
    stop_frame: int
    type: str = "annotation"
    assignee_id: int | None = None
    stage: str = "annotation"
    state: str = "new"
    created_date: str = field(default_factory=now_iso)
    updated_date: str = field(default_factory=now_iso)
    assignee_updated_date: str | None = None
    shapes: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Deprecated `status` field derived from the stage."""
        return {"annotation": "annotation", "validation": "validation"}.get(self.stage, "completed")


@dataclass
class RqRequest:
    """A background request (task creation or dataset export)."""

    id: str
    action: str  # "create" | "export"
    target: str  # "task" | "job"
    target_id: int
    owner_id: int
    task_id: int | None
    job_id: int | None = None
    format: str | None = None
    status: str = "queued"
    message: str = ""
    progress: float = 0.0
    created_date: str = field(default_factory=now_iso)
    started_date: str | None = None
    finished_date: str | None = None
    expiry_date: str | None = None
    finished_at: float | None = None  # monotonic
    result: bytes | None = None
    result_filename: str | None = None
    save_images: bool = False

    def fail(self, message: str) -> None:
        """The background job failed: the request says so with the message."""
        self.status = "failed"
        self.message = message

    def close(self, ttl: float) -> None:
        """The background job ended: the request stays visible for `ttl` seconds."""
        self.finished_date = now_iso()
        self.finished_at = time.monotonic()
        self.expiry_date = iso_after(self.finished_date, ttl)
