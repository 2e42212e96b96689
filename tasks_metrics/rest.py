"""Converting CVAT REST annotations (``GET /api/jobs/{id}/annotations``) to the model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tasks_metrics.limits import (
    FRAME_OUTSIDE,
    OBJECTS,
    SHAPES_PER_IMAGE,
    Limits,
    OverLimit,
    PointBudget,
)
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
    limits: Limits | None = None,
) -> TaskAnnotations:
    """Build per-image annotations from REST annotations, labels and ``data/meta`` frames.

    With ``limits`` the work is measured before it is expanded or drawn, and OverLimit says
    which limit it is over (the untrusted path: a candidate's submission)."""
    try:
        names, specs = _label_maps(labels)
        deleted = {int(f) for f in deleted_frames}
        end_frame = start_frame + len(frames)
        per_frame: dict[int, list[Shape]] = {}
        raw_shapes = annotations.get("shapes") or ()
        raw_tracks = annotations.get("tracks") or ()
        budget = PointBudget(limits) if limits is not None else None
        if limits is not None:
            objects = len(raw_shapes) + sum(len(t.get("shapes") or ()) for t in raw_tracks)
            if objects > limits.objects_allowed(len(frames)):
                raise OverLimit(OBJECTS, value=objects, limit=limits.objects_allowed(len(frames)))

        def label_name(label_id: Any) -> str:
            return names.get(int(label_id), f"label_{label_id}")

        def points_of(raw: Mapping[str, Any], where: str) -> tuple[int, str, tuple[float, ...]]:
            """The frame, kind and model points of a shape or keyframe, within the limits."""
            frame, kind = int(raw["frame"]), str(raw["type"])
            points = raw.get("points") or ()
            if budget is not None:
                index = frame - start_frame
                if not 0 <= index < len(frames):
                    raise OverLimit(FRAME_OUTSIDE, value=frame,
                                    limit=f"{start_frame}-{end_frame - 1}", detail=f" ({where})")
                meta = frames[index]
                budget.check(kind, points[-4:] if kind == MASK else points, str(meta["name"]))
            model = rest_points_to_model(kind, points)
            if budget is not None and kind == MASK and len(model) >= 4:
                meta = frames[frame - start_frame]
                budget.check_mask(model[2], model[3], int(meta["width"]), int(meta["height"]),
                                  str(meta["name"]))
            return frame, kind, model

        for raw in raw_shapes:
            frame, kind, points = points_of(raw, f"shape {raw.get('id', '?')}")
            if raw.get("outside"):
                continue
            per_frame.setdefault(frame, []).append(Shape(
                label=label_name(raw["label_id"]),
                kind=kind,
                points=points,
                rotation=float(raw.get("rotation") or 0.0),
                attributes=_attrs(raw.get("attributes"), specs),
                z_order=int(raw.get("z_order") or 0),
                occluded=bool(raw.get("occluded")),
                ref=f"shape {raw.get('id', '?')}",
            ))

        for track in raw_tracks:
            track_attrs = _attrs(track.get("attributes"), specs)
            keys = []
            for raw in track.get("shapes") or ():
                frame, kind, points = points_of(raw, f"track {track.get('id', '?')}")
                keys.append(Keyframe(
                    frame=frame,
                    kind=kind,
                    points=points,
                    rotation=float(raw.get("rotation") or 0.0),
                    outside=bool(raw.get("outside")),
                    occluded=bool(raw.get("occluded")),
                    z_order=int(raw.get("z_order") or 0),
                    attributes=_attrs(raw.get("attributes"), specs),
                ))
            label = label_name(track["label_id"])
            for frame, key in expand_track(keys, end_frame, start_frame).items():
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
            shapes = per_frame.get(frame, ())
            if limits is not None and len(shapes) > limits.max_shapes_per_image:
                raise OverLimit(SHAPES_PER_IMAGE, image=str(meta["name"]), value=len(shapes),
                                limit=limits.max_shapes_per_image)
            images.append(ImageAnnotations(
                name=str(meta["name"]),
                width=int(meta["width"]),
                height=int(meta["height"]),
                shapes=tuple(shapes),
            ))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        if isinstance(exc, AnnotationFormatError):
            raise
        raise AnnotationFormatError(f"malformed CVAT REST annotations: {exc!r}"[:300]) from exc
    return TaskAnnotations.from_images(images)
