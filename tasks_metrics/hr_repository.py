"""The one home of `decisions`, and of what HR read across the tables: candidates with their
latest graded attempt (lists, search, card), the figures of the digest, and the export sheets.

Every read of a candidate goes through `SUMMARY_FROM`: a candidate `c` with their latest graded
attempt `l` (band, score, number). Who is on which list is said in `LIST_CONDITIONS` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from db import Cursor, Database
from tasks_generator.repository import AttemptStatus
from tasks_metrics.pass_rule import Verdict
from tasks_metrics.repository import METRIC_COLUMNS, Flag, flags_of

_S = AttemptStatus


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


class ListName(StrEnum):
    """HR's lists, in the order the menu shows them."""

    REVIEW = "review"          # graded, no decision yet
    BORDERLINE = "borderline"  # the latest graded attempt is borderline
    TODAY = "today"            # submitted since local midnight
    STALLED = "stalled"        # a task received STALLED_AFTER_DAYS ago or more, not submitted
    EXPIRED = "expired"        # the time for the task ran out
    FLAGGED = "flagged"        # flagged for a closer look


# --- SQL ---------------------------------------------------------------------------------------

# ORDER BY of a candidate's graded attempts (a: attempts, m: metrics): the counting one first.
_COUNTING_ORDER = {
    Counting.LATEST: "a.number DESC",
    Counting.FIRST: "a.number ASC",
    Counting.BEST: ("CASE m.band WHEN 'pass' THEN 2 WHEN 'borderline' THEN 1 ELSE 0 END DESC,"
                    " m.score DESC NULLS LAST, a.number DESC"),
}

SUMMARY_FROM = """
FROM candidates c
LEFT JOIN LATERAL (
    SELECT m.band, m.score, a.number FROM attempts a JOIN metrics m ON m.attempt_id = a.id
    WHERE a.candidate_id = c.id ORDER BY a.number DESC LIMIT 1) l ON true
"""
SUMMARY_SQL = """
SELECT c.id, c.telegram_id, c.telegram_username, c.full_name, c.cvat_username, c.cvat_user_id,
       c.created_at, c.cvat_deleted_at, c.extra_attempts, l.band, l.score, l.number AS latest,
       c.cvat_deactivated_at, c.returned_after, c.previous_attempts, c.previously_tested_at
""" + SUMMARY_FROM
_NEWEST_FIRST = " ORDER BY c.created_at DESC, c.id DESC"
_SEARCH = {
    "id": " WHERE c.telegram_id = %s OR lower(c.cvat_username) = lower(%s)",
    "telegram": " WHERE lower(c.telegram_username) = lower(%s)",
    "name": " WHERE lower(c.cvat_username) = lower(%s) OR lower(c.telegram_username) = lower(%s)",
    "part": " WHERE c.telegram_username ILIKE %s OR c.cvat_username ILIKE %s"
            " OR c.full_name ILIKE %s",
}

LIST_CONDITIONS: dict[ListName, str] = {
    # Graded, nothing newer in progress, and no decision of HR yet.
    ListName.REVIEW: "l.band IS NOT NULL AND NOT EXISTS (SELECT 1 FROM attempts a"
                   " WHERE a.candidate_id = c.id AND a.number > l.number"
                   f" AND a.status NOT IN ('{_S.FAILED}', '{_S.EXPIRED}'))"
                   " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.candidate_id = c.id)",
    ListName.BORDERLINE: "l.band = 'borderline'",
    ListName.TODAY: "EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
                  " AND a.submitted_at >= %(today)s AND a.submitted_at < %(now)s)",
    ListName.STALLED: "EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
                    f" AND a.status = '{_S.READY}' AND a.task_started < %(stalled_before)s)",
    ListName.EXPIRED: "EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
                    f" AND a.status = '{_S.EXPIRED}')",
    ListName.FLAGGED: "EXISTS (SELECT 1 FROM flags f JOIN attempts a ON a.id = f.attempt_id"
                    " WHERE a.candidate_id = c.id)",
}
_LIST_COUNTS = "SELECT {counts} " + SUMMARY_FROM
_LIST_TOTAL = "SELECT count(*) FROM ({summary}{where}) listed"
_LIST_PAGE = "{summary}{where}" + _NEWEST_FIRST + " LIMIT %(limit)s OFFSET %(offset)s"
_GRADED_SINCE = (
    "SELECT count(*) AS graded, count(*) FILTER (WHERE band = 'pass') AS passed,"
    " count(*) FILTER (WHERE band = 'borderline') AS borderline,"
    " count(*) FILTER (WHERE band = 'fail') AS failed"
    " FROM metrics WHERE graded_at >= %s AND graded_at < %s")

# The figures of a graded attempt on its card.
CARD_METRICS = (*METRIC_COLUMNS, "band", "graded_at", "rule_id")
_CARD_ATTEMPTS = (
    "SELECT a.id, a.number, a.status, cardinality(a.image_subset) AS images,"
    " a.task_started, a.task_ended, a.submitted_at,"
    " a.submitted_annotations IS NOT NULL AS has_work, m.attempt_id AS graded,"
    f" m.task_completed, {', '.join(f'm.{column}' for column in CARD_METRICS)},"
    " m.report -> 'plates' AS plates, m.gates, m.key_version, a.cvat_task_id, a.cvat_job_id,"
    " a.grading_error"
    " FROM attempts a LEFT JOIN metrics m ON m.attempt_id = a.id"
    " WHERE a.candidate_id = %s ORDER BY a.number")
_STANDING = ("SELECT a.number, m.band, m.gates FROM attempts a"
             " JOIN metrics m ON m.attempt_id = a.id WHERE a.candidate_id = %s"
             " ORDER BY {order} LIMIT 1")

_DECISION = (
    "SELECT d.id, d.candidate_id, d.decision, d.note, d.decided_by, d.decided_at, d.sent_at,"
    " coalesce(nullif(u.full_name, ''), '@' || u.username, d.decided_by::text)"
    " AS decided_by_name"
    " FROM decisions d LEFT JOIN telegram_users u ON u.telegram_id = d.decided_by"
    " WHERE d.candidate_id = %s ORDER BY d.id DESC LIMIT 1")
_LOCK_CANDIDATE = "SELECT id FROM candidates WHERE id = %s FOR UPDATE"
_DECIDED = ("INSERT INTO decisions (candidate_id, decision, note, decided_by)"
            " VALUES (%s, %s, %s, %s)")
_DECISION_SENT = "UPDATE decisions SET sent_at = now() WHERE id = %s"
_DECISION_COUNTS = (
    "SELECT decision, count(*) AS n FROM (SELECT DISTINCT ON (candidate_id) decision"
    " FROM decisions ORDER BY candidate_id, id DESC) d GROUP BY decision"
    " UNION ALL SELECT 'pending', count(DISTINCT m.candidate_id) FROM metrics m"
    " WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE d.candidate_id = m.candidate_id)")

_METRIC_SQL = """
    m.score, m.band, m.gates AS failed_gates, m.car_iou, m.plate_iou, m.plate_accuracy,
    m.task_started, m.task_ended,
    (extract(epoch FROM m.task_completed) / 60)::float8 AS time_spent_min, m.times_attempted,
    (SELECT count(*) FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(m.report -> 'plates') = 'array' THEN m.report -> 'plates'
             ELSE '[]'::jsonb END) p
     WHERE p ->> 'correct' = 'false')::int AS wrong_plates,
    m.car_precision, m.car_recall, m.car_matched_iou, m.car_missed, m.car_extra,
    m.plate_precision, m.plate_recall, m.plate_matched_iou, m.plate_missed, m.plate_extra,
    m.plate_cer, m.graded_at, a.cvat_task_id, a.cvat_job_id, m.key_version,
    (SELECT jsonb_agg(jsonb_build_object(
        'kind', f.kind, 'evidence', f.evidence, 'other_attempt', f.other_attempt,
        'other_candidate', o.candidate_id, 'other_number', o.number,
        'other_name', coalesce(nullif(oc.full_name, ''), '@' || oc.telegram_username,
                               oc.telegram_id::text, '')) ORDER BY f.kind, f.id)
     FROM flags f LEFT JOIN attempts o ON o.id = f.other_attempt
     LEFT JOIN candidates oc ON oc.id = o.candidate_id
     WHERE f.attempt_id = a.id AND m.attempt_id IS NOT NULL) AS flags"""

# {order}: the ORDER BY that puts the attempt that counts first (ATTEMPT_COUNTS).
_CANDIDATES_SHEET = f"""
SELECT c.id AS candidate_id, c.telegram_id, c.telegram_username, c.full_name, c.cvat_username,
       c.created_at, c.cvat_deleted_at,
       (SELECT count(*) FROM attempts s WHERE s.candidate_id = c.id
          AND s.status IN ('{_S.SUBMITTED}', '{_S.GRADED}'))::int AS attempts_submitted,
       c.extra_attempts, d.decision,
       coalesce(nullif(u.full_name, ''), '@' || u.username, d.decided_by::text) AS decided_by,
       d.decided_at, a.number AS latest_attempt, {{metrics}}
FROM candidates c
LEFT JOIN LATERAL (
    SELECT a.id, a.number, a.cvat_task_id, a.cvat_job_id
    FROM attempts a JOIN metrics m ON m.attempt_id = a.id
    WHERE a.candidate_id = c.id ORDER BY {{order}} LIMIT 1) a ON true
LEFT JOIN metrics m ON m.attempt_id = a.id
LEFT JOIN LATERAL (
    SELECT decision, decided_by, decided_at FROM decisions
    WHERE candidate_id = c.id ORDER BY id DESC LIMIT 1) d ON true
LEFT JOIN telegram_users u ON u.telegram_id = d.decided_by
ORDER BY c.id"""

ATTEMPTS_SQL = f"""
SELECT c.id AS candidate_id, c.telegram_id, c.telegram_username, c.full_name, c.cvat_username,
       a.number AS attempt, a.status, a.submitted_at, {_METRIC_SQL}
FROM attempts a JOIN candidates c ON c.id = a.candidate_id
LEFT JOIN metrics m ON m.attempt_id = a.id
ORDER BY c.id, a.number"""


def counting_order(counting: str) -> str:
    """The SQL ORDER BY (over `attempts a JOIN metrics m`) that puts the attempt that counts
    first."""
    return _COUNTING_ORDER[Counting(counting)]


def candidates_sql(counting: str = "latest") -> str:
    """The candidates sheet's query, each candidate with the attempt that counts."""
    return _CANDIDATES_SHEET.format(metrics=_METRIC_SQL, order=counting_order(counting))


# --- candidates as HR see them ----------------------------------------------------------------


@dataclass(frozen=True)
class CandidateSummary:
    """A candidate as HR see them in lists and at the top of the card."""

    id: int
    telegram_id: int
    telegram_username: str | None
    full_name: str
    cvat_username: str | None
    cvat_user_id: int | None
    created_at: datetime
    cvat_deleted_at: datetime | None
    extra_attempts: int
    band: str | None = None
    score: float | None = None
    latest: int | None = None
    cvat_deactivated_at: datetime | None = None  # by the bot, after the test was over
    returned_after: datetime | None = None  # their data was deleted then; this is a new start
    previous_attempts: int = 0  # attempts used before that deletion
    previously_tested_at: datetime | None = None  # their last test before that deletion

    @property
    def has_cvat_account(self) -> bool:
        """An account was registered and not deleted by HR since."""
        return self.cvat_user_id is not None and self.cvat_deleted_at is None


@dataclass(frozen=True)
class AttemptCard:
    """One attempt on the card: progress, time, metrics and the wrong plates."""

    id: int
    number: int
    status: AttemptStatus
    images: int
    task_started: datetime | None
    task_ended: datetime | None
    submitted_at: datetime | None
    time_spent: timedelta | None
    metrics: dict[str, Any] | None  # CARD_METRICS of a graded attempt
    wrong_plates: list[dict[str, Any]] = field(default_factory=list)
    has_work: bool = False
    verdict: Verdict | None = None
    grading_error: str | None = None  # why its grading failed, while it is not graded
    cvat_task_id: int | None = None
    cvat_job_id: int | None = None
    key_version: int | None = None  # the answer key it was graded on
    flags: list[Flag] = field(default_factory=list)


def summary_of(row: dict[str, Any]) -> CandidateSummary:
    """A CandidateSummary from a row of SUMMARY_SQL."""
    return CandidateSummary(**{k: row[k] for k in CandidateSummary.__dataclass_fields__})


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def find_candidates(db: Database, how: str, text: str,
                          limit: int) -> list[CandidateSummary]:
    """Candidates newest first: `how` "id" (a Telegram id or a CVAT name), "telegram" (an exact
    @username), "name" (an exact CVAT or Telegram name) or "part" (part of any name)."""
    if how == "id":
        params: tuple[Any, ...] = (int(text), text)
    elif how == "telegram":
        params = (text,)
    elif how == "name":
        params = (text, text)
    else:
        params = (_like(text),) * 3
    rows = await db.fetchall(SUMMARY_SQL + _SEARCH[how] + _NEWEST_FIRST + " LIMIT %s",
                             (*params, limit))
    return [summary_of(row) for row in rows]


async def candidate_summary(db: Database, candidate_id: int) -> CandidateSummary | None:
    """One candidate by row id, or None (deleted)."""
    row = await db.fetchone(SUMMARY_SQL + " WHERE c.id = %s", (candidate_id,))
    return summary_of(row) if row else None


async def card_attempts(db: Database, candidate_id: int) -> list[AttemptCard]:
    """Every attempt of the candidate with its stored figures and flags, oldest first."""
    rows = await db.fetchall(_CARD_ATTEMPTS, (candidate_id,))
    flags = await flags_of(db, [row["id"] for row in rows])
    return [_attempt_card(row, flags.get(row["id"], [])) for row in rows]


def _attempt_card(row: dict[str, Any], flags: list[Flag]) -> AttemptCard:
    graded = row["graded"] is not None
    spent = row["task_completed"]
    if spent is None and row["task_started"] and row["task_ended"]:
        spent = row["task_ended"] - row["task_started"]
    plates = row["plates"] if isinstance(row["plates"], list) else []
    status = AttemptStatus(row["status"])
    return AttemptCard(
        id=row["id"], number=row["number"], status=status, images=row["images"],
        task_started=row["task_started"], task_ended=row["task_ended"],
        submitted_at=row["submitted_at"], time_spent=spent,
        metrics={k: row[k] for k in CARD_METRICS} if graded else None,
        wrong_plates=[p for p in plates if isinstance(p, dict) and not p.get("correct")],
        has_work=row["has_work"],
        verdict=Verdict.from_stored(row["band"], row["gates"]) if graded else None,
        grading_error=row["grading_error"] if status == AttemptStatus.SUBMITTED else None,
        cvat_task_id=row["cvat_task_id"], cvat_job_id=row["cvat_job_id"],
        key_version=row["key_version"], flags=flags)


@dataclass(frozen=True)
class StandingRow:
    """The attempt that counts for a candidate, as stored."""

    number: int
    band: str | None
    gates: Any


async def counting_attempt(db: Database, candidate_id: int, counting: str) -> StandingRow | None:
    """The candidate's graded attempt that counts (by `counting`), or None."""
    row = await db.fetchone(_STANDING.format(order=counting_order(counting)), (candidate_id,))
    return StandingRow(**row) if row else None


# --- lists and the digest ----------------------------------------------------------------------


async def list_counts(db: Database, params: dict[str, Any]) -> dict[ListName, int]:
    """How many candidates are on each list, in one query."""
    counts = ", ".join(f"count(*) FILTER (WHERE {LIST_CONDITIONS[name]}) AS {name}"
                       for name in ListName)
    row = await db.fetchone(_LIST_COUNTS.format(counts=counts), params)
    assert row is not None
    return {name: int(row[name]) for name in ListName}


async def list_page(db: Database, name: ListName, params: dict[str, Any], limit: int,
                    offset: int) -> tuple[int, list[CandidateSummary]]:
    """(how many are on the list, the `limit` candidates after `offset`), newest first."""
    where = f" WHERE {LIST_CONDITIONS[name]}"
    params = params | {"limit": limit, "offset": offset}
    total = await db.fetchval(_LIST_TOTAL.format(summary=SUMMARY_SQL, where=where), params)
    rows = await db.fetchall(_LIST_PAGE.format(summary=SUMMARY_SQL, where=where), params)
    return int(total or 0), [summary_of(row) for row in rows]


@dataclass(frozen=True)
class GradedCounts:
    """Attempts graded in a period, by band."""

    graded: int
    passed: int
    borderline: int
    failed: int


async def graded_between(db: Database, since: datetime, until: datetime) -> GradedCounts:
    """Attempts graded in [since, until), by band."""
    row = await db.fetchone(_GRADED_SINCE, (since, until))
    assert row is not None
    return GradedCounts(**row)


# --- decisions ---------------------------------------------------------------------------------


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
        """From a row of _DECISION."""
        return cls(row["id"], row["candidate_id"], Decision(row["decision"]), row["note"],
                   row["decided_by"], row["decided_by_name"], row["decided_at"],
                   row["sent_at"])


def _decision_in(cur: Cursor, candidate_id: int) -> DecisionRecord | None:
    cur.execute(_DECISION, (candidate_id,))
    row = cur.fetchone()
    return DecisionRecord.from_row(dict(row)) if row else None


async def current_decision(db: Database, candidate_id: int) -> DecisionRecord | None:
    """The decision in force for a candidate, if HR made one."""
    return await db.run(lambda cur: _decision_in(cur, candidate_id))


def lock_candidate_decisions(cur: Cursor, candidate_id: int) -> bool:
    """Inside a transaction: hold the candidate's row (two HR deciding at once take turns);
    False when there is no such candidate."""
    cur.execute(_LOCK_CANDIDATE, (candidate_id,))
    return cur.fetchone() is not None


def decision_in_force(cur: Cursor, candidate_id: int) -> DecisionRecord | None:
    """Inside a transaction: the decision in force for a candidate."""
    return _decision_in(cur, candidate_id)


def store_decision(cur: Cursor, candidate_id: int, decision: Decision, note: str,
                   actor_id: int) -> DecisionRecord:
    """Inside a transaction: a new decision (the history stays); as stored."""
    cur.execute(_DECIDED, (candidate_id, decision, note, actor_id))
    stored = _decision_in(cur, candidate_id)
    assert stored is not None
    return stored


async def mark_sent(db: Database, decision_id: int) -> None:
    """The decision's message reached the candidate."""
    await db.execute(_DECISION_SENT, (decision_id,))


async def decision_counts(db: Database) -> dict[str, int]:
    """How many candidates have each decision in force, and how many graded candidates await
    one ("pending")."""
    counts = {str(decision): 0 for decision in Decision} | {"pending": 0}
    counts.update({row["decision"]: row["n"] for row in await db.fetchall(_DECISION_COUNTS)})
    return counts


# --- the export --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRows:
    """What the database holds for an export: column names and row tuples of both sheets."""

    candidate_columns: list[str]
    candidates: list[tuple[Any, ...]]
    attempt_columns: list[str]
    attempts: list[tuple[Any, ...]]


async def export_rows(db: Database, counting: str = "latest") -> ExportRows:
    """Every candidate (with the attempt that counts, by ATTEMPT_COUNTS) and every attempt
    with their metrics, in one transaction."""

    def work(cur: Cursor) -> ExportRows:
        # A plain tuple cursor: much cheaper than dict rows for tens of thousands of rows.
        with cur.connection.cursor() as plain:
            plain.execute(candidates_sql(counting))
            candidate_columns = [d.name for d in plain.description]
            candidates = plain.fetchall()
            plain.execute(ATTEMPTS_SQL)
            attempt_columns = [d.name for d in plain.description]
            attempts = plain.fetchall()
        return ExportRows(candidate_columns, candidates, attempt_columns, attempts)

    return await db.run(work)
