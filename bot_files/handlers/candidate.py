"""The candidate's journey: get a test task, credentials, submit, a new attempt."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import CallbackQuery, Message, User

from bot_files.deadlines import expiry_menu, expiry_next, expiry_text
from bot_files.handlers.common import privacy_notice
from bot_files.handlers.hr import notify_hr
from bot_files.jobs import JobQueue
from bot_files.keyboards import (
    ConfirmTask,
    TaskAction,
    TaskStep,
    confirm_keyboard,
    credentials_keyboard,
    main_menu,
    new_attempt_keyboard,
    retry_keyboard,
    submit_confirm_keyboard,
)
from bot_files.replies import target_of
from bot_files.texts import Texts, limit_text, pick_language, problem_text
from bot_files.verdicts import candidate_result, standing_line
from bot_files.work import check_work, request_test_task, submit_work
from config.env import Settings
from connection import CvatError, CvatNotFound, CvatUnavailable
from create_users.to_handlers import has_consented, notice_version, record_consent, user_language
from db import Database
from tasks_generator.to_handlers import (
    ACCOUNT,
    EXPIRED,
    IMAGES,
    READY_STAGE,
    TASK,
    Credentials,
    Stage,
    TaskRequest,
    TaskSet,
    candidate_stage,
    guide_text,
    next_attempt_at,
    resend_credentials,
)
from tasks_metrics.to_handlers import SubmitOutcome, hint_codes, standing

logger = logging.getLogger(__name__)
MAX_PROBLEM_LINES = 25
EDIT_INTERVAL = 1.0  # Telegram allows about one message update per second in a chat


class ProgressMessage:
    """One message edited in place while the task is built: account, task, images k/n, ready."""

    STAGES = (ACCOUNT, TASK, IMAGES, READY_STAGE)

    def __init__(self, message: Message, t: Texts) -> None:
        self.message = message
        self.t = t
        self.progress: dict[str, tuple[int, int]] = {}
        self._shown = ""
        self._last_edit = 0.0

    async def __call__(self, stage: str, done: int, total: int) -> None:
        """Record a step's progress and show it (at most once a second)."""
        self.progress[stage] = (done, total)
        await self._show(self.render("progress.title"), force=False)

    async def start(self) -> None:
        """Turn the message into the progress display."""
        await self._show(self.render("progress.title"), force=True)

    async def finish(self, ok: bool) -> None:
        """Show the final state, whatever the rate."""
        await self._show(self.render("progress.ready_title" if ok else "progress.failed_title"),
                         force=True)

    def render(self, title_key: str) -> str:
        """The message text for the current progress."""
        lines = [self.t(title_key), ""]
        for stage in self.STAGES:
            done, total = self.progress.get(stage, (0, 0))
            if stage in self.progress and total and done >= total:
                icon = "✅"
            elif stage in self.progress:
                icon = "⏳"
            else:
                icon = "▫️"
            if stage == IMAGES and total:
                label = self.t("progress.images", done=done, total=total)
            else:
                label = self.t("progress.images_plain" if stage == IMAGES
                               else f"progress.{stage}")
            lines.append(f"{icon} {label}")
        return "\n".join(lines)

    async def _show(self, text: str, *, force: bool) -> None:
        now = time.monotonic()
        if text == self._shown or (not force and now - self._last_edit < EDIT_INTERVAL):
            return
        try:
            await self.message.edit_text(text)
        except TelegramRetryAfter:
            return  # progress is a courtesy: skip this update rather than wait
        except TelegramBadRequest as exc:
            logger.debug("progress message not edited: %s", exc)
            return
        self._shown, self._last_edit = text, now


async def _send_credentials(target: Message, t: Texts, credentials: Credentials,
                            task_set: TaskSet, intro_key: str | None = None) -> None:
    if intro_key:
        await target.answer(t(intro_key))
    await target.answer(
        t("credentials.text", number=credentials.attempt_number, url=credentials.url,
          username=credentials.username, password=credentials.password),
        reply_markup=credentials_keyboard(t, credentials.url),
    )
    await target.answer(guide_text(t.language, task_set), reply_markup=main_menu(t, "ready"))


async def deliver_credentials(bot: Bot, db: Database, telegram_id: int,
                              credentials: Credentials, task_set: TaskSet) -> None:
    """Send the login of a task finished in the background (after a restart)."""
    language = await user_language(db, telegram_id)
    t = Texts(pick_language(language, None))
    await bot.send_message(telegram_id, t("progress.ready_title"))
    await bot.send_message(
        telegram_id,
        t("credentials.text", number=credentials.attempt_number, url=credentials.url,
          username=credentials.username, password=credentials.password),
        reply_markup=credentials_keyboard(t, credentials.url))
    await bot.send_message(telegram_id, guide_text(t.language, task_set),
                           reply_markup=main_menu(t, "ready"))


def cooldown_text(t: Texts, available_at: datetime, settings: Settings) -> str:
    """"You can start the next attempt in about 25 min (at 14:05, Europe/Moscow)"."""
    minutes = max(1, math.ceil((available_at - datetime.now(UTC)).total_seconds() / 60))
    local = available_at.astimezone(settings.zone)
    return t("task.cooldown", minutes=minutes, time=local.strftime("%H:%M"),
             zone=settings.timezone)


async def _explain_request(target: Message, t: Texts, result: TaskRequest,
                           task_set: TaskSet, settings: Settings) -> None:
    """Every outcome of asking for a task except a fresh build."""
    if result.kind == "taken_over":
        return  # the builder that took over sends the login
    if result.kind == "ready" and result.credentials is not None:
        await _send_credentials(target, t, result.credentials, task_set, "task.already")
    elif result.kind == "busy":
        await target.answer(t("task.busy"))
    elif result.kind == "done" and result.attempt is not None and result.attempt.status == EXPIRED:
        left = result.allowed - result.used
        await target.answer(expiry_text(t, "deadline.task_expired", result.attempt.number, left),
                            reply_markup=expiry_menu(t, left))
    elif result.kind == "done" and result.attempt is not None:
        more = result.allowed > result.used
        await target.answer(t("task.done_more" if more else "task.done",
                              number=result.attempt.number),
                            reply_markup=new_attempt_keyboard(t) if more else None)
    elif result.kind == "no_attempts_left":
        await target.answer(t("task.none_left", allowed=result.allowed),
                            reply_markup=main_menu(t, "done", 0))
    elif result.kind == "cooldown" and result.available_at is not None:
        await target.answer(cooldown_text(t, result.available_at, settings))
    else:
        await target.answer(t("task.no_task"))


async def offer_task(event: Message | CallbackQuery, t: Texts, db: Database,
                     settings: Settings, task_set: TaskSet) -> None:
    """Get a test task / New attempt (typed or pressed, stale or fresh): what fits the stage:
    the confirmation of a first task or of the next attempt, the login again, or why not."""
    if isinstance(event, CallbackQuery):
        await event.answer()
    target = target_of(event)
    if target is None:
        return
    stage = await candidate_stage(db, settings, event.from_user.id)
    if stage.kind in ("new", "failed"):
        await _ask_to_confirm(target, t, db, settings, task_set, event.from_user.id, stage)
    elif stage.kind == "building":
        await target.answer(t("task.busy"))
    elif stage.kind == "ready":
        credentials = await resend_credentials(db, event.from_user.id, settings)
        if credentials is not None:
            await _send_credentials(target, t, credentials, task_set, "task.already")
    elif stage.attempts_left <= 0:
        await target.answer(t("task.none_left", allowed=stage.number),
                            reply_markup=main_menu(t, "done", 0))
    else:
        await _ask_to_confirm(target, t, db, settings, task_set, event.from_user.id, stage)


async def _ask_to_confirm(target: Message, t: Texts, db: Database, settings: Settings,
                          task_set: TaskSet, telegram_id: int, stage: Stage) -> None:
    """The confirmation of the first task or of the next attempt; with the privacy notice and
    "Yes agrees to it" for whoever has not agreed to this version of it yet."""
    new_attempt = stage.kind not in ("new", "failed")
    wait_until = await next_attempt_at(db, settings, stage.candidate_id) \
        if new_attempt and stage.candidate_id is not None else None
    if wait_until is not None:  # said before the candidate commits, not after
        await target.answer(cooldown_text(t, wait_until, settings))
        return
    if new_attempt:
        lines = [t("task.confirm_new", number=stage.number + 1,
                   allowed=stage.number + stage.attempts_left,
                   images=task_set.images_per_task),
                 t(f"counting.{settings.attempt_counts}")]
        now = await standing(db, stage.candidate_id, settings.attempt_counts) \
            if stage.candidate_id is not None else None
        if now is not None:
            lines.append(standing_line(t, now))
        question = "\n\n".join(lines)
    else:
        question = t("task.confirm", images=task_set.images_per_task)
    texts = privacy_notice(settings)
    version = notice_version(texts)
    if not await has_consented(db, telegram_id, version):
        question += "\n\n" + t("privacy.block", notice=texts[t.language]) + "\n" + \
            t("privacy.consent")
    await target.answer(question, reply_markup=confirm_keyboard(t, new_attempt=new_attempt,
                                                                notice=version))


async def _consented(target: Message, t: Texts, db: Database, settings: Settings,
                     task_set: TaskSet, telegram_id: int, shown: str) -> bool:
    """Whether the candidate agreed to the privacy notice in force: now, by pressing Yes under
    it (`shown`: the version that confirmation showed), or before. A confirmation from before
    this notice, or a forged one, gets the notice and the question again instead."""
    texts = privacy_notice(settings)
    version = notice_version(texts)
    if await has_consented(db, telegram_id, version):
        return True
    if shown == version:
        await record_consent(db, telegram_id, texts)
        return True
    await _ask_to_confirm(target, t, db, settings, task_set, telegram_id,
                          await candidate_stage(db, settings, telegram_id))
    return False


async def build_task(callback: CallbackQuery, callback_data: TaskAction | ConfirmTask, t: Texts,
                     db: Database, jobs: JobQueue, settings: Settings,
                     task_set: TaskSet) -> None:
    """Confirmed: build the task with a progress message, then send the login."""
    await callback.answer()
    target = target_of(callback)
    if target is None:
        return
    user: User = callback.from_user
    shown = callback_data.v if isinstance(callback_data, ConfirmTask) else ""
    if not await _consented(target, t, db, settings, task_set, user.id, shown):
        return
    new_attempt = callback_data.step == TaskStep.CONFIRM_NEW
    progress = ProgressMessage(target, t)
    await progress.start()
    try:
        result = await request_test_task(jobs, telegram_id=user.id, username=user.username,
                                         full_name=user.full_name, progress=progress,
                                         new_attempt=new_attempt)
    except CvatError as exc:
        await progress.finish(ok=False)
        await _cvat_trouble(target, t, exc, callback_data.step)
        return
    if result.kind == "created" and result.credentials is not None:
        await progress.finish(ok=True)
        await _send_credentials(target, t, result.credentials, task_set)
        return
    # Nothing was built (a parallel press, an attempt already submitted, none left): the
    # progress message gives way to the explanation.
    try:
        await target.delete()
    except TelegramBadRequest:
        logger.debug("progress message already gone")
    await _explain_request(target, t, result, task_set, settings)


async def _answered(callback: CallbackQuery, text: str) -> None:
    """A question's button pressed: the question gives way to `text` (its buttons go)."""
    await callback.answer()
    target = target_of(callback)
    if target is not None:
        try:
            await target.edit_text(text)
        except TelegramBadRequest:
            logger.debug("%r pressed on a message that cannot be edited", callback.data)


async def not_now(callback: CallbackQuery, t: Texts) -> None:
    """The candidate is not ready yet."""
    await _answered(callback, t("task.later"))


async def show_credentials(event: Message | CallbackQuery, t: Texts, db: Database,
                           settings: Settings) -> None:
    """My credentials: the login again (recorded in the action log)."""
    target = target_of(event)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if target is None:
        return
    stage = await candidate_stage(db, settings, event.from_user.id)
    if stage.kind == "done":  # submitted or expired: the old login opens nothing to work on
        more = stage.attempts_left > 0
        await target.answer(t("credentials.closed" if more else "credentials.finished",
                              number=stage.number),
                            reply_markup=new_attempt_keyboard(t) if more else None)
        return
    credentials = await resend_credentials(db, event.from_user.id, settings)
    if credentials is None:
        await target.answer(t("task.no_task"))
        return
    await target.answer(
        t("credentials.text", number=credentials.attempt_number, url=credentials.url,
          username=credentials.username, password=credentials.password),
        reply_markup=credentials_keyboard(t, credentials.url),
    )


async def ask_submit(event: Message | CallbackQuery, t: Texts, db: Database, jobs: JobQueue,
                     settings: Settings) -> None:
    """✅ Submit: with a task open, ask first (a submission cannot be changed); otherwise say
    why there is nothing to submit, as Submit itself would."""
    stage = await candidate_stage(db, settings, event.from_user.id)
    if stage.kind != "ready":
        await submit(event, t, db, jobs, settings)
        return
    if isinstance(event, CallbackQuery):
        await event.answer()
    target = target_of(event)
    if target is not None:
        await target.answer(t("submit.confirm", number=stage.number),
                            reply_markup=submit_confirm_keyboard(t))


async def keep_working(callback: CallbackQuery, t: Texts) -> None:
    """Not yet: the work stays open."""
    await _answered(callback, t("submit.kept_open"))


async def check(event: Message | CallbackQuery, t: Texts, db: Database, jobs: JobQueue,
                settings: Settings) -> None:
    """🔎 Check my work: the completeness check, with nothing locked or used up."""
    target = target_of(event)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if target is None:
        return
    status = await target.answer(t("check.checking"))
    try:
        outcome = await check_work(jobs, event.from_user.id)
    except CvatError as exc:
        await _cvat_trouble(status, t, exc, TaskStep.CHECK, edit=True)
        return
    if outcome.kind == "complete":
        await status.edit_text(t("check.complete"))
    elif outcome.kind == "incomplete":
        await status.edit_text(_problem_list(t, outcome, "check.incomplete"))
    else:
        await _report_submission(status, t, outcome, settings)


async def submit(event: Message | CallbackQuery, t: Texts, db: Database, jobs: JobQueue,
                 settings: Settings) -> None:
    """Submit (confirmed): the job is locked and read once; complete work is stored and
    graded, anything else reopens the job with the reason."""
    target = target_of(event)
    if isinstance(event, CallbackQuery):
        await event.answer()
        if target is not None:
            try:  # the question is answered: its buttons go
                await target.edit_reply_markup(reply_markup=None)
            except TelegramBadRequest:
                logger.debug("submit confirmation already without buttons")
    if target is None:
        return
    status = await target.answer(t("submit.checking"))
    try:
        outcome = await submit_work(jobs, event.from_user.id)
    except CvatError as exc:
        await _cvat_trouble(status, t, exc, TaskStep.SUBMIT_OK, edit=True)
        return
    await _report_submission(status, t, outcome, settings)
    await notify_hr(status.bot, db, settings, outcome)


def _problem_list(t: Texts, outcome: SubmitOutcome, title_key: str) -> str:
    """What is missing or wrong, one line per problem, under a title."""
    lines = [t(title_key), ""]
    for problem in outcome.problems[:MAX_PROBLEM_LINES]:
        lines.append(t("submit.item", image=problem.image,
                       problem=problem_text(t, problem.code, problem.params)))
    if len(outcome.problems) > MAX_PROBLEM_LINES:
        lines.append(t("submit.more", count=len(outcome.problems) - MAX_PROBLEM_LINES))
    return "\n".join(lines)


def _after_grading(t: Texts, outcome: SubmitOutcome, settings: Settings) -> list[str]:
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
    return parts


async def _report_submission(status: Message, t: Texts, outcome: SubmitOutcome,
                             settings: Settings) -> None:
    if outcome.kind == "incomplete":
        await status.edit_text(_problem_list(t, outcome, "submit.incomplete"))
        return
    if outcome.kind == "over_limit" and outcome.limit is not None:
        await status.edit_text(t("submit.over_limit", problem=limit_text(t, outcome.limit)))
        return
    if outcome.kind in ("graded", "grading_failed") and outcome.attempt is not None:
        await status.edit_text("\n\n".join(_after_grading(t, outcome, settings)))
        await status.answer(t("start.next_done_more" if outcome.attempts_left else
                              "start.next_done"),
                            reply_markup=main_menu(t, "done", outcome.attempts_left))
        return
    if outcome.kind == "expired" and outcome.attempt is not None:
        await status.edit_text(t("deadline.submit_expired", number=outcome.attempt.number))
        await status.answer(expiry_next(t, outcome.attempts_left),
                            reply_markup=expiry_menu(t, outcome.attempts_left))
        return
    key = {"no_task": "task.no_task", "not_ready": "task.not_ready",
           "already_submitted": "submit.already", "checking": "submit.checking_already",
           "unreadable": "submit.unreadable"}[outcome.kind]
    await status.edit_text(t(key))


async def _cvat_trouble(target: Message, t: Texts, exc: CvatError, retry: TaskStep,
                        *, edit: bool = False) -> None:
    """Plain words for a CVAT failure, with a button to try again."""
    logger.warning("CVAT trouble for chat %s: %s", target.chat.id, exc)
    if isinstance(exc, CvatNotFound):
        text, markup = t("cvat.job_gone"), None
    else:
        key = "cvat.down" if isinstance(exc, CvatUnavailable) else "cvat.failed"
        text, markup = t(key), retry_keyboard(t, retry)
    if edit:
        await target.edit_text(text, reply_markup=markup)
    else:
        await target.answer(text, reply_markup=markup)


def create_router() -> Router:
    """Router of the candidate's journey (menu texts in both languages, and inline buttons)."""
    router = Router(name="candidate")
    en = Texts("en")

    def typed(key: str) -> object:
        return F.text.in_(en.all_variants(key))

    router.message.register(offer_task, typed("menu.get_task"))
    router.message.register(show_credentials, typed("menu.credentials"))
    router.message.register(ask_submit, typed("menu.submit"))
    router.message.register(check, typed("menu.check"))
    router.message.register(offer_task, typed("menu.new_attempt"))
    router.callback_query.register(offer_task, TaskAction.filter(F.step == TaskStep.ASK))
    router.callback_query.register(offer_task, TaskAction.filter(F.step == TaskStep.ASK_NEW))
    confirm_steps = {TaskStep.CONFIRM, TaskStep.CONFIRM_NEW}
    router.callback_query.register(build_task, TaskAction.filter(F.step.in_(confirm_steps)))
    router.callback_query.register(build_task, ConfirmTask.filter(F.step.in_(confirm_steps)))
    router.callback_query.register(not_now, TaskAction.filter(F.step == TaskStep.LATER))
    router.callback_query.register(ask_submit, TaskAction.filter(F.step == TaskStep.SUBMIT))
    router.callback_query.register(submit, TaskAction.filter(F.step == TaskStep.SUBMIT_OK))
    router.callback_query.register(keep_working,
                                   TaskAction.filter(F.step == TaskStep.SUBMIT_LATER))
    router.callback_query.register(check, TaskAction.filter(F.step == TaskStep.CHECK))
    router.callback_query.register(show_credentials,
                                   TaskAction.filter(F.step == TaskStep.CREDENTIALS))
    return router
