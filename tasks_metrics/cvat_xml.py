"""Reading and writing "CVAT for images 1.1" XML.

Layout, as CVAT writes and reads it (``cvat/apps/dataset_manager/formats/cvat.py``)::

    <annotations><version>1.1</version><meta>...</meta>
      <image id name width height>
        <box label xtl ytl xbr ybr rotation occluded z_order source>
          <attribute name="plate">..</attribute></box>
        <polygon points="x,y;x,y" .../> <polyline/> <points/>
        <ellipse cx cy rx ry rotation .../>
        <mask rle="3, 5, 2" left top width height .../>
        <tag label/>
      </image>
      <track id label><box frame outside keyframe .../>...</track>
    </annotations>

The XML mask differs from the REST one: the run lengths are a comma-separated ``rle`` attribute
and the box is ``left top width height`` (REST appends the inclusive ``left, top, right,
bottom`` to the runs). Tracks (the video layout, or a track drawn in an image task) map their
``frame`` to ``<image id>`` and are expanded like the server does (``tasks_metrics.tracks``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from tasks_metrics.limits import (
    FRAME_OUTSIDE,
    IMAGE_SIZE,
    OBJECTS,
    SHAPES_PER_IMAGE,
    Limits,
    OverLimit,
    PointBudget,
)
from tasks_metrics.tracks import Keyframe, expand_track
from tasks_metrics.types import (
    CAR,
    ELLIPSE,
    MASK,
    PLATE,
    PLATE_TEXT_ATTRIBUTE,
    RECTANGLE,
    AnnotationFormatError,
    ImageAnnotations,
    Shape,
    TaskAnnotations,
)

_TAG_TO_KIND = {"box": RECTANGLE}
_KIND_TO_TAG = {RECTANGLE: "box"}
_SHAPE_TAGS = frozenset({"box", "polygon", "polyline", "points", "ellipse", "mask", "cuboid",
                         "skeleton"})
_CUBOID_KEYS = ("xtl1", "ytl1", "xbl1", "ybl1", "xtr1", "ytr1", "xbr1", "ybr1",
                "xtl2", "ytl2", "xbl2", "ybl2", "xtr2", "ytr2", "xbr2", "ybr2")


def _read_source(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if isinstance(source, str) and source.lstrip().startswith("<"):
        return source.encode("utf-8")
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise AnnotationFormatError(f"file not found: {path}") from exc
    except OSError as exc:
        raise AnnotationFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _float(el: ET.Element, key: str, where: str) -> float:
    raw = el.get(key)
    if raw is None:
        raise AnnotationFormatError(f"{where}: <{el.tag}> has no {key!r} attribute")
    try:
        return float(raw)
    except ValueError as exc:
        raise AnnotationFormatError(f"{where}: <{el.tag}> {key}={raw[:40]!r} is not a "
                                    "number") from exc


def _rotation(el: ET.Element, where: str) -> float:
    return _float(el, "rotation", where) if el.get("rotation") else 0.0


def _geometry(el: ET.Element, where: str) -> tuple[str, tuple[float, ...]]:
    tag = el.tag
    kind = _TAG_TO_KIND.get(tag, tag)
    if tag == "box":
        return kind, tuple(_float(el, k, where) for k in ("xtl", "ytl", "xbr", "ybr"))
    if tag == "ellipse":
        return kind, tuple(_float(el, k, where) for k in ("cx", "cy", "rx", "ry"))
    if tag == "mask":
        head = tuple(_float(el, k, where) for k in ("left", "top", "width", "height"))
        raw = (el.get("rle") or "").strip()
        try:
            runs = tuple(float(int(v)) for v in raw.split(",")) if raw else ()
        except ValueError as exc:
            raise AnnotationFormatError(f"{where}: <mask> rle={raw[:40]!r} is not a list of "
                                        "integers") from exc
        return kind, head + runs
    if tag == "cuboid":
        return kind, tuple(_float(el, k, where) for k in _CUBOID_KEYS)
    if tag == "skeleton":
        return kind, ()
    raw = (el.get("points") or "").strip()
    values: list[float] = []
    try:
        for pair in filter(None, raw.split(";")):
            x, y = pair.split(",")
            values += [float(x), float(y)]
    except ValueError as exc:
        raise AnnotationFormatError(f"{where}: <{tag}> points={raw[:40]!r} is malformed") from exc
    return kind, tuple(values)


def _attributes(el: ET.Element) -> dict[str, str]:
    return {a.get("name", ""): a.text or "" for a in el.findall("attribute")}


def _int_attr(el: ET.Element, key: str, where: str, default: int | None = None) -> int:
    raw = el.get(key)
    if raw is None:
        if default is None:
            raise AnnotationFormatError(f"{where}: <{el.tag}> has no {key!r} attribute")
        return default
    try:
        return int(float(raw))
    except (ValueError, OverflowError) as exc:
        raise AnnotationFormatError(f"{where}: <{el.tag}> {key}={raw[:40]!r} is not a whole "
                                    "number") from exc


def parse_cvat_xml(source: bytes | str | Path, limits: Limits | None = None) -> TaskAnnotations:
    """Parse a "CVAT for images 1.1" XML export (bytes, XML text or a file path).

    With ``limits`` the file is untrusted: image sizes, shapes, vertices, coordinates, mask
    boxes and track keyframes are held to them (OverLimit) before anything is expanded."""
    data = _read_source(source)
    if limits is not None and len(data) > limits.max_bytes:
        raise OverLimit("payload", value=len(data), limit=limits.max_bytes)
    budget = PointBudget(limits) if limits is not None else None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise AnnotationFormatError(f"not XML: {exc}") from exc
    if root.tag != "annotations":
        raise AnnotationFormatError(
            f"not a CVAT XML file: the root element is <{root.tag}>, expected <annotations>")

    images: dict[str, tuple[int, ImageAnnotations]] = {}
    by_frame: dict[int, str] = {}
    shapes: dict[str, list[Shape]] = {}
    order = 0
    for image_el in root.iter("image"):
        name = image_el.get("name")
        where = f"<image {name!r}>"
        if not name:
            raise AnnotationFormatError("an <image> element has no name")
        if name in images:
            raise AnnotationFormatError(f"image {name!r} appears twice")
        frame = _int_attr(image_el, "id", where, default=-1 - len(images))
        width = _int_attr(image_el, "width", where)
        height = _int_attr(image_el, "height", where)
        if limits is not None and not (0 < width <= limits.max_image_side
                                       and 0 < height <= limits.max_image_side):
            raise OverLimit(IMAGE_SIZE, image=name, value=f"{width}x{height}",
                            limit=f"{limits.max_image_side}x{limits.max_image_side}")
        images[name] = (frame, ImageAnnotations(name, width, height))
        by_frame[frame] = name
        shapes[name] = []
        for el in image_el:
            if el.tag not in _SHAPE_TAGS:
                continue
            order += 1
            kind, points = _geometry(el, where)
            if budget is not None:
                _measure(budget, kind, points, name, width, height)
            shapes[name].append(Shape(
                label=el.get("label", ""),
                kind=kind,
                points=points,
                rotation=_rotation(el, where),
                attributes=_attributes(el),
                z_order=_int_attr(el, "z_order", where, default=0),
                occluded=el.get("occluded") == "1",
                ref=f"xml #{order}",
            ))

    if limits is not None:
        objects = order + sum(1 for track_el in root.iter("track") for _ in track_el)
        if objects > limits.objects_allowed(len(images)):
            raise OverLimit(OBJECTS, value=objects, limit=limits.objects_allowed(len(images)))
    if by_frame:
        start_frame, end_frame = min(by_frame), max(by_frame) + 1
        for track_el in root.iter("track"):
            track_id = track_el.get("id", "?")
            where = f"<track {track_id}>"
            keys = []
            for el in track_el:
                if el.tag not in _SHAPE_TAGS or el.get("keyframe", "1") != "1":
                    continue
                kind, points = _geometry(el, where)
                frame = _int_attr(el, "frame", where)
                if budget is not None:
                    if not start_frame <= frame < end_frame:
                        raise OverLimit(FRAME_OUTSIDE, value=frame,
                                        limit=f"{start_frame}-{end_frame - 1}",
                                        detail=f" (track {track_id})")
                    if frame in by_frame:
                        image = images[by_frame[frame]][1]
                        _measure(budget, kind, points, image.name, image.width, image.height)
                keys.append(Keyframe(
                    frame=frame,
                    kind=kind,
                    points=points,
                    rotation=_rotation(el, where),
                    outside=el.get("outside") == "1",
                    occluded=el.get("occluded") == "1",
                    z_order=_int_attr(el, "z_order", where, default=0),
                    attributes=_attributes(el),
                ))
            for frame, key in expand_track(keys, end_frame, start_frame).items():
                name = by_frame.get(frame)
                if name is None:
                    continue
                shapes[name].append(Shape(
                    label=track_el.get("label", ""),
                    kind=key.kind,
                    points=key.points,
                    rotation=key.rotation,
                    attributes=key.attributes,
                    z_order=key.z_order,
                    occluded=key.occluded,
                    ref=f"track {track_id}",
                ))

    if limits is not None:
        for name, found in shapes.items():
            if len(found) > limits.max_shapes_per_image:
                raise OverLimit(SHAPES_PER_IMAGE, image=name, value=len(found),
                                limit=limits.max_shapes_per_image)
    return TaskAnnotations({
        name: ImageAnnotations(name, image.width, image.height, tuple(shapes[name]))
        for name, (_, image) in images.items()
    })


def _measure(budget: PointBudget, kind: str, points: tuple[float, ...], image: str,
             width: int, height: int) -> None:
    """One XML shape or keyframe against the limits (a mask's box against its image)."""
    budget.check(kind, points[:4] if kind == MASK else points, image)
    if kind == MASK and len(points) >= 4:
        budget.check_mask(points[2], points[3], width, height, image)


def _num(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;",
                "\n": "&#10;", "\t": "&#9;"}


def _esc(text: str, attribute: bool = False) -> str:
    out = []
    for ch in text:
        if ch in _XML_ESCAPES and (attribute or ch not in "\"\n\t"):
            out.append(_XML_ESCAPES[ch])
        elif ch < " " and ch not in "\n\t":
            raise AnnotationFormatError(f"character U+{ord(ch):04X} cannot be written to XML")
        else:
            out.append(ch)
    return "".join(out)


def _attrs_xml(items: Iterable[tuple[str, str]]) -> str:
    return "".join(f' {k}="{_esc(v, attribute=True)}"' for k, v in items)


def _shape_xml(shape: Shape) -> list[str]:
    tag = _KIND_TO_TAG.get(shape.kind, shape.kind)
    pts = shape.points
    items: list[tuple[str, str]] = [("label", shape.label), ("source", "manual"),
                                    ("occluded", "1" if shape.occluded else "0")]
    if shape.kind == RECTANGLE:
        items += list(zip(("xtl", "ytl", "xbr", "ybr"), map(_num, pts), strict=False))
    elif shape.kind == ELLIPSE:
        items += list(zip(("cx", "cy", "rx", "ry"), map(_num, pts), strict=False))
    elif shape.kind == MASK:
        items += [("rle", ", ".join(str(int(v)) for v in pts[4:]))]
        items += list(zip(("left", "top", "width", "height"), map(_num, pts[:4]), strict=False))
    elif shape.kind == "cuboid":
        items += list(zip(_CUBOID_KEYS, map(_num, pts), strict=False))
    elif shape.kind != "skeleton":
        items.append(("points", ";".join(f"{_num(pts[i])},{_num(pts[i + 1])}"
                                         for i in range(0, len(pts) - 1, 2))))
    if shape.rotation and shape.kind in (RECTANGLE, ELLIPSE):
        items.append(("rotation", _num(shape.rotation)))
    items.append(("z_order", str(shape.z_order)))
    attrs = sorted(shape.attributes.items())
    if not attrs:
        return [f"    <{tag}{_attrs_xml(items)}/>"]
    lines = [f"    <{tag}{_attrs_xml(items)}>"]
    lines += [f'      <attribute name="{_esc(k, True)}">{_esc(v)}</attribute>' for k, v in attrs]
    lines.append(f"    </{tag}>")
    return lines


def _labels_meta(task: TaskAnnotations) -> list[str]:
    labels: dict[str, set[str]] = {CAR: set(), PLATE: {PLATE_TEXT_ATTRIBUTE}}
    for image in task:
        for shape in image.shapes:
            labels.setdefault(shape.label, set()).update(shape.attributes)
    lines = ["      <labels>"]
    for name, attrs in labels.items():
        lines += ["        <label>", f"          <name>{_esc(name)}</name>",
                  "          <type>any</type>", "          <attributes>"]
        for attr in sorted(attrs):
            lines += ["            <attribute>", f"              <name>{_esc(attr)}</name>",
                      "              <mutable>False</mutable>",
                      "              <input_type>text</input_type>",
                      "              <default_value></default_value>",
                      "              <values></values>", "            </attribute>"]
        lines += ["          </attributes>", "        </label>"]
    lines.append("      </labels>")
    return lines


def to_cvat_xml(task: TaskAnnotations) -> bytes:
    """Write ``task`` as "CVAT for images 1.1" XML (importable into a CVAT task)."""
    images = list(task)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>",
             "  <version>1.1</version>", "  <meta>", "    <task>",
             f"      <size>{len(images)}</size>", "      <mode>annotation</mode>",
             "      <start_frame>0</start_frame>",
             f"      <stop_frame>{max(len(images) - 1, 0)}</stop_frame>",
             *_labels_meta(task), "    </task>", "  </meta>"]
    for frame, image in enumerate(images):
        head = (f'  <image id="{frame}" name="{_esc(image.name, True)}" '
                f'width="{image.width}" height="{image.height}"')
        if not image.shapes:
            lines.append(head + "/>")
            continue
        lines.append(head + ">")
        for shape in image.shapes:
            lines += _shape_xml(shape)
        lines.append("  </image>")
    lines.append("</annotations>")
    return ("\n".join(lines) + "\n").encode("utf-8")
