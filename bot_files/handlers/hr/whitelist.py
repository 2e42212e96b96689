"""The HR whitelist: who is HR and in which role; admins add someone (by id or a forwarded
message), remove them (after a confirmation) or change their role."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, MessageOriginHiddenUser, MessageOriginUser

from authorization import Role
from bot_files.dialogs import HrStates
from bot_files.hr_keyboards import (
    HR_MENU_KEYS,
    HrMenu,
    HrWhitelist,
    MenuAct,
    WhitelistAct,
    whitelist_confirm_keyboard,
)
from bot_files.presentation.hr import whitelist_page
from bot_files.replies import (
    acknowledge,
    answer,
    edit_or_send,
    menu_texts,
    register_screen,
)
from bot_files.services import HrActions, HrQueries, valid_telegram_id
from bot_files.texts import Texts

REMOVED_TEXTS = {"removed": "hr.wl_removed", "last": "hr.wl_last", "settings": "hr.wl_settings"}


async def show_whitelist(target: Message, t: Texts, hr_queries: HrQueries, page: int, *,
                         edit: bool = False) -> None:
    """One page of HR users with their roles; for admins, remove and role buttons and Add."""
    letter = whitelist_page(t, await hr_queries.members(), page,
                            admin=await hr_queries.is_admin(target.chat.id))
    if edit:
        await edit_or_send(target, letter.text, reply_markup=letter.markup)
    else:
        await answer(target, letter)


async def open_whitelist(event: Message | CallbackQuery, t: Texts,
                         hr_queries: HrQueries) -> None:
    """👥 Whitelist, pressed in the HR menu or typed: its first page."""
    target = await acknowledge(event)
    if target is not None:
        await show_whitelist(target, t, hr_queries, 1)


async def whitelist_pressed(callback: CallbackQuery, callback_data: HrWhitelist,
                            state: FSMContext, t: Texts, hr_queries: HrQueries,
                            hr_actions: HrActions) -> None:
    """Paging, Add, Remove and its confirmation, a role."""
    target = await acknowledge(callback)
    if target is None:
        return
    act, tid, page, actor = (callback_data.act, callback_data.tid, callback_data.page,
                             callback.from_user.id)
    if act == WhitelistAct.PAGE:
        await show_whitelist(target, t, hr_queries, page, edit=True)
    elif act == WhitelistAct.ADD:
        await state.set_state(HrStates.whitelist_add)
        await target.answer(t("hr.wl_add_ask"))
    elif act == WhitelistAct.REMOVE:
        member = await hr_queries.member(tid)
        member_name = member.full_name if member and member.full_name else ""
        await target.answer(t("hr.wl_confirm_remove", telegram_id=tid,
                              name=f" {member_name}" if member_name else ""),
                            reply_markup=whitelist_confirm_keyboard(t, tid, page))
    elif act == WhitelistAct.REMOVE_OK:
        outcome = await hr_actions.remove_from_whitelist(actor, tid)
        await edit_or_send(target, t(REMOVED_TEXTS.get(outcome, "hr.wl_not_found"),
                                     telegram_id=tid))
        await show_whitelist(target, t, hr_queries, page)
    elif act == WhitelistAct.ROLE:
        member = await hr_queries.member(tid)
        role = Role.VIEWER if member is not None and member.role == Role.ADMIN else Role.ADMIN
        outcome = await hr_actions.set_role(actor, tid, role)
        await target.answer(t(f"hr.wl_role_{outcome}", telegram_id=tid,
                              role=t(f"hr.role_{role}")))
        await show_whitelist(target, t, hr_queries, page)
    else:
        await edit_or_send(target, t("hr.cancelled"))


async def whitelist_add_received(message: Message, state: FSMContext, t: Texts,
                                 hr_queries: HrQueries, hr_actions: HrActions) -> None:
    """A typed id or a forwarded message: put that person on the whitelist."""
    origin = message.forward_origin
    text = (message.text or "").strip()
    username: str | None = None
    added_name = ""
    if isinstance(origin, MessageOriginUser):
        telegram_id = origin.sender_user.id
        username, added_name = origin.sender_user.username, origin.sender_user.full_name
    elif isinstance(origin, MessageOriginHiddenUser):
        await message.answer(t("hr.wl_add_hidden"))
        return
    elif origin is None and text.isdigit():
        telegram_id = int(text)
    else:
        telegram_id = 0
    if not valid_telegram_id(telegram_id):
        await message.answer(t("hr.wl_add_bad"))
        return
    added = await hr_actions.add_to_whitelist(message.chat.id, telegram_id, username)
    await state.set_state(None)
    await message.answer(t("hr.wl_added" if added else "hr.wl_already",
                           telegram_id=telegram_id, name=f" {added_name}" if added_name else ""))
    await show_whitelist(message, t, hr_queries, 1)


def create_router() -> Router:
    """The whitelist (inside the HR-only router; the roles router refuses viewers the
    admin-only buttons before this)."""
    router = Router(name="hr_whitelist")
    register_screen(router, open_whitelist, HrMenu.filter(F.act == MenuAct.WHITELIST),
                    "hr.btn_whitelist")
    router.callback_query.register(whitelist_pressed, HrWhitelist.filter())
    # A forwarded message of any kind names the person too: only commands and menu texts
    # are not an answer.
    menu = menu_texts(HR_MENU_KEYS)
    router.message.register(whitelist_add_received, HrStates.whitelist_add,
                            F.func(lambda m: not (m.text or "").startswith("/")
                                   and (m.text or "") not in menu))
    return router
