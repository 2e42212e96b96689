"""What HR read: the candidate's card, search results, lists, the whitelist, the export's
summary, a result's notice and the daily digest; each rendered from typed objects in the
reader's language."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from authorization import HrMember, NotifyChoice
from bot_files.hr_keyboards import (
    CardAct,
    card_keyboard,
    decision_keyboard,
    hr_menu_keyboard,
    list_page_keyboard,
    lists_keyboard,
    open_card_keyboard,
    search_results_keyboard,
    whitelist_keyboard,
)
from bot_files.presentation.flags import flag_lines
from bot_files.presentation.pictures import job_url, plate_reason
from bot_files.presentation.text import (
    Letter,
    chunks,
    count,
    cut,
    number,
    paginate,
    spent,
    when_text,
)
from bot_files.presentation.verdicts import (
    band_text,
    decision_label,
    decision_line,
    gate_name,
    gate_row,
    plain,
    verdict_line,
)
from bot_files.services import CardView
from bot_files.texts import Raw, Texts
from tasks_metrics.to_handlers import (
    BANDS,
    AttemptCard,
    CandidateCard,
    CandidateSummary,
    DecisionRecord,
    DigestFigures,
    Exports,
    Flag,
    GradedAttempt,
    ListName,
    SubmitOutcome,
)

SEARCH_PAGE_SIZE = 8
WHITELIST_PAGE_SIZE = 10
MAX_PLATES_SHOWN = 8
PLATE_TEXT_LIMIT = 24     # characters of a plate text (real plates have about 8-10)
CONFIRM_TEXTS = {
    CardAct.EXTRA: "hr.confirm_extra",
    CardAct.REGRADE: "hr.confirm_regrade",
    CardAct.DELETE_CVAT: "hr.confirm_delete_cvat",
    CardAct.DELETE_DATA: "hr.confirm_delete_data",
}


# --- who ---------------------------------------------------------------------------------------


def name(candidate: CandidateSummary) -> str:
    """The candidate's name as HR see it (cut), or their id."""
    return cut(candidate.full_name) or f"id {candidate.telegram_id}"


def username(candidate: CandidateSummary) -> str:
    """"@username" (cut), or nothing."""
    return f"@{cut(candidate.telegram_username)}" if candidate.telegram_username else ""


def who(candidate: CandidateSummary) -> str:
    """Name and @username."""
    return f"{name(candidate)} {username(candidate)}".strip()


def search_label(candidate: CandidateSummary) -> str:
    """A search result's button text (plain text, not HTML)."""
    parts = [name(candidate)]
    if candidate.telegram_username:
        parts.append(f"@{candidate.telegram_username}")
    if candidate.score is not None:
        parts.append(f"{candidate.score:.2f}")
    return " · ".join(parts)


def list_label(t: Texts, candidate: CandidateSummary) -> str:
    """A list entry's button text: name, @username and band."""
    label = candidate.full_name or f"id {candidate.telegram_id}"
    if candidate.telegram_username:
        label += f" @{candidate.telegram_username}"
    if candidate.band is None:
        return label
    return t("lists.item_graded", name=label, band=band_text(t, candidate.band))


# --- the menu, search and lists ----------------------------------------------------------------


def hr_menu(t: Texts, choice: NotifyChoice, greeting_for: str | None = None) -> Letter:
    """The HR menu; at /start (`greeting_for`: the reader's first name) with a greeting and
    the button to the candidate's side."""
    title = t("hr.menu_title")
    if greeting_for is not None:
        title = f"{t('hr_start.greeting', name=greeting_for)}\n\n{title}"
    return Letter(title, hr_menu_keyboard(t, choice, candidate_side=greeting_for is not None))


def search_results(t: Texts, query: str, found: Sequence[CandidateSummary],
                   page: int) -> Letter:
    """One page of search results, a button per candidate."""
    shown = paginate(found, page, SEARCH_PAGE_SIZE)
    return Letter(t("hr.find_many", query=query, count=len(found), page=shown.number,
                    pages=shown.pages),
                  search_results_keyboard(t, [(c.id, search_label(c)) for c in shown.items],
                                          shown.number, shown.pages))


def list_title(t: Texts, list_name: ListName, zone_name: str, stalled_days: int) -> str:
    """A list's name in words."""
    return t(f"lists.name_{list_name}", zone=zone_name, days=stalled_days)


def lists_overview(t: Texts, counts: dict[ListName, int]) -> Letter:
    """Every list with how many are on it."""
    return Letter(t("lists.title"), lists_keyboard(t, [(str(n), counts[n]) for n in ListName]))


def list_page(t: Texts, list_name: ListName, title: str, total: int,
              shown: Sequence[CandidateSummary], page: int, pages: int) -> Letter:
    """One page of a list."""
    text = t("lists.page", title=title, count=total, page=page, pages=pages) if total else \
        t("lists.empty", title=title)
    return Letter(text, list_page_keyboard(t, str(list_name),
                                           [(c.id, list_label(t, c)) for c in shown],
                                           page, pages))


# --- the card ----------------------------------------------------------------------------------


def _cvat_account(t: Texts, c: CandidateSummary, zone: tzinfo) -> str:
    if c.cvat_username is None:
        return t("hr.cvat_none")
    if c.cvat_deleted_at is not None:
        return t("hr.cvat_deleted", username=cut(c.cvat_username),
                 date=when_text(t, c.cvat_deleted_at, zone))
    if c.cvat_deactivated_at is not None:
        return t("hr.cvat_deactivated", username=cut(c.cvat_username),
                 date=when_text(t, c.cvat_deactivated_at, zone))
    return t("hr.cvat_active", username=cut(c.cvat_username))


def _head(t: Texts, c: CandidateSummary, zone: tzinfo,
          decision: DecisionRecord | None) -> list[str]:
    blocks = [t("hr.card_head", name=name(c), username=username(c),
                telegram_id=c.telegram_id, cvat=Raw(_cvat_account(t, c, zone)),
                created=when_text(t, c.created_at, zone), extra=c.extra_attempts)]
    if decision is not None:
        blocks.append(decision_line(t, decision, zone))
    if c.returned_after is not None:
        blocks.append(t("hr.returning", date=when_text(t, c.returned_after, zone),
                        attempts=c.previous_attempts))
        if c.previously_tested_at is not None:
            blocks[-1] += "\n" + t("hr.tested_before",
                                   date=when_text(t, c.previously_tested_at, zone))
    return blocks


def _wrong_plates(t: Texts, plates: list[dict[str, Any]]) -> list[str]:
    lines = [t("hr.wrong_plates", count=len(plates))]
    for plate in plates[:MAX_PLATES_SHOWN]:
        given = plate.get("given")
        lines.append(t("hr.wrong_plate", image=cut(plate.get("image", "")),
                       expected=cut(plate.get("expected") or "", PLATE_TEXT_LIMIT),
                       given="—" if given is None else cut(given, PLATE_TEXT_LIMIT),
                       reason=plate_reason(t, plate.get("reason")) or "?"))
    if len(plates) > MAX_PLATES_SHOWN:
        lines.append(t("hr.more_plates", count=len(plates) - MAX_PLATES_SHOWN))
    return lines


def _result_lines(t: Texts, attempt: AttemptCard) -> list[str]:
    m = attempt.metrics
    if m is None or attempt.verdict is None:
        return []
    lines = [t("hr.attempt_result", verdict=verdict_line(t, attempt.verdict)),
             *(gate_row(t, gate) for gate in attempt.verdict.gates),
             t("hr.attempt_figures", **{
                 key: number(t, m[key]) for key in (
                     "car_iou", "plate_iou", "plate_accuracy", "plate_cer", "score")}, **{
                 key: count(t, m[key]) for key in (
                     "car_missed", "car_extra", "plate_missed", "plate_extra")})]
    if m.get("rule_id"):
        lines.append(t("hr.attempt_rule", rule=m["rule_id"]))
    if attempt.key_version is not None:
        lines.append(t("key.card_version", version=attempt.key_version))
    lines += flag_lines(t, attempt.flags)
    if attempt.wrong_plates:
        lines += _wrong_plates(t, attempt.wrong_plates)
    return lines


def _attempt(t: Texts, attempt: AttemptCard, zone: tzinfo, cvat_link: str | None) -> str:
    lines = [t("hr.attempt_head", number=attempt.number,
               status=t(f"hr.status_{attempt.status}"), images=attempt.images),
             t("hr.attempt_times", started=when_text(t, attempt.task_started, zone),
               ended=when_text(t, attempt.task_ended, zone),
               spent=spent(t, attempt.time_spent))]
    if cvat_link and attempt.cvat_task_id and attempt.cvat_job_id:
        lines.append(t("hr.attempt_job", url=job_url(cvat_link, attempt.cvat_task_id,
                                                      attempt.cvat_job_id),
                       job=attempt.cvat_job_id))
    if attempt.grading_error:
        lines.append(t("hr.attempt_not_graded", error=cut(attempt.grading_error, 200)))
    lines += _result_lines(t, attempt)
    return "\n".join(lines)


def render_card(t: Texts, card: CandidateCard, zone: tzinfo = UTC,
                cvat_link: str | None = None,
                decision: DecisionRecord | None = None) -> list[str]:
    """The card as messages: the candidate and HR's decision, then each attempt with metrics,
    wrong plates and (given `cvat_link`) a link to its CVAT job; times in `zone`."""
    blocks = _head(t, card.candidate, zone, decision)
    if not card.attempts:
        blocks.append(t("hr.card_no_attempts"))
    blocks += [_attempt(t, attempt, zone, cvat_link) for attempt in card.attempts]
    return chunks(blocks)


def card_letters(t: Texts, view: CardView, zone: tzinfo, cvat_link: str | None) -> list[Letter]:
    """The card's messages, the last one with the buttons the reader's role allows."""
    card = view.card
    texts = render_card(t, card, zone, cvat_link, view.decision)
    pictures = [a.number for a in card.attempts if a.has_work and a.metrics is not None]
    markup = card_keyboard(t, card.candidate.id, pictures,
                           can_regrade=any(a.has_work for a in card.attempts),
                           has_cvat_account=card.candidate.has_cvat_account,
                           deactivated=card.candidate.cvat_deactivated_at is not None,
                           admin=view.admin)
    return [Letter(text) for text in texts[:-1]] + [Letter(texts[-1], markup)]


def confirm_text(t: Texts, act: CardAct, candidate: CandidateSummary) -> str:
    """The question before a card action that changes something."""
    return t(CONFIRM_TEXTS[act], name=name(candidate), cvat=cut(candidate.cvat_username or ""))


def regrade_report(t: Texts, candidate: CandidateSummary,
                   results: list[tuple[int, GradedAttempt | None]]) -> str:
    """What re-grading each attempt gave."""
    if not results:
        return t("hr.regrade_nothing", name=name(candidate))
    lines = [t("hr.regrade_done", name=name(candidate))]
    for attempt_number, result in results:
        lines.append(t("hr.regrade_failed_line", number=attempt_number) if result is None else
                     t("hr.regrade_line", number=attempt_number,
                       verdict=verdict_line(t, result.verdict)))
    return "\n".join(lines)


# --- the export --------------------------------------------------------------------------------


def export_summary(t: Texts, exports: Exports, decisions: dict[str, int]) -> str:
    """The export's first message: how many did what, the medians, the gates most missed,
    and HR's decisions."""
    summary = exports.summary
    medians = summary.medians
    minutes = medians.get("time_spent_min")
    below = ", ".join(t("hr.summary_gate", name=gate_name(t, measure), count=n)
                      for measure, n in summary.below_pass.items())
    return t(
        "hr.summary", candidates=summary.candidates, submitted=summary.submitted,
        graded=summary.graded, passed=summary.passed, borderline=summary.borderline,
        failed=summary.failed, score=number(t, medians.get("score")),
        car_iou=number(t, medians.get("car_iou")), plate_iou=number(t, medians.get("plate_iou")),
        plate_accuracy=number(t, medians.get("plate_accuracy")),
        minutes=t("hr.no_value") if minutes is None else round(minutes),
        gates=Raw(below or t("hr.no_value"))) + "\n\n" + t("hr.decisions_summary", **decisions)


def chart_labels(t: Texts) -> dict[str, Any]:
    """The score chart's title, axes and legend (bands without their emoji)."""
    return {"title": t("hr.chart_title"), "x_label": t("hr.chart_x"),
            "y_label": t("hr.chart_y"),
            "legend": {band: plain(band_text(t, band)).split(" ", 1)[-1]
                       for band in BANDS}}


# --- decisions ---------------------------------------------------------------------------------


def decision_preview(t: Texts, candidate: CandidateSummary, decision: str, language: str,
                     message: Letter, current: DecisionRecord | None, note: str) -> Letter:
    """What the candidate will read (in `language`), the decision in force, and how to add a
    line or send it."""
    lines = [t("hr.decision_preview", name=candidate.full_name or str(candidate.telegram_id),
               decision=decision_label(t, decision), language=t(f"hr.language_{language}"),
               message=Raw(message.text))]
    if current is not None:
        lines.append(t("hr.decision_current", line=Raw(decision_line(t, current))))
    lines.append(t("hr.decision_note_hint" if not note else "hr.decision_note_again"))
    return Letter("\n\n".join(lines), decision_keyboard(t, candidate.id, decision))


# --- the whitelist -----------------------------------------------------------------------------


def _member_name(member: HrMember) -> str:
    return " ".join(p for p in (member.full_name,
                                f"@{member.username}" if member.username else "") if p)


def whitelist_page(t: Texts, members: Sequence[HrMember], page: int, *,
                   admin: bool) -> Letter:
    """One page of HR users with their roles; for admins, remove and role buttons and Add."""
    shown = paginate(members, page, WHITELIST_PAGE_SIZE)
    lines = [t("hr.wl_title", count=len(members), page=shown.number, pages=shown.pages)]
    lines += [t("hr.wl_item_settings" if m.from_settings else "hr.wl_item",
                who=_member_name(m), telegram_id=m.telegram_id, role=t(f"hr.role_{m.role}"))
              for m in shown.items]
    removable = [(m.telegram_id, m.full_name or (f"@{m.username}" if m.username else "")
                  or str(m.telegram_id), m.role) for m in shown.items if m.on_whitelist]
    return Letter("\n".join(lines), whitelist_keyboard(t, removable, shown.number, shown.pages,
                                                       admin=admin))


# --- outside a reply ---------------------------------------------------------------------------


def graded_notice(t: Texts, candidate: CandidateSummary, outcome: SubmitOutcome,
                  flags: list[Flag]) -> Letter:
    """To HR after a submission: the band and the gates that made it (or that the grading
    failed), with a button to the card."""
    assert outcome.attempt is not None
    if outcome.result is not None:
        text = "\n".join([t("hr.notice", who=who(candidate), number=outcome.attempt.number,
                            verdict=verdict_line(t, outcome.result.verdict)),
                          *flag_lines(t, flags)])
    else:
        text = t("hr.notice_not_graded", who=who(candidate), number=outcome.attempt.number,
                 error=cut(outcome.reason, 200))
    return Letter(text, open_card_keyboard(t, candidate.id))


def digest(t: Texts, figures: DigestFigures, now: datetime, zone: tzinfo,
           stalled_days: int) -> Letter:
    """The daily digest: yesterday's results and the lists now, with the lists' buttons."""
    return Letter(
        t("digest.text", date=now.astimezone(zone).strftime("%Y-%m-%d"),
          graded=figures.graded, passed=figures.passed, borderline=figures.borderline,
          failed=figures.failed, review=figures.lists[ListName.REVIEW],
          borderline_now=figures.lists[ListName.BORDERLINE],
          stalled=figures.lists[ListName.STALLED], days=stalled_days),
        lists_keyboard(t, [(str(n), figures.lists[n]) for n in ListName]))
