"""Overlay pictures of a candidate's errors (JPEG bytes, in memory)."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tasks_metrics.differences import decode_rle, ellipse_outline, rotated_corners
from tasks_metrics.metrics import GradeReport
from tasks_metrics.types import ELLIPSE, MASK, RECTANGLE, ImageAnnotations, Shape, TaskAnnotations

GT_COLOUR = (40, 200, 40)
CANDIDATE_COLOUR = (40, 140, 255)
MISSED_COLOUR = (230, 30, 30)
EXTRA_COLOUR = (255, 0, 220)
TEXT_COLOUR = (255, 230, 0)
_CANVAS_GREY = (128, 128, 128)
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/arial.ttf",
)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _has_cyrillic(font: Font) -> bool:
    try:
        missing = bytes(font.getmask("\U0010ffff"))
        return bytes(font.getmask("Ж")) != missing and bytes(font.getmask("Д")) != missing
    except (OSError, ValueError, UnicodeError):
        return False


@lru_cache(maxsize=16)
def get_font(size: int) -> Font:
    """A font of about ``size`` pixels that can draw Cyrillic when the system has one."""
    for path in _FONT_CANDIDATES:
        if Path(path).is_file():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):
        return ImageFont.load_default()


def drawable_text(text: str, font: Font) -> str:
    """``text`` itself, or with non-ASCII characters spelt as code points if the font lacks them."""
    if text.isascii() or _font_has_cyrillic(font):
        return text
    return "".join(ch if ch.isascii() else f"[U+{ord(ch):04X}]" for ch in text)


_CYRILLIC_SUPPORT: dict[int, bool] = {}


def _font_has_cyrillic(font: Font) -> bool:
    key = id(font)
    if key not in _CYRILLIC_SUPPORT:
        _CYRILLIC_SUPPORT[key] = _has_cyrillic(font)
    return _CYRILLIC_SUPPORT[key]


def _outline(shape: Shape) -> list[tuple[float, float]]:
    pts = shape.points
    if shape.kind == RECTANGLE and len(pts) == 4:
        return rotated_corners(shape)
    if shape.kind == ELLIPSE and len(pts) == 4:
        return ellipse_outline(shape, 72)
    if shape.kind == MASK and len(pts) >= 4:
        left, top, w, h = (int(v) for v in pts[:4])
        try:
            tight = decode_rle(pts[4:], w, h).astype(np.uint8)
        except ValueError:
            return []
        import cv2  # OpenCV (about 30 MB) loads with the first mask drawn, not at start

        contours, _ = cv2.findContours(tight, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return []
        biggest = max(contours, key=cv2.contourArea).reshape(-1, 2)
        return [(float(x + left), float(y + top)) for x, y in biggest]
    return [(pts[i], pts[i + 1]) for i in range(0, len(pts) - 1, 2)]


def _load(image_bytes: bytes | None, width: int, height: int) -> Image.Image:
    if image_bytes:
        try:
            with Image.open(io.BytesIO(image_bytes)) as img:
                return img.convert("RGB")
        except (OSError, ValueError):
            pass
    return Image.new("RGB", (max(width, 1), max(height, 1)), _CANVAS_GREY)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
           colour: tuple[int, int, int], font: Font) -> None:
    x, y = xy
    text = drawable_text(text, font)
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    y = max(0.0, y - (bottom - top) - 4) if y > (bottom - top) + 4 else y
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour, font=font)


def render_overlay(
    image_bytes: bytes | None,
    image: ImageAnnotations,
    candidate: ImageAnnotations,
    report: GradeReport,
    max_side: int = 1280,
) -> bytes:
    """JPEG of the photo with ground truth, the candidate's shapes and the errors marked."""

    base = _load(image_bytes, image.width, image.height)
    sx = base.width / image.width if image.width else 1.0
    sy = base.height / image.height if image.height else 1.0
    longest = max(base.width, base.height)
    if longest > max_side:
        factor = max_side / longest
        size = (max(1, round(base.width * factor)), max(1, round(base.height * factor)))
        base = base.resize(size, Image.Resampling.LANCZOS)
        sx, sy = sx * factor, sy * factor
    draw = ImageDraw.Draw(base)
    line = max(1, round(max(base.width, base.height) / 400))
    font = get_font(max(12, round(max(base.width, base.height) / 60)))

    def scaled(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * sx, y * sy) for x, y in points]

    def box(b: tuple[float, float, float, float]) -> list[tuple[float, float]]:
        return scaled([(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3])])

    for shape, colour in [*((s, GT_COLOUR) for s in image.shapes),
                          *((s, CANDIDATE_COLOUR) for s in candidate.shapes)]:
        outline = scaled(_outline(shape))
        if len(outline) >= 2:
            draw.line([*outline, outline[0]], fill=colour, width=line)

    for cls in report.per_class.values():
        for obj in cls.missed:
            if obj.image == image.name:
                draw.line([*box(obj.box), box(obj.box)[0]], fill=MISSED_COLOUR, width=line * 3)
                _label(draw, box(obj.box)[0], f"missed {obj.label}", MISSED_COLOUR, font)
        for obj in cls.extra:
            if obj.image == image.name:
                draw.line([*box(obj.box), box(obj.box)[0]], fill=EXTRA_COLOUR, width=line * 3)
                _label(draw, box(obj.box)[3], f"extra {obj.label}", EXTRA_COLOUR, font)
    for plate in report.wrong_plates():
        if plate.image != image.name or plate.given is None:
            continue
        corners = box(plate.box)
        _label(draw, (corners[3][0], corners[3][1] + 4),
               f"expected {plate.expected} / given {plate.given}", TEXT_COLOUR, font)

    out = io.BytesIO()
    base.save(out, format="JPEG", quality=85)
    return out.getvalue()


def render_overlays(
    ground_truth: TaskAnnotations,
    candidate: TaskAnnotations,
    report: GradeReport,
    images: Mapping[str, bytes | None] | Callable[[str], bytes | None] | None = None,
    *,
    max_side: int = 1280,
    only_errors: bool = True,
) -> dict[str, bytes]:
    """Overlays by name, images with errors first (only those unless ``only_errors`` is False)."""
    def photo(name: str) -> bytes | None:
        if images is None:
            return None
        if callable(images):
            return images(name)
        return images.get(name)

    with_errors = list(report.images_with_errors())
    names = with_errors if only_errors else with_errors + sorted(
        set(ground_truth.images) - set(with_errors))
    out: dict[str, bytes] = {}
    for name in names:
        gt_image = ground_truth.images[name]
        cand_image = candidate.images.get(name) or ImageAnnotations(
            name, gt_image.width, gt_image.height)
        out[name] = render_overlay(photo(name), gt_image, cand_image, report, max_side)
    return out
