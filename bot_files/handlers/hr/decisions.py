"""HR decide from the card: Invite, Reject or Hold. HR see the candidate's message, in the
candidate's language, before it goes, and may add a line of their own; the decision, who made
it and when are stored, and a candidate gets one message per decision."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.dialogs import DecisionStates
from bot_files.hr_keyboards import DecideAct, HrDecide
from bot_files.notifier import Notifier
from bot_files.presentation.hr import decision_preview
from bot_files.presentation.verdicts import decision_label, decision_line
from bot_files.replies import acknowledge, answer, edit_or_send
from bot_files.services import Decisions
from bot_files.texts import Raw, Texts
from tasks_metrics.to_handlers import CandidateSummary, Decision, RecordedKind

logger = logging.getLogger(__name__)
MAX_NOTE = 1000  # characters HR may add to a decision's message


async def _show_preview(target: Message, t: Texts, decisions: Decisions, notifier: Notifier,
                        candidate: CandidateSummary, decision: str, note: str) -> None:
    ct = await notifier.texts_for(candidate.telegram_id)
    letter = await notifier.decision_letter(ct, candidate, decision, note)
    await answer(target, decision_preview(t, candidate, decision, ct.language, letter,
                                          await decisions.current(candidate.id), note))


async def pick(callback: CallbackQuery, callback_data: HrDecide, state: FSMContext, t: Texts,
               decisions: Decisions, notifier: Notifier) -> None:
    """A decision button on the card: show the candidate's message, wait for an optional
    line."""
    target = await acknowledge(callback)
    if target is None:
        return
    if callback_data.d not in set(Decision):
        await target.answer(t("fallback.callback"))
        return
    candidate = await decisions.summary(callback_data.cid)
    if candidate is None:
        await target.answer(t("hr.not_found"))
        return
    await state.set_state(DecisionStates.note)
    await state.set_data({"cid": candidate.id, "decision": callback_data.d, "note": ""})
    await _show_preview(target, t, decisions, notifier, candidate, callback_data.d, "")


async def note_received(message: Message, state: FSMContext, t: Texts, decisions: Decisions,
                        notifier: Notifier) -> None:
    """HR's line for the message: shown in the preview again, then Send."""
    note = (message.text or "").strip()
    if not note:
        await message.answer(t("hr.find_need_text"))
        return
    if len(note) > MAX_NOTE:
        await message.answer(t("support.too_long", limit=MAX_NOTE))
        return
    data = await state.get_data()
    candidate = await decisions.summary(int(data.get("cid", 0)))
    if candidate is None:
        await state.clear()
        await message.answer(t("hr.not_found"))
        return
    await state.update_data({"note": note})
    await _show_preview(message, t, decisions, notifier, candidate, str(data["decision"]), note)


async def send(callback: CallbackQuery, callback_data: HrDecide, state: FSMContext, t: Texts,
               decisions: Decisions, notifier: Notifier, bot: Bot) -> None:
    """Send: store the decision, then send its message (once per decision)."""
    target = await acknowledge(callback)
    if target is None:
        return
    if callback_data.act == DecideAct.CANCEL:
        await state.clear()
        await edit_or_send(target, t("hr.cancelled"))
        return
    if callback_data.d not in set(Decision):
        await target.answer(t("fallback.callback"))
        return
    data = await state.get_data()
    same_draft = data.get("cid") == callback_data.cid and data.get("decision") == callback_data.d
    note = str(data.get("note") or "") if same_draft else ""
    candidate = await decisions.summary(callback_data.cid)
    if candidate is None:
        await edit_or_send(target, t("hr.not_found"))
        return
    recorded = await decisions.record(candidate.id, Decision(callback_data.d), note,
                                      callback.from_user.id)
    if same_draft:
        await state.clear()
    if recorded.kind == RecordedKind.SAME and recorded.decision is not None:
        await edit_or_send(target, t("hr.decision_already",
                                     line=Raw(decision_line(t, recorded.decision))))
        return
    if recorded.decision is None:
        await edit_or_send(target, t("hr.not_found"))
        return
    delivered = await notifier.decision(bot, candidate, callback_data.d, note)
    if delivered:
        await decisions.mark_sent(recorded.decision.id)
    key = "hr.decision_done" if delivered else "hr.decision_undelivered"
    await edit_or_send(target, t(key, name=candidate.full_name or str(candidate.telegram_id),
                                 decision=decision_label(t, callback_data.d)))


def create_router() -> Router:
    """The decision buttons, the line HR type, Send and Cancel (inside the HR-only router)."""
    router = Router(name="decisions")
    router.callback_query.register(pick, HrDecide.filter(F.act == DecideAct.PICK))
    router.callback_query.register(send, HrDecide.filter(F.act.in_({DecideAct.SEND,
                                                                     DecideAct.CANCEL})))
    router.message.register(note_received, DecisionStates.note,
                            F.text & ~F.text.startswith("/"))
    return router
