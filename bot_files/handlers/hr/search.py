"""HR find a candidate by username, name or id: one match opens the card, several make a
paged list, none says so (and the question stays)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.dialogs import HrStates
from bot_files.hr_keyboards import (
    HR_MENU_KEYS,
    HrMenu,
    HrSearchPage,
    MenuAct,
    back_to_menu_keyboard,
)
from bot_files.presentation.hr import card_letters, search_results
from bot_files.replies import (
    acknowledge,
    answer,
    edit_or_send,
    register_screen,
    register_typed_answer,
    target_of,
)
from bot_files.services import Audit, HrQueries, normalise_query
from bot_files.texts import Texts

QUERY_KEY = "hr_query"  # dialog data: the last search, for its other pages


async def ask_query(event: Message | CallbackQuery, state: FSMContext, t: Texts) -> None:
    """🔎 Find, pressed in the HR menu or typed: ask for a username or id."""
    target = await acknowledge(event)
    if target is not None:
        await state.set_state(HrStates.find)
        await target.answer(t("hr.find_ask"))


async def query_received(message: Message, state: FSMContext, t: Texts,
                         hr_queries: HrQueries, audit: Audit) -> None:
    """Search; one match opens the card, several make a list, none says so."""
    query = normalise_query(message.text)
    found = await hr_queries.search(query)
    reader = message.chat.id
    await audit.record(reader, "hr.search", details={"query": query, "found": len(found)})
    if not found:
        await message.answer(t("hr.find_none", query=query))  # still waiting: type again
        return
    await state.set_state(None)
    await state.update_data({QUERY_KEY: query})
    if len(found) > 1:
        await answer(message, search_results(t, query, found, 1))
        return
    view = await hr_queries.card_view(found[0].id, reader)
    if view is None:  # deleted since the search
        await message.answer(t("hr.not_found"), reply_markup=back_to_menu_keyboard(t))
        return
    await answer(message, card_letters(t, view, hr_queries.settings.zone,
                                       hr_queries.settings.cvat_link))
    await audit.record(reader, "hr.card", found[0].id)


async def query_not_text(message: Message, t: Texts) -> None:
    """Anything but text while waiting for the query."""
    await message.answer(t("hr.find_need_text"))


async def results_page(callback: CallbackQuery, callback_data: HrSearchPage, state: FSMContext,
                       t: Texts, hr_queries: HrQueries) -> None:
    """Another page of the last search's results."""
    query = (await state.get_data()).get(QUERY_KEY)
    target = target_of(callback)
    if not query or target is None:
        await callback.answer(t("fallback.callback"))
        return
    await callback.answer()
    found = await hr_queries.search(query)
    if not found:
        await edit_or_send(target, t("hr.find_none", query=query))
        return
    letter = search_results(t, query, found, callback_data.page)
    await edit_or_send(target, letter.text, reply_markup=letter.markup)


def create_router() -> Router:
    """Finding candidates (inside the HR-only router)."""
    router = Router(name="hr_search")
    register_screen(router, ask_query, HrMenu.filter(F.act == MenuAct.FIND), "hr.btn_find")
    register_typed_answer(router, HrStates.find, query_received, query_not_text,
                          menu_keys=HR_MENU_KEYS)
    router.callback_query.register(results_page, HrSearchPage.filter())
    return router
