"""How a verdict reads, in the reader's language: the band with the gates that failed it, a
table of every gate, and the pass rule itself (texts in media/texts, [gates])."""

from __future__ import annotations

import html
import math
from datetime import UTC, tzinfo

from bot_files.presentation.text import when_text
from bot_files.texts import Raw, Texts
from tasks_metrics.to_handlers import (
    BANDS,
    BORDERLINE,
    FAIL,
    MEASURES,
    PASS,
    DecisionRecord,
    GateResult,
    PassRule,
    Standing,
    Verdict,
)

_ICONS = {PASS: "✅", BORDERLINE: "🟡", FAIL: "❌"}
FAILING_SHOWN = 3


def percent(t: Texts, value: float | None) -> str:
    """A share as HR read it: "66%", "94.9%" ("94,9%" in Russian). Rounded down, so a value
    just under a threshold never reads as the threshold itself."""
    if value is None or not math.isfinite(value):
        return t("hr.no_value")
    tenths = math.floor(value * 1000 + 1e-9) / 10
    text = f"{tenths:g}" if tenths != int(tenths) else str(int(tenths))
    return (text.replace(".", ",") if t.language == "ru" else text) + "%"


def gate_name(t: Texts, measure: str) -> str:
    """The measure in words ("cars found")."""
    return t(f"gates.{measure}")


def band_text(t: Texts, band: str | None) -> str:
    """"✅ pass", "🟡 borderline", "❌ fail", or a dash."""
    return t(f"hr.band_{band}") if band in BANDS else t("hr.no_value")


def failing_gates(t: Texts, verdict: Verdict, limit: int = FAILING_SHOWN) -> str:
    """The gates below pass, worst first: "cars found 66% < 95%; plate texts right 50% <
    90%" (HTML)."""
    failing = verdict.failing
    parts = [t("gates.below", name=gate_name(t, g.measure), value=percent(t, g.value),
               needed=percent(t, g.pass_at)) for g in failing[:limit]]
    if len(failing) > limit:
        parts.append(t("gates.more", count=len(failing) - limit))
    return "; ".join(parts)


def verdict_line(t: Texts, verdict: Verdict) -> Raw:
    """The band and, unless it is pass, the gates that made it: "❌ fail: cars found 66% <
    95%" (HTML)."""
    band = html.escape(band_text(t, verdict.band), quote=False)
    failing = failing_gates(t, verdict)
    return Raw(f"{band}: {failing}" if failing else band)


def plain(text: str) -> str:
    """An HTML text of ours as plain text (for files)."""
    return html.unescape(text)


def gate_row(t: Texts, gate: GateResult) -> str:
    """One gate of an attempt: icon, measure, value and thresholds (HTML)."""
    if gate.value is None:
        return t("gates.row_na", name=gate_name(t, gate.measure))
    return t("gates.row", icon=_ICONS.get(gate.band, "▫️"), name=gate_name(t, gate.measure),
             value=percent(t, gate.value), pass_at=percent(t, gate.pass_at),
             borderline_at=percent(t, gate.borderline_at))


def rule_lines(t: Texts, rule: PassRule, before: PassRule | None = None) -> list[str]:
    """The rule, gate by gate; with `before`, what changed is marked (HTML lines)."""
    lines = []
    for measure in MEASURES:
        gate = rule.gate(measure)
        old = before.gate(measure) if before is not None else None
        changed = before is not None and gate != old
        if gate is None:
            line = t("gates.rule_off", name=gate_name(t, measure))
        else:
            line = t("gates.rule_row", name=gate_name(t, measure),
                     pass_at=percent(t, gate.pass_at),
                     borderline_at=percent(t, gate.borderline_at))
        lines.append(f"{line} ✏️" if changed else line)
    return lines


def candidate_result(t: Texts, verdict: Verdict, shown: str) -> str:
    """The result as a candidate reads it: the band in their words and, with `shown` ==
    "gates", each measure with what passes (HTML)."""
    band = verdict.band if verdict.band in BANDS else FAIL
    lines = [t(f"result.{band}")]
    if shown == "gates":
        lines += [t("result.gate", icon=_ICONS.get(g.band, "▫️"), name=gate_name(t, g.measure),
                    value=percent(t, g.value), needed=percent(t, g.pass_at))
                  for g in verdict.gates if g.value is not None]
    return "\n".join(lines)


def standing_line(t: Texts, standing: Standing) -> str:
    """"Your result now (attempt 1): ✅ passed" (HTML)."""
    band = standing.band if standing.band in BANDS else FAIL
    return t("result.standing", number=standing.attempt_number,
             band=t(f"result.short_{band}"))


def decision_label(t: Texts, decision: str) -> str:
    """"✅ Invite" in the reader's language."""
    return t(f"hr.decision_{decision}")


def decision_line(t: Texts, record: DecisionRecord, zone: tzinfo = UTC) -> str:
    """HR's decision as the card shows it: what, by whom, when, and whether it reached the
    candidate (HTML)."""
    return t("hr.decision_line", decision=decision_label(t, record.decision),
             who=record.decided_by_name, when=when_text(t, record.decided_at, zone),
             sent=t("hr.decision_sent" if record.sent_at else "hr.decision_not_sent"))
