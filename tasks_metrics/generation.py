"""Pictures for HR (in memory): one picture per image with errors, and a one-page scorecard.

An error picture is drawn to be read on a phone and to keep its meaning when forwarded: the
photo 1280 px wide with the answer (green, dashed, on top), the candidate's boxes (blue), missed
(red) and extra (pink) objects, loose or cut boxes (orange, with their fit), and a number on
each wrong plate; below it a zoomed crop of every wrong plate with the expected and the given
text, character by character, look-alikes, letter case and wrong characters marked
differently; at the bottom a legend, in the reader's language. Labels never cover a box, and no
text is smaller than 20 px. Fonts come with the project (media/fonts, DejaVu: Latin and
Cyrillic), so a server without fonts draws the same pictures.
"""

from __future__ import annotations

import difflib
import io
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tasks_metrics.differences import decode_rle, ellipse_outline, rotated_corners
from tasks_metrics.metrics import LOOKALIKES, GradeReport, MatchedPair, PlateResult
from tasks_metrics.pass_rule import DEFAULT_THRESHOLDS, Measure
from tasks_metrics.picture_labels import PictureLabels
from tasks_metrics.types import (
    CAR,
    ELLIPSE,
    MASK,
    PLATE,
    RECTANGLE,
    ImageAnnotations,
    Shape,
    TaskAnnotations,
)

FONTS_DIR = Path(__file__).resolve().parent.parent / "media" / "fonts"
WIDTH = 1280  # Telegram shows a photo up to 1280 px wide: this is drawn at that size

GT_COLOUR = (40, 210, 40)
CANDIDATE_COLOUR = (40, 140, 255)
MISSED_COLOUR = (235, 30, 30)
EXTRA_COLOUR = (255, 0, 220)
FIT_COLOUR = (255, 140, 0)
TEXT_COLOUR = (255, 230, 0)
PANEL = (32, 32, 36)
WHITE = (245, 245, 245)
_CANVAS_GREY = (128, 128, 128)
_MARK_COLOURS = {"lookalike": (200, 0, 200), "case": (255, 140, 0), "wrong": (220, 30, 30),
                 "missing": (220, 30, 30), "extra": (220, 30, 30)}
# A matched box is marked as loose or cut below the fit gate's shipped pass threshold.
FIT_MARKS = {CAR: DEFAULT_THRESHOLDS[Measure.CAR_FIT][0],
             PLATE: DEFAULT_THRESHOLDS[Measure.PLATE_FIT][0]}
LABEL_SIZE = 22
LEGEND_SIZE = 20
PLATE_SIZE = 34
CROP_HEIGHT = 120
MAX_CROPS = 8

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Box = tuple[float, float, float, float]
Colour = tuple[int, int, int]


@lru_cache(maxsize=32)
def get_font(size: int, style: str = "") -> Font:
    """The project's DejaVu font (Latin and Cyrillic) of ``size`` px; style "Bold" or
    "Mono"."""
    name = {"": "DejaVuSans.ttf", "Bold": "DejaVuSans-Bold.ttf",
            "Mono": "DejaVuSansMono.ttf"}[style]
    return ImageFont.truetype(str(FONTS_DIR / name), size)


# --- the character-level difference ------------------------------------------------------------


class Mark(StrEnum):
    """How one character of the given text compares with the expected one."""

    SAME = "same"
    LOOKALIKE = "lookalike"  # a Cyrillic letter that looks like the right Latin one
    CASE = "case"            # the right letter in the wrong case
    WRONG = "wrong"          # another character
    MISSING = "missing"      # an expected character not typed
    EXTRA = "extra"          # a character typed where none is expected


def _mark(expected: str, given: str) -> Mark:
    if given == expected:
        return Mark.SAME
    latin = LOOKALIKES.get(given, given)
    if given in LOOKALIKES and (latin == expected or latin.casefold() == expected.casefold()):
        return Mark.LOOKALIKE
    if given.casefold() == expected.casefold():
        return Mark.CASE
    return Mark.WRONG


def char_diff(expected: str, given: str) -> list[tuple[str, str, Mark]]:
    """(expected character, given character, mark) along the aligned texts; "" where one side
    has no character."""
    matcher = difflib.SequenceMatcher(None, [LOOKALIKES.get(c, c).casefold() for c in expected],
                                      [LOOKALIKES.get(c, c).casefold() for c in given],
                                      autojunk=False)
    out: list[tuple[str, str, Mark]] = []
    for _, e0, e1, g0, g1 in matcher.get_opcodes():
        exp, giv = expected[e0:e1], given[g0:g1]
        for k in range(max(len(exp), len(giv))):
            e = exp[k] if k < len(exp) else ""
            g = giv[k] if k < len(giv) else ""
            out.append((e, g, Mark.MISSING if not g else Mark.EXTRA if not e else _mark(e, g)))
    return out


def draw_plate_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], expected: str,
                    given: str, labels: PictureLabels, size: int = PLATE_SIZE) -> float:
    """The given text at ``xy``, one cell per character: a look-alike on a purple cell with a
    double underline and a "CYR" tag, a case error on an orange cell with one underline, a
    wrong, missing (·) or extra (struck through) character on a red cell. Returns the width."""
    font, tag = get_font(size, "Mono"), get_font(max(14, size // 2), "Bold")
    cell = draw.textlength("M", font=font) + 6
    x, y = xy
    height = size + 8
    for _e, g, mark in char_diff(expected, given):
        shown = g or "·"
        if mark != Mark.SAME:
            colour = _MARK_COLOURS[mark]
            draw.rectangle((x, y, x + cell - 2, y + height), fill=colour)
        draw.text((x + 3, y + 2), shown, fill=WHITE, font=font)
        if mark == Mark.LOOKALIKE:
            for dy in (height + 3, height + 7):
                draw.line((x, y + dy, x + cell - 2, y + dy), fill=_MARK_COLOURS[mark], width=2)
            draw.text((x + cell / 2, y + height + 9), labels.cyrillic, fill=WHITE, font=tag,
                      anchor="mt")
        elif mark == Mark.CASE:
            draw.line((x, y + height + 4, x + cell - 2, y + height + 4),
                      fill=_MARK_COLOURS[mark], width=3)
        elif mark == Mark.EXTRA:
            draw.line((x + 2, y + height / 2, x + cell - 4, y + height / 2), fill=WHITE, width=3)
        x += cell
    return x - xy[0]


# --- geometry and labels ---------------------------------------------------------------------


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


def _dashed(draw: ImageDraw.ImageDraw, points: Sequence[tuple[float, float]],
            colour: Colour, width: int, dash: float = 12, gap: float = 7) -> None:
    closed = [*points, points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(closed):
        length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-9)
        pos = 0.0
        while pos < length:
            end = min(pos + dash, length)
            draw.line((x0 + (x1 - x0) * pos / length, y0 + (y1 - y0) * pos / length,
                       x0 + (x1 - x0) * end / length, y0 + (y1 - y0) * end / length),
                      fill=colour, width=width)
            pos = end + gap


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


class LabelPlacer:
    """Puts text labels next to boxes where they cover no box and no other label."""

    def __init__(self, draw: ImageDraw.ImageDraw, size: tuple[int, int],
                 obstacles: Iterable[Box]) -> None:
        self.draw = draw
        self.width, self.height = size
        self.taken: list[Box] = [(x0 - 3, y0 - 3, x1 + 3, y1 + 3) for x0, y0, x1, y1 in obstacles]
        self.font = get_font(LABEL_SIZE, "Bold")
        self.placed: list[Box] = []

    def _spots(self, box: Box, w: float, h: float) -> Iterable[tuple[float, float]]:
        x0, y0, x1, y1 = box
        for step in (6, h + 12, 2 * h + 18):
            yield from ((x0, y0 - h - step), (x0, y1 + step), (x1 - w, y0 - h - step),
                        (x1 - w, y1 + step), (x1 + step, y0), (x0 - w - step, y0),
                        (x1 + step, y1 - h), (x0 - w - step, y1 - h))

    def _leader(self, box: Box, spot: Box, colour: Colour) -> None:
        """A thin line from a label that had to stand off to its box."""
        cx = min(max((spot[0] + spot[2]) / 2, box[0]), box[2])
        cy = min(max((spot[1] + spot[3]) / 2, box[1]), box[3])
        sx = min(max(cx, spot[0]), spot[2])
        sy = min(max(cy, spot[1]), spot[3])
        if abs(sx - cx) + abs(sy - cy) > 14:
            self.draw.line((sx, sy, cx, cy), fill=colour, width=2)

    def place(self, box: Box, text: str, colour: Colour) -> Box:
        """Draw `text` on a dark plate beside `box`; the spot covering least (nothing, where
        there is room) is taken."""
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        w, h = right - left + 12, bottom - top + 10
        best: tuple[float, Box] | None = None
        for x, y in self._spots(box, w, h):
            x = min(max(x, 0), self.width - w)
            y = min(max(y, 0), self.height - h)
            spot = (x, y, x + w, y + h)
            cost = sum(_overlap(spot, t) for t in self.taken)
            if best is None or cost < best[0]:
                best = (cost, spot)
            if cost == 0:
                break
        assert best is not None
        spot = best[1]
        self._leader(box, spot, colour)
        self.draw.rectangle(spot, fill=(0, 0, 0), outline=colour, width=2)
        self.draw.text((spot[0] + 6 - left, spot[1] + 5 - top), text, fill=colour, font=self.font)
        self.taken.append(spot)
        return spot


# --- the error picture -----------------------------------------------------------------------


def _load(image_bytes: bytes | None, width: int, height: int) -> Image.Image:
    if image_bytes:
        try:
            with Image.open(io.BytesIO(image_bytes)) as img:
                return img.convert("RGB")
        except (OSError, ValueError):
            pass
    return Image.new("RGB", (max(width, 1), max(height, 1)), _CANVAS_GREY)


@dataclass(frozen=True)
class ImageErrors:
    """What went wrong on one image."""

    missed: tuple[tuple[str, Box], ...]
    extra: tuple[tuple[str, Box], ...]
    loose: tuple[MatchedPair, ...]
    plates: tuple[PlateResult, ...]

    @classmethod
    def of(cls, report: GradeReport, name: str) -> ImageErrors:
        """The errors of image `name` in the report."""
        classes = report.per_class.values()
        return cls(
            tuple((o.label, o.box) for c in classes for o in c.missed if o.image == name),
            tuple((o.label, o.box) for c in classes for o in c.extra if o.image == name),
            tuple(p for c in classes for p in c.matched
                  if p.image == name and p.iou < FIT_MARKS.get(p.label, 0.0)),
            tuple(sorted((p for p in report.wrong_plates()
                          if p.image == name and p.given is not None),
                         key=lambda p: p.box[0])))

    def __bool__(self) -> bool:
        return bool(self.missed or self.extra or self.loose or self.plates)


def render_overlay(image_bytes: bytes | None, image: ImageAnnotations,
                   candidate: ImageAnnotations, report: GradeReport,
                   labels: PictureLabels | None = None, width: int = WIDTH) -> bytes:
    """JPEG: the photo with the answer, the candidate's boxes and the errors marked, the wrong
    plates zoomed with their character differences, and the legend."""
    labels = labels or PictureLabels()
    errors = ImageErrors.of(report, image.name)
    photo = _load(image_bytes, image.width, image.height)
    scale = width / max(image.width, 1)
    height = max(1, round(image.height * scale))
    base = photo.resize((width, height), Image.Resampling.LANCZOS)
    photo_scale = (photo.width / max(image.width, 1), photo.height / max(image.height, 1))
    draw = ImageDraw.Draw(base)

    def scaled(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * scale, y * scale) for x, y in points]

    def box(b: Box) -> Box:
        return (b[0] * scale, b[1] * scale, b[2] * scale, b[3] * scale)

    obstacles = []
    for shape in candidate.shapes:
        outline = scaled(_outline(shape))
        if len(outline) >= 2:
            draw.line([*outline, outline[0]], fill=CANDIDATE_COLOUR, width=3)
            obstacles.append(_bounds(outline))
    for shape in image.shapes:  # the answer on top, dashed: visible where the boxes agree
        outline = scaled(_outline(shape))
        if len(outline) >= 2:
            _dashed(draw, outline, GT_COLOUR, 3)
            obstacles.append(_bounds(outline))
    placer = LabelPlacer(draw, base.size, obstacles)
    for pair in errors.loose:
        b = box(pair.candidate_box)
        draw.rectangle(b, outline=FIT_COLOUR, width=4)
        text = getattr(labels, f"fit_{pair.label}", labels.fit_car)
        placer.place(b, text.format(fit=labels.percent(pair.iou)), FIT_COLOUR)
    for label, b0 in errors.missed:
        b = box(b0)
        draw.rectangle(b, outline=MISSED_COLOUR, width=6)
        placer.place(b, getattr(labels, f"missed_{label}", label), MISSED_COLOUR)
    for label, b0 in errors.extra:
        b = box(b0)
        draw.rectangle(b, outline=EXTRA_COLOUR, width=6)
        placer.place(b, getattr(labels, f"extra_{label}", label), EXTRA_COLOUR)
    for number, plate in enumerate(errors.plates[:MAX_CROPS], start=1):
        b = box(plate.box)
        draw.rectangle(b, outline=TEXT_COLOUR, width=4)
        placer.place(b, str(number), TEXT_COLOUR)
    parts = [base]
    if errors.plates:
        parts.append(_crops(photo, photo_scale, errors.plates[:MAX_CROPS], labels, width))
    parts.append(legend_strip(labels, width, plates=bool(errors.plates)))
    return _jpeg(_stack(parts))


def _bounds(points: Sequence[tuple[float, float]]) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def _crops(photo: Image.Image, photo_scale: tuple[float, float],
           plates: Sequence[PlateResult], labels: PictureLabels, width: int) -> Image.Image:
    """A row per wrong plate: its number, the plate zoomed, expected and given texts."""
    row = CROP_HEIGHT + 40
    panel = Image.new("RGB", (width, row * len(plates) + 10), PANEL)
    draw = ImageDraw.Draw(panel)
    small, number_font = get_font(LEGEND_SIZE), get_font(30, "Bold")
    for index, plate in enumerate(plates):
        top = 10 + index * row
        draw.text((16, top + CROP_HEIGHT / 2), str(index + 1), fill=TEXT_COLOUR,
                  font=number_font, anchor="lm")
        x0, y0, x1, y1 = plate.box
        margin = max(6.0, (y1 - y0) * 0.3)
        sx, sy = photo_scale
        region = photo.crop((max(0, round((x0 - margin) * sx)), max(0, round((y0 - margin) * sy)),
                             min(photo.width, round((x1 + margin) * sx)),
                             min(photo.height, round((y1 + margin) * sy))))
        if region.width and region.height:
            zoom = min(CROP_HEIGHT / region.height, 460 / region.width)
            region = region.resize((max(1, round(region.width * zoom)),
                                    max(1, round(region.height * zoom))),
                                   Image.Resampling.LANCZOS)
            panel.paste(region, (60, top))
            draw.rectangle((59, top - 1, 60 + region.width, top + region.height),
                           outline=TEXT_COLOUR, width=2)
        text_x = 540
        draw.text((text_x, top + 4), labels.expected, fill=(190, 190, 190), font=small)
        if plate.expected:
            draw_plate_text(draw, (text_x + 150, top), plate.expected, plate.expected, labels)
        else:
            draw.text((text_x + 150, top + 2), labels.nothing, fill=WHITE, font=small)
        draw.text((text_x, top + 64), labels.given, fill=(190, 190, 190), font=small)
        if plate.given:
            draw_plate_text(draw, (text_x + 150, top + 58), plate.expected, plate.given, labels)
        else:
            draw.text((text_x + 150, top + 60), labels.nothing, fill=WHITE, font=small)
    return panel


def legend_strip(labels: PictureLabels, width: int, *, plates: bool = True) -> Image.Image:
    """The colours (and, with `plates`, the character marks) and what they mean."""
    font = get_font(LEGEND_SIZE)
    items: list[tuple[Colour, str, str]] = [
        (GT_COLOUR, labels.legend_gt, "dashed"),
        (CANDIDATE_COLOUR, labels.legend_candidate, "line"),
        (MISSED_COLOUR, labels.legend_missed, "line"), (EXTRA_COLOUR, labels.legend_extra, "line"),
        (FIT_COLOUR, labels.legend_fit, "line"), (TEXT_COLOUR, labels.legend_plate, "line")]
    if plates:
        items += [(_MARK_COLOURS["lookalike"], labels.mark_lookalike, "cell"),
                  (_MARK_COLOURS["case"], labels.mark_case, "cell"),
                  (_MARK_COLOURS["wrong"], labels.mark_wrong, "cell")]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[list[tuple[Colour, str, str]]] = [[]]
    x = 16.0
    for item in items:
        w = 46 + measure.textlength(item[1], font=font) + 24
        if x + w > width - 16 and lines[-1]:
            lines.append([])
            x = 16.0
        lines[-1].append(item)
        x += w
    strip = Image.new("RGB", (width, 16 + 36 * len(lines)), PANEL)
    draw = ImageDraw.Draw(strip)
    for row, line in enumerate(lines):
        x, y = 16.0, 12 + row * 36
        for colour, text, style in line:
            if style == "dashed":
                for k in range(3):
                    draw.line((x + k * 13, y + 12, x + k * 13 + 8, y + 12), fill=colour, width=4)
            elif style == "cell":
                draw.rectangle((x + 8, y, x + 30, y + 24), fill=colour)
            else:
                draw.line((x, y + 12, x + 36, y + 12), fill=colour, width=5)
            draw.text((x + 46, y + 12), text, fill=WHITE, font=font, anchor="lm")
            x += 46 + draw.textlength(text, font=font) + 24
    return strip


def _stack(parts: Sequence[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), PANEL)
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height
    return out


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def images_to_draw(report: GradeReport) -> list[str]:
    """Images with a missed, extra, loose or cut object or a wrong plate, sorted."""
    loose = {p.image for c in report.per_class.values() for p in c.matched
             if p.iou < FIT_MARKS.get(p.label, 0.0)}
    return sorted(set(report.images_with_errors()) | loose)


def render_overlays(
    ground_truth: TaskAnnotations,
    candidate: TaskAnnotations,
    report: GradeReport,
    images: Mapping[str, bytes | None] | Callable[[str], bytes | None] | None = None,
    *,
    labels: PictureLabels | None = None,
    width: int = WIDTH,
    only_errors: bool = True,
) -> dict[str, bytes]:
    """Pictures by name, images with errors first (only those unless ``only_errors`` is
    False)."""
    def photo(name: str) -> bytes | None:
        if images is None:
            return None
        if callable(images):
            return images(name)
        return images.get(name)

    with_errors = images_to_draw(report)
    names = with_errors if only_errors else with_errors + sorted(
        set(ground_truth.images) - set(with_errors))
    out: dict[str, bytes] = {}
    for name in names:
        gt_image = ground_truth.images[name]
        cand_image = candidate.images.get(name) or ImageAnnotations(
            name, gt_image.width, gt_image.height)
        out[name] = render_overlay(photo(name), gt_image, cand_image, report, labels, width)
    return out
