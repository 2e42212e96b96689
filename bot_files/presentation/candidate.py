"""What candidates read: the menu for their stage, the greeting, the login (written once, for
a reply and for a login finished in the background), the submission report, the expiry, and
the messages HR send them (a decision, a reply, an extra attempt)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from aiogram.types import ReplyKeyboardMarkup, User

from bot_files.hr_keyboards import reply_keyboard
from bot_files.keyboards import (
    credentials_keyboard,
    main_menu,
    new_attempt_keyboard,
    support_reply_keyboard,
)
from bot_files.presentation.text import Letter
from bot_files.presentation.verdicts import candidate_result, standing_line
from bot_files.services import Account
from bot_files.texts import Raw, Texts, limit_text, problem_text
from config.env import Settings
from tasks_generator.to_handlers import (
    EXPIRED,
    IMAGES,
    Credentials,
    Stage,
    StageKind,
    TaskRequest,
    TaskRequestKind,
    TaskSet,
    Visitor,
    guide_text,
)
from tasks_metrics.to_handlers import (
    CandidateSummary,
    Standing,
    SubmitKind,
    SubmitOutcome,
    hint_codes,
)

MAX_PROBLEM_LINES = 25


# --- the menu and the greeting -----------------------------------------------------------------


def current_menu(t: Texts, visitor: Visitor | None) -> ReplyKeyboardMarkup:
    """The reply keyboard fitting the user's stage (new, building, ready, done), with the HR
    menu button for HR users; `visitor` comes with every update (UserContextMiddleware)."""
    if visitor is None:  # the database could not be asked: the plain menu
        return main_menu(t)
    return main_menu(t, visitor.stage.kind, visitor.stage.attempts_left, hr=visitor.hr)


def stage_menu(t: Texts, stage: Stage, *, hr: bool) -> ReplyKeyboardMarkup:
    """The menu of someone whose stage was read now (not the one writing)."""
    return main_menu(t, stage.kind, stage.attempts_left, hr=hr)


def next_step(t: Texts, kind: StageKind, attempts_left: int) -> str:
    """What to do next at this stage, as the greeting ends."""
    key = {StageKind.NEW: "start.next_new", StageKind.FAILED: "start.next_new",
           StageKind.BUILDING: "start.next_building", StageKind.READY: "start.next_ready"}.get(
        kind, "start.next_done_more" if attempts_left else "start.next_done")
    return t(key)


def greeting(t: Texts, terms: Account, visitor: Visitor | None, name: str) -> Letter:
    """What the test is, how long, how many attempts (`terms`: the test's settings, task set
    and privacy notice), the privacy notice, the next step."""
    settings = terms.settings
    text = t("start.greeting", name=name, images=terms.task_set.images_per_task,
             minutes=settings.test_duration_minutes, attempts=settings.max_attempts,
             counting=Raw(t(f"counting.{settings.attempt_counts}")
                          if settings.max_attempts > 1 else ""))
    kind = visitor.stage.kind if visitor else StageKind.NEW
    left = visitor.stage.attempts_left if visitor else settings.max_attempts
    notice = t("privacy.block", notice=terms.privacy_notice()[t.language])
    return Letter(f"{text}\n\n{notice}\n\n{next_step(t, kind, left)}", current_menu(t, visitor))


# --- the login ---------------------------------------------------------------------------------


def credentials(t: Texts, login: Credentials) -> Letter:
    """Where and how to log in, with the button that opens CVAT."""
    return Letter(t("credentials.text", number=login.attempt_number, url=login.url,
                    username=login.username, password=login.password),
                  credentials_keyboard(t, login.url))


def credentials_with_guide(t: Texts, login: Credentials, task_set: TaskSet,
                           intro_key: str | None = None) -> list[Letter]:
    """The login, then the guide with the menu of an open task (after an intro, if any)."""
    letters = [Letter(t(intro_key))] if intro_key else []
    return [*letters, credentials(t, login),
            Letter(guide_text(t.language, task_set), main_menu(t, StageKind.READY))]


def credentials_ready(t: Texts, login: Credentials, task_set: TaskSet) -> list[Letter]:
    """A login finished in the background (after a restart): it is ready, then as above."""
    return credentials_with_guide(t, login, task_set, "progress.ready_title")


def closed_attempt(t: Texts, stage: Stage) -> Letter:
    """My credentials after a submitted or expired attempt: it is closed, and what is next."""
    more = stage.attempts_left > 0
    return Letter(t("credentials.closed" if more else "credentials.finished",
                    number=stage.number),
                  new_attempt_keyboard(t) if more else None)


def progress(t: Texts, title_key: str, stages: Sequence[str],
             done_of: dict[str, tuple[int, int]]) -> str:
    """The build's progress: a line per stage (done ✅, under way ⏳, not yet ▫️), images as
    k/n."""
    lines = [t(title_key), ""]
    for stage in stages:
        done, total = done_of.get(stage, (0, 0))
        if stage in done_of and total and done >= total:
            icon = "✅"
        elif stage in done_of:
            icon = "⏳"
        else:
            icon = "▫️"
        if stage == IMAGES and total:
            label = t("progress.images", done=done, total=total)
        else:
            label = t("progress.images_plain" if stage == IMAGES else f"progress.{stage}")
        lines.append(f"{icon} {label}")
    return "\n".join(lines)


# --- asking for a task -------------------------------------------------------------------------


def cooldown_text(t: Texts, available_at: datetime, zone: tzinfo, zone_name: str) -> str:
    """"You can start the next attempt in about 25 min (at 14:05, Europe/Moscow)"."""
    minutes = max(1, math.ceil((available_at - datetime.now(UTC)).total_seconds() / 60))
    local = available_at.astimezone(zone)
    return t("task.cooldown", minutes=minutes, time=local.strftime("%H:%M"), zone=zone_name)


def none_left(t: Texts, allowed: int) -> Letter:
    """Every attempt is used."""
    return Letter(t("task.none_left", allowed=allowed), main_menu(t, StageKind.DONE, 0))


def confirm_question(t: Texts, settings: Settings, task_set: TaskSet, stage: Stage,
                     standing: Standing | None) -> str:
    """The question before the first task, or before the next attempt (with the standing)."""
    if not stage.opens_new_attempt:
        return t("task.confirm", images=task_set.images_per_task)
    lines = [t("task.confirm_new", number=stage.number + 1,
               allowed=stage.number + stage.attempts_left, images=task_set.images_per_task),
             t(f"counting.{settings.attempt_counts}")]
    if standing is not None:
        lines.append(standing_line(t, standing))
    return "\n\n".join(lines)


def request_outcome(t: Texts, result: TaskRequest, task_set: TaskSet,
                    settings: Settings) -> list[Letter]:
    """Every outcome of asking for a task except a fresh build (and a takeover: the builder
    that took over sends the login, so nothing)."""
    if result.kind == TaskRequestKind.TAKEN_OVER:
        return []
    if result.kind == TaskRequestKind.READY and result.credentials is not None:
        return credentials_with_guide(t, result.credentials, task_set, "task.already")
    if result.kind == TaskRequestKind.BUSY:
        return [Letter(t("task.busy"))]
    if result.kind == TaskRequestKind.DONE and result.attempt is not None:
        left = result.attempts_left
        if result.attempt.status == EXPIRED:
            return [expiry(t, "deadline.task_expired", result.attempt.number, left)]
        return [Letter(t("task.done_more" if left > 0 else "task.done",
                         number=result.attempt.number),
                       new_attempt_keyboard(t) if left > 0 else None)]
    if result.kind == TaskRequestKind.NO_ATTEMPTS_LEFT:
        return [none_left(t, result.allowed)]
    if result.kind == TaskRequestKind.COOLDOWN and result.available_at is not None:
        return [Letter(cooldown_text(t, result.available_at, settings.zone, settings.timezone))]
    return [Letter(t("task.no_task"))]


# --- the submission ----------------------------------------------------------------------------


def problem_list(t: Texts, outcome: SubmitOutcome, title_key: str) -> str:
    """What is missing or wrong, one line per problem, under a title."""
    lines = [t(title_key), ""]
    for problem in outcome.problems[:MAX_PROBLEM_LINES]:
        lines.append(t("submit.item", image=problem.image,
                       problem=problem_text(t, problem.code, problem.params)))
    if len(outcome.problems) > MAX_PROBLEM_LINES:
        lines.append(t("submit.more", count=len(outcome.problems) - MAX_PROBLEM_LINES))
    return "\n".join(lines)


def _after_grading(t: Texts, outcome: SubmitOutcome, settings: Settings) -> str:
    """The paragraphs after "submitted": the result if it is shown, hints and the counting
    rule while attempts remain, when HR will write."""
    result = outcome.result
    final = outcome.attempts_left == 0
    parts = [t("submit.thanks", number=outcome.attempt.number if outcome.attempt else 0)]
    if result is not None and (settings.show_score or (
            final and settings.result_after_final and settings.candidate_result != "off")):
        shown = "gates" if settings.show_score else settings.candidate_result
        parts.append(candidate_result(t, result.verdict, shown))
    if not final:
        codes = hint_codes(result.verdict, result.report) if (
            settings.hints and result is not None) else []
        if codes:
            parts.append("\n".join([t("hints.title"),
                                    *(t("hints.item", hint=t(f"hints.{code}"))
                                      for code in codes)]))
        parts.append(t("submit.more_attempts", left=outcome.attempts_left))
        parts.append(t(f"counting.{settings.attempt_counts}"))
    parts.append(t("submit.hr_will_write", days=settings.reply_days) if settings.reply_days
                 else t("submit.hr_will_write_soon"))
    return "\n\n".join(parts)


_PLAIN_OUTCOMES = {SubmitKind.NO_TASK: "task.no_task", SubmitKind.NOT_READY: "task.not_ready",
                   SubmitKind.ALREADY_SUBMITTED: "submit.already",
                   SubmitKind.CHECKING: "submit.checking_already",
                   SubmitKind.UNREADABLE: "submit.unreadable"}


def submission_report(t: Texts, outcome: SubmitOutcome,
                      settings: Settings) -> tuple[str, Letter | None]:
    """What Submit (or Check, when it found the work already submitted) led to: the text
    that replaces the "checking…" message, and a message after it with the menu, if any."""
    if outcome.kind == SubmitKind.INCOMPLETE:
        return problem_list(t, outcome, "submit.incomplete"), None
    if outcome.kind == SubmitKind.OVER_LIMIT and outcome.limit is not None:
        return t("submit.over_limit", problem=limit_text(t, outcome.limit)), None
    if outcome.stored and outcome.attempt is not None:
        left = outcome.attempts_left
        return _after_grading(t, outcome, settings), Letter(
            t("start.next_done_more" if left else "start.next_done"),
            main_menu(t, StageKind.DONE, left))
    if outcome.kind == SubmitKind.EXPIRED and outcome.attempt is not None:
        return t("deadline.submit_expired", number=outcome.attempt.number), Letter(
            expiry_next(t, outcome.attempts_left), expiry_menu(t, outcome.attempts_left))
    return t(_PLAIN_OUTCOMES[outcome.kind]), None


# --- deadlines ---------------------------------------------------------------------------------


def expiry_next(t: Texts, attempts_left: int) -> str:
    """What a candidate whose attempt expired can do: a new attempt, or write to HR."""
    return t("deadline.expired_more" if attempts_left else "deadline.expired_none")


def expiry_menu(t: Texts, attempts_left: int) -> ReplyKeyboardMarkup:
    """The candidate's menu after an expiry: a new attempt while any are left."""
    return main_menu(t, StageKind.DONE, attempts_left)


def expiry(t: Texts, key: str, number: int, attempts_left: int) -> Letter:
    """Why attempt `number` is closed (`key`: what happened) and what the candidate can do."""
    return Letter(f"{t(key, number=number)}\n\n{expiry_next(t, attempts_left)}",
                  expiry_menu(t, attempts_left))


def reminder(t: Texts, number: int, hours_left: int) -> Letter:
    """The nudge before the deadline."""
    return Letter(t("deadline.reminder", number=number, hours=hours_left))


# --- from HR, and to HR ------------------------------------------------------------------------


def decision_letter(t: Texts, candidate: CandidateSummary, decision: str, note: str,
                    standing: Standing | None, shown: str) -> Letter:
    """HR's decision to the candidate: the template, HR's line, and the result as
    CANDIDATE_RESULT (`shown`) shows it."""
    parts = [t(f"decision.{decision}", name=candidate.full_name.split(" ")[0]
               or candidate.full_name)]
    if note:
        parts.append(t("decision.note", note=note))
    if standing is not None:
        parts.append(candidate_result(t, standing.verdict, shown))
    return Letter("\n\n".join(parts))


def hr_reply(t: Texts, text: str) -> Letter:
    """HR's answer to a support message, with a button to write back."""
    return Letter(t("support.from_hr", text=text), support_reply_keyboard(t))


def extra_attempt(t: Texts, menu: ReplyKeyboardMarkup) -> Letter:
    """HR granted one more attempt."""
    return Letter(t("hr.extra_to_candidate"), menu)


def support_message(t: Texts, sender: User, text: str) -> Letter:
    """A candidate's message, as HR get it, with a Reply button."""
    return Letter(t("support.to_hr", name=sender.full_name,
                    username=f"@{sender.username}" if sender.username else "",
                    telegram_id=sender.id, text=text),
                  reply_keyboard(t, sender.id))
