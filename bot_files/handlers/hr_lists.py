"""HR's lists (to review, borderline, today, stalled, expired, flagged), each paged and opening
the cards; how each HR user hears about results (each one, a daily digest at their time, or
nothing); and the digest itself, sent by a background task."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from datetime import UTC, datetime, time, timedelta

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from authorization import (
    HRFilter,
    Notify,
    NotifyChoice,
    claim_due_digests,
    notify_choice,
    set_notify,
)
from bot_files.hr_keyboards import (
    HrList,
    HrMenu,
    HrNotify,
    MenuAct,
    hr_menu_keyboard,
    list_page_keyboard,
    lists_keyboard,
    notify_keyboard,
)
from bot_files.replies import edit_or_send, register_typed_answer, target_of
from bot_files.texts import Texts, pick_language
from bot_files.presentation.verdicts import band_text
from config.env import Settings
from db import Database, DatabaseUnavailable
from log import record_action
from tasks_metrics.to_handlers import (
    CandidateSummary,
    ListClock,
    ListName,
    digest_figures,
    list_counts,
    list_page,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 8
DIGEST_CHECK_SECONDS = 60
_TIME = re.compile(r"^\s*(\d{1,2})[:.](\d{2})\s*$")


class NotifyStates(StatesGroup):
    """Waiting for the digest's time."""

    digest_time = State()


def clock(settings: Settings, now: datetime | None = None) -> ListClock:
    """The lists measured at `now` (the real time unless a test moves it)."""
    return ListClock(now or datetime.now(UTC), settings.zone,
                     timedelta(days=settings.stalled_after_days))


def list_title(t: Texts, name: ListName, settings: Settings) -> str:
    """A list's name in words."""
    return t(f"lists.name_{name}", zone=settings.timezone, days=settings.stalled_after_days)


def _label(t: Texts, candidate: CandidateSummary) -> str:
    name = candidate.full_name or f"id {candidate.telegram_id}"
    if candidate.telegram_username:
        name += f" @{candidate.telegram_username}"
    if candidate.band is None:
        return name
    return t("lists.item_graded", name=name, band=band_text(t, candidate.band))


# --- the lists ---------------------------------------------------------------------------------


async def show_lists(target: Message, t: Texts, db: Database, settings: Settings, *,
                     edit: bool = False) -> None:
    """Every list with how many are on it."""
    counts = await list_counts(db, clock(settings))
    markup = lists_keyboard(t, [(str(name), counts[name]) for name in ListName])
    if edit:
        await edit_or_send(target, t("lists.title"), reply_markup=markup)
    else:
        await target.answer(t("lists.title"), reply_markup=markup)


async def show_page(target: Message, t: Texts, db: Database, settings: Settings,
                    name: ListName, page: int) -> None:
    """One page of a list, a button per candidate."""
    title = list_title(t, name, settings)
    total, shown = await list_page(db, name, clock(settings), page, PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page > pages and total:  # the list shrank since the button was drawn
        page = pages
        total, shown = await list_page(db, name, clock(settings), page, PAGE_SIZE)
    text = t("lists.page", title=title, count=total, page=page, pages=pages) if total else \
        t("lists.empty", title=title)
    markup = list_page_keyboard(t, str(name), [(c.id, _label(t, c)) for c in shown], page,
                                pages)
    await edit_or_send(target, text, reply_markup=markup)


async def list_pressed(callback: CallbackQuery, callback_data: HrList, t: Texts, db: Database,
                       settings: Settings) -> None:
    """A list, a page of it, or back to the overview (a forged name is out of date)."""
    target = target_of(callback)
    if callback_data.name and callback_data.name not in set(ListName):
        await callback.answer(t("fallback.callback"))
        return
    await callback.answer()
    if target is None:
        return
    if not callback_data.name:
        await show_lists(target, t, db, settings, edit=True)
        return
    await show_page(target, t, db, settings, ListName(callback_data.name),
                    max(1, callback_data.page))
    await record_action(db, callback.from_user.id, "hr.list",
                        details={"list": callback_data.name, "page": callback_data.page})


async def menu_lists(callback: CallbackQuery, t: Texts, db: Database,
                     settings: Settings) -> None:
    """📋 Lists in the HR menu."""
    await callback.answer()
    target = target_of(callback)
    if target is not None:
        await show_lists(target, t, db, settings)


async def typed_lists(message: Message, t: Texts, db: Database, settings: Settings) -> None:
    """📋 Lists, typed."""
    await show_lists(message, t, db, settings)


# --- how each HR user hears about results ------------------------------------------------------


async def menu_notify(callback: CallbackQuery, t: Texts, db: Database) -> None:
    """🔔 Notifications in the HR menu: the three choices."""
    await callback.answer()
    target = target_of(callback)
    if target is not None:
        choice = await notify_choice(db, callback.from_user.id)
        await target.answer(t("hr.notify_title"), reply_markup=notify_keyboard(t, choice))


async def _chosen(target: Message, t: Texts, settings: Settings, choice: NotifyChoice) -> None:
    await target.answer(t(f"hr.notify_set_{choice.mode}", time=choice.digest_at.strftime("%H:%M"),
                          zone=settings.timezone),
                        reply_markup=hr_menu_keyboard(t, choice))


async def notify_pressed(callback: CallbackQuery, callback_data: HrNotify, state: FSMContext,
                         t: Texts, db: Database, settings: Settings) -> None:
    """Each result / daily digest / nothing, or "change the digest time"."""
    target = target_of(callback)
    if callback_data.mode not in {*map(str, Notify), "time"}:
        await callback.answer(t("fallback.callback"))
        return
    await callback.answer()
    if target is None:
        return
    if callback_data.mode == "time":
        await state.set_state(NotifyStates.digest_time)
        await target.answer(t("hr.digest_time_ask", zone=settings.timezone))
        return
    choice = await set_notify(db, callback.from_user.id, Notify(callback_data.mode))
    await _chosen(target, t, settings, choice)


async def digest_time_received(message: Message, state: FSMContext, t: Texts, db: Database,
                               settings: Settings) -> None:
    """The digest's time, typed as HH:MM: the digest is switched on at that time."""
    match = _TIME.match(message.text or "")
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        await message.answer(t("hr.digest_time_bad"))
        return
    await state.set_state(None)
    at = time(int(match.group(1)), int(match.group(2)))
    await _chosen(message, t, settings, await set_notify(db, message.chat.id, Notify.DIGEST, at))


async def digest_time_not_text(message: Message, t: Texts) -> None:
    """A sticker where the time is expected."""
    await message.answer(t("hr.digest_time_bad"))


# --- the digest --------------------------------------------------------------------------------


async def send_due_digests(bot: Bot, db: Database, settings: Settings,
                           now: datetime | None = None) -> int:
    """Send every digest due at `now` (each HR user at their time, once a local day); how
    many were sent. One failed send never stops the others."""
    moment = clock(settings, now)
    due = await claim_due_digests(db, settings.hr_admin_ids, moment.now, settings.zone)
    if not due:
        return 0
    figures = await digest_figures(db, moment, moment.now - timedelta(days=1))
    sent = 0
    for hr_id, language in due:
        t = Texts(pick_language(language, None))
        text = t("digest.text", date=moment.now.astimezone(settings.zone).strftime("%Y-%m-%d"),
                 graded=figures.graded, passed=figures.passed, borderline=figures.borderline,
                 failed=figures.failed, review=figures.lists[ListName.REVIEW],
                 borderline_now=figures.lists[ListName.BORDERLINE],
                 stalled=figures.lists[ListName.STALLED], days=settings.stalled_after_days)
        try:
            await bot.send_message(hr_id, text, reply_markup=lists_keyboard(
                t, [(str(name), figures.lists[name]) for name in ListName]))
            sent += 1
        except TelegramAPIError as exc:
            logger.warning("HR %s did not get the digest: %s", hr_id, exc)
    return sent


class DigestKeeper:
    """Sends the daily digests on time; one per bot process (a digest is claimed in the
    database before it is sent, so replicas never send one twice)."""

    def __init__(self, bot: Bot, db: Database, settings: Settings) -> None:
        self.bot = bot
        self.db = db
        self.settings = settings

    async def run(self) -> None:
        """Every minute until cancelled; outages only postpone a digest."""
        while True:
            try:
                await send_due_digests(self.bot, self.db, self.settings)
            except DatabaseUnavailable as exc:
                logger.warning("digests not sent now: %s", exc)
            await asyncio.sleep(DIGEST_CHECK_SECONDS)


def create_router() -> Router:
    """Lists and notifications, for HR only (before the HR router: it owns these menu
    buttons)."""
    router = Router(name="hr_lists")
    router.message.filter(HRFilter())
    router.callback_query.filter(HRFilter())
    router.callback_query.register(menu_lists, HrMenu.filter(F.act == MenuAct.LISTS))
    router.callback_query.register(menu_notify, HrMenu.filter(F.act == MenuAct.NOTIFY))
    router.callback_query.register(list_pressed, HrList.filter())
    router.callback_query.register(notify_pressed, HrNotify.filter())
    router.message.register(typed_lists, F.text.in_(Texts("en").all_variants("hr.btn_lists")))
    register_typed_answer(router, NotifyStates.digest_time, digest_time_received,
                          digest_time_not_text)
    return router
