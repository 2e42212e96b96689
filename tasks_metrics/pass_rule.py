"""The pass rule: a set of gates over the object-level figures, and the band they give.

Each gate compares one measure with two thresholds: at or above ``pass_at`` it passes, at or
above ``borderline_at`` it is borderline, below it fails. The band of an attempt is the worst
band among its gates. A gate whose measure is undefined for the attempt (no plates in its
images, say) is "n/a" and does not count. The figures come from ``tasks_metrics.metrics`` and
are stored in the ``metrics`` table under the column each measure names, so a new rule can be
applied to every stored attempt without grading anything again.

Why these defaults (see README, "The verdict"): each systematic error of the table in issue 14
fails (a third of the cars left out, boxes cut to 60% of the car or 30-40 px loose, plates in
the wrong case or alphabet, every car boxed twice, junk boxes on every image); one car in ten
left out is borderline; an expert whose boxes are within about 3 px and who mistypes one plate
in twenty passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

PASS = "pass"
BORDERLINE = "borderline"
FAIL = "fail"
NOT_APPLICABLE = "n/a"
BANDS = (PASS, BORDERLINE, FAIL)
_RANK = {PASS: 0, BORDERLINE: 1, FAIL: 2}
# Figures are ratios of small counts; a value a rounding error below a threshold still meets it.
_EPSILON = 1e-9


class Measure(StrEnum):
    """What a gate looks at; the value is the name used in settings, rule files and exports."""

    CAR_RECALL = "car_recall"
    PLATE_RECALL = "plate_recall"
    CAR_PRECISION = "car_precision"
    PLATE_PRECISION = "plate_precision"
    CAR_FIT = "car_fit"
    PLATE_FIT = "plate_fit"
    PLATE_TEXT = "plate_text"

    @property
    def column(self) -> str:
        """The `metrics` column (and `metric_values` key) holding this measure."""
        return _COLUMNS[self]


_COLUMNS: Mapping[Measure, str] = {
    Measure.CAR_RECALL: "car_recall",
    Measure.PLATE_RECALL: "plate_recall",
    Measure.CAR_PRECISION: "car_precision",
    Measure.PLATE_PRECISION: "plate_precision",
    Measure.CAR_FIT: "car_matched_iou",
    Measure.PLATE_FIT: "plate_matched_iou",
    Measure.PLATE_TEXT: "plate_accuracy",
}

# The order in which gates are listed everywhere: what is found, what is extra, how well it
# fits, what is read.
MEASURES: tuple[Measure, ...] = tuple(Measure)

DEFAULT_THRESHOLDS: Mapping[Measure, tuple[float, float]] = {
    Measure.CAR_RECALL: (0.95, 0.85),
    Measure.PLATE_RECALL: (0.90, 0.80),
    Measure.CAR_PRECISION: (0.95, 0.85),
    Measure.PLATE_PRECISION: (0.90, 0.80),
    Measure.CAR_FIT: (0.85, 0.75),
    Measure.PLATE_FIT: (0.70, 0.60),
    Measure.PLATE_TEXT: (0.90, 0.75),
}


class RuleError(ValueError):
    """A pass rule or one of its gates is malformed; the message says what to fix."""


@dataclass(frozen=True)
class Gate:
    """One measure with its pass and borderline thresholds (fractions 0..1)."""

    measure: Measure
    pass_at: float
    borderline_at: float

    def __post_init__(self) -> None:
        for value in (self.pass_at, self.borderline_at):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
                raise RuleError(f"{self.measure}: thresholds must be between 0 and 1, "
                                f"got {value!r}")
        if self.borderline_at > self.pass_at:
            raise RuleError(f"{self.measure}: the borderline threshold "
                            f"({self.borderline_at:g}) is above the pass one ({self.pass_at:g})")

    def band_of(self, value: float | None) -> str:
        """pass, borderline, fail, or n/a when the measure is undefined."""
        if value is None or not math.isfinite(value):
            return NOT_APPLICABLE
        if value + _EPSILON >= self.pass_at:
            return PASS
        if value + _EPSILON >= self.borderline_at:
            return BORDERLINE
        return FAIL


@dataclass(frozen=True)
class GateResult:
    """How one attempt fared at one gate."""

    measure: Measure
    value: float | None
    pass_at: float
    borderline_at: float
    band: str

    @property
    def threshold(self) -> float:
        """The threshold the value missed: the pass one when borderline, else the borderline
        one (for "cars found 66% < 85%")."""
        return self.pass_at if self.band == BORDERLINE else self.borderline_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in `metrics.gates`)."""
        return {"measure": str(self.measure), "value": self.value, "pass_at": self.pass_at,
                "borderline_at": self.borderline_at, "band": self.band}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Back from `to_dict` (unknown measures raise RuleError)."""
        return cls(measure_named(data["measure"]), data.get("value"), float(data["pass_at"]),
                   float(data["borderline_at"]), str(data["band"]))


@dataclass(frozen=True)
class Verdict:
    """The band of an attempt and every gate behind it."""

    band: str
    gates: tuple[GateResult, ...]

    @property
    def failing(self) -> tuple[GateResult, ...]:
        """Gates below pass, the worst first (fail before borderline), then in rule order."""
        below = [g for g in self.gates if g.band in (BORDERLINE, FAIL)]
        return tuple(sorted(below, key=lambda g: -_RANK[g.band]))

    def gates_dicts(self) -> list[dict[str, Any]]:
        """The gates as stored in `metrics.gates`."""
        return [g.to_dict() for g in self.gates]

    @classmethod
    def from_stored(cls, band: str | None, gates: Iterable[Mapping[str, Any]] | None) -> Verdict:
        """From the `band` and `gates` columns of a metrics row (gates of measures this
        version does not know are left out)."""
        results = []
        for item in gates or ():
            try:
                results.append(GateResult.from_dict(item))
            except (RuleError, KeyError, TypeError, ValueError):
                continue
        return cls(band if band in BANDS else FAIL, tuple(results))


def worst(bands: Iterable[str]) -> str:
    """The worst of some bands (pass when there is none)."""
    ranked = [b for b in bands if b in _RANK]
    return max(ranked, key=_RANK.__getitem__) if ranked else PASS


def measure_named(name: object) -> Measure:
    """The measure of a name from a setting, a file or a flag (RuleError if unknown)."""
    try:
        return Measure(str(name).strip().lower())
    except ValueError:
        known = ", ".join(MEASURES)
        raise RuleError(f"unknown measure {name!r} (known: {known})") from None


@dataclass(frozen=True)
class PassRule:
    """The gates in force; a measure without a gate is not judged."""

    gates: tuple[Gate, ...]

    def __post_init__(self) -> None:
        ordered = sorted(self.gates, key=lambda g: MEASURES.index(g.measure))
        seen = [g.measure for g in ordered]
        if len(set(seen)) != len(seen):
            raise RuleError("a measure has two gates")
        object.__setattr__(self, "gates", tuple(ordered))

    @classmethod
    def default(cls) -> PassRule:
        """The shipped defaults (see the module docstring)."""
        return cls(tuple(Gate(m, *DEFAULT_THRESHOLDS[m]) for m in MEASURES))

    def gate(self, measure: Measure) -> Gate | None:
        """The gate on one measure, or None when that measure is not judged."""
        return next((g for g in self.gates if g.measure == measure), None)

    def with_gate(self, measure: Measure, thresholds: tuple[float, float] | None) -> PassRule:
        """The same rule with one gate changed (None switches it off)."""
        others = tuple(g for g in self.gates if g.measure != measure)
        if thresholds is None:
            return PassRule(others)
        return PassRule((*others, Gate(measure, *thresholds)))

    def evaluate(self, figures: Mapping[str, float | None]) -> Verdict:
        """The verdict for an attempt's figures (keyed by metrics column, as
        `metric_values` and the metrics table give them)."""
        results = []
        for gate in self.gates:
            raw = figures.get(gate.measure.column)
            value = None if raw is None else float(raw)
            results.append(GateResult(gate.measure, value, gate.pass_at, gate.borderline_at,
                                      gate.band_of(value)))
        return Verdict(worst(r.band for r in results), tuple(results))

    def to_dict(self) -> dict[str, list[float]]:
        """{measure: [pass_at, borderline_at]}: the stored and file form."""
        return {str(g.measure): [g.pass_at, g.borderline_at] for g in self.gates}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PassRule:
        """From `to_dict`'s form; a value of None or "off" leaves the measure out."""
        if not isinstance(data, Mapping):
            raise RuleError("a pass rule is an object of measure: [pass, borderline]")
        gates = []
        for name, value in data.items():
            measure = measure_named(name)
            if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
                continue
            if isinstance(value, str):
                gates.append(Gate(measure, *parse_thresholds(value)))
                continue
            if not (isinstance(value, list | tuple) and len(value) == 2):
                raise RuleError(f"{measure}: expected [pass, borderline], got {value!r}")
            try:
                gates.append(Gate(measure, float(value[0]), float(value[1])))
            except (TypeError, ValueError):
                raise RuleError(f"{measure}: thresholds must be numbers, got {value!r}") from None
        return cls(tuple(gates))

    def describe(self) -> str:
        """One line, e.g. "car_recall 0.95/0.85, ...", for logs and the action log."""
        return ", ".join(f"{g.measure} {g.pass_at:g}/{g.borderline_at:g}" for g in self.gates)


_NUMBER = re.compile(r"(\d+(?:[.,]\d+)?)(%?)")


def parse_thresholds(text: str) -> tuple[float, float]:
    """"0.95/0.85", "95% / 85%" or "95 85" (pass, then borderline) as fractions.

    Numbers above 1 (or with %) are percentages. Raises RuleError with a reason."""
    parts = [p for p in re.split(r"[/;\s]+", text.strip()) if p]
    matches = [_NUMBER.fullmatch(p) for p in parts]
    if len(parts) != 2 or not all(matches):
        raise RuleError(f"expected two thresholds, pass then borderline (e.g. 95 85 or "
                        f"0.95/0.85), got {text.strip()[:40]!r}")
    values = []
    for match in matches:
        assert match is not None
        value = float(match.group(1).replace(",", "."))
        if match.group(2) or value > 1:
            value /= 100
        if value > 1:
            raise RuleError(f"a threshold cannot be above 100%, got {match.group(0)}")
        values.append(round(value, 6))
    if values[1] > values[0]:
        raise RuleError(f"the borderline threshold ({values[1]:.0%}) is above the pass one "
                        f"({values[0]:.0%})")
    return values[0], values[1]
