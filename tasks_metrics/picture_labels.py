"""The words drawn into HR's pictures (no drawing here: the bot imports this without PIL)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class PictureLabels:
    """The words drawn into the pictures (English by default; the bot passes the reader's)."""

    missed_car: str = "missed car"
    missed_plate: str = "missed plate"
    extra_car: str = "extra car"
    extra_plate: str = "extra plate"
    fit_car: str = "car box fit {fit}"
    fit_plate: str = "plate box fit {fit}"
    expected: str = "expected"
    given: str = "given"
    nothing: str = "(no text)"
    legend_gt: str = "right answer"
    legend_candidate: str = "candidate's box"
    legend_missed: str = "missed"
    legend_extra: str = "extra"
    legend_fit: str = "loose or cut box"
    legend_plate: str = "wrong plate text"
    mark_lookalike: str = "Cyrillic look-alike"
    mark_case: str = "letter case"
    mark_wrong: str = "wrong, missing or extra character"
    cyrillic: str = "CYR"
    decimal: str = "."

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> PictureLabels:
        """From the bot's dictionary (unknown keys and non-text values are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items()
                      if k in known and isinstance(v, str)})

    def percent(self, value: float) -> str:
        """"61%" ("61,5%" with a decimal comma)."""
        text = f"{value * 100:.0f}" if value * 100 >= 10 else f"{value * 100:.1f}"
        return text.replace(".", self.decimal) + "%"
