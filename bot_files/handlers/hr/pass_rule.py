"""HR tune the pass rule: see the gates, change a measure's thresholds, preview what would
change, apply (re-banding every graded attempt from its stored figures), see the history.

The draft lives in the HR user's dialog data until it is applied or discarded; applying
checks that nobody else changed the rule meanwhile."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot_files.dialogs import RuleStates
from bot_files.hr_keyboards import (
    HrMenu,
    HrRule,
    MenuAct,
    RuleAct,
    back_to_menu_keyboard,
)
from bot_files.presentation import rules as views
from bot_files.replies import (
    acknowledge,
    answer,
    edit_or_send,
    register_screen,
    register_typed_answer,
    target_of,
)
from bot_files.services import Audit, HrQueries, PassRules
from bot_files.texts import Texts
from tasks_metrics.to_handlers import (
    Measure,
    PassRule,
    RuleError,
    StaleRule,
    parse_thresholds,
)

logger = logging.getLogger(__name__)

DRAFT, BASE, MEASURE = "rule_draft", "rule_base", "rule_measure"
HISTORY_SHOWN = 10


async def show_rule(target: Message, t: Texts, rules: PassRules, *, edit: bool = False,
                    admin: bool = True) -> None:
    """The rule in force, with a button per measure to change it (for admins)."""
    letter = views.rule_in_force(t, await rules.current(), admin=admin)
    if edit:
        await edit_or_send(target, letter.text, reply_markup=letter.markup)
    else:
        await answer(target, letter)


async def _draft(state: FSMContext, rules: PassRules) -> tuple[PassRule, int | None]:
    """The HR user's draft and the rule it was made from (a fresh draft: the rule in force)."""
    data = await state.get_data()
    if DRAFT in data:
        try:
            return PassRule.from_dict(data[DRAFT]), data.get(BASE)
        except RuleError:
            logger.warning("an unreadable pass rule draft was dropped")
    version = await rules.current()
    return version.rule, version.id


async def _save_draft(state: FSMContext, draft: PassRule, base: int | None) -> None:
    await state.update_data({DRAFT: draft.to_dict(), BASE: base})


async def _forget_draft(state: FSMContext) -> None:
    data = await state.get_data()
    for key in (DRAFT, BASE, MEASURE):
        data.pop(key, None)
    await state.set_data(data)


async def show_preview(target: Message, t: Texts, rules: PassRules, draft: PassRule,
                       base: int | None) -> None:
    """The draft beside the rule in force, and how many graded candidates would move."""
    version = await rules.current()
    before = version.rule if version.id == base else None
    await answer(target, views.preview(t, draft, before, await rules.preview(draft)))


async def rule_pressed(callback: CallbackQuery, callback_data: HrRule, state: FSMContext,
                       t: Texts, rules: PassRules, audit: Audit) -> None:
    """A button of the pass rule editor."""
    target = target_of(callback)
    await callback.answer()
    if target is None:
        return
    act = callback_data.act
    if act == RuleAct.EDIT:
        await ask_thresholds(target, state, t, rules, callback_data.m)
    elif act == RuleAct.MORE:
        draft, _ = await _draft(state, rules)
        await answer(target, views.draft_gates(t, draft))
    elif act == RuleAct.DEFAULTS:
        _, base = await _draft(state, rules)
        await _save_draft(state, PassRule.default(), base)
        await show_preview(target, t, rules, PassRule.default(), base)
    elif act == RuleAct.APPLY:
        await apply_draft(target, state, t, rules, audit, callback.from_user.id)
    elif act == RuleAct.DISCARD:
        await _forget_draft(state)
        await state.set_state(None)
        await edit_or_send(target, t("hr.rule_discarded"),
                           reply_markup=back_to_menu_keyboard(t))
    elif act == RuleAct.HISTORY:
        await show_history(target, t, rules)


async def ask_thresholds(target: Message, state: FSMContext, t: Texts, rules: PassRules,
                         measure_name: str) -> None:
    """Ask for the new thresholds of one measure (a forged measure is out of date)."""
    try:
        measure = Measure(measure_name)
    except ValueError:
        await target.answer(t("fallback.callback"))
        return
    draft, base = await _draft(state, rules)
    await _save_draft(state, draft, base)
    await state.update_data({MEASURE: str(measure)})
    await state.set_state(RuleStates.thresholds)
    await target.answer(views.thresholds_question(t, measure, draft))


async def thresholds_received(message: Message, state: FSMContext, t: Texts,
                              rules: PassRules) -> None:
    """The thresholds typed for the measure asked about: the draft changes and is previewed;
    a typo is explained and the question stays."""
    data = await state.get_data()
    try:
        measure = Measure(data.get(MEASURE, ""))
    except ValueError:
        await state.set_state(None)
        await message.answer(t("hr.rule_no_draft"))
        return
    text = (message.text or "").strip()
    try:
        thresholds = None if text.lower() == "off" else parse_thresholds(text)
    except RuleError as exc:
        await message.answer(t("hr.rule_bad", reason=str(exc)))
        return
    draft, base = await _draft(state, rules)
    draft = draft.with_gate(measure, thresholds)
    await _save_draft(state, draft, base)
    await state.set_state(None)
    await show_preview(message, t, rules, draft, base)


async def thresholds_not_text(message: Message, t: Texts) -> None:
    """A sticker or a photo where thresholds are expected."""
    await message.answer(t("hr.rule_need_text"))


async def apply_draft(target: Message, state: FSMContext, t: Texts, rules: PassRules,
                      audit: Audit, actor: int) -> None:
    """Put the draft in force, unless the rule changed since it was made."""
    data = await state.get_data()
    if DRAFT not in data:
        await edit_or_send(target, t("hr.rule_no_draft"), reply_markup=back_to_menu_keyboard(t))
        return
    draft, base = await _draft(state, rules)
    before = await rules.current()
    try:
        number, changes = await rules.apply(draft, actor, base)
    except StaleRule:
        await _forget_draft(state)
        await edit_or_send(target, t("hr.rule_stale"), reply_markup=back_to_menu_keyboard(t))
        return
    await _forget_draft(state)
    details: dict[str, Any] = {
        "rule": number, "from": before.rule.to_dict(), "to": draft.to_dict(),
        "attempts_changed": changes.attempts_changed,
        "candidates_changed": {f"{old}->{new}": n for (old, new), n in changes.moves.items()}}
    await audit.record(actor, "hr.pass_rule", details=details)
    logger.info("HR %s put pass rule #%s in force: %s", actor, number, draft.describe())
    await edit_or_send(target, t("hr.rule_applied", number=number,
                                 changed=changes.attempts_changed),
                       reply_markup=back_to_menu_keyboard(t))


async def show_history(target: Message, t: Texts, rules: PassRules) -> None:
    """The last rules, newest first."""
    await answer(target, views.history(t, await rules.history(HISTORY_SHOWN)))


async def open_rule(event: Message | CallbackQuery, state: FSMContext, t: Texts,
                    rules: PassRules, hr_queries: HrQueries) -> None:
    """⚖️ Pass rule, pressed in the HR menu or typed."""
    target = await acknowledge(event)
    if target is not None:
        await state.set_state(None)
        await show_rule(target, t, rules, admin=await hr_queries.is_admin(target.chat.id))


def create_router() -> Router:
    """The pass rule editor (inside the HR-only router)."""
    router = Router(name="hr_pass_rule")
    register_screen(router, open_rule, HrMenu.filter(F.act == MenuAct.RULE), "hr.btn_rule")
    router.callback_query.register(rule_pressed, HrRule.filter())
    register_typed_answer(router, RuleStates.thresholds, thresholds_received,
                          thresholds_not_text)
    return router
