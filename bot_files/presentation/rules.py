"""The pass rule as HR read it: the rule in force, a draft beside it with who would change
band, the question for one measure's thresholds, and the history."""

from __future__ import annotations

from bot_files.hr_keyboards import (
    back_to_menu_keyboard,
    rule_keyboard,
    rule_preview_keyboard,
)
from bot_files.presentation.text import Letter, when_text
from bot_files.presentation.verdicts import band_text, gate_name, percent, rule_lines
from bot_files.texts import Raw, Texts
from tasks_metrics.to_handlers import MEASURES, BandChanges, Measure, PassRule, RuleVersion


def _by(t: Texts, version: RuleVersion) -> str:
    if version.source == "settings":
        return t("hr.rule_by_settings")
    return t("hr.rule_by_hr", who=version.created_by_name or str(version.created_by))


def _measure_buttons(t: Texts) -> list[tuple[str, str]]:
    return [(str(m), gate_name(t, m)) for m in MEASURES]


def rule_in_force(t: Texts, version: RuleVersion, *, admin: bool) -> Letter:
    """The rule in force, with a button per measure to change it (for admins)."""
    return Letter(t("hr.rule_title" if admin else "hr.rule_title_viewer",
                    number=version.id or 0, since=when_text(t, version.created_at),
                    by=_by(t, version), gates=Raw("\n".join(rule_lines(t, version.rule)))),
                  rule_keyboard(t, _measure_buttons(t), draft=False, admin=admin))


def draft_gates(t: Texts, draft: PassRule) -> Letter:
    """The draft's gates, with a button per measure to change another."""
    return Letter("\n".join(rule_lines(t, draft)),
                  rule_keyboard(t, _measure_buttons(t), draft=True))


def _changes_text(t: Texts, changes: BandChanges) -> str:
    if not changes.moves:
        return t("hr.rule_changes_none", candidates=changes.candidates)
    lines = [t("hr.rule_changes", count=changes.candidates_changed,
               candidates=changes.candidates)]
    for (old, new), count in sorted(changes.moves.items()):
        lines.append(t("hr.rule_move", old=band_text(t, old), new=band_text(t, new),
                       count=count))
    return "\n".join(lines)


def preview(t: Texts, draft: PassRule, before: PassRule | None, changes: BandChanges) -> Letter:
    """The draft beside the rule it was made from (if still in force), and who would move."""
    return Letter(t("hr.rule_preview", gates=Raw("\n".join(rule_lines(t, draft, before))),
                    changes=Raw(_changes_text(t, changes))),
                  rule_preview_keyboard(t))


def thresholds_question(t: Texts, measure: Measure, draft: PassRule) -> str:
    """The question for one measure's new thresholds, with what they are now."""
    gate = draft.gate(measure)
    now = t("hr.rule_now_off") if gate is None else t(
        "hr.rule_now", pass_at=percent(t, gate.pass_at),
        borderline_at=percent(t, gate.borderline_at))
    return t("hr.rule_ask", name=gate_name(t, measure), now=Raw(now))


def _compact(t: Texts, rule: PassRule) -> str:
    """"cars found 95%/85% · plates found 90%/80% · …" (a history line)."""
    return " · ".join(f"{gate_name(t, g.measure)} {percent(t, g.pass_at)}/"
                      f"{percent(t, g.borderline_at)}" for g in rule.gates)


def history(t: Texts, versions: list[RuleVersion]) -> Letter:
    """The last rules, newest first."""
    items = [t("hr.rule_history_title")]
    items += [t("hr.rule_history_item", number=version.id or 0,
                when=when_text(t, version.created_at), by=_by(t, version),
                changed=version.changed if version.changed is not None else 0,
                gates=_compact(t, version.rule))
              for version in versions]
    return Letter("\n\n".join(items), back_to_menu_keyboard(t))
