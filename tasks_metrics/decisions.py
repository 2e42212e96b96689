"""HR's decisions (Invite, Reject, Hold) and which graded attempt counts for a candidate.

A decision is stored before its message goes out, and a candidate gets at most one message per
decision: pressing the same decision again sends nothing; a different one is a change, stored
as a new row (the history stays) and logged with the decision it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from db import Cursor, Database
from log import record_action
from tasks_metrics.pass_rule import Verdict


class Decision(StrEnum):
    """What HR decided about a candidate."""

    INVITE = "invite"
    REJECT = "reject"
    HOLD = "hold"


class Counting(StrEnum):
    """Which graded attempt decides a candidate's result (the ATTEMPT_COUNTS setting)."""

    LATEST = "latest"
    BEST = "best"
    FIRST = "first"


# ORDER BY of a candidate's graded attempts (a: attempts, m: metrics): the counting one first.
_COUNTING_ORDER = {
    Counting.LATEST: "a.number DESC",
    Counting.FIRST: "a.number ASC",
    Counting.BEST: ("CASE m.band WHEN 'pass' THEN 2 WHEN 'borderline' THEN 1 ELSE 0 END DESC,"
                    " m.score DESC NULLS LAST, a.number DESC"),
}


def counting_order(counting: str) -> str:
    """The SQL ORDER BY (over `attempts a JOIN metrics m`) that puts the attempt that counts
    first."""
    return _COUNTING_ORDER[Counting(counting)]


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
    row = await db.fetchone(
        "SELECT a.number, m.band, m.gates FROM attempts a"
        " JOIN metrics m ON m.attempt_id = a.id WHERE a.candidate_id = %s"
        f" ORDER BY {counting_order(counting)} LIMIT 1", (candidate_id,))
    if row is None or row["band"] is None:
        return None
    return Standing(row["number"], Verdict.from_stored(row["band"], row["gates"]))


@dataclass(frozen=True)
class DecisionRecord:
    """A stored decision."""

    id: int
    candidate_id: int
    decision: Decision
    note: str
    decided_by: int
    decided_by_name: str
    decided_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DecisionRecord:
        """From a row of _DECISION_SQL."""
        return cls(row["id"], row["candidate_id"], Decision(row["decision"]), row["note"],
                   row["decided_by"], row["decided_by_name"], row["decided_at"],
                   row["sent_at"])


_DECISION_SQL = (
    "SELECT d.id, d.candidate_id, d.decision, d.note, d.decided_by, d.decided_at, d.sent_at,"
    " coalesce(nullif(u.full_name, ''), '@' || u.username, d.decided_by::text)"
    " AS decided_by_name"
    " FROM decisions d LEFT JOIN telegram_users u ON u.telegram_id = d.decided_by"
    " WHERE d.candidate_id = %s ORDER BY d.id DESC LIMIT 1")


async def current_decision(db: Database, candidate_id: int) -> DecisionRecord | None:
    """The decision in force for a candidate, if HR made one."""
    row = await db.fetchone(_DECISION_SQL, (candidate_id,))
    return DecisionRecord.from_row(row) if row else None


@dataclass(frozen=True)
class Recorded:
    """What recording a decision did. kind: "new", "changed" (replaces `previous`), "same"
    (that decision was already sent: nothing stored, nothing to send) or "no_candidate"."""

    kind: str
    decision: DecisionRecord | None = None
    previous: DecisionRecord | None = None


async def record_decision(db: Database, candidate_id: int, decision: Decision, note: str,
                          actor_id: int) -> Recorded:
    """Store HR's decision, one at a time per candidate (two HR pressing at once are
    serialised on the candidate's row); the same decision twice is stored once."""

    def work(cur: Cursor) -> Recorded:
        cur.execute("SELECT id FROM candidates WHERE id = %s FOR UPDATE", (candidate_id,))
        if cur.fetchone() is None:
            return Recorded("no_candidate")
        cur.execute(_DECISION_SQL, (candidate_id,))
        row = cur.fetchone()
        previous = DecisionRecord.from_row(dict(row)) if row else None
        if previous is not None and previous.decision == decision and previous.sent_at:
            return Recorded("same", previous)
        cur.execute("INSERT INTO decisions (candidate_id, decision, note, decided_by)"
                    " VALUES (%s, %s, %s, %s)", (candidate_id, decision.value, note, actor_id))
        cur.execute(_DECISION_SQL, (candidate_id,))
        stored = DecisionRecord.from_row(dict(cur.fetchone()))
        changed = previous is not None and previous.decision != decision
        return Recorded("changed" if changed else "new", stored, previous)

    recorded = await db.run(work)
    if recorded.decision is not None and recorded.kind != "same":
        details: dict[str, Any] = {"decision": decision.value, "note": note}
        if recorded.previous is not None:
            details["previous"] = recorded.previous.decision.value
        await record_action(db, actor_id, "hr.decision", candidate_id, details)
    return recorded


async def mark_sent(db: Database, decision_id: int) -> None:
    """The decision's message reached the candidate."""
    await db.execute("UPDATE decisions SET sent_at = now() WHERE id = %s", (decision_id,))


async def decision_counts(db: Database) -> dict[str, int]:
    """How many candidates have each decision in force, and how many graded candidates await
    one ("pending")."""
    rows = await db.fetchall(
        "SELECT decision, count(*) AS n FROM (SELECT DISTINCT ON (candidate_id) decision"
        " FROM decisions ORDER BY candidate_id, id DESC) d GROUP BY decision"
        " UNION ALL SELECT 'pending', count(DISTINCT m.candidate_id) FROM metrics m"
        " WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE d.candidate_id = m.candidate_id)")
    counts = {str(decision): 0 for decision in Decision} | {"pending": 0}
    counts.update({row["decision"]: row["n"] for row in rows})
    return counts
