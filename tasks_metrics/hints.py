"""Hints for a candidate's next attempt, from the pass rule's gates: what kind of mistake cost
them most, never which image or object (the answer key stays secret)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from tasks_metrics.pass_rule import PASS, Measure, Verdict

MAX_HINTS = 3
# A wrong plate text's reason (tasks_metrics.metrics.classify_plate) that names a habit.
_PLATE_REASONS = {"case": "plate_case", "lookalike": "plate_cyrillic", "empty": "plate_empty"}


def hint_codes(verdict: Verdict, report: Mapping[str, Any], limit: int = MAX_HINTS) -> list[str]:
    """Up to `limit` hint codes (texts under [hints]), the gate furthest below its pass mark
    first; none for gates at pass. A plate-text hint names the commonest kind of misreading
    when one kind makes up most of them (letter case, Cyrillic look-alikes, empty text)."""
    below = [g for g in verdict.gates if g.value is not None and g.band != PASS]
    below.sort(key=lambda g: (g.value or 0.0) - g.pass_at)
    codes = []
    for gate in below[:limit]:
        code = str(gate.measure)
        if gate.measure == Measure.PLATE_TEXT:
            code = _plate_text_code(report) or code
        codes.append(code)
    return codes


def _plate_text_code(report: Mapping[str, Any]) -> str | None:
    plates = report.get("plates")
    if not isinstance(plates, list):
        return None
    reasons = Counter(p.get("reason") for p in plates
                      if isinstance(p, Mapping) and p.get("correct") is False
                      and p.get("given") is not None)
    if not reasons:
        return None
    reason, count = reasons.most_common(1)[0]
    if reason in _PLATE_REASONS and count * 2 > sum(reasons.values()):
        return _PLATE_REASONS[reason]
    return None
