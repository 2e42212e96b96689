"""What HR's pictures say, in the reader's language: the words drawn into the error pictures,
and the one-page scorecard of a candidate (drawn by a grading process)."""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import tzinfo

from aiogram.types import BufferedInputFile, Message

from bot_files.replies import edit_or_send, when_text
from bot_files.texts import Texts
from bot_files.presentation.verdicts import band_text, failing_gates, gate_name, percent, plain
from config.env import Settings
from db import Database
from log import record_action
from tasks_metrics.to_handlers import (
    AttemptCard,
    CandidateCard,
    GradingFailed,
    GradingProcesses,
    PictureLabels,
    candidate_card,
)

logger = logging.getLogger(__name__)
SCORECARD_PLATES = 8


def picture_labels(t: Texts) -> dict[str, str]:
    """Every word the error pictures draw, in the reader's language."""
    return {f.name: plain(t(f"pictures.{f.name}", fit="{fit}"))
            for f in fields(PictureLabels)}


def job_url(cvat_link: str, task_id: int, job_id: int) -> str:
    """The link that opens a job in CVAT's web UI."""
    return f"{cvat_link.rstrip('/')}/tasks/{task_id}/jobs/{job_id}"


def _counted(card: CandidateCard) -> AttemptCard | None:
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
               t(f"hr.reason_{p.get('reason')}") if p.get("reason") in (
                   "missing", "empty", "case", "lookalike", "other") else "")
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


async def send_scorecard(target: Message, t: Texts, db: Database, grader: GradingProcesses,
                         settings: Settings, candidate_id: int, actor: int) -> None:
    """The scorecard of the attempt that counts, as a picture HR can forward."""
    card = await candidate_card(db, candidate_id)
    attempt = _counted(card) if card else None
    if card is None or attempt is None:
        await target.answer(t("hr.scorecard_none"))
        return
    status = await target.answer(t("hr.scorecard_working"))
    allowed = settings.max_attempts + card.candidate.extra_attempts
    try:
        png = await grader.scorecard(scorecard(t, card, attempt, settings.zone, allowed),
                                     picture_labels(t))
    except GradingFailed as exc:
        logger.warning("scorecard of candidate %s not drawn: %s", candidate_id, exc)
        await edit_or_send(status, t("hr.scorecard_failed"))
        return
    name = card.candidate.full_name or str(card.candidate.telegram_id)
    await target.answer_photo(BufferedInputFile(png, filename=f"scorecard_{candidate_id}.png"),
                              caption=t("hr.scorecard_caption", name=name,
                                        number=attempt.number))
    await record_action(db, actor, "hr.scorecard", candidate_id, {"attempt": attempt.number})
