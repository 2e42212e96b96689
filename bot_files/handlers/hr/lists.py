"""HR's lists (to review, borderline, today, stalled, expired, flagged), each paged and opening
the cards."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from bot_files.hr_keyboards import HrList, HrMenu, MenuAct
from bot_files.presentation.hr import list_page, list_title, lists_overview
from bot_files.presentation.text import paginate
from bot_files.replies import (
    acknowledge,
    answer,
    edit_or_send,
    register_screen,
    target_of,
)
from bot_files.services import Audit, HrQueries
from bot_files.texts import Texts
from tasks_metrics.to_handlers import ListName

PAGE_SIZE = 8


async def show_lists(target: Message, t: Texts, hr_queries: HrQueries, *,
                     edit: bool = False) -> None:
    """Every list with how many are on it."""
    letter = lists_overview(t, await hr_queries.list_counts())
    if edit:
        await edit_or_send(target, letter.text, reply_markup=letter.markup)
    else:
        await answer(target, letter)


async def show_page(target: Message, t: Texts, hr_queries: HrQueries, name: ListName,
                    page: int) -> None:
    """One page of a list, a button per candidate."""
    settings = hr_queries.settings
    total, shown = await hr_queries.list_page(name, page, PAGE_SIZE)
    pages = paginate(range(total), page, PAGE_SIZE).pages
    if page > pages and total:  # the list shrank since the button was drawn
        page = pages
        total, shown = await hr_queries.list_page(name, page, PAGE_SIZE)
    title = list_title(t, name, settings.timezone, settings.stalled_after_days)
    letter = list_page(t, name, title, total, shown, page, pages)
    await edit_or_send(target, letter.text, reply_markup=letter.markup)


async def list_pressed(callback: CallbackQuery, callback_data: HrList, t: Texts,
                       hr_queries: HrQueries, audit: Audit) -> None:
    """A list, a page of it, or back to the overview (a forged name is out of date)."""
    target = target_of(callback)
    if callback_data.name and callback_data.name not in set(ListName):
        await callback.answer(t("fallback.callback"))
        return
    await callback.answer()
    if target is None:
        return
    if not callback_data.name:
        await show_lists(target, t, hr_queries, edit=True)
        return
    await show_page(target, t, hr_queries, ListName(callback_data.name),
                    max(1, callback_data.page))
    await audit.record(callback.from_user.id, "hr.list",
                       details={"list": callback_data.name, "page": callback_data.page})


async def open_lists(event: Message | CallbackQuery, t: Texts, hr_queries: HrQueries) -> None:
    """📋 Lists, pressed in the HR menu or typed."""
    target = await acknowledge(event)
    if target is not None:
        await show_lists(target, t, hr_queries)


def create_router() -> Router:
    """The lists (inside the HR-only router)."""
    router = Router(name="hr_lists")
    register_screen(router, open_lists, HrMenu.filter(F.act == MenuAct.LISTS), "hr.btn_lists")
    router.callback_query.register(list_pressed, HrList.filter())
    return router
