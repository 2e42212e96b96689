"""'CVAT for images 1.1' dataset export, written the way CVAT's formats/cvat.py writes it."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import XMLGenerator

from .models import Frame, Job, Label, Task, User, now_iso

FORMAT_NAME = "CVAT for images 1.1"
_INTERPOLATED = {"rectangle", "ellipse", "cuboid", "points", "polygon", "polyline"}


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _pairs(points: list[float]) -> Iterable[tuple[float, float]]:
    it = iter(points)
    return zip(it, it, strict=False)


def _lerp_rotation(a: float, b: float, t: float) -> float:
    diff = (b - a + 180.0) % 360.0 - 180.0
    return (a + diff * t) % 360.0


def expand_track(track: dict[str, Any], stop_frame: int) -> list[dict[str, Any]]:
    """Per-frame shapes of a track (TrackManager.get_interpolated_shapes, outside dropped)."""
    keyframes = sorted(track["shapes"], key=lambda s: s["frame"])
    result: list[dict[str, Any]] = []
    if not keyframes:
        return result
    for idx, key in enumerate(keyframes):
        nxt = keyframes[idx + 1] if idx + 1 < len(keyframes) else None
        end = nxt["frame"] if nxt is not None else stop_frame + 1
        for frame in range(key["frame"], end):
            if key["outside"]:
                break
            shape = dict(key)
            shape["frame"] = frame
            shape["keyframe"] = frame == key["frame"]
            if nxt is not None and frame != key["frame"] and key["type"] in _INTERPOLATED:
                t = (frame - key["frame"]) / (nxt["frame"] - key["frame"])
                if len(key["points"]) == len(nxt["points"]) and key["type"] == nxt["type"]:
                    shape["points"] = [
                        a + (b - a) * t for a, b in zip(key["points"], nxt["points"], strict=True)
                    ]
                    shape["rotation"] = _lerp_rotation(key["rotation"], nxt["rotation"], t)
            result.append(shape)
    return result


class _Writer:
    """Indenting XML writer matching CVAT's XmlAnnotationWriter layout."""

    def __init__(self, stream: io.StringIO) -> None:
        self.gen = XMLGenerator(stream, "utf-8")
        self.level = 0

    def indent(self) -> None:
        self.gen.ignorableWhitespace("\n" + "  " * self.level)

    def open(self, tag: str, attrs: dict[str, str] | None = None) -> None:
        self.indent()
        self.gen.startElement(tag, attrs or {})
        self.level += 1

    def close(self, tag: str) -> None:
        self.level -= 1
        self.indent()
        self.gen.endElement(tag)

    def leaf(self, tag: str, text: str, attrs: dict[str, str] | None = None) -> None:
        self.indent()
        self.gen.startElement(tag, attrs or {})
        self.gen.characters(text)
        self.gen.endElement(tag)

    def meta(self, data: list[tuple[str, Any]]) -> None:
        for key, value in data:
            if isinstance(value, list):
                self.open(key)
                self.meta(value)
                self.close(key)
            else:
                self.leaf(key, "" if value is None else str(value))


def _label_meta(labels: list[Label]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for label in labels:
        attrs = [
            (
                "attribute",
                [
                    ("name", a.name),
                    ("mutable", str(a.mutable)),
                    ("input_type", a.input_type),
                    ("default_value", a.default_value),
                    ("values", "\n".join(a.values)),
                ],
            )
            for a in label.attributes
        ]
        out.append(
            (
                "label",
                [
                    ("name", label.name),
                    ("color", label.color),
                    ("type", label.type),
                    ("attributes", attrs),
                ],
            )
        )
    return out


def _user_meta(user: User | None) -> list[tuple[str, Any]]:
    if user is None:
        return []
    return [("username", user.username), ("email", user.email)]


def _shape_attrs(shape: dict[str, Any], label_name: str) -> dict[str, str]:
    data: dict[str, str] = {"label": label_name, "source": shape.get("source", "manual")}
    kind = shape["type"]
    pts = shape["points"]
    if kind != "skeleton":
        data["occluded"] = str(int(bool(shape.get("occluded"))))
    if kind == "rectangle":
        data.update(xtl=_fmt(pts[0]), ytl=_fmt(pts[1]), xbr=_fmt(pts[2]), ybr=_fmt(pts[3]))
        if shape.get("rotation"):
            data["rotation"] = _fmt(shape["rotation"])
    elif kind == "ellipse":
        data.update(
            cx=_fmt(pts[0]), cy=_fmt(pts[1]), rx=_fmt(pts[2] - pts[0]), ry=_fmt(pts[1] - pts[3])
        )
        if shape.get("rotation"):
            data["rotation"] = _fmt(shape["rotation"])
    elif kind == "cuboid":
        names = ["xtl1", "ytl1", "xbl1", "ybl1", "xtr1", "ytr1", "xbr1", "ybr1",
                 "xtl2", "ytl2", "xbl2", "ybl2", "xtr2", "ytr2", "xbr2", "ybr2"]  # fmt: skip
        data.update({n: _fmt(v) for n, v in zip(names, pts, strict=False)})
    elif kind == "mask":
        data.update(
            rle=", ".join(str(int(v)) for v in pts[:-4]),
            left=str(int(pts[-4])),
            top=str(int(pts[-3])),
            width=str(int(pts[-2] - pts[-4]) + 1),
            height=str(int(pts[-1] - pts[-3]) + 1),
        )
    elif kind != "skeleton":
        data["points"] = ";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in _pairs(pts))
    data["z_order"] = str(shape.get("z_order", 0))
    if shape.get("group"):
        data["group_id"] = str(shape["group"])
    return data


_TAG_OF = {
    "rectangle": "box",
    "ellipse": "ellipse",
    "polygon": "polygon",
    "polyline": "polyline",
    "points": "points",
    "cuboid": "cuboid",
    "mask": "mask",
    "skeleton": "skeleton",
}


def build_annotations_xml(
    task: Task, jobs: list[Job], owner: User | None, assignee: User | None, scope: str = "job"
) -> bytes:
    """Render annotations.xml (CVAT for images 1.1) for one job or (scope="task") a whole task."""
    labels = {lb.id: lb for lb in task.labels}
    specs = {a.id: a.name for lb in task.labels for a in lb.attributes}
    start = min(j.start_frame for j in jobs) if jobs else 0
    stop = max(j.stop_frame for j in jobs) if jobs else -1
    per_frame: dict[int, list[dict[str, Any]]] = {}
    tags: dict[int, list[dict[str, Any]]] = {}
    for j in jobs:
        for shape in j.shapes:
            per_frame.setdefault(shape["frame"], []).append(
                {**shape, "_attrs": shape["attributes"]}
            )
        for track in j.tracks:
            for shape in expand_track(track, j.stop_frame):
                shape["label_id"] = track["label_id"]
                shape["group"] = track.get("group", 0)
                shape["source"] = track.get("source", "manual")
                shape["_attrs"] = list(track["attributes"]) + list(shape["attributes"])
                per_frame.setdefault(shape["frame"], []).append(shape)
        for tag in j.tags:
            tags.setdefault(tag["frame"], []).append(tag)
    first = jobs[0] if jobs else None
    segments = [
        (
            "segment",
            [("id", j.id), ("start", j.start_frame), ("stop", j.stop_frame),
             ("url", f"/api/jobs/{j.id}")],
        )
        for j in jobs
    ]  # fmt: skip
    body: list[tuple[str, Any]] = [
        ("id", first.id if (scope == "job" and first) else task.id),
        ("size", stop - start + 1),
        ("mode", "annotation"),
        ("overlap", task.overlap or 0),
        ("bugtracker", task.bug_tracker),
        ("created", first.created_date if (scope == "job" and first) else task.created_date),
        ("updated", first.updated_date if (scope == "job" and first) else task.updated_date),
        ("subset", task.subset or "default"),
        ("start_frame", start),
        ("stop_frame", stop),
        ("frame_filter", ""),
        ("segments", segments),
        ("owner", _user_meta(owner)),
        ("assignee", _user_meta(assignee)),
        ("labels", _label_meta(task.labels)),
    ]
    if scope == "task":
        body.insert(1, ("name", task.name))
    meta = [(scope, body), ("dumped", now_iso().replace("T", " ").replace("Z", "+00:00"))]

    stream = io.StringIO()
    w = _Writer(stream)
    w.gen.startDocument()
    w.gen.startElement("annotations", {})
    w.level = 1
    w.leaf("version", "1.1")
    w.open("meta")
    w.meta(meta)
    w.close("meta")
    frames: list[Frame] = task.frames
    for idx in range(start, stop + 1):
        fr = frames[idx] if idx < len(frames) else Frame(f"frame_{idx:06d}", 0, 0, b"")
        w.open(
            "image",
            {"id": str(idx), "name": fr.name, "width": str(fr.width), "height": str(fr.height)},
        )
        for shape in sorted(per_frame.get(idx, []), key=lambda s: s.get("z_order", 0)):
            label = labels.get(shape["label_id"])
            tag = _TAG_OF.get(shape["type"], shape["type"])
            w.open(tag, _shape_attrs(shape, label.name if label else ""))
            for attr in shape["_attrs"]:
                w.leaf("attribute", str(attr["value"]), {"name": specs.get(attr["spec_id"], "")})
            w.close(tag)
        for tag_obj in tags.get(idx, []):
            label = labels.get(tag_obj["label_id"])
            data = {"label": label.name if label else "", "source": tag_obj.get("source", "")}
            if tag_obj.get("group"):
                data["group_id"] = str(tag_obj["group"])
            w.open("tag", data)
            for attr in tag_obj["attributes"]:
                w.leaf("attribute", str(attr["value"]), {"name": specs.get(attr["spec_id"], "")})
            w.close("tag")
        w.close("image")
    w.level = 0
    w.indent()
    w.gen.endElement("annotations")
    w.gen.ignorableWhitespace("\n")
    w.gen.endDocument()
    return stream.getvalue().encode("utf-8")


def build_zip(xml: bytes, frames: list[Frame] | None = None) -> bytes:
    """Pack annotations.xml (and optionally images/) into a zip like CVAT's exporter."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations.xml", xml)
        for fr in frames or []:
            zf.writestr(f"images/{fr.name}", fr.content)
    return buf.getvalue()
