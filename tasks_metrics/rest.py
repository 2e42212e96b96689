"""Converting CVAT REST annotations (``GET /api/jobs/{id}/annotations``) to the model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tasks_metrics.tracks import Keyframe, expand_track
from tasks_metrics.types import (
    ELLIPSE,
    MASK,
    AnnotationFormatError,
    ImageAnnotations,
    Shape,
    TaskAnnotations,
)


def rest_points_to_model(kind: str, points: Sequence[float]) -> tuple[float, ...]:
    """Convert a REST ``points`` list to the ``Shape.points`` layout."""
    pts = [float(v) for v in points]
    if kind == ELLIPSE and len(pts) >= 4:
        cx, cy, right_x, top_y = pts[:4]
        return (cx, cy, right_x - cx, cy - top_y)
    if kind == MASK and len(pts) >= 4:
        left, top, right, bottom = (int(v) for v in pts[-4:])
        return (left, top, right - left + 1, bottom - top + 1, *pts[:-4])
    return tuple(pts)


def model_points_to_rest(kind: str, points: Sequence[float]) -> list[float]:
    """Convert ``Shape.points`` back to the REST ``points`` layout."""
    pts = [float(v) for v in points]
    if kind == ELLIPSE and len(pts) >= 4:
        cx, cy, rx, ry = pts[:4]
        return [cx, cy, cx + rx, cy - ry]
    if kind == MASK and len(pts) >= 4:
        left, top, w, h = pts[:4]
        return [*pts[4:], left, top, left + w - 1, top + h - 1]
    return pts


def _label_maps(labels: Iterable[Mapping[str, Any]]) -> tuple[dict[int, str], dict[int, str]]:
    names: dict[int, str] = {}
    specs: dict[int, str] = {}
    for label in labels:
        names[int(label["id"])] = str(label["name"])
        for attr in label.get("attributes") or ():
            specs[int(attr["id"])] = str(attr["name"])
        for sub in label.get("sublabels") or ():
            sub_names, sub_specs = _label_maps([sub])
            names.update(sub_names)
            specs.update(sub_specs)
    return names, specs


def _attrs(raw: Iterable[Mapping[str, Any]] | None, specs: Mapping[int, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for attr in raw or ():
        spec = int(attr["spec_id"])
        value = attr.get("value")
        out[specs.get(spec, f"spec_{spec}")] = "" if value is None else str(value)
    return out


def from_cvat_rest(
    annotations: Mapping[str, Any],
    labels: Sequence[Mapping[str, Any]],
    frames: Sequence[Mapping[str, Any]],
    deleted_frames: Iterable[int] = (),
    start_frame: int = 0,
) -> TaskAnnotations:
    """Build per-image annotations from REST annotations, labels and ``data/meta`` frames."""
    try:
        names, specs = _label_maps(labels)
        deleted = {int(f) for f in deleted_frames}
        end_frame = start_frame + len(frames)
        per_frame: dict[int, list[Shape]] = {}

        def label_name(label_id: Any) -> str:
            return names.get(int(label_id), f"label_{label_id}")

        for raw in annotations.get("shapes") or ():
            if raw.get("outside"):
                continue
            kind = str(raw["type"])
            per_frame.setdefault(int(raw["frame"]), []).append(Shape(
                label=label_name(raw["label_id"]),
                kind=kind,
                points=rest_points_to_model(kind, raw.get("points") or ()),
                rotation=float(raw.get("rotation") or 0.0),
                attributes=_attrs(raw.get("attributes"), specs),
                z_order=int(raw.get("z_order") or 0),
                occluded=bool(raw.get("occluded")),
                ref=f"shape {raw.get('id', '?')}",
            ))

        for track in annotations.get("tracks") or ():
            track_attrs = _attrs(track.get("attributes"), specs)
            keys = []
            for raw in track.get("shapes") or ():
                kind = str(raw["type"])
                keys.append(Keyframe(
                    frame=int(raw["frame"]),
                    kind=kind,
                    points=rest_points_to_model(kind, raw.get("points") or ()),
                    rotation=float(raw.get("rotation") or 0.0),
                    outside=bool(raw.get("outside")),
                    occluded=bool(raw.get("occluded")),
                    z_order=int(raw.get("z_order") or 0),
                    attributes=_attrs(raw.get("attributes"), specs),
                ))
            label = label_name(track["label_id"])
            for frame, key in expand_track(keys, end_frame).items():
                per_frame.setdefault(frame, []).append(Shape(
                    label=label,
                    kind=key.kind,
                    points=key.points,
                    rotation=key.rotation,
                    attributes={**key.attributes, **track_attrs},
                    z_order=key.z_order,
                    occluded=key.occluded,
                    ref=f"track {track.get('id', '?')}",
                ))

        images = []
        for index, meta in enumerate(frames):
            frame = start_frame + index
            if frame in deleted:
                continue
            images.append(ImageAnnotations(
                name=str(meta["name"]),
                width=int(meta["width"]),
                height=int(meta["height"]),
                shapes=tuple(per_frame.get(frame, ())),
            ))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, AnnotationFormatError):
            raise
        raise AnnotationFormatError(f"malformed CVAT REST annotations: {exc!r}") from exc
    return TaskAnnotations.from_images(images)
