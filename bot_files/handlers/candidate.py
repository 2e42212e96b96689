"""The candidate's journey: get a test task, credentials, submit, a new attempt."""

from __future__ import annotations

import logging
import time

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import CallbackQuery, Message, User

from bot_files.jobs import JobQueue
from bot_files.keyboards import (
    ConfirmTask,
    TaskAction,
    TaskStep,
    confirm_keyboard,
    retry_keyboard,
    submit_confirm_keyboard,
)
from bot_files.notifier import Notifier
from bot_files.presentation import candidate as views
from bot_files.presentation.text import Letter
from bot_files.replies import acknowledge, answer, target_of, typed
from bot_files.services import Account
from bot_files.texts import Texts
from bot_files.work import check_work, request_test_task, submit_work
from config.env import Settings
from connection import CvatError, CvatNotFound, CvatUnavailable
from db import Database
from tasks_generator.to_handlers import (
    ACCOUNT,
    IMAGES,
    READY_STAGE,
    TASK,
    Stage,
    StageKind,
    TaskRequestKind,
    TaskSet,
)
from tasks_metrics.to_handlers import SubmitKind, SubmitOutcome

logger = logging.getLogger(__name__)
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
        return views.progress(self.t, title_key, self.STAGES, self.progress)

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


async def offer_task(event: Message | CallbackQuery, t: Texts, account: Account) -> None:
    """Get a test task / New attempt (typed or pressed, stale or fresh): what fits the stage:
    the confirmation of a first task or of the next attempt, the login again, or why not."""
    if isinstance(event, CallbackQuery):
        await event.answer()
    target = target_of(event)
    if target is None:
        return
    stage = await account.stage(event.from_user.id)
    if stage.kind == StageKind.BUILDING:
        await target.answer(t("task.busy"))
    elif stage.kind == StageKind.READY:
        login = await account.credentials(event.from_user.id)
        if login is not None:
            await answer(target, views.credentials_with_guide(t, login, account.task_set,
                                                              "task.already"))
    elif stage.opens_new_attempt and stage.attempts_left <= 0:
        await answer(target, views.none_left(t, stage.number))
    else:
        await _ask_to_confirm(target, t, account, event.from_user.id, stage)


async def _ask_to_confirm(target: Message, t: Texts, account: Account, telegram_id: int,
                          stage: Stage) -> None:
    """The confirmation of the first task or of the next attempt; with the privacy notice and
    "Yes agrees to it" for whoever has not agreed to this version of it yet."""
    new_attempt = stage.opens_new_attempt
    known = stage.candidate_id is not None and new_attempt
    wait_until = await account.next_attempt_at(stage.candidate_id) if known else None
    if wait_until is not None:  # said before the candidate commits, not after
        await target.answer(views.cooldown_text(t, wait_until, account.settings.zone,
                                                account.settings.timezone))
        return
    standing = await account.standing(stage.candidate_id) if known else None
    question = views.confirm_question(t, account.settings, account.task_set, stage, standing)
    if not await account.has_consented(telegram_id):
        question += "\n\n" + t("privacy.block", notice=account.privacy_notice()[t.language]) \
            + "\n" + t("privacy.consent")
    await target.answer(question, reply_markup=confirm_keyboard(
        t, new_attempt=new_attempt, notice=account.notice_version()))


async def _consented(target: Message, t: Texts, account: Account, telegram_id: int,
                     shown: str) -> bool:
    """Whether the candidate agreed to the privacy notice in force: now, by pressing Yes under
    it (`shown`: the version that confirmation showed), or before. A confirmation from before
    this notice, or a forged one, gets the notice and the question again instead."""
    if await account.has_consented(telegram_id):
        return True
    if shown == account.notice_version():
        await account.consent(telegram_id)
        return True
    await _ask_to_confirm(target, t, account, telegram_id, await account.stage(telegram_id))
    return False


async def build_task(callback: CallbackQuery, callback_data: TaskAction | ConfirmTask, t: Texts,
                     account: Account, jobs: JobQueue, settings: Settings,
                     task_set: TaskSet) -> None:
    """Confirmed: build the task with a progress message, then send the login."""
    target = await acknowledge(callback)
    if target is None:
        return
    user: User = callback.from_user
    shown = callback_data.v if isinstance(callback_data, ConfirmTask) else ""
    if not await _consented(target, t, account, user.id, shown):
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
    if result.kind == TaskRequestKind.CREATED and result.credentials is not None:
        await progress.finish(ok=True)
        await answer(target, views.credentials_with_guide(t, result.credentials, task_set))
        return
    # Nothing was built (a parallel press, an attempt already submitted, none left): the
    # progress message gives way to the explanation.
    try:
        await target.delete()
    except TelegramBadRequest:
        logger.debug("progress message already gone")
    await answer(target, views.request_outcome(t, result, task_set, settings))


async def _answered(callback: CallbackQuery, text: str) -> None:
    """A question's button pressed: the question gives way to `text` (its buttons go)."""
    target = await acknowledge(callback)
    if target is not None:
        try:
            await target.edit_text(text)
        except TelegramBadRequest:
            logger.debug("%r pressed on a message that cannot be edited", callback.data)


async def not_now(callback: CallbackQuery, t: Texts) -> None:
    """The candidate is not ready yet."""
    await _answered(callback, t("task.later"))


async def show_credentials(event: Message | CallbackQuery, t: Texts, account: Account) -> None:
    """My credentials: the login again (recorded in the action log)."""
    target = target_of(event)
    if isinstance(event, CallbackQuery):
        await event.answer()
    if target is None:
        return
    stage = await account.stage(event.from_user.id)
    if stage.kind == StageKind.DONE:  # submitted or expired: the old login opens nothing to work on
        await answer(target, views.closed_attempt(t, stage))
        return
    login = await account.credentials(event.from_user.id)
    await answer(target, views.credentials(t, login) if login is not None
                 else Letter(t("task.no_task")))


async def ask_submit(event: Message | CallbackQuery, t: Texts, account: Account, db: Database,
                     jobs: JobQueue, settings: Settings,
                     notifier: Notifier) -> None:
    """✅ Submit: with a task open, ask first (a submission cannot be changed); otherwise say
    why there is nothing to submit, as Submit itself would."""
    stage = await account.stage(event.from_user.id)
    if stage.kind != StageKind.READY:
        await submit(event, t, db, jobs, settings, notifier)
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
    if outcome.kind == SubmitKind.COMPLETE:
        await status.edit_text(t("check.complete"))
    elif outcome.kind == SubmitKind.INCOMPLETE:
        await status.edit_text(views.problem_list(t, outcome, "check.incomplete"))
    else:
        await _report_submission(status, t, outcome, settings)


async def submit(event: Message | CallbackQuery, t: Texts, db: Database, jobs: JobQueue,
                 settings: Settings, notifier: Notifier) -> None:
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
    await notifier.graded(status.bot, outcome)


async def _report_submission(status: Message, t: Texts, outcome: SubmitOutcome,
                             settings: Settings) -> None:
    """What Submit led to, in place of the "checking…" message (and the menu after it)."""
    text, after = views.submission_report(t, outcome, settings)
    await status.edit_text(text)
    if after is not None:
        await answer(status, after)


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
