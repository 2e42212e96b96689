"""How each HR user hears about results: each one, a daily digest at their time, or nothing
(the notices themselves go out through bot_files.notifier and bot_files.digests)."""

from __future__ import annotations

import re
from datetime import time

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from authorization import Notify, NotifyChoice
from bot_files.dialogs import NotifyStates
from bot_files.hr_keyboards import (
    DIGEST_TIME,
    HrMenu,
    HrNotify,
    MenuAct,
    hr_menu_keyboard,
    notify_keyboard,
)
from bot_files.replies import acknowledge, register_typed_answer, target_of
from bot_files.services import HrActions, HrQueries
from bot_files.texts import Texts

_TIME = re.compile(r"^\s*(\d{1,2})[:.](\d{2})\s*$")


def parse_time(text: str | None) -> time | None:
    """"9:30", "09.30" as a time of day; None if it is not one."""
    match = _TIME.match(text or "")
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        return None
    return time(int(match.group(1)), int(match.group(2)))


async def menu_notify(callback: CallbackQuery, t: Texts, hr_queries: HrQueries) -> None:
    """🔔 Notifications in the HR menu: the three choices."""
    target = await acknowledge(callback)
    if target is not None:
        choice = await hr_queries.notify_choice(callback.from_user.id)
        await target.answer(t("hr.notify_title"), reply_markup=notify_keyboard(t, choice))


async def _chosen(target: Message, t: Texts, zone_name: str, choice: NotifyChoice) -> None:
    await target.answer(t(f"hr.notify_set_{choice.mode}", time=choice.digest_at.strftime("%H:%M"),
                          zone=zone_name),
                        reply_markup=hr_menu_keyboard(t, choice))


async def notify_pressed(callback: CallbackQuery, callback_data: HrNotify, state: FSMContext,
                         t: Texts, hr_actions: HrActions) -> None:
    """Each result / daily digest / nothing, or "change the digest time"."""
    target = target_of(callback)
    if callback_data.mode not in {*map(str, Notify), DIGEST_TIME}:
        await callback.answer(t("fallback.callback"))
        return
    await callback.answer()
    if target is None:
        return
    zone_name = hr_actions.settings.timezone
    if callback_data.mode == DIGEST_TIME:
        await state.set_state(NotifyStates.digest_time)
        await target.answer(t("hr.digest_time_ask", zone=zone_name))
        return
    choice = await hr_actions.set_notify(callback.from_user.id, Notify(callback_data.mode))
    await _chosen(target, t, zone_name, choice)


async def digest_time_received(message: Message, state: FSMContext, t: Texts,
                               hr_actions: HrActions) -> None:
    """The digest's time, typed as HH:MM: the digest is switched on at that time."""
    at = parse_time(message.text)
    if at is None:
        await message.answer(t("hr.digest_time_bad"))
        return
    await state.set_state(None)
    choice = await hr_actions.set_notify(message.chat.id, Notify.DIGEST, at)
    await _chosen(message, t, hr_actions.settings.timezone, choice)


async def digest_time_not_text(message: Message, t: Texts) -> None:
    """A sticker where the time is expected."""
    await message.answer(t("hr.digest_time_bad"))


def create_router() -> Router:
    """The notification choice (inside the HR-only router)."""
    router = Router(name="hr_notifications")
    router.callback_query.register(menu_notify, HrMenu.filter(F.act == MenuAct.NOTIFY))
    router.callback_query.register(notify_pressed, HrNotify.filter())
    register_typed_answer(router, NotifyStates.digest_time, digest_time_received,
                          digest_time_not_text)
    return router
