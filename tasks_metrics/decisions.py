"""HR's decisions (Invite, Reject, Hold) and which graded attempt counts for a candidate.

A decision is stored before its message goes out, and a candidate gets at most one message per
decision: pressing the same decision again sends nothing; a different one is a change, stored
as a new row (the history stays) and logged with the decision it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from db import Cursor, Database
from log import record_action_in
from tasks_metrics.hr_repository import (
    Counting,
    Decision,
    DecisionRecord,
    counting_attempt,
    counting_order,
    current_decision,
    decision_counts,
    decision_in_force,
    lock_candidate_decisions,
    mark_sent,
    store_decision,
)
from tasks_metrics.pass_rule import Verdict

__all__ = ["Counting", "Decision", "DecisionRecord", "Recorded", "RecordedKind", "Standing",
           "counting_order", "current_decision", "decision_counts", "mark_sent",
           "record_decision", "standing"]


@dataclass(frozen=True)
class Standing:
    """The candidate's result as it stands: the verdict of the attempt that counts."""

    attempt_number: int
    verdict: Verdict

    @property
    def band(self) -> str:
        """pass, borderline or fail."""
        return self.verdict.band


async def standing(db: Database, candidate_id: int, counting: str) -> Standing | None:
    """The verdict of the attempt that counts now (None before any graded attempt)."""
    row = await counting_attempt(db, candidate_id, counting)
    if row is None or row.band is None:
        return None
    return Standing(row.number, Verdict.from_stored(row.band, row.gates))


class RecordedKind(StrEnum):
    """What recording a decision did."""

    NEW = "new"
    CHANGED = "changed"  # replaces `previous`
    SAME = "same"  # that decision was already sent: nothing stored, nothing to send
    NO_CANDIDATE = "no_candidate"


@dataclass(frozen=True)
class Recorded:
    """What recording a decision did. kind: "new", "changed" (replaces `previous`), "same"
    (that decision was already sent: nothing stored, nothing to send) or "no_candidate"."""

    kind: RecordedKind
    decision: DecisionRecord | None = None
    previous: DecisionRecord | None = None


async def record_decision(db: Database, candidate_id: int, decision: Decision, note: str,
                          actor_id: int) -> Recorded:
    """Store HR's decision, one at a time per candidate (two HR pressing at once are
    serialised on the candidate's row); the same decision twice is stored once."""

    def work(cur: Cursor) -> Recorded:
        # One transaction: the decision and its line in the action log.
        if not lock_candidate_decisions(cur, candidate_id):
            return Recorded(RecordedKind.NO_CANDIDATE)
        previous = decision_in_force(cur, candidate_id)
        if previous is not None and previous.decision == decision and previous.sent_at:
            return Recorded(RecordedKind.SAME, previous)
        stored = store_decision(cur, candidate_id, decision, note, actor_id)
        changed = previous is not None and previous.decision != decision
        details: dict[str, Any] = {"decision": decision.value, "note": note}
        if previous is not None:
            details["previous"] = previous.decision.value
        record_action_in(cur, actor_id, "hr.decision", candidate_id, details)
        return Recorded(RecordedKind.CHANGED if changed else RecordedKind.NEW, stored, previous)

    return await db.run(work)
