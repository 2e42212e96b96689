"""HR roles: which buttons and dialogs only an admin may use, and the router that refuses them
to viewers, whatever the button: shown, left on an old message, or forged.

The router is the first inside the HR-only router (non-HR users never reach it and fall
through to `hr_denied`); it catches the viewers' admin-only updates, answers "only an admin
can do this" and writes the action log. What is admin-only is declared here, in one
place: a new admin action is one more member of these sets.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from authorization import AdminFilter
from bot_files.dialogs import ADMIN_STATES
from bot_files.hr_keyboards import (
    CardAct,
    HrCard,
    HrDecide,
    HrKey,
    HrReply,
    HrRule,
    HrWhitelist,
    KeyAct,
    RuleAct,
    WhitelistAct,
)
from bot_files.services import Audit
from bot_files.texts import Texts

# Card buttons (and their confirmations) that change or delete something.
ADMIN_CARD_ACTS = frozenset({
    CardAct.EXTRA, CardAct.EXTRA_OK, CardAct.REGRADE, CardAct.REGRADE_OK,
    CardAct.DELETE_CVAT, CardAct.DELETE_CVAT_OK, CardAct.DELETE_DATA, CardAct.DELETE_DATA_OK,
    CardAct.DELETE_ALL_OK, CardAct.REACTIVATE,
})
# Whitelist buttons other than paging through it.
ADMIN_WHITELIST_ACTS = frozenset(WhitelistAct) - {WhitelistAct.PAGE, WhitelistAct.CANCEL}
# Pass rule buttons other than reading its history.
ADMIN_RULE_ACTS = frozenset(RuleAct) - {RuleAct.HISTORY}
# Answer key buttons other than downloading the calibration: excluding from the key.
ADMIN_KEY_ACTS = frozenset(KeyAct) - {KeyAct.CALIBRATION}


async def refuse_callback(callback: CallbackQuery, t: Texts, audit: Audit) -> None:
    """A viewer pressed (or forged) an admin-only button: refused, logged."""
    await callback.answer(t("hr.admin_only"), show_alert=True)
    await audit.record(callback.from_user.id, "hr.refused", ok=False,
                       details={"data": (callback.data or "")[:64]})


async def refuse_message(message: Message, state: FSMContext, t: Texts, audit: Audit) -> None:
    """A viewer typed into an admin-only dialog: refused, the dialog ends, logged."""
    dialog = await state.get_state()
    await state.set_state(None)
    await message.answer(t("hr.admin_only"))
    await audit.record(message.chat.id, "hr.refused", ok=False, details={"state": dialog})


def create_router() -> Router:
    """Refuses viewers every admin-only button and dialog; lets everything else through. The
    role is read only for an admin-only update (the filters run in order)."""
    router = Router(name="hr_roles")
    admin_only: list[Any] = [HrCard.filter(F.act.in_(ADMIN_CARD_ACTS)),
                             HrWhitelist.filter(F.act.in_(ADMIN_WHITELIST_ACTS)),
                             HrRule.filter(F.act.in_(ADMIN_RULE_ACTS)),
                             HrKey.filter(F.act.in_(ADMIN_KEY_ACTS)),
                             HrDecide.filter(),  # decisions: Invite, Reject, Hold
                             HrReply.filter()]  # answering a candidate
    for button in admin_only:
        router.callback_query.register(refuse_callback, button, AdminFilter())
    for state in ADMIN_STATES:
        router.message.register(refuse_message, state, AdminFilter())
    return router
