"""Annotations as CVAT checks and stores them: shapes, tracks and tags normalised against the
task's labels and attribute specs, with new ids."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .rest import ApiError

if TYPE_CHECKING:
    from .models import Label, Task
    from .state import CvatState

__all__ = ["Annotations", "assign_ids", "normalize"]

SHAPE_TYPES = {
    "rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton",
}  # fmt: skip
Annotations = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def normalize(task: Task, data: Any, start: int, stop: int) -> Annotations:
    """(shapes, tracks, tags) of a request body, checked as CVAT's serializers do."""
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    for key in ("shapes", "tracks", "tags"):
        if key in data and not isinstance(data[key], list):
            raise ApiError(400, {key: ['Expected a list of items but got type "dict".']})
    shapes = [_norm_shape(task, s) for s in data.get("shapes") or []]
    tracks = [_norm_track(task, t, start, stop) for t in data.get("tracks") or []]
    tags = [_norm_tag(task, t, start, stop) for t in data.get("tags") or []]
    return shapes, tracks, tags


def assign_ids(
    st: CvatState,
    shapes: list[dict[str, Any]],
    tracks: list[dict[str, Any]],
    tags: list[dict[str, Any]],
) -> None:
    """Give new objects (and a track's shapes) their ids."""
    for s in shapes:
        s["id"] = st.next_id("shape")
    for t in tracks:
        t["id"] = st.next_id("track")
        for ts in t["shapes"]:
            ts["id"] = st.next_id("track_shape")
    for t in tags:
        t["id"] = st.next_id("tag")


def _fill_attrs(raw: Any, label: Label, mutable: bool | None, where: str) -> list[dict[str, Any]]:
    specs = {a.id: a for a in label.attributes}
    given: dict[int, str] = {}
    for item in raw or []:
        try:
            spec_id = int(item["spec_id"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, {where: [{"attributes": ["spec_id is required"]}]}) from None
        if spec_id not in specs:
            raise ApiError(
                400, [f"Attribute spec {spec_id} does not belong to the label '{label.name}'"]
            )
        value = item.get("value", "")
        given[spec_id] = value if isinstance(value, str) else json.dumps(value)
    out = []
    for spec in label.attributes:
        if mutable is not None and spec.mutable != mutable:
            continue
        out.append({"spec_id": spec.id, "value": given.get(spec.id, spec.default_value)})
    return out


def _norm_geometry(raw: dict[str, Any], where: str) -> dict[str, Any]:
    kind = raw.get("type")
    if kind not in SHAPE_TYPES:
        raise ApiError(400, {where: [{"type": [f'"{kind}" is not a valid choice.']}]})
    try:
        points = [float(p) for p in raw.get("points") or []]
        rotation = float(raw.get("rotation") or 0.0)
        frame = int(raw["frame"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, {where: [{"frame": ["This field is required."]}]}) from None
    return {
        "type": kind,
        "occluded": bool(raw.get("occluded", False)),
        "outside": bool(raw.get("outside", False)),
        "z_order": int(raw.get("z_order") or 0),
        "rotation": rotation % 360.0,
        "points": points,
        "frame": frame,
    }


def _label_of(task: Task, raw: dict[str, Any]) -> Label:
    for label in task.labels:
        if label.id == raw.get("label_id"):
            return label
    raise ApiError(400, [f"Label {raw.get('label_id')!r} is not found in the task"])


def _check_frame(frame: int, start: int, stop: int) -> None:
    if frame < start or frame > stop:
        raise ApiError(
            400, [f"The frame #{frame} is out of the job frame range [{start}, {stop}]"]
        )


def _norm_shape(task: Task, raw: dict[str, Any]) -> dict[str, Any]:
    label = _label_of(task, raw)
    # CVAT 2.73 stores a shape or a keyframe at any frame, inside the job or not (tried on
    # a real server: frame 500 of a 3-frame job, a keyframe at 1,000,000), and a mask of
    # any size: what it saves is the bot's to bound (tasks_metrics.limits).
    geo = _norm_geometry(raw, "shapes")
    return {
        **geo,
        "id": raw.get("id"),
        "label_id": label.id,
        "group": int(raw.get("group") or 0),
        "source": raw.get("source") or "manual",
        "score": float(raw.get("score", 1.0) if raw.get("score") is not None else 1.0),
        "attributes": _fill_attrs(raw.get("attributes"), label, None, "shapes"),
        "elements": [],
    }


def _norm_track(task: Task, raw: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    label = _label_of(task, raw)
    shapes = []
    for s in raw.get("shapes") or []:
        geo = _norm_geometry(s, "tracks")  # at any frame, as in _norm_shape
        shapes.append(
            {
                **geo,
                "id": s.get("id"),
                "attributes": _fill_attrs(s.get("attributes"), label, True, "tracks"),
            }
        )
    if not shapes:
        raise ApiError(400, {"tracks": [{"shapes": ["This list may not be empty."]}]})
    shapes.sort(key=lambda s: s["frame"])
    frame = int(raw.get("frame", shapes[0]["frame"]))
    _check_frame(frame, start, stop)
    return {
        "id": raw.get("id"),
        "label_id": label.id,
        "frame": frame,
        "group": int(raw.get("group") or 0),
        "source": raw.get("source") or "manual",
        "shapes": shapes,
        "attributes": _fill_attrs(raw.get("attributes"), label, False, "tracks"),
        "elements": [],
    }


def _norm_tag(task: Task, raw: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    label = _label_of(task, raw)
    try:
        frame = int(raw["frame"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, {"tags": [{"frame": ["This field is required."]}]}) from None
    _check_frame(frame, start, stop)
    return {
        "id": raw.get("id"),
        "label_id": label.id,
        "frame": frame,
        "group": int(raw.get("group") or 0),
        "source": raw.get("source") or "manual",
        "attributes": _fill_attrs(raw.get("attributes"), label, None, "tags"),
    }
