"""The HR menu: /hr, the menu button typed, and Back to the menu. Each of the menu's other
buttons belongs to its flow's module."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.hr_keyboards import HrMenu, MenuAct
from bot_files.presentation.hr import hr_menu
from bot_files.replies import acknowledge, answer, typed
from bot_files.services import Audit, HrQueries
from bot_files.texts import Texts


async def open_menu(message: Message, state: FSMContext, t: Texts, hr_queries: HrQueries,
                    audit: Audit) -> None:
    """/hr or the HR menu button: the HR menu (any dialog in progress ends)."""
    await state.set_state(None)
    await answer(message, hr_menu(t, await hr_queries.notify_choice(message.chat.id)))
    await audit.record(message.chat.id, "hr.menu")


async def back_to_menu(callback: CallbackQuery, state: FSMContext, t: Texts,
                       hr_queries: HrQueries) -> None:
    """⬅️ Menu under any HR screen."""
    target = await acknowledge(callback)
    if target is not None:
        await state.set_state(None)
        await answer(target, hr_menu(t, await hr_queries.notify_choice(callback.from_user.id)))


def create_router() -> Router:
    """The HR menu (inside the HR-only router)."""
    router = Router(name="hr_menu")
    router.message.register(open_menu, Command("hr"))
    router.message.register(open_menu, typed("hr.menu_button"))
    router.callback_query.register(back_to_menu, HrMenu.filter(F.act == MenuAct.MENU))
    return router
