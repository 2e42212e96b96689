"""Generate the default synthetic task set: street scenes with cars and licence plates.

Run from the project root:

    .venv/bin/python -m tasks_generator.make_task_set \
        --out media/task_sets/default --count 96 --seed 2026

The output folder gets ``images/scene_NNN.jpg``, ``annotations.xml`` (ground truth in
CVAT for images 1.1), ``README.md`` and ``set.json``. The result depends only on the
arguments: running it twice gives byte-identical files. Each image gets tags in set.json
(`night`, `occluded`, `plateless`): the draws of images per candidate are stratified by them.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import XMLGenerator

import cv2
import numpy as np

WIDTH = 800
HEIGHT = 600
JPEG_QUALITY = 85
IMAGES_PER_TASK = 12
DEFAULT_COUNT = 96
# Images from this one on are night scenes every NIGHT_EVERY: the first 24 stay as they were
# (the figures of the pass rule were measured on the first 12).
FIRST_NIGHT, NIGHT_EVERY = 24, 3
NIGHT, OCCLUDED, PLATELESS = "night", "occluded", "plateless"
DEFAULT_SEED = 2026
DEFAULT_OUT = "media/task_sets/default"

# Latin capitals that look like Cyrillic letters used on Russian plates.
PLATE_LETTERS = "ABCEHKMOPTXY"
PLATE_DIGITS = "0123456789"
PLATE_RE = re.compile(r"^[ABCEHKMOPTXY][0-9]{3}[ABCEHKMOPTXY]{2}[0-9]{2}$")

CAR_LABEL = "car"
PLATE_LABEL = "plate"
PLATE_ATTRIBUTE = "plate"
LABEL_COLORS = {CAR_LABEL: "#fa3253", PLATE_LABEL: "#33ddff"}

# Geometry limits (pixels).
PLATE_W_RANGE = (112, 138)
PLATE_H_RANGE = (26, 33)
CAR_W_RANGE = (262, 372)
BORDER_MARGIN = 3
HORIZON_RANGE = (215, 255)
MIN_VISIBLE_FRACTION = 0.55

BODY_COLORS_BGR = [
    (40, 40, 190),  # red
    (150, 80, 20),  # blue
    (30, 30, 30),  # black
    (205, 205, 200),  # silver
    (235, 235, 235),  # white
    (60, 120, 40),  # green
    (20, 150, 220),  # orange
    (90, 90, 95),  # graphite
    (30, 190, 230),  # yellow
    (110, 40, 110),  # purple
    (120, 100, 60),  # steel blue
    (70, 90, 130),  # brown
]


@dataclass
class Box:
    """An axis-aligned box in pixel coordinates (inclusive pixel edges)."""

    label: str
    xtl: float
    ytl: float
    xbr: float
    ybr: float
    occluded: bool = False
    attributes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Scene:
    """One generated image with its ground truth."""

    name: str
    image: np.ndarray
    boxes: list[Box]
    night: bool = False

    @property
    def tags(self) -> list[str]:
        """What makes the scene harder: darkness, a hidden car, a car without a plate."""
        cars = [b for b in self.boxes if b.label == CAR_LABEL]
        plates = [b for b in self.boxes if b.label == PLATE_LABEL]
        tags = [NIGHT] if self.night else []
        if any(b.occluded for b in cars):
            tags.append(OCCLUDED)
        if len(plates) < len(cars):
            tags.append(PLATELESS)
        return tags


@dataclass
class CarSpec:
    """Parameters of one car before rendering."""

    cx: int
    bottom: int
    width: int
    color: tuple[int, int, int]
    front: bool
    plate_text: str | None
    plate_w: int
    plate_h: int
    style: int


@dataclass
class CarLayer:
    """A rendered car: its pixels, its mask and its plate rectangle."""

    pixels: np.ndarray
    mask: np.ndarray
    plate_rect: tuple[int, int, int, int] | None  # x0, y0, x1, y1 inclusive
    plate_text: str | None


# --------------------------------------------------------------------------- plates


def random_plate(rng: np.random.Generator) -> str:
    """Return one plate text in the format L DDD LL DD, written without spaces."""
    letters = [PLATE_LETTERS[int(i)] for i in rng.integers(0, len(PLATE_LETTERS), 3)]
    number = int(rng.integers(1, 1000))
    region = int(rng.integers(1, 100))
    return f"{letters[0]}{number:03d}{letters[1]}{letters[2]}{region:02d}"


def _glyph(char: str) -> np.ndarray:
    """Render one character large and crop it tight (grayscale, dark on white)."""
    font = cv2.FONT_HERSHEY_DUPLEX
    scale, thickness = 1.2, 2
    (tw, th), base = cv2.getTextSize(char, font, scale, thickness)
    pad = 4
    canvas = np.full((th + base + 2 * pad, tw + 2 * pad), 255, np.uint8)
    cv2.putText(canvas, char, (pad, pad + th), font, scale, 0, thickness, cv2.LINE_AA)
    ys, xs = np.nonzero(canvas < 200)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _text_patch(text: str, width: int, height: int) -> np.ndarray:
    """Render text into a white patch: fixed-width cells, letters shorter than digits."""
    patch = np.full((height, width), 255, np.uint8)
    cell = width / len(text)
    for k, char in enumerate(text):
        glyph = _glyph(char)
        gh = height if char.isdigit() else max(8, round(height * 0.86))
        natural = glyph.shape[1] * gh / glyph.shape[0]
        gw = int(min(cell - 1.5, max(4.0, natural * (0.8 if char.isdigit() else 1.05))))
        small = cv2.resize(glyph, (gw, gh), interpolation=cv2.INTER_AREA)
        gx = round(k * cell + (cell - gw) / 2)
        patch[height - gh : height, gx : gx + gw] = np.minimum(
            patch[height - gh : height, gx : gx + gw], small
        )
    return patch


def draw_plate(img: np.ndarray, x0: int, y0: int, w: int, h: int, text: str) -> None:
    """Draw a white plate with a black border and dark text; (x0, y0) is the top-left pixel."""
    x1, y1 = x0 + w - 1, y0 + h - 1
    cv2.rectangle(img, (x0, y0), (x1, y1), (18, 18, 18), -1)
    cv2.rectangle(img, (x0 + 2, y0 + 2), (x1 - 2, y1 - 2), (246, 246, 244), -1)
    # Region section on the right, as on Russian plates.
    split = x0 + round(w * 0.73)
    cv2.line(img, (split, y0 + 2), (split, y1 - 2), (18, 18, 18), 1)
    inner_h = h - 8
    main_w = split - x0 - 6
    region_w = x1 - split - 5
    region_h = max(inner_h - 5, 12)
    patches = [
        (_text_patch(text[:6], main_w, inner_h), x0 + 3, y0 + (h - inner_h) // 2),
        (_text_patch(text[6:], region_w, region_h), split + 3, y0 + 4),
    ]
    dark = np.array([22, 22, 22], np.float32)
    for patch, px, py in patches:
        ph, pw = patch.shape
        region = img[py : py + ph, px : px + pw]
        alpha = np.clip((255.0 - patch.astype(np.float32))[..., None] / 235.0, 0.0, 1.0)
        region[:] = (region.astype(np.float32) * (1 - alpha) + dark * alpha).astype(np.uint8)


# --------------------------------------------------------------------------- cars


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """Return the colour scaled by factor, clipped to 0..255."""
    return tuple(int(min(255, max(0, c * factor))) for c in color)  # type: ignore[return-value]


def _poly(img: np.ndarray, mask: np.ndarray, pts: list[tuple[float, float]], color) -> None:
    """Fill a polygon on the car layer and its mask."""
    arr = np.array([[round(x), round(y)] for x, y in pts], np.int32)
    cv2.fillPoly(img, [arr], color)
    cv2.fillPoly(mask, [arr], 255)


def _rounded_rect(
    img: np.ndarray, mask: np.ndarray, x0: float, y0: float, x1: float, y1: float, r: float, color
) -> None:
    """Fill a rounded rectangle on the car layer and its mask."""
    x0, y0, x1, y1, r = (round(v) for v in (x0, y0, x1, y1, r))
    r = max(1, min(r, (x1 - x0) // 2, (y1 - y0) // 2))
    for target, col in ((img, color), (mask, 255)):
        cv2.rectangle(target, (x0 + r, y0), (x1 - r, y1), col, -1)
        cv2.rectangle(target, (x0, y0 + r), (x1, y1 - r), col, -1)
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(target, (cx, cy), r, col, -1)


def plate_rect_of(spec: CarSpec) -> tuple[int, int, int, int]:
    """Return the inclusive pixel rectangle (x0, y0, x1, y1) of the car's plate."""
    w = float(spec.width)
    body_bot = spec.bottom - 0.09 * w
    px0 = round(spec.cx - spec.plate_w / 2)
    py0 = round(body_bot - 0.06 * w - spec.plate_h)
    return px0, py0, px0 + spec.plate_w - 1, py0 + spec.plate_h - 1


def approx_rect(spec: CarSpec) -> tuple[float, float, float, float]:
    """Return a rough outer rectangle (x0, y0, x1, y1) of the car, used to reject early."""
    w = float(spec.width)
    return (spec.cx - 0.52 * w, spec.bottom - (0.74 + 0.06 * spec.style) * w,
            spec.cx + 0.52 * w, float(spec.bottom))


def _rough_check(specs: list[CarSpec], need_overlap: bool) -> bool:
    """Cheap test on rectangles: plates uncovered, cars mostly visible, overlap if needed."""
    rects = [approx_rect(s) for s in specs]
    overlap = False
    for i, (spec, r) in enumerate(zip(specs, rects, strict=True)):
        area = (r[2] - r[0]) * (r[3] - r[1])
        hidden = 0.0
        for q in rects[i + 1 :]:
            ix = min(r[2], q[2]) - max(r[0], q[0])
            iy = min(r[3], q[3]) - max(r[1], q[1])
            if ix > 0 and iy > 0:
                hidden += ix * iy
                overlap = True
                if spec.plate_text is not None:
                    p = plate_rect_of(spec)
                    if p[0] <= q[2] and q[0] <= p[2] and p[1] <= q[3] and q[1] <= p[3]:
                        return False
        limit = 1 - MIN_VISIBLE_FRACTION if spec.plate_text is not None else 0.05
        if hidden > limit * area * 1.3:
            return False
    return overlap or not need_overlap


def render_car(spec: CarSpec) -> CarLayer:
    """Draw a car seen from the back or the front on an empty full-size layer."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    w = float(spec.width)
    cx, by = float(spec.cx), float(spec.bottom)
    left, right = cx - w / 2, cx + w / 2 - 1
    body = spec.color
    dark = (25, 25, 28)

    roof_h = 0.74 + 0.06 * spec.style  # taller roof for bigger styles
    top = by - roof_h * w
    body_top = by - 0.52 * w
    body_bot = by - 0.09 * w
    wheel_top = by - 0.20 * w

    # Wheels first so the body overlaps their tops.
    ww = 0.15 * w
    for wx in (left + 0.05 * w, right - 0.05 * w - ww):
        _rounded_rect(img, mask, wx, wheel_top, wx + ww, by, 0.03 * w, dark)
        cv2.line(img, (round(wx + 3), round(by - 0.05 * w)), (round(wx + ww - 3),
                 round(by - 0.05 * w)), (55, 55, 58), 2)

    # Cabin (greenhouse) as a trapezoid and its window.
    cab_top_half = 0.29 * w
    cab_bot_half = 0.44 * w
    _poly(img, mask, [(cx - cab_top_half, top), (cx + cab_top_half, top),
                      (cx + cab_bot_half, body_top + 2), (cx - cab_bot_half, body_top + 2)], body)
    win_color = (95, 80, 60) if spec.front else (80, 70, 55)
    ins = 0.035 * w
    win_top, win_bot = top + ins, body_top - ins * 0.6
    t_half = cab_top_half - ins
    b_half = cab_bot_half - ins * 1.6
    _poly(img, mask, [(cx - t_half, win_top), (cx + t_half, win_top),
                      (cx + b_half, win_bot), (cx - b_half, win_bot)], win_color)
    # A reflection streak across the glass.
    refl = (150, 135, 120)
    cv2.line(img, (round(cx - t_half * 0.3), round(win_top + 3)),
             (round(cx - b_half * 0.8), round(win_bot - 3)), refl, max(2, round(w * 0.012)))

    # Mirrors stick out a little beyond the cabin (not beyond the body).
    mh = 0.05 * w
    for sgn in (-1, 1):
        mx = cx + sgn * cab_bot_half
        _poly(img, mask, [(mx, body_top - mh * 2.2), (mx + sgn * 0.07 * w, body_top - mh * 2.0),
                          (mx + sgn * 0.07 * w, body_top - mh * 0.6), (mx, body_top - mh * 0.4)],
              _shade(body, 0.8))

    # Main body.
    _rounded_rect(img, mask, left, body_top, right, body_bot, 0.06 * w, body)
    cv2.line(img, (round(left + 0.04 * w), round(body_top + 0.05 * w)),
             (round(right - 0.04 * w), round(body_top + 0.05 * w)), _shade(body, 1.25), 2)
    # Bumper.
    _rounded_rect(img, mask, left + 0.01 * w, body_bot - 0.11 * w, right - 0.01 * w,
                  body_bot + 0.015 * w, 0.03 * w, _shade(body, 0.55))

    # Lights.
    lw, lh = 0.17 * w, 0.075 * w
    ly = body_top + 0.09 * w
    for sgn in (-1, 1):
        x_out = cx + sgn * (w / 2 - 0.035 * w)
        x_in = x_out - sgn * lw
        xs = sorted((x_out, x_in))
        # Dark housing so that the lights show up on any body colour.
        _rounded_rect(img, mask, xs[0] - 2, ly - 2, xs[1] + 2, ly + lh + 2, 0.02 * w,
                      (45, 45, 50))
        if spec.front:
            _rounded_rect(img, mask, xs[0], ly, xs[1], ly + lh, 0.02 * w, (210, 235, 245))
            cv2.circle(img, (round((xs[0] + xs[1]) / 2), round(ly + lh / 2)),
                       max(3, round(lh * 0.3)), (255, 255, 255), -1)
        else:
            _rounded_rect(img, mask, xs[0], ly, xs[1], ly + lh, 0.02 * w, (30, 30, 200))
            _rounded_rect(img, mask, xs[0] + lw * 0.6 if sgn < 0 else xs[0], ly + lh * 0.2,
                          xs[1] if sgn < 0 else xs[1] - lw * 0.6, ly + lh * 0.8, 0.01 * w,
                          (40, 140, 240))
    if spec.front:
        # Radiator grille between the headlights.
        gx0, gx1 = cx - 0.23 * w, cx + 0.23 * w
        _rounded_rect(img, mask, gx0, ly, gx1, ly + lh * 1.1, 0.02 * w, (35, 35, 38))
        for k in range(1, 4):
            yy = round(ly + lh * 1.1 * k / 4)
            cv2.line(img, (round(gx0 + 4), yy), (round(gx1 - 4), yy), (85, 85, 90), 1)

    plate_rect = None
    if spec.plate_text is not None:
        # The plate itself is drawn by finish_car() once the placement is accepted.
        plate_rect = plate_rect_of(spec)
        px0, py0, px1, py1 = plate_rect
        mask[py0 : py1 + 1, px0 : px1 + 1] = 255
    else:
        # Only a round maker's emblem where the plate would be.
        cv2.ellipse(img, (round(cx), round(body_bot - 0.19 * w)),
                    (round(0.03 * w), round(0.02 * w)), 0, 0, 360, (185, 185, 190), 2)
    return CarLayer(pixels=img, mask=mask, plate_rect=plate_rect, plate_text=spec.plate_text)


def finish_car(layer: CarLayer) -> None:
    """Draw the licence plate of an accepted car onto its layer."""
    if layer.plate_rect is not None and layer.plate_text is not None:
        x0, y0, x1, y1 = layer.plate_rect
        draw_plate(layer.pixels, x0, y0, x1 - x0 + 1, y1 - y0 + 1, layer.plate_text)


# --------------------------------------------------------------------------- background


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Return low-frequency noise in -1..1 of shape (h, w)."""
    small = rng.uniform(-1.0, 1.0, (h // cell + 2, w // cell + 2)).astype(np.float32)
    big = cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
    return big[cell : cell + h, cell : cell + w]


def draw_background(rng: np.random.Generator, horizon: int) -> np.ndarray:
    """Draw sky, buildings, pavement and road with lane markings."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    # Sky: vertical gradient plus soft clouds.
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None, None]
    sky_top = np.array([200, 140, 90], np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
    sky_low = np.array([235, 215, 195], np.float32)
    img[:horizon] = sky_top * (1 - t) + sky_low * t
    clouds = np.clip(_smooth_noise(rng, horizon, WIDTH, 60), 0.2, 1.0) - 0.2
    img[:horizon] += clouds[..., None] * 60.0

    # Buildings along the horizon.
    x = int(rng.integers(-40, 0))
    while x < WIDTH:
        bw = int(rng.integers(60, 160))
        bh = int(rng.integers(40, horizon - 30))
        tone = float(rng.uniform(90, 190))
        tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        color = np.clip(tone * tint, 0, 255)
        y0 = horizon - bh
        img[y0:horizon, max(x, 0) : min(x + bw, WIDTH)] = color
        for wy in range(y0 + 8, horizon - 10, 18):
            for wx in range(x + 8, x + bw - 12, 20):
                if 0 <= wx < WIDTH - 10 and rng.random() < 0.8:
                    lit = rng.random() < 0.2
                    img[wy : wy + 9, wx : wx + 10] = (120, 200, 230) if lit else color * 0.55
        x += bw + int(rng.integers(0, 12))

    # Pavement strip and road.
    kerb = horizon + 14
    img[horizon:kerb] = (150, 155, 160)
    img[kerb : kerb + 3] = (200, 200, 200)
    road_base = float(rng.uniform(80, 105))
    rows = np.linspace(0.0, 1.0, HEIGHT - kerb - 3, dtype=np.float32)[:, None, None]
    img[kerb + 3 :] = road_base * (0.85 + 0.3 * rows)
    patches = _smooth_noise(rng, HEIGHT - kerb - 3, WIDTH, 40)
    img[kerb + 3 :] += patches[..., None] * 12.0

    # Perspective lane markings towards a vanishing point.
    vx = WIDTH / 2 + float(rng.uniform(-120, 120))
    vy = float(horizon)
    for lane_x in (-300.0, 400.0, 1100.0):
        for k in range(14):
            s0, s1 = k / 14.0, (k + 0.5) / 14.0
            ya, yb = vy + (HEIGHT - vy) * s0 ** 1.6, vy + (HEIGHT - vy) * s1 ** 1.6
            if yb <= kerb + 6:
                continue
            fa, fb = (ya - vy) / (HEIGHT - vy), (yb - vy) / (HEIGHT - vy)
            xa, xb = vx + (lane_x - vx) * fa, vx + (lane_x - vx) * fb
            half_a, half_b = 1 + 5 * fa, 1 + 5 * fb
            pts = np.array([[xa - half_a, ya], [xa + half_a, ya], [xb + half_b, yb],
                            [xb - half_b, yb]], np.int32)
            cv2.fillPoly(img, [pts], (215, 215, 210))
    return img


# --------------------------------------------------------------------------- scenes


def _car_spec(rng: np.random.Generator, horizon: int, plate: str | None) -> CarSpec:
    """Sample a car: depth decides size, position is random but inside the frame."""
    depth = float(rng.uniform(0.0, 1.0))
    width = round(CAR_W_RANGE[0] + depth * (CAR_W_RANGE[1] - CAR_W_RANGE[0]))
    width += int(rng.integers(-8, 9))
    min_bottom = horizon + 150
    bottom = round(min_bottom + depth * (HEIGHT - BORDER_MARGIN - 1 - min_bottom))
    half = width // 2 + 2
    cx = int(rng.integers(half + BORDER_MARGIN, WIDTH - half - BORDER_MARGIN))
    plate_w = int(np.clip(round(width * 0.38) + int(rng.integers(-4, 5)), *PLATE_W_RANGE))
    plate_h = int(np.clip(round(plate_w * 0.235) + int(rng.integers(-1, 2)), *PLATE_H_RANGE))
    color = BODY_COLORS_BGR[int(rng.integers(0, len(BODY_COLORS_BGR)))]
    jitter = rng.uniform(0.9, 1.1, 3)
    color = tuple(int(np.clip(c * j, 0, 255)) for c, j in zip(color, jitter, strict=True))
    return CarSpec(cx=cx, bottom=bottom, width=width, color=color,  # type: ignore[arg-type]
                   front=bool(rng.random() < 0.4), plate_text=plate, plate_w=plate_w,
                   plate_h=plate_h, style=int(rng.integers(0, 3)))


def _mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Return (x0, y0, x1, y1) inclusive pixel bounds of a non-empty mask."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    return x, y, x + w - 1, y + h - 1


def _boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Tell whether two inclusive pixel boxes intersect."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _place_cars(
    rng: np.random.Generator,
    horizon: int,
    plates: list[str | None],
    need_overlap: bool,
) -> list[tuple[CarLayer, int]] | None:
    """Sample car positions; return layers (far to near) with visible pixel counts, or None."""
    specs = [_car_spec(rng, horizon, p) for p in plates]
    specs.sort(key=lambda s: s.bottom)  # far cars first, near cars drawn on top
    # Cars without a plate go to the front so that the missing plate is plainly visible.
    texts = sorted(plates, key=lambda t: t is None)
    for spec, text in zip(specs, texts, strict=True):
        spec.plate_text = text
    if not _rough_check(specs, need_overlap):
        return None
    layers = [render_car(s) for s in specs]
    owner = np.full((HEIGHT, WIDTH), -1, np.int16)
    for i, layer in enumerate(layers):
        owner[layer.mask > 0] = i
    result = []
    overlap_found = False
    for i, layer in enumerate(layers):
        bbox = _mask_bbox(layer.mask)
        if bbox is None:
            return None
        x0, y0, x1, y1 = bbox
        if x0 < BORDER_MARGIN or y0 < BORDER_MARGIN:
            return None
        if x1 > WIDTH - 1 - BORDER_MARGIN or y1 > HEIGHT - 1 - BORDER_MARGIN:
            return None
        total = int(np.count_nonzero(layer.mask))
        visible = int(np.count_nonzero(owner == i))
        min_fraction = MIN_VISIBLE_FRACTION if layer.plate_text is not None else 0.92
        if visible < min_fraction * total:
            return None
        if layer.plate_rect is not None:
            px0, py0, px1, py1 = layer.plate_rect
            if np.any(owner[py0 : py1 + 1, px0 : px1 + 1] != i):
                return None  # plate partly hidden by a nearer car
        for other in layers[:i]:
            other_box = _mask_bbox(other.mask)
            if other_box is not None and _boxes_overlap(bbox, other_box):
                overlap_found = True
        result.append((layer, visible))
    if need_overlap and not overlap_found:
        return None
    return result


def make_scene(
    rng: np.random.Generator,
    name: str,
    plates: list[str | None],
    need_overlap: bool,
) -> Scene:
    """Draw one scene with the given plates (None = car without a visible plate)."""
    horizon = int(rng.integers(*HORIZON_RANGE))
    background = draw_background(rng, horizon)
    placed = None
    for _ in range(20000):
        placed = _place_cars(rng, horizon, plates, need_overlap)
        if placed is not None:
            break
    if placed is None:
        raise RuntimeError(f"could not place {len(plates)} cars in {name}")

    img = background
    owner = np.full((HEIGHT, WIDTH), -1, np.int16)
    for i, (layer, _) in enumerate(placed):
        finish_car(layer)
        sel = layer.mask > 0
        img[sel] = layer.pixels[sel].astype(np.float32)
        owner[sel] = i

    # Sensor noise and a slight blur so that JPEG and boxes look like a photo.
    img += _smooth_noise(rng, HEIGHT, WIDTH, 8)[..., None] * 5.0
    img += rng.normal(0.0, 3.0, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    out = cv2.GaussianBlur(out, (3, 3), 0.6)

    boxes: list[Box] = []
    for i, (layer, visible) in enumerate(placed):
        x0, y0, x1, y1 = _mask_bbox((owner == i).astype(np.uint8))  # type: ignore[misc]
        occluded = visible < int(np.count_nonzero(layer.mask))
        boxes.append(Box(CAR_LABEL, x0, y0, x1 + 1, y1 + 1, occluded=occluded))
    for layer, _ in placed:
        if layer.plate_rect is None:
            continue
        px0, py0, px1, py1 = layer.plate_rect
        boxes.append(
            Box(PLATE_LABEL, px0, py0, px1 + 1, py1 + 1,
                attributes=[(PLATE_ATTRIBUTE, layer.plate_text or "")])
        )
    return Scene(name=name, image=out, boxes=boxes)


def plan_scenes(rng: np.random.Generator, count: int) -> list[tuple[list[str | None], bool]]:
    """Decide cars per image, plateless cars and forced overlaps; every 12 images get the mix."""
    used: set[str] = set()
    plan: list[tuple[list[str | None], bool]] = []
    for idx in range(count):
        pos = idx % IMAGES_PER_TASK
        if pos in (1, 7):
            n_cars = 3
        elif pos in (4, 10):
            n_cars = 2
        else:
            n_cars = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
        need_overlap = pos in (4, 7, 10) or (n_cars == 3)
        plates: list[str | None] = []
        for car in range(n_cars):
            forced_no_plate = (pos == 2 and car == 0) or (pos == 7 and car == 2)
            if forced_no_plate or rng.random() < 0.06:
                plates.append(None)
                continue
            text = random_plate(rng)
            while text in used:
                text = random_plate(rng)
            used.add(text)
            plates.append(text)
        plan.append((plates, need_overlap))
    return plan


def generate(count: int, seed: int) -> list[Scene]:
    """Generate all scenes of the set deterministically from the seed."""
    rng = np.random.default_rng(seed)
    plan = plan_scenes(rng, count)
    scenes = []
    for idx, (plates, need_overlap) in enumerate(plan):
        scene_rng = np.random.default_rng([seed, idx])
        scene = make_scene(scene_rng, f"scene_{idx + 1:03d}.jpg", plates, need_overlap)
        if idx >= FIRST_NIGHT and (idx - FIRST_NIGHT) % NIGHT_EVERY == NIGHT_EVERY - 1:
            scene = Scene(scene.name, to_night(scene.image), scene.boxes, night=True)
        scenes.append(scene)
    return scenes


def to_night(image: np.ndarray) -> np.ndarray:
    """The same scene at night: darker, bluer and noisier (the boxes do not move)."""
    dark = image.astype(np.float32) * np.array([0.42, 0.33, 0.3], dtype=np.float32)
    rows = np.linspace(0.75, 1.1, image.shape[0], dtype=np.float32)[:, None, None]
    return np.clip(dark * rows + 6.0, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- output


def _label_meta() -> list[tuple[str, OrderedDict]]:
    """Return the <labels> block as CVAT builds it for its XML writer."""
    plate_attr = OrderedDict([
        ("name", PLATE_ATTRIBUTE),
        ("mutable", "False"),
        ("input_type", "text"),
        ("default_value", ""),
        ("values", ""),
    ])
    return [
        ("label", OrderedDict([
            ("name", CAR_LABEL), ("color", LABEL_COLORS[CAR_LABEL]), ("type", "rectangle"),
            ("attributes", []),
        ])),
        ("label", OrderedDict([
            ("name", PLATE_LABEL), ("color", LABEL_COLORS[PLATE_LABEL]), ("type", "rectangle"),
            ("attributes", [("attribute", plate_attr)]),
        ])),
    ]


class _CvatXmlWriter:
    """Write XML the way CVAT's "CVAT for images 1.1" exporter does (2-space indents)."""

    def __init__(self, stream: io.StringIO) -> None:
        self.gen = XMLGenerator(stream, "utf-8")
        self.level = 0

    def indent(self) -> None:
        """Start a new line at the current depth."""
        self.gen.ignorableWhitespace("\n" + "  " * self.level)

    def open(self, tag: str, attrs: dict[str, str] | None = None) -> None:
        """Open an element on its own line."""
        self.indent()
        self.gen.startElement(tag, attrs or {})
        self.level += 1

    def close(self, tag: str) -> None:
        """Close an element on its own line."""
        self.level -= 1
        self.indent()
        self.gen.endElement(tag)

    def leaf(self, tag: str, text: str, attrs: dict[str, str] | None = None) -> None:
        """Write an element with text content on one line."""
        self.indent()
        self.gen.startElement(tag, attrs or {})
        self.gen.characters(text)
        self.gen.endElement(tag)

    def meta(self, data: OrderedDict) -> None:
        """Write a nested meta dictionary (dict = element, list = repeated children)."""
        for key, value in data.items():
            if isinstance(value, OrderedDict):
                self.open(key)
                self.meta(value)
                self.close(key)
            elif isinstance(value, list):
                self.open(key)
                for child_key, child in value:
                    self.meta(OrderedDict([(child_key, child)]))
                self.close(key)
            else:
                self.leaf(key, str(value))


def build_annotations_xml(scenes: list[Scene], task_name: str) -> bytes:
    """Serialise the ground truth as CVAT for images 1.1 XML."""
    stream = io.StringIO()
    w = _CvatXmlWriter(stream)
    w.gen.startDocument()
    w.gen.startElement("annotations", {})
    w.level = 1
    w.leaf("version", "1.1")
    task = OrderedDict([
        ("id", "0"),
        ("name", task_name),
        ("size", str(len(scenes))),
        ("mode", "annotation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("subset", "default"),
        ("start_frame", "0"),
        ("stop_frame", str(len(scenes) - 1)),
        ("frame_filter", ""),
        ("labels", _label_meta()),
    ])
    w.open("meta")
    w.meta(OrderedDict([("task", task)]))
    w.close("meta")
    for idx, scene in enumerate(scenes):
        w.open("image", {"id": str(idx), "name": scene.name,
                         "width": str(WIDTH), "height": str(HEIGHT)})
        for box in scene.boxes:
            attrs = {
                "label": box.label,
                "source": "manual",
                "occluded": "1" if box.occluded else "0",
                "xtl": f"{box.xtl:.2f}",
                "ytl": f"{box.ytl:.2f}",
                "xbr": f"{box.xbr:.2f}",
                "ybr": f"{box.ybr:.2f}",
                "z_order": "0",
            }
            w.open("box", attrs)
            for name, value in box.attributes:
                w.leaf("attribute", value, {"name": name})
            w.close("box")
        w.close("image")
    w.level = 0
    w.indent()
    w.gen.endElement("annotations")
    w.gen.endDocument()
    return (stream.getvalue() + "\n").encode("utf-8")


def label_spec() -> list[dict]:
    """Return the labels in the shape CVAT's REST API takes when creating a task."""
    return [
        {"name": CAR_LABEL, "color": LABEL_COLORS[CAR_LABEL], "type": "rectangle",
         "attributes": []},
        {"name": PLATE_LABEL, "color": LABEL_COLORS[PLATE_LABEL], "type": "rectangle",
         "attributes": [{"name": PLATE_ATTRIBUTE, "mutable": False, "input_type": "text",
                         "default_value": "", "values": []}]},
    ]


# What to box for each label, and the plate-text rule (PLATE_RE) in plain words, per language:
# Telegram HTML (<b>, <code>), shown to candidates as written.
LABEL_HINTS = {
    CAR_LABEL: {
        "en": "every car you can see, mirrors and wheels included",
        "ru": "каждая видимая машина, вместе с зеркалами и колёсами",
    },
    PLATE_LABEL: {
        "en": "every licence plate, its black border included; a car whose plate cannot be "
              "seen gets no plate box",
        "ru": "каждый номерной знак вместе с чёрной рамкой; если номер машины не виден, рамку "
              "номера не рисуйте",
    },
}
PLATE_RULE = {
    "en": "capital letters and digits as on the plate, no spaces: a letter, three digits, two "
          "letters and the two digits of the region, e.g. <code>A123BC77</code>. Russian plates "
          "use Cyrillic letters that look like Latin ones (А В Е К М Н О Р С Т У Х); our "
          "labelling convention is to type them as Latin letters, in the <b>English layout</b>. "
          "Cyrillic or lower-case letters and spaces count as mistakes. Letters stand 1st, 5th "
          "and 6th, so a round sign there is the letter O, elsewhere the digit 0.",
    "ru": "заглавные буквы и цифры, как на номере, без пробелов: буква, три цифры, две буквы "
          "и две цифры региона, например <code>A123BC77</code>. На российских номерах буквы "
          "кириллические, похожие на латинские (А В Е К М Н О Р С Т У Х); по нашим правилам "
          "разметки их вводят латиницей, в <b>английской раскладке</b>. Кириллица, строчные "
          "буквы и пробелы считаются ошибкой. Буквы стоят на 1-м, 5-м и 6-м местах: круглый "
          "знак там — буква O, в остальных местах — цифра 0.",
}


def build_set_json(name: str, count: int, seed: int, scenes: list[Scene]) -> bytes:
    """Return the set.json metadata a loader reads (with each image's tags)."""
    data = {
        "name": name,
        "description": (
            f"Synthetic street scenes ({count} images, {WIDTH}x{HEIGHT}): box every car and "
            "every licence plate; type each plate's text without spaces, e.g. A123BC77."
        ),
        "images_per_task": IMAGES_PER_TASK,
        "labels": label_spec(),
        "plate_regex": PLATE_RE.pattern,
        # The guide candidates read (in the bot and in the CVAT task) says these in plain words.
        "label_hints": LABEL_HINTS,
        "plate_rule": PLATE_RULE,
        "generator": f"tasks_generator.make_task_set --count {count} --seed {seed}",
        "tags": {scene.name: scene.tags for scene in scenes if scene.tags},
    }
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def build_readme(out: Path, count: int, seed: int) -> bytes:
    """Return README.md describing the set and how to replace it."""
    command = (
        f".venv/bin/python -m tasks_generator.make_task_set --out media/task_sets/{out.name} "
        f"--count {count} --seed {seed}"
    )
    text = f"""# Task set `{out.name}`

A synthetic task set for the candidate test: {count} street scenes ({WIDTH}x{HEIGHT} JPEG)
with 1 to 3 cars each. The candidate must draw a box around every car and every licence
plate and type each plate's text into the `plate` attribute. The ground truth is in
`annotations.xml` (CVAT for images 1.1, the format CVAT exports). A test task uses
{IMAGES_PER_TASK} images drawn from the {count} for each attempt of each candidate, never one the
candidate had before, stratified by the tags in `set.json` so that every draw is equally hard:

- `night`: a night scene (every third image from `scene_025`: darker, bluer, noisier);
- `occluded`: a car partly hidden by a nearer one;
- `plateless`: a car without a visible plate.

Every run of 12 images (`scene_001`..`scene_012`, ...) has images with 3 cars, overlapping
cars and cars without a visible plate; the first 12 are the images the pass rule's figures
were measured on.

## How it was made

All files here are produced by a deterministic script (no photos, no personal data):

```
{command}
```

Running it again gives byte-identical files (`tests/test_task_set.py` checks this).
Do not edit the files by hand; change the script and regenerate instead.

Ground-truth conventions:

- `car`: the tightest box around the visible pixels of the car, wheels and mirrors
  included. A car partly hidden by a nearer car gets the box of its visible part and
  `occluded="1"`.
- `plate`: the plate rectangle including its black border. Cars without a visible plate
  have no `plate` box.
- Coordinates are pixel edges (a box covering pixels 10..19 is `xtl="10.00" xbr="20.00"`).
- The `<meta>` block has no `created`/`updated`/`dumped` time stamps, owner or segment
  URLs (a real CVAT export has them); they are left out to keep the files reproducible.

## Plate text

Format `L DDD LL DD` written without spaces, regular expression
`{PLATE_RE.pattern}`:

- `L` is one of the Latin capitals that have Cyrillic look-alikes: `{" ".join(PLATE_LETTERS)}`
  (type them in Latin);
- `D` is a digit; the last two digits are the region code (the small right-hand part of
  the plate).

Example: `A123BC77`. All plate texts in the set are distinct. As on real plates the
letters are drawn a little shorter than the digits, so the letter `O` (rounder, shorter)
can be told from the digit `0`; the position in the format settles it too.

## Replacing it with a real set

1. In CVAT, annotate a task with the labels `car` (rectangle) and `plate` (rectangle, text
   attribute `plate`), then *Export task dataset* as **CVAT for images 1.1** with images.
2. Make a new folder `media/task_sets/<name>/` and put the export's `images/` folder and
   `annotations.xml` into it (image names in the XML must match the files in `images/`).
3. Copy `set.json` from this folder, change `name` and `description`; keep
   `images_per_task` at most half the number of images if candidates get a second attempt.
4. Point the bot to the new folder.
"""
    return text.encode("utf-8")


def encode_jpeg(image: np.ndarray) -> bytes:
    """Encode an image as baseline JPEG with fixed parameters."""
    params = [
        cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
        cv2.IMWRITE_JPEG_OPTIMIZE, 1,
        cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
    ]
    ok, buf = cv2.imencode(".jpg", image, params)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def write_task_set(out: Path, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> dict:
    """Generate the set into out (replacing images/) and return summary figures."""
    scenes = generate(count, seed)
    images_dir = out / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    for scene in scenes:
        (images_dir / scene.name).write_bytes(encode_jpeg(scene.image))
    (out / "annotations.xml").write_bytes(build_annotations_xml(scenes, f"task_set_{out.name}"))
    (out / "set.json").write_bytes(build_set_json(out.name, count, seed, scenes))
    (out / "README.md").write_bytes(build_readme(out, count, seed))
    cars = sum(1 for s in scenes for b in s.boxes if b.label == CAR_LABEL)
    plates = sum(1 for s in scenes for b in s.boxes if b.label == PLATE_LABEL)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"images": len(scenes), "cars": cars, "plates": plates, "bytes": total}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT))
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be positive")
    summary = write_task_set(args.out, args.count, args.seed)
    print(
        f"images={summary['images']} cars={summary['cars']} plates={summary['plates']} "
        f"bytes={summary['bytes']} ({summary['bytes'] / 1024 / 1024:.2f} MiB)"
    )


if __name__ == "__main__":
    main()
