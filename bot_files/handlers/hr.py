"""The HR menu: exports, candidate cards and actions, the whitelist, notifications.

Two routers: `hr` answers HR users only (a router-level filter on messages and button presses);
`hr_denied`, right after it, records HR-shaped attempts by anyone else in the action log and
lets them fall through to the ordinary fallback answers, so nothing HR-like is shown.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InputMediaPhoto,
    Message,
    MessageOriginHiddenUser,
    MessageOriginUser,
)

from authorization import (
    HRFilter,
    Role,
    add_to_whitelist,
    hr_members,
    is_admin,
    notification_recipients,
    notify_choice,
    remove_from_whitelist,
    set_role,
)
from bot_files.presentation.flags import flag_lines
from bot_files.handlers.menu import menu_for
from bot_files.presentation.exports import export_locale
from bot_files.hr_keyboards import (
    CardAct,
    HrCard,
    HrMenu,
    HrSearchPage,
    HrWhitelist,
    MenuAct,
    WhitelistAct,
    back_to_menu_keyboard,
    card_confirm_keyboard,
    card_keyboard,
    confirmed,
    hr_menu_keyboard,
    is_hr_callback,
    open_card_keyboard,
    search_results_keyboard,
    whitelist_confirm_keyboard,
    whitelist_keyboard,
)
from bot_files.presentation.pictures import job_url, picture_labels, send_scorecard
from bot_files.replies import edit_or_send, target_of, when_text
from bot_files.telegram_limits import Pacer
from bot_files.texts import Raw, Texts, pick_language
from bot_files.presentation.verdicts import (
    band_text,
    decision_line,
    gate_name,
    gate_row,
    plain,
    verdict_line,
)
from config.env import Settings
from connection import AsyncCvatClient, CvatError
from create_users.to_handlers import (
    DELETE_ACCOUNT,
    KEEP_ACCOUNT,
    delete_candidate_data,
    reactivate_cvat_account,
    user_language,
)
from db import Database, DatabaseUnavailable
from log import record_action
from tasks_metrics.to_handlers import (
    AnnotationFormatError,
    CandidateCard,
    CandidateSummary,
    DecisionRecord,
    GradingFailed,
    GradingProcesses,
    SubmitOutcome,
    band_histogram,
    build_exports,
    candidate_card,
    candidate_summary,
    current_decision,
    decision_counts,
    delete_cvat_account,
    error_pictures,
    export_file_name,
    export_rows,
    flags_of,
    grant_extra_attempt,
    regrade_candidate,
    search_candidates,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 8
WHITELIST_PAGE_SIZE = 10
MAX_PLATES_SHOWN = 8
MESSAGE_LIMIT = 3900      # under Telegram's 4096, leaving room for entities
USER_TEXT_LIMIT = 64      # characters of a name a candidate chose, as shown to HR
PLATE_TEXT_LIMIT = 24     # characters of a plate text (real plates have about 8-10)
ALBUM_SIZE = 10           # sendMediaGroup takes 2..10 items
NOTIFY_PAUSE = 0.05       # without the shared pacer: at most ~20 notifications a second
ALBUM_PAUSE = 1.0         # about one album a second in one chat


class HrStates(StatesGroup):
    """HR dialogs waiting for text."""

    find = State()
    whitelist_add = State()


# --- small helpers ---------------------------------------------------------------------------


def cut(text: str, limit: int = USER_TEXT_LIMIT) -> str:
    """A value someone typed, on one line and at most `limit` characters (then "…"), before
    it goes into a text: a name or plate text can then never break a message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _number(t: Texts, value: float | None, digits: int = 3) -> str:
    return t("hr.no_value") if value is None else f"{value:.{digits}f}"


def _count(t: Texts, value: int | None) -> str:
    return t("hr.no_value") if value is None else str(value)


def _spent(t: Texts, value: timedelta | None) -> str:
    if value is None:
        return t("hr.no_value")
    return t("hr.minutes", minutes=round(value.total_seconds() / 60))


def _name(candidate: CandidateSummary) -> str:
    return cut(candidate.full_name) or f"id {candidate.telegram_id}"


def _username(candidate: CandidateSummary) -> str:
    return f"@{cut(candidate.telegram_username)}" if candidate.telegram_username else ""


def _label(candidate: CandidateSummary) -> str:
    """A search result's button text (plain text, not HTML)."""
    parts = [_name(candidate)]
    if candidate.telegram_username:
        parts.append(f"@{candidate.telegram_username}")
    if candidate.score is not None:
        parts.append(f"{candidate.score:.2f}")
    return " · ".join(parts)


def _pack(parts: Iterable[str], separator: str, limit: int) -> list[str]:
    """Join parts with `separator` into as few texts under `limit` as they fit in."""
    texts: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + len(separator) + len(part) > limit:
            texts.append(current)
            current = part
        else:
            current = f"{current}{separator}{part}" if current else part
    if current:
        texts.append(current)
    return texts


def _whole_line(line: str, limit: int) -> str:
    """A line as it is, or (too long for a message alone: never, with values cut) without its
    markup and cut, rather than broken inside a tag."""
    if len(line) <= limit:
        return line
    text = html.unescape(re.sub(r"<[^>]*>", "", line))
    return html.escape(text[:limit // 2 - 1] + "…", quote=False)


def _chunks(blocks: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join text blocks into messages under the limit. A block too long alone is split between
    its lines: no tag of ours spans lines and values are cut to one line, so no message ends
    inside a tag."""
    pieces = [piece for block in blocks for piece in (
        [block] if len(block) <= limit else
        _pack((_whole_line(line, limit) for line in block.split("\n")), "\n", limit))]
    return _pack(pieces, "\n\n", limit)


# --- the menu --------------------------------------------------------------------------------


async def open_menu(message: Message, state: FSMContext, t: Texts, db: Database, *,
                    at_start: bool = False) -> None:
    """/hr or the HR menu button: the HR menu; at /start (`at_start`) with a greeting and a
    button to the candidate's side."""
    await state.set_state(None)
    user_id = message.chat.id
    title = t("hr.menu_title")
    if at_start:
        name = message.from_user.first_name if message.from_user else ""
        title = f"{t('hr_start.greeting', name=name)}\n\n{title}"
    await message.answer(title, reply_markup=hr_menu_keyboard(
        t, await notify_choice(db, user_id), candidate_side=at_start))
    await record_action(db, user_id, "hr.menu")


async def menu_pressed(callback: CallbackQuery, callback_data: HrMenu, state: FSMContext,
                       t: Texts, db: Database, settings: Settings) -> None:
    """A button of the HR menu (lists and notifications: bot_files.handlers.hr_lists)."""
    target = target_of(callback)
    user_id = callback.from_user.id
    await callback.answer()
    if target is None:
        return
    if callback_data.act == MenuAct.EXPORT:
        await export_all(target, t, db, settings, user_id)
    elif callback_data.act == MenuAct.FIND:
        await ask_query(target, state, t)
    elif callback_data.act == MenuAct.WHITELIST:
        await show_whitelist(target, t, db, settings, 1)
    else:
        await state.set_state(None)
        await target.answer(t("hr.menu_title"),
                            reply_markup=hr_menu_keyboard(t, await notify_choice(db, user_id)))


async def typed_export(message: Message, t: Texts, db: Database, settings: Settings) -> None:
    """The export, asked for by typing the button's text."""
    await export_all(message, t, db, settings, message.chat.id)


async def typed_find(message: Message, state: FSMContext, t: Texts) -> None:
    """Find a candidate, asked for by typing the button's text."""
    await ask_query(message, state, t)


async def typed_whitelist(message: Message, t: Texts, db: Database, settings: Settings) -> None:
    """The whitelist, asked for by typing the button's text."""
    await show_whitelist(message, t, db, settings, 1)


# --- export ----------------------------------------------------------------------------------


async def export_all(target: Message, t: Texts, db: Database, settings: Settings,
                     actor_id: int) -> None:
    """Summary, score chart, XLSX and CSV of every candidate."""
    status = await target.answer(t("hr.export_working"))
    rows = await export_rows(db, settings.attempt_counts)
    if not rows.candidates:
        await edit_or_send(status, t("hr.export_empty"), reply_markup=back_to_menu_keyboard(t))
        return
    exports = await asyncio.to_thread(build_exports, rows, export_locale(t, settings))
    summary = exports.summary
    medians = summary.medians
    minutes = medians.get("time_spent_min")
    below = ", ".join(t("hr.summary_gate", name=gate_name(t, measure), count=count)
                      for measure, count in summary.below_pass.items())
    await edit_or_send(status, t(
        "hr.summary", candidates=summary.candidates, submitted=summary.submitted,
        graded=summary.graded, passed=summary.passed, borderline=summary.borderline,
        failed=summary.failed, score=_number(t, medians.get("score")),
        car_iou=_number(t, medians.get("car_iou")), plate_iou=_number(t, medians.get("plate_iou")),
        plate_accuracy=_number(t, medians.get("plate_accuracy")),
        minutes=t("hr.no_value") if minutes is None else round(minutes),
        gates=Raw(below or t("hr.no_value")))
        + "\n\n" + t("hr.decisions_summary", **await decision_counts(db)))
    if exports.scores:
        legend = {band: plain(band_text(t, band)).split(" ", 1)[-1]
                  for band in ("pass", "borderline", "fail")}
        chart = await asyncio.to_thread(
            band_histogram, exports.scores, title=t("hr.chart_title"), x_label=t("hr.chart_x"),
            y_label=t("hr.chart_y"), legend=legend)
        await target.answer_photo(BufferedInputFile(chart, filename="scores.png"),
                                  caption=t("hr.chart_caption", count=len(exports.scores)))
    now = datetime.now(UTC)
    await target.answer_document(
        BufferedInputFile(exports.xlsx, filename=export_file_name(now, "xlsx")),
        caption=t("hr.xlsx_caption"))
    await target.answer_document(
        BufferedInputFile(exports.csv, filename=export_file_name(now, "csv")),
        caption=t("hr.csv_caption"), reply_markup=back_to_menu_keyboard(t))
    await record_action(db, actor_id, "hr.export", details={"candidates": summary.candidates})


# --- find a candidate --------------------------------------------------------------------------


async def ask_query(target: Message, state: FSMContext, t: Texts) -> None:
    """Ask for a username or id."""
    await state.set_state(HrStates.find)
    await target.answer(t("hr.find_ask"))


async def query_received(message: Message, state: FSMContext, t: Texts, db: Database,
                         settings: Settings) -> None:
    """Search; one match opens the card, several make a list, none says so."""
    query = " ".join((message.text or "").split())[:100]
    found = await search_candidates(db, query)
    await record_action(db, message.chat.id, "hr.search",
                        details={"query": query, "found": len(found)})
    if not found:
        await message.answer(t("hr.find_none", query=query))  # still waiting: type again
        return
    await state.set_state(None)
    await state.update_data(hr_query=query)
    if len(found) == 1:
        await send_card(message, t, db, settings, found[0].id, message.chat.id)
        return
    text, markup = _results_page(t, query, found, 1)
    await message.answer(text, reply_markup=markup)


async def query_not_text(message: Message, t: Texts) -> None:
    """Anything but text while waiting for the query."""
    await message.answer(t("hr.find_need_text"))


def _results_page(t: Texts, query: str, found: list[CandidateSummary],
                  page: int) -> tuple[str, Any]:
    pages = max(1, math.ceil(len(found) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    text = t("hr.find_many", query=query, count=len(found), page=page, pages=pages)
    return text, search_results_keyboard(t, [(c.id, _label(c)) for c in shown], page, pages)


async def results_page(callback: CallbackQuery, callback_data: HrSearchPage, state: FSMContext,
                       t: Texts, db: Database) -> None:
    """Another page of the last search's results."""
    query = (await state.get_data()).get("hr_query")
    target = target_of(callback)
    if not query or target is None:
        await callback.answer(t("fallback.callback"))
        return
    await callback.answer()
    found = await search_candidates(db, query)
    if not found:
        await edit_or_send(target, t("hr.find_none", query=query))
        return
    text, markup = _results_page(t, query, found, callback_data.page)
    await edit_or_send(target, text, reply_markup=markup)


# --- the card --------------------------------------------------------------------------------


def render_card(t: Texts, card: CandidateCard, zone: tzinfo = UTC,
                cvat_link: str | None = None,
                decision: DecisionRecord | None = None) -> list[str]:
    """The card as messages: the candidate and HR's decision, then each attempt with metrics,
    wrong plates and (given `cvat_link`) a link to its CVAT job; times in `zone`."""
    c = card.candidate
    if c.cvat_username is None:
        cvat = t("hr.cvat_none")
    elif c.cvat_deleted_at is not None:
        cvat = t("hr.cvat_deleted", username=cut(c.cvat_username),
                 date=when_text(t, c.cvat_deleted_at, zone))
    elif c.cvat_deactivated_at is not None:
        cvat = t("hr.cvat_deactivated", username=cut(c.cvat_username),
                 date=when_text(t, c.cvat_deactivated_at, zone))
    else:
        cvat = t("hr.cvat_active", username=cut(c.cvat_username))
    blocks = [t("hr.card_head", name=_name(c), username=_username(c),
                telegram_id=c.telegram_id, cvat=Raw(cvat), created=when_text(t, c.created_at, zone),
                extra=c.extra_attempts)]
    if decision is not None:
        blocks.append(decision_line(t, decision, zone))
    if c.returned_after is not None:
        blocks.append(t("hr.returning", date=when_text(t, c.returned_after, zone),
                        attempts=c.previous_attempts))
        if c.previously_tested_at is not None:
            blocks[-1] += "\n" + t("hr.tested_before",
                                   date=when_text(t, c.previously_tested_at, zone))
    if not card.attempts:
        blocks.append(t("hr.card_no_attempts"))
    for attempt in card.attempts:
        lines = [t("hr.attempt_head", number=attempt.number,
                   status=t(f"hr.status_{attempt.status}"), images=attempt.images),
                 t("hr.attempt_times", started=when_text(t, attempt.task_started, zone),
                   ended=when_text(t, attempt.task_ended, zone),
                   spent=_spent(t, attempt.time_spent))]
        if cvat_link and attempt.cvat_task_id and attempt.cvat_job_id:
            lines.append(t("hr.attempt_job", url=job_url(cvat_link, attempt.cvat_task_id,
                                                          attempt.cvat_job_id),
                           job=attempt.cvat_job_id))
        if attempt.grading_error:
            lines.append(t("hr.attempt_not_graded", error=cut(attempt.grading_error, 200)))
        m = attempt.metrics
        if m is not None and attempt.verdict is not None:
            lines.append(t("hr.attempt_result", verdict=verdict_line(t, attempt.verdict)))
            lines += [gate_row(t, gate) for gate in attempt.verdict.gates]
            lines.append(t("hr.attempt_figures", **{
                key: _number(t, m[key]) for key in (
                    "car_iou", "plate_iou", "plate_accuracy", "plate_cer", "score")}, **{
                key: _count(t, m[key]) for key in (
                    "car_missed", "car_extra", "plate_missed", "plate_extra")}))
            if m.get("rule_id"):
                lines.append(t("hr.attempt_rule", rule=m["rule_id"]))
            if attempt.key_version is not None:
                lines.append(t("key.card_version", version=attempt.key_version))
            lines += flag_lines(t, attempt.flags)
            if attempt.wrong_plates:
                lines.append(t("hr.wrong_plates", count=len(attempt.wrong_plates)))
                for plate in attempt.wrong_plates[:MAX_PLATES_SHOWN]:
                    reason = plate.get("reason")
                    given = plate.get("given")
                    lines.append(t(
                        "hr.wrong_plate", image=cut(plate.get("image", "")),
                        expected=cut(plate.get("expected") or "", PLATE_TEXT_LIMIT),
                        given="—" if given is None else cut(given, PLATE_TEXT_LIMIT),
                        reason=t(f"hr.reason_{reason}") if reason in (
                            "missing", "empty", "case", "lookalike", "other") else "?"))
                if len(attempt.wrong_plates) > MAX_PLATES_SHOWN:
                    lines.append(t("hr.more_plates",
                                   count=len(attempt.wrong_plates) - MAX_PLATES_SHOWN))
        blocks.append("\n".join(lines))
    return _chunks(blocks)


async def send_card(target: Message, t: Texts, db: Database, settings: Settings,
                    candidate_id: int, actor_id: int) -> None:
    """Send the candidate's card with the buttons the reader's role allows (recorded in the
    action log)."""
    card = await candidate_card(db, candidate_id)
    if card is None:
        await target.answer(t("hr.not_found"), reply_markup=back_to_menu_keyboard(t))
        return
    messages = render_card(t, card, settings.zone, settings.cvat_link,
                           await current_decision(db, candidate_id))
    for text in messages[:-1]:
        await target.answer(text)
    pictures = [a.number for a in card.attempts if a.has_work and a.metrics is not None]
    markup = card_keyboard(t, candidate_id, pictures,
                           can_regrade=any(a.has_work for a in card.attempts),
                           has_cvat_account=card.candidate.has_cvat_account,
                           deactivated=card.candidate.cvat_deactivated_at is not None,
                           admin=await is_admin(db, settings.hr_admin_ids, actor_id))
    await target.answer(messages[-1], reply_markup=markup)
    await record_action(db, actor_id, "hr.card", candidate_id)


_CONFIRM_TEXTS = {
    CardAct.EXTRA: "hr.confirm_extra",
    CardAct.REGRADE: "hr.confirm_regrade",
    CardAct.DELETE_CVAT: "hr.confirm_delete_cvat",
    CardAct.DELETE_DATA: "hr.confirm_delete_data",
}


async def card_pressed(callback: CallbackQuery, callback_data: HrCard, t: Texts, db: Database,
                       cvat: AsyncCvatClient, grader: GradingProcesses, settings: Settings,
                       bot: Bot) -> None:
    """A button on a card, a confirmation, or a notification."""
    await callback.answer()
    target = target_of(callback)
    if target is None:
        return
    act, cid, actor = callback_data.act, callback_data.cid, callback.from_user.id
    if act == CardAct.OPEN:
        await send_card(target, t, db, settings, cid, actor)
    elif act == CardAct.PICTURES:
        await send_pictures(target, t, db, grader, bot, cid, callback_data.arg, actor)
    elif act == CardAct.SCORECARD:
        await send_scorecard(target, t, db, grader, settings, cid, actor)
    elif act == CardAct.CANCEL:
        await edit_or_send(target, t("hr.cancelled"))
    elif act in _CONFIRM_TEXTS:
        candidate = await candidate_summary(db, cid)
        if candidate is None:
            await target.answer(t("hr.not_found"))
            return
        await target.answer(
            t(_CONFIRM_TEXTS[act], name=_name(candidate),
              cvat=cut(candidate.cvat_username or "")),
            reply_markup=card_confirm_keyboard(t, act, cid,
                                               with_account=candidate.has_cvat_account))
    else:
        await _confirmed_action(target, t, db, cvat, grader, settings, bot, act, cid, actor)


async def _confirmed_action(target: Message, t: Texts, db: Database, cvat: AsyncCvatClient,
                            grader: GradingProcesses, settings: Settings, bot: Bot,
                            act: CardAct, cid: int, actor: int) -> None:
    """The second press: do it, and show the result in place of the confirmation."""
    candidate = await candidate_summary(db, cid)
    if candidate is None:
        await edit_or_send(target, t("hr.not_found"))
        return
    name = _name(candidate)
    if act == confirmed(CardAct.EXTRA):
        extra = await grant_extra_attempt(db, actor, cid)
        await edit_or_send(target, t("hr.extra_done", name=name, extra=extra))
        await _tell_candidate(bot, db, settings, candidate.telegram_id)
    elif act == confirmed(CardAct.REGRADE):
        await edit_or_send(target, t("hr.regrade_working"))
        results = await regrade_candidate(db, grader, actor, cid)
        if not results:
            await edit_or_send(target, t("hr.regrade_nothing", name=name))
            return
        lines = [t("hr.regrade_done", name=name)]
        for number, result in results:
            lines.append(t("hr.regrade_failed_line", number=number) if result is None else
                         t("hr.regrade_line", number=number,
                           verdict=verdict_line(t, result.verdict)))
        await edit_or_send(target, "\n".join(lines))
    elif act == confirmed(CardAct.DELETE_CVAT):
        try:
            outcome = await delete_cvat_account(db, cvat, actor, cid)
        except CvatError as exc:
            logger.warning("CVAT account of candidate %s not deleted: %s", cid, exc)
            await edit_or_send(target, t("hr.cvat_trouble"))
            return
        key = {"deleted": "hr.delete_cvat_done", "already_gone": "hr.delete_cvat_gone",
               "no_account": "hr.delete_cvat_none"}.get(outcome, "hr.not_found")
        await edit_or_send(target, t(key, name=name, cvat=cut(candidate.cvat_username or "")))
    elif act in (CardAct.DELETE_DATA_OK, CardAct.DELETE_ALL_OK):
        account = DELETE_ACCOUNT if act == CardAct.DELETE_ALL_OK else KEEP_ACCOUNT
        try:
            outcome = await delete_candidate_data(db, cvat, actor, cid, account)
        except CvatError as exc:
            logger.warning("data of candidate %s not deleted: CVAT: %s", cid, exc)
            await edit_or_send(target, t("hr.cvat_trouble"))
            return
        key = {"deleted": "hr.delete_data_done", "building": "hr.delete_data_building"}
        await edit_or_send(target, t(key.get(outcome, "hr.not_found"), name=name))
    elif act == CardAct.REACTIVATE:
        try:
            outcome = await reactivate_cvat_account(db, cvat, actor, cid)
        except CvatError as exc:
            logger.warning("CVAT account of candidate %s not reactivated: %s", cid, exc)
            await target.answer(t("hr.reactivate_trouble"))
            return
        await target.answer(t(f"hr.reactivate_{outcome}", name=name,
                              cvat=cut(candidate.cvat_username or "")))


async def _tell_candidate(bot: Bot, db: Database, settings: Settings, telegram_id: int) -> None:
    """Let the candidate know about the extra attempt (never fails the HR action)."""
    try:
        ct = Texts(pick_language(await user_language(db, telegram_id), None))
        await bot.send_message(telegram_id, ct("hr.extra_to_candidate"),
                               reply_markup=await menu_for(ct, db, settings, telegram_id))
    except (TelegramAPIError, DatabaseUnavailable) as exc:
        logger.warning("candidate %s not told about the extra attempt: %s", telegram_id, exc)


async def send_pictures(target: Message, t: Texts, db: Database, grader: GradingProcesses,
                        bot: Bot, candidate_id: int, number: int, actor: int) -> None:
    """The error pictures of one attempt as albums of at most ten."""
    card = await candidate_card(db, candidate_id)
    attempt = next((a for a in card.attempts if a.number == number), None) if card else None
    if card is None or attempt is None:
        await target.answer(t("hr.not_found"))
        return
    if not attempt.has_work:
        await target.answer(t("hr.pictures_unavailable", number=number))
        return
    status = await target.answer(t("hr.pictures_working"))
    try:
        pictures = await error_pictures(db, grader, attempt.id, picture_labels(t))
    except (GradingFailed, AnnotationFormatError) as exc:
        logger.warning("pictures of attempt %s not drawn: %s", attempt.id, exc)
        await edit_or_send(status, t("hr.pictures_failed", number=number))
        return
    await record_action(db, actor, "hr.pictures", candidate_id,
                        {"attempt": number, "pictures": len(pictures)})
    if not pictures:
        await edit_or_send(status, t("hr.pictures_none", number=number))
        return
    await edit_or_send(status, t("hr.pictures_ready", number=number, count=len(pictures)))
    chat_id = target.chat.id
    albums = math.ceil(len(pictures) / ALBUM_SIZE)
    size = math.ceil(len(pictures) / albums)  # even albums: never a lone picture at the end
    for index in range(albums):
        if index:
            await asyncio.sleep(ALBUM_PAUSE)
        group = pictures[index * size:(index + 1) * size]
        if len(group) == 1:
            name, data = group[0]
            await bot.send_photo(chat_id, BufferedInputFile(data, filename=name), caption=name)
            continue
        media = [InputMediaPhoto(media=BufferedInputFile(data, filename=name), caption=name)
                 for name, data in group]
        await bot.send_media_group(chat_id, media)


# --- the whitelist -----------------------------------------------------------------------------


async def show_whitelist(target: Message, t: Texts, db: Database, settings: Settings,
                         page: int, *, edit: bool = False) -> None:
    """One page of HR users with their roles; for admins, remove and role buttons and Add."""
    members = await hr_members(db, settings.hr_admin_ids)
    pages = max(1, math.ceil(len(members) / WHITELIST_PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = members[(page - 1) * WHITELIST_PAGE_SIZE:page * WHITELIST_PAGE_SIZE]
    lines = [t("hr.wl_title", count=len(members), page=page, pages=pages)]
    for member in shown:
        who = " ".join(p for p in (member.full_name,
                                   f"@{member.username}" if member.username else "") if p)
        lines.append(t("hr.wl_item_settings" if member.from_settings else "hr.wl_item",
                       who=who, telegram_id=member.telegram_id,
                       role=t(f"hr.role_{member.role}")))
    removable = [(m.telegram_id, m.full_name or (f"@{m.username}" if m.username else "")
                  or str(m.telegram_id), m.role) for m in shown if m.on_whitelist]
    reader = target.chat.id
    markup = whitelist_keyboard(t, removable, page, pages,
                                admin=await is_admin(db, settings.hr_admin_ids, reader))
    if edit:
        await edit_or_send(target, "\n".join(lines), reply_markup=markup)
    else:
        await target.answer("\n".join(lines), reply_markup=markup)


async def whitelist_pressed(callback: CallbackQuery, callback_data: HrWhitelist,
                            state: FSMContext, t: Texts, db: Database,
                            settings: Settings) -> None:
    """Paging, Add, Remove and its confirmation."""
    await callback.answer()
    target = target_of(callback)
    if target is None:
        return
    act, tid, page = callback_data.act, callback_data.tid, callback_data.page
    if act == WhitelistAct.PAGE:
        await show_whitelist(target, t, db, settings, page, edit=True)
    elif act == WhitelistAct.ADD:
        await state.set_state(HrStates.whitelist_add)
        await target.answer(t("hr.wl_add_ask"))
    elif act == WhitelistAct.REMOVE:
        member = next((m for m in await hr_members(db, settings.hr_admin_ids)
                       if m.telegram_id == tid), None)
        name = member.full_name if member and member.full_name else ""
        await target.answer(t("hr.wl_confirm_remove", telegram_id=tid,
                              name=f" {name}" if name else ""),
                            reply_markup=whitelist_confirm_keyboard(t, tid, page))
    elif act == WhitelistAct.REMOVE_OK:
        outcome = await remove_from_whitelist(db, callback.from_user.id, tid,
                                              settings.hr_admin_ids)
        key = {"removed": "hr.wl_removed", "last": "hr.wl_last", "settings": "hr.wl_settings"
               }.get(outcome, "hr.wl_not_found")
        await edit_or_send(target, t(key, telegram_id=tid))
        await show_whitelist(target, t, db, settings, page)
    elif act == WhitelistAct.ROLE:
        member = next((m for m in await hr_members(db, settings.hr_admin_ids)
                       if m.telegram_id == tid), None)
        role = Role.VIEWER if member is not None and member.role == Role.ADMIN else Role.ADMIN
        outcome = await set_role(db, callback.from_user.id, tid, role, settings.hr_admin_ids)
        await target.answer(t(f"hr.wl_role_{outcome}", telegram_id=tid,
                              role=t(f"hr.role_{role}")))
        await show_whitelist(target, t, db, settings, page)
    else:
        await edit_or_send(target, t("hr.cancelled"))


async def whitelist_add_received(message: Message, state: FSMContext, t: Texts, db: Database,
                                 settings: Settings) -> None:
    """A typed id or a forwarded message: put that person on the whitelist."""
    origin = message.forward_origin
    username: str | None = None
    name = ""
    if isinstance(origin, MessageOriginUser):
        telegram_id = origin.sender_user.id
        username, name = origin.sender_user.username, origin.sender_user.full_name
    elif isinstance(origin, MessageOriginHiddenUser):
        await message.answer(t("hr.wl_add_hidden"))
        return
    elif origin is None and (message.text or "").strip().isdigit():
        telegram_id = int((message.text or "").strip())
    else:
        await message.answer(t("hr.wl_add_bad"))
        return
    if not 0 < telegram_id < 2**53:
        await message.answer(t("hr.wl_add_bad"))
        return
    added = await add_to_whitelist(db, message.chat.id, telegram_id, username)
    await state.set_state(None)
    await message.answer(t("hr.wl_added" if added else "hr.wl_already",
                           telegram_id=telegram_id, name=f" {name}" if name else ""))
    await show_whitelist(message, t, db, settings, 1)


# --- notifications -----------------------------------------------------------------------------


async def notify_hr(bot: Bot | None, db: Database, settings: Settings,
                    outcome: SubmitOutcome, pacer: Pacer | None = None) -> int:
    """After a submission: the band and the gates that made it (or, if the grading failed,
    that it did) to every HR user with notifications on; paced, and one failed send never
    stops the others. Returns how many were sent."""
    if bot is None or outcome.kind not in ("graded", "grading_failed") or outcome.attempt is None:
        return 0
    try:
        candidate = await candidate_summary(db, outcome.attempt.candidate_id)
        recipients = await notification_recipients(db, settings.hr_admin_ids)
        flags = (await flags_of(db, [outcome.attempt.id])).get(outcome.attempt.id, [])
    except DatabaseUnavailable as exc:
        logger.warning("HR not notified of attempt %s: %s", outcome.attempt.id, exc)
        return 0
    if candidate is None:
        return 0
    sent = 0
    for hr_id, language in recipients:
        ht = Texts(pick_language(language, None))
        who = f"{_name(candidate)} {_username(candidate)}".strip()
        if outcome.result is not None:
            text = "\n".join([ht("hr.notice", who=who, number=outcome.attempt.number,
                                  verdict=verdict_line(ht, outcome.result.verdict)),
                               *flag_lines(ht, flags)])
        else:
            text = ht("hr.notice_not_graded", who=who, number=outcome.attempt.number,
                      error=cut(outcome.reason, 200))
        if pacer is not None:
            await pacer.wait(hr_id)
        elif sent:
            await asyncio.sleep(NOTIFY_PAUSE)
        try:
            await bot.send_message(hr_id, text, reply_markup=open_card_keyboard(ht, candidate.id))
            sent += 1
        except TelegramAPIError as exc:
            logger.warning("HR %s not notified of attempt %s: %s", hr_id, outcome.attempt.id,
                           exc)
    return sent


# --- everyone else ---------------------------------------------------------------------------


async def denied_message(message: Message, db: Database) -> None:
    """Someone who is not HR typed an HR command: log it, then let the fallback answer."""
    await record_action(db, message.chat.id, "hr.denied", ok=False,
                        details={"text": (message.text or "")[:64]})
    raise SkipHandler


async def denied_callback(callback: CallbackQuery, db: Database) -> None:
    """Someone who is not HR pressed (or forged) an HR button: log it, fall through."""
    await record_action(db, callback.from_user.id, "hr.denied", ok=False,
                        details={"data": (callback.data or "")[:64]})
    raise SkipHandler


def _typed(key: str) -> Any:
    return F.text.in_(Texts("en").all_variants(key))


def create_router() -> Router:
    """The HR router: every handler behind the HR filter."""
    router = Router(name="hr")
    router.message.filter(HRFilter())
    router.callback_query.filter(HRFilter())
    router.message.register(open_menu, Command("hr"))
    router.message.register(open_menu, _typed("hr.menu_button"))
    router.message.register(typed_export, _typed("hr.btn_export"))
    router.message.register(typed_find, _typed("hr.btn_find"))
    router.message.register(typed_whitelist, _typed("hr.btn_whitelist"))
    router.message.register(query_received, HrStates.find, F.text & ~F.text.startswith("/"))
    router.message.register(query_not_text, HrStates.find, ~F.text)
    router.message.register(whitelist_add_received, HrStates.whitelist_add,
                            F.func(lambda m: not (m.text or "").startswith("/")))
    router.callback_query.register(menu_pressed, HrMenu.filter())
    router.callback_query.register(card_pressed, HrCard.filter())
    router.callback_query.register(results_page, HrSearchPage.filter())
    router.callback_query.register(whitelist_pressed, HrWhitelist.filter())
    return router


def create_denied_router() -> Router:
    """After the HR router: logs HR-shaped updates from anyone else, answers nothing."""
    router = Router(name="hr_denied")
    for key in ("hr.menu_button", "hr.btn_export", "hr.btn_find", "hr.btn_whitelist",
                "key.btn"):
        router.message.register(denied_message, _typed(key))
    router.message.register(denied_message, Command("hr"))
    router.callback_query.register(denied_callback, F.data.func(is_hr_callback))
    return router
