"""What HR's pictures say, in the reader's language: the words drawn into the error pictures,
and the one-page scorecard of a candidate (drawn by a grading process)."""

from __future__ import annotations

from dataclasses import fields
from datetime import tzinfo

from bot_files.presentation.text import when_text
from bot_files.presentation.verdicts import band_text, failing_gates, gate_name, percent, plain
from bot_files.texts import Texts
from tasks_metrics.to_handlers import (
    AttemptCard,
    CandidateCard,
    PictureLabels,
)

SCORECARD_PLATES = 8
PLATE_REASONS = ("missing", "empty", "case", "lookalike", "other")


def picture_labels(t: Texts) -> dict[str, str]:
    """Every word the error pictures draw, in the reader's language."""
    return {f.name: plain(t(f"pictures.{f.name}", fit="{fit}"))
            for f in fields(PictureLabels)}


def job_url(cvat_link: str, task_id: int, job_id: int) -> str:
    """The link that opens a job in CVAT's web UI."""
    return f"{cvat_link.rstrip('/')}/tasks/{task_id}/jobs/{job_id}"


def plate_reason(t: Texts, reason: object) -> str:
    """Why a plate text was wrong, in words ("" if the reason is not one we know)."""
    return t(f"hr.reason_{reason}") if reason in PLATE_REASONS else ""


def counted_attempt(card: CandidateCard) -> AttemptCard | None:
    """The attempt that counts: the latest graded one."""
    graded = [a for a in card.attempts if a.metrics is not None and a.verdict is not None]
    return graded[-1] if graded else None


def scorecard(t: Texts, card: CandidateCard, attempt: AttemptCard, zone: tzinfo,
              allowed: int) -> dict[str, object]:
    """The scorecard's words and figures (tasks_metrics.scorecard.Scorecard as a dict)."""
    c, m, verdict = card.candidate, attempt.metrics or {}, attempt.verdict
    assert verdict is not None
    failing = failing_gates(t, verdict)
    band = plain(band_text(t, verdict.band)).split(" ", 1)[-1]  # the colour says it: no emoji
    gates = [(gate_name(t, g.measure),
              t("scorecard.not_measured") if g.value is None else percent(t, g.value),
              t("scorecard.needed", pass_at=percent(t, g.pass_at)), g.band or "")
             for g in verdict.gates]
    minutes = round(attempt.time_spent.total_seconds() / 60) if attempt.time_spent else None
    figures = [(t("scorecard.cars"), f"{m.get('car_missed', '—')} / {m.get('car_extra', '—')}"),
               (t("scorecard.plates"),
                f"{m.get('plate_missed', '—')} / {m.get('plate_extra', '—')}"),
               (t("scorecard.time"), t("hr.no_value") if minutes is None
                else t("hr.minutes", minutes=minutes))]
    plates = [(str(p.get("expected") or ""), str(p.get("given") or ""),
               plate_reason(t, p.get("reason")))
              for p in attempt.wrong_plates[:SCORECARD_PLATES]]
    name = c.full_name or f"id {c.telegram_id}"
    return {
        "title": t("scorecard.title"),
        "name": f"{name} @{c.telegram_username}" if c.telegram_username else name,
        "subtitle": t("scorecard.subtitle", number=attempt.number, attempts=allowed,
                      date=when_text(t, m.get("graded_at"), zone), rule=m.get("rule_id") or "—"),
        "band": verdict.band, "verdict": plain(f"{band}: {failing}" if failing else band),
        "gates_title": t("scorecard.gates_title"), "gates": gates, "figures": figures,
        "plates_title": t("scorecard.plates_title", count=len(attempt.wrong_plates)),
        "plates": plates,
        "footer": t("scorecard.footer", telegram_id=c.telegram_id, cvat=c.cvat_username or "—"),
    }
