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
    rule_keyboard,
    rule_preview_keyboard,
)
from bot_files.presentation.text import when_text
from bot_files.presentation.verdicts import band_text, gate_name, percent, rule_lines
from bot_files.replies import (
    acknowledge,
    edit_or_send,
    hr_router,
    register_screen,
    register_typed_answer,
    target_of,
)
from bot_files.services import Audit, HrQueries, PassRules
from bot_files.texts import Raw, Texts
from tasks_metrics.to_handlers import (
    MEASURES,
    BandChanges,
    Measure,
    PassRule,
    RuleError,
    RuleVersion,
    StaleRule,
    parse_thresholds,
)

logger = logging.getLogger(__name__)

DRAFT, BASE, MEASURE = "rule_draft", "rule_base", "rule_measure"
HISTORY_SHOWN = 10


def _by(t: Texts, version: RuleVersion) -> str:
    if version.source == "settings":
        return t("hr.rule_by_settings")
    return t("hr.rule_by_hr", who=version.created_by_name or str(version.created_by))


def _measure_buttons(t: Texts) -> list[tuple[str, str]]:
    return [(str(m), gate_name(t, m)) for m in MEASURES]


async def show_rule(target: Message, t: Texts, rules: PassRules, *, edit: bool = False,
                    admin: bool = True) -> None:
    """The rule in force, with a button per measure to change it (for admins)."""
    version = await rules.current()
    text = t("hr.rule_title" if admin else "hr.rule_title_viewer", number=version.id or 0,
             since=when_text(t, version.created_at), by=_by(t, version),
             gates=Raw("\n".join(rule_lines(t, version.rule))))
    markup = rule_keyboard(t, _measure_buttons(t), draft=False, admin=admin)
    if edit:
        await edit_or_send(target, text, reply_markup=markup)
    else:
        await target.answer(text, reply_markup=markup)


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


def _changes_text(t: Texts, changes: BandChanges) -> str:
    if not changes.moves:
        return t("hr.rule_changes_none", candidates=changes.candidates)
    lines = [t("hr.rule_changes", count=changes.candidates_changed,
               candidates=changes.candidates)]
    for (old, new), count in sorted(changes.moves.items()):
        lines.append(t("hr.rule_move", old=band_text(t, old), new=band_text(t, new),
                       count=count))
    return "\n".join(lines)


async def show_preview(target: Message, t: Texts, rules: PassRules, draft: PassRule,
                       base: int | None) -> None:
    """The draft beside the rule in force, and how many graded candidates would move."""
    version = await rules.current()
    before = version.rule if version.id == base else None
    changes = await rules.preview(draft)
    await target.answer(
        t("hr.rule_preview", gates=Raw("\n".join(rule_lines(t, draft, before))),
          changes=Raw(_changes_text(t, changes))),
        reply_markup=rule_preview_keyboard(t))


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
        await target.answer("\n".join(rule_lines(t, draft)),
                            reply_markup=rule_keyboard(t, _measure_buttons(t), draft=True))
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
    gate = draft.gate(measure)
    now = t("hr.rule_now_off") if gate is None else t(
        "hr.rule_now", pass_at=percent(t, gate.pass_at),
        borderline_at=percent(t, gate.borderline_at))
    await target.answer(t("hr.rule_ask", name=gate_name(t, measure), now=Raw(now)))


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


def _compact(t: Texts, rule: PassRule) -> str:
    """"cars found 95%/85% · plates found 90%/80% · …" (a history line)."""
    return " · ".join(f"{gate_name(t, g.measure)} {percent(t, g.pass_at)}/"
                      f"{percent(t, g.borderline_at)}" for g in rule.gates)


async def show_history(target: Message, t: Texts, rules: PassRules) -> None:
    """The last rules, newest first."""
    items = [t("hr.rule_history_title")]
    for version in await rules.history(HISTORY_SHOWN):
        items.append(t("hr.rule_history_item", number=version.id or 0,
                       when=when_text(t, version.created_at), by=_by(t, version),
                       changed=version.changed if version.changed is not None else 0,
                       gates=_compact(t, version.rule)))
    await target.answer("\n\n".join(items), reply_markup=back_to_menu_keyboard(t))


async def open_rule(event: Message | CallbackQuery, state: FSMContext, t: Texts,
                    rules: PassRules, hr_queries: HrQueries) -> None:
    """⚖️ Pass rule, pressed in the HR menu or typed."""
    target = await acknowledge(event)
    if target is not None:
        await state.set_state(None)
        await show_rule(target, t, rules, admin=await hr_queries.is_admin(target.chat.id))


def create_router() -> Router:
    """The pass rule editor, for HR only."""
    router = hr_router("hr_pass_rule")
    register_screen(router, open_rule, HrMenu.filter(F.act == MenuAct.RULE), "hr.btn_rule")
    router.callback_query.register(rule_pressed, HrRule.filter())
    register_typed_answer(router, RuleStates.thresholds, thresholds_received,
                          thresholds_not_text)
    return router
