"""Expanding CVAT tracks into per-frame shapes, as the CVAT server does.

Follows ``TrackManager.get_interpolated_shapes`` in ``cvat/apps/dataset_manager/annotation.py``
(CVAT 2.x): keyframes sorted by frame; attributes missing on a keyframe carry over from the
previous one; between keyframes rectangles, ellipses (and cuboids, points of one point) move
linearly and the rotation turns by the shorter arc; polygons and polylines use CVAT's
curve-matching interpolation; after the last keyframe the shape stays until the end unless that
keyframe is ``outside``; frames where the object is ``outside`` carry no object.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from tasks_metrics.types import ELLIPSE, POLYGON, RECTANGLE


@dataclass(frozen=True)
class Keyframe:
    """One keyframe of a track (geometry in the ``Shape.points`` layout)."""

    frame: int
    kind: str
    points: tuple[float, ...]
    rotation: float = 0.0
    outside: bool = False
    occluded: bool = False
    z_order: int = 0
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))


def _angle_diff(right: float, left: float) -> float:
    """Signed shorter turn from ``left`` to ``right`` in degrees, exactly as CVAT computes it."""
    diff = ((right - left + 180) % 360) - 180
    if abs(diff) >= 180:
        # CVAT's own arithmetic (operator precedence included): a half turn becomes +1 degree.
        diff = 360 - abs(diff) * -1 if diff > 0 else 1
    return diff


def _linear(k0: Keyframe, k1: Keyframe, frame: int) -> Keyframe:
    offset = (frame - k0.frame) / (k1.frame - k0.frame)
    points = tuple(a + (b - a) * offset for a, b in zip(k0.points, k1.points, strict=False))
    rotation = (k0.rotation + _angle_diff(k1.rotation, k0.rotation) * offset + 360) % 360
    return replace(k0, frame=frame, points=points, rotation=rotation)


def _curve_length(pts: Sequence[tuple[float, float]]) -> float:
    return sum(math.dist(pts[i - 1], pts[i]) for i in range(1, len(pts)))


def _offsets(pts: Sequence[tuple[float, float]]) -> list[float]:
    total = _curve_length(pts)
    out = [0.0]
    acc = 0.0
    for i in range(1, len(pts)):
        acc += math.dist(pts[i - 1], pts[i])
        out.append(acc / total if total else math.nan)
    return out


def _nearest(value: float, curve: Sequence[float]) -> int:
    """The first index of the value in `curve` (relative arc lengths, non-decreasing) nearest
    to `value`: what a linear scan keeping the first strict minimum finds, in O(log n)."""
    if math.isnan(curve[-1]):
        return 0  # a curve of zero length: every offset but the first is NaN
    i = bisect.bisect_left(curve, value)
    candidates = [j for j in (i - 1, i) if 0 <= j < len(curve)]
    best = min(candidates, key=lambda j: (abs(value - curve[j]), j))
    return bisect.bisect_left(curve, curve[best])  # the first of equal values


def _interpolate_curve(
    left: Sequence[tuple[float, float]], right: Sequence[tuple[float, float]], offset: float
) -> list[tuple[float, float]]:
    """CVAT's polyline interpolation: match points by relative arc length, then thin them out."""
    lvec, rvec = _offsets(left), _offsets(right)
    matching: dict[int, list[int]] = {i: [_nearest(v, rvec)] for i, v in enumerate(lvec)}
    used = {j for js in matching.values() for j in js}
    for j in range(len(right)):
        if j not in used:
            matching[_nearest(rvec[j], lvec)].append(j)
    for i in matching:
        matching[i].sort()

    inter: list[tuple[float, float]] = []
    index: dict[int, list[int]] = {}
    for i, lp in enumerate(left):
        index[i] = []
        for j in matching[i]:
            rp = right[j]
            index[i].append(len(inter))
            inter.append((lp[0] + (rp[0] - lp[0]) * offset, lp[1] + (rp[1] - lp[1]) * offset))

    reduced: list[tuple[float, float]] = []

    def minimize(base: float, n: int, start: int, stop: int) -> list[tuple[float, float]]:
        threshold = base / (2 * n)
        out = [inter[start]]
        last = start
        for k in range(start + 1, stop):
            if math.dist(inter[last], inter[k]) >= threshold:
                out.append(inter[k])
                last = k
        out.append(inter[stop])
        if len(out) == 2 and math.dist(inter[start], inter[stop]) < threshold:
            return [((out[0][0] + out[1][0]) / 2, (out[0][1] + out[1][1]) / 2)]
        return out

    def left_segment(start: int, stop: int) -> None:
        a, b = index[start][0], index[stop][0]
        if a == b:
            reduced.append(inter[a])
            return
        reduced.extend(minimize(_curve_length(left[start:stop + 1]), stop - start + 1, a, b))

    def right_segment(i: int) -> None:
        start, stop = matching[i][0], matching[i][-1]
        reduced.extend(minimize(_curve_length(right[start:stop + 1]), stop - start + 1,
                                index[i][0], index[i][-1]))

    opened: int | None = None
    for i in range(len(left)):
        if len(matching[i]) == 1:
            if opened is not None:
                if matching[i][0] == matching[opened][0]:
                    continue
                left_segment(opened, i - 1)
            opened = i
        else:
            if opened is not None:
                left_segment(opened, i - 1)
                opened = None
            right_segment(i)
    if opened is not None:
        left_segment(opened, len(left) - 1)
    return reduced


def _pairs(points: Sequence[float]) -> list[tuple[float, float]]:
    return [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]


def _interpolate(k0: Keyframe, k1: Keyframe, start: int, stop: int) -> list[Keyframe]:
    """Shapes strictly between two keyframes, on frames ``[start, stop)`` only."""
    frames = range(max(k0.frame + 1, start), min(k1.frame, stop))
    if k0.kind != k1.kind:
        return []
    if k0.kind in (RECTANGLE, ELLIPSE, "cuboid", "skeleton") or (
        k0.kind == "points" and len(k0.points) == 2 and len(k1.points) == 2
    ):
        if len(k0.points) != len(k1.points):
            return [replace(k0, frame=f) for f in frames]
        return [_linear(k0, k1, f) for f in frames]
    if k0.kind in (POLYGON, "polyline") and len(k0.points) >= 2 and len(k1.points) >= 2:
        left, right = _pairs(k0.points), _pairs(k1.points)
        closed = k0.kind == POLYGON
        if closed:
            left, right = [*left, left[0]], [*right, right[0]]
        out = []
        for f in frames:
            pts = _interpolate_curve(left, right, (f - k0.frame) / (k1.frame - k0.frame))
            if closed:
                pts = pts[:-1]
            out.append(replace(k0, frame=f, points=tuple(v for p in pts for v in p)))
        return out
    # points with several points, masks and anything else: the shape holds still.
    return [replace(k0, frame=f) for f in frames]


def expand_track(keyframes: Iterable[Keyframe], end_frame: int,
                 start_frame: int = 0) -> dict[int, Keyframe]:
    """Per-frame visible shapes of one track on frames ``[first keyframe, end_frame)`` that are
    at or after ``start_frame``: the work is bounded by the task's frames, wherever the
    keyframes are."""
    ordered = sorted(keyframes, key=lambda k: k.frame)
    if not ordered:
        return {}
    first = max(ordered[0].frame, start_frame)
    out: list[Keyframe] = []
    prev: Keyframe | None = None
    for key in ordered:
        if prev is not None:
            merged = dict(prev.attributes)
            merged.update(key.attributes)
            key = replace(key, attributes=merged)
            if key.frame == prev.frame:
                out[-1] = key
                prev = key
                continue
            if not prev.outside:
                out.extend(_interpolate(prev, key, start_frame, end_frame))
        out.append(key)
        prev = key
        if key.frame >= end_frame:
            break
    if prev is not None and not prev.outside:
        out.extend(replace(prev, frame=f)
                   for f in range(max(prev.frame + 1, start_frame), end_frame))
    return {k.frame: k for k in out if first <= k.frame < end_frame and not k.outside}
