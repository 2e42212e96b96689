"""The pass rule in force and storing a grading: the use cases over `metrics` and `pass_rules`
(their SQL is in `tasks_metrics.repository`).

A band is always the newest rule's verdict on the stored figures. Storing a grading and
applying a rule both take one advisory lock (shared for a grading, exclusive for a rule), so
an attempt graded while HR apply a new rule can never keep the old rule's band.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db import Cursor, Database
from tasks_generator.repository import mark_graded
from tasks_metrics.pass_rule import PassRule, Verdict
from tasks_metrics.repository import (
    RULE_LOCK,
    Banded,
    RuleVersion,
    banded_by_others,
    counting_attempts,
    insert_rule,
    load_metrics,
    lock_rules,
    newest_rule,
    rebanded,
    rule_versions,
    store_metrics,
    write_bands,
)

logger = logging.getLogger(__name__)

__all__ = ["RULE_LOCK", "BandChanges", "RuleVersion", "StaleRule", "apply_rule", "current_rule",
           "ensure_rule", "load_metrics", "preview_rule", "rule_history", "save_metrics"]


class StaleRule(Exception):
    """The rule in force is not the one a draft was made from (someone changed it since)."""


@dataclass(frozen=True)
class BandChanges:
    """What a rule would change: moves of candidates' counting (latest graded) attempts
    between bands, and how many graded attempts in all would change band."""

    candidates: int
    moves: dict[tuple[str, str], int]
    attempts_changed: int

    @property
    def candidates_changed(self) -> int:
        """Candidates whose band would change."""
        return sum(self.moves.values())


async def current_rule(db: Database) -> RuleVersion:
    """The rule in force (the shipped defaults, unsaved, before the first start saved one)."""

    def work(cur: Cursor) -> RuleVersion:
        return newest_rule(cur) or RuleVersion(None, PassRule.default(), "settings", None, None)

    return await db.run(work)


async def rule_history(db: Database, limit: int = 10) -> list[RuleVersion]:
    """The newest rules, newest first."""
    return await rule_versions(db, limit)


def _changes(cur: Cursor, rule: PassRule) -> tuple[BandChanges, list[Banded]]:
    rows = rebanded(cur, rule)
    counting = counting_attempts(cur)
    moves: Counter[tuple[str, str]] = Counter(
        (r.old, r.new) for r in rows if r.attempt_id in counting and r.old != r.new)
    changed = sum(1 for r in rows if r.old != r.new)
    return BandChanges(len(counting), dict(moves), changed), rows


async def preview_rule(db: Database, rule: PassRule) -> BandChanges:
    """What applying `rule` would change, computed from the stored figures (no writes)."""

    def work(cur: Cursor) -> BandChanges:
        return _changes(cur, rule)[0]

    return await db.run(work)


def _apply(cur: Cursor, rule: PassRule, source: str, actor: int | None) -> tuple[int,
                                                                               BandChanges]:
    """Insert the rule and re-band every attempt (the caller holds the rule lock)."""
    changes, rows = _changes(cur, rule)
    rule_id = insert_rule(cur, rule, source, actor, changes.attempts_changed)
    write_bands(cur, rows, rule_id)
    return rule_id, changes


async def apply_rule(db: Database, rule: PassRule, *, actor: int,
                     based_on: int | None) -> tuple[int, BandChanges]:
    """Put `rule` in force (HR's change): keep it in the history and re-band every graded
    attempt from its stored figures, in one transaction. `based_on` is the rule the draft was
    made from: if another rule came into force since, StaleRule and nothing changes. Returns
    the new rule's number and what changed."""

    def work(cur: Cursor) -> tuple[int, BandChanges]:
        lock_rules(cur, shared=False)
        newest = newest_rule(cur)
        if (newest.id if newest else None) != based_on:
            raise StaleRule(f"rule {based_on} is no longer in force")
        return _apply(cur, rule, "hr", actor)

    return await db.run(work)


async def ensure_rule(db: Database, from_settings: PassRule) -> RuleVersion:
    """At start: the settings' rule is the first rule; while HR have not changed it in the
    bot, a change of the settings puts the new settings in force. Attempts banded by another
    rule than the one in force (graded before this version) are re-banded."""

    def work(cur: Cursor) -> RuleVersion:
        lock_rules(cur, shared=False)
        newest = newest_rule(cur)
        if newest is None or (newest.source == "settings" and newest.rule != from_settings):
            _, changes = _apply(cur, from_settings, "settings", None)
            logger.info("pass rule from the settings in force (%s); %d attempts changed band",
                        from_settings.describe(), changes.attempts_changed)
            newest = newest_rule(cur)
            assert newest is not None
            return newest
        if newest.rule != from_settings:
            logger.info("the GATE_* settings differ from the pass rule HR set in the bot on %s;"
                        " HR's rule stays in force", newest.created_at)
        _restamp(cur, newest)
        return newest

    return await db.run(work)


def _restamp(cur: Cursor, version: RuleVersion) -> None:
    """Re-band, under the rule in force, the attempts some other rule banded."""
    assert version.id is not None
    stale = banded_by_others(cur, version.id)
    if stale:
        write_bands(cur, [r for r in rebanded(cur, version.rule) if r.attempt_id in stale],
                    version.id)


async def save_metrics(
    db: Database,
    attempt_id: int,
    values: dict[str, Any],
    report: dict[str, Any],
    *,
    task_started: datetime | None,
    task_ended: datetime | None,
    key_version: int = 1,
    fingerprint: dict[str, Any] | None = None,
) -> Verdict:
    """Store (or replace, on a re-grade: the figures it had go to `metrics_history`) the
    metrics of one attempt, graded on answer key `key_version`, banded by the rule in force,
    and mark the attempt graded: one transaction. Returns the verdict."""

    def work(cur: Cursor) -> Verdict:
        lock_rules(cur, shared=True)
        version = newest_rule(cur)
        verdict = (version.rule if version else PassRule.default()).evaluate(values)
        store_metrics(cur, attempt_id, values, report, verdict,
                      version.id if version else None, task_started=task_started,
                      task_ended=task_ended, key_version=key_version, fingerprint=fingerprint)
        if not mark_graded(cur, attempt_id):
            logger.warning("attempt %s graded while not submitted", attempt_id)
        return verdict

    return await db.run(work)
