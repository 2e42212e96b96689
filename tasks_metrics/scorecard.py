"""A one-page scorecard of a candidate's attempt that HR can forward to a team lead (PNG).

The bot puts every word in the reader's language and every figure in words; this module only
lays them out, in a grading process like the error pictures (bounded, off the event loop)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from tasks_metrics.generation import PictureLabels, draw_plate_text, get_font

WIDTH = 1280
BAND_COLOURS = {"pass": (46, 160, 67), "borderline": (230, 170, 0), "fail": (210, 50, 50)}
INK = (30, 30, 30)
GREY = (110, 110, 110)
MAX_PLATES = 8
MAX_TEXT = 120  # characters of any one text on the card


def _text(value: Any) -> str:
    flat = " ".join(str(value).split())
    return flat if len(flat) <= MAX_TEXT else flat[:MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class Scorecard:
    """Everything on the card, already in words."""

    title: str
    name: str
    subtitle: str
    band: str
    verdict: str
    gates_title: str = ""
    # name, value, threshold, band
    gates: list[tuple[str, str, str, str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    plates_title: str = ""
    plates: list[tuple[str, str, str]] = field(default_factory=list)  # expected, given, note
    footer: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorecard:
        """From the JSON the bot sends (cut to size: nothing here can grow the work)."""
        return cls(
            title=_text(data.get("title", "")), name=_text(data.get("name", "")),
            subtitle=_text(data.get("subtitle", "")), band=str(data.get("band", "")),
            verdict=_text(data.get("verdict", "")), gates_title=_text(data.get("gates_title", "")),
            gates=[tuple(_text(v) for v in g[:4]) for g in data.get("gates", [])[:12]],  # type: ignore[misc]
            figures=[(_text(a), _text(b)) for a, b in data.get("figures", [])[:12]],
            plates_title=_text(data.get("plates_title", "")),
            plates=[tuple(_text(v)[:24] for v in p[:3]) for p in  # type: ignore[misc]
                    data.get("plates", [])[:MAX_PLATES]],
            footer=_text(data.get("footer", "")))


def render_scorecard(card: Scorecard, labels: PictureLabels | None = None) -> bytes:
    """The card as a PNG 1280 px wide."""
    labels = labels or PictureLabels()
    image = Image.new("RGB", (WIDTH, 2400), "white")
    draw = ImageDraw.Draw(image)
    x, y = 48, 40
    draw.text((x, y), card.title, fill=GREY, font=get_font(26))
    y += 44
    draw.text((x, y), card.name, fill=INK, font=get_font(46, "Bold"))
    y += 62
    draw.text((x, y), card.subtitle, fill=GREY, font=get_font(24))
    y += 54
    colour = BAND_COLOURS.get(card.band, GREY)
    draw.rounded_rectangle((x, y, WIDTH - x, y + 78), radius=14, fill=colour)
    draw.text((x + 24, y + 39), card.verdict, fill="white", font=get_font(32, "Bold"),
              anchor="lm")
    y += 110
    if card.gates:
        draw.text((x, y), card.gates_title, fill=INK, font=get_font(28, "Bold"))
        y += 46
        for name, value, needed, band in card.gates:
            draw.ellipse((x, y + 6, x + 22, y + 28), fill=BAND_COLOURS.get(band, GREY))
            draw.text((x + 38, y), name, fill=INK, font=get_font(26))
            draw.text((x + 640, y), value, fill=INK, font=get_font(26, "Bold"))
            draw.text((x + 820, y), needed, fill=GREY, font=get_font(24))
            y += 42
        y += 20
    for label, value in card.figures:
        draw.text((x, y), label, fill=GREY, font=get_font(24))
        draw.text((x + 640, y), value, fill=INK, font=get_font(24, "Bold"))
        y += 38
    if card.plates:
        y += 24
        draw.text((x, y), card.plates_title, fill=INK, font=get_font(28, "Bold"))
        y += 50
        for expected, given, note in card.plates:
            draw.rectangle((x - 8, y - 6, WIDTH - x + 8, y + 66), fill=(40, 40, 44))
            draw.text((x, y + 4), expected, fill="white", font=get_font(34, "Mono"))
            draw.text((x + 250, y + 4), "→", fill="white", font=get_font(34))
            if given:
                draw_plate_text(draw, (x + 310, y), expected, given, labels)
            draw.text((x + 760, y + 22), note, fill="white", font=get_font(22), anchor="lm")
            y += 84
    y += 20
    draw.text((x, y), card.footer, fill=GREY, font=get_font(20))
    y += 50
    out = io.BytesIO()
    image.crop((0, 0, WIDTH, y)).save(out, format="PNG")
    return out.getvalue()
