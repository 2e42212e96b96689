"""The one home of `metrics` (one row per graded attempt; a re-grade replaces it, the figures
it had go to `metrics_history`), `pass_rules` (the rule in force is the newest row; older rows
are its history), `flags` and `answer_keys`: their SQL and typed rows.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import execute_values

from db import Cursor, Database
from log import jsonb
from tasks_generator.repository import AttemptStatus
from tasks_metrics.pass_rule import MEASURES, PassRule, RuleError, Verdict

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the pass rule ("rule" in ASCII).
RULE_LOCK = 0x72756C65

# The figures of a grading, one column each.
METRIC_COLUMNS = (
    "car_iou", "plate_iou", "plate_accuracy", "score",
    "car_precision", "car_recall", "car_matched_iou", "car_missed", "car_extra",
    "plate_precision", "plate_recall", "plate_matched_iou", "plate_missed", "plate_extra",
    "plate_cer",
)
_MEASURE_COLUMNS = ", ".join(m.column for m in MEASURES)


@dataclass(frozen=True)
class RuleVersion:
    """A pass rule as stored: its id, when, by whom, and how many attempts it re-banded."""

    id: int | None
    rule: PassRule
    source: str
    created_by: int | None
    created_at: datetime | None
    changed: int | None = None
    created_by_name: str = ""


def _rule_row(row: dict[str, Any] | None) -> RuleVersion | None:
    if row is None:
        return None
    try:
        rule = PassRule.from_dict(row["gates"])
    except RuleError as exc:
        logger.error("pass rule %s in the database is unreadable (%s); using the defaults",
                     row["id"], exc)
        rule = PassRule.default()
    return RuleVersion(row["id"], rule, row["source"], row["created_by"], row["created_at"],
                       row.get("changed"), row.get("created_by_name") or "")


_RULES = (
    "SELECT r.id, r.gates, r.source, r.created_by, r.created_at, r.changed,"
    " coalesce(nullif(u.full_name, ''), '@' || u.username, r.created_by::text)"
    " AS created_by_name"
    " FROM pass_rules r LEFT JOIN telegram_users u ON u.telegram_id = r.created_by"
    " ORDER BY r.id DESC LIMIT %s")
_LOCK_RULES = "SELECT pg_advisory_xact_lock(%s)"
_LOCK_RULES_SHARED = "SELECT pg_advisory_xact_lock_shared(%s)"
_GRADED_FIGURES = (f"SELECT attempt_id, candidate_id, band, {_MEASURE_COLUMNS} FROM metrics"
                   " ORDER BY attempt_id")
_COUNTING_ATTEMPTS = ("SELECT DISTINCT ON (candidate_id) attempt_id FROM metrics"
                      " ORDER BY candidate_id, times_attempted DESC")
_WRITE_BANDS = (
    "UPDATE metrics m SET band = v.band, gates = v.gates::jsonb, rule_id = v.rule_id,"
    " report = jsonb_set(jsonb_set(m.report, '{band}', to_jsonb(v.band)),"
    " '{gates}', v.gates::jsonb)"
    " FROM (VALUES %s) AS v (attempt_id, band, gates, rule_id)"
    " WHERE m.attempt_id = v.attempt_id")
_INSERT_RULE = ("INSERT INTO pass_rules (gates, source, created_by, changed)"
                " VALUES (%s::jsonb, %s, %s, %s) RETURNING id")
_BANDED_BY_OTHERS = "SELECT attempt_id FROM metrics WHERE rule_id IS DISTINCT FROM %s"
_KEEP_FIGURES = ("INSERT INTO metrics_history (attempt_id, key_version, figures)"
                 " SELECT attempt_id, key_version, to_jsonb(m) - 'report' - 'fingerprint'"
                 " FROM metrics m WHERE attempt_id = %s")
_STORE_METRICS = (
    "INSERT INTO metrics (attempt_id, candidate_id, times_attempted, task_started,"
    f" task_ended, report, band, gates, rule_id, key_version, fingerprint,"
    f" {', '.join(METRIC_COLUMNS)})"
    " SELECT a.id, a.candidate_id, a.number, %(task_started)s, %(task_ended)s,"
    " %(report)s::jsonb, %(band)s, %(gates)s::jsonb, %(rule_id)s, %(key_version)s,"
    f" %(fingerprint)s::jsonb, {', '.join(f'%({c})s' for c in METRIC_COLUMNS)}"
    " FROM attempts a WHERE a.id = %(attempt_id)s"
    " ON CONFLICT (attempt_id) DO UPDATE SET task_started = EXCLUDED.task_started,"
    " task_ended = EXCLUDED.task_ended, report = EXCLUDED.report, graded_at = now(),"
    " band = EXCLUDED.band, gates = EXCLUDED.gates, rule_id = EXCLUDED.rule_id,"
    " key_version = EXCLUDED.key_version, fingerprint = EXCLUDED.fingerprint,"
    f" {', '.join(f'{c} = EXCLUDED.{c}' for c in METRIC_COLUMNS)}")
_LOAD_METRICS = "SELECT * FROM metrics WHERE attempt_id = %s"


@dataclass(frozen=True)
class Banded:
    """A graded attempt's band under some rule: the stored one and the new one."""

    attempt_id: int
    candidate_id: int
    old: str
    new: str
    verdict: Verdict


def lock_rules(cur: Cursor, *, shared: bool) -> None:
    """Inside a transaction: the pass rule's lock, until COMMIT (shared for a grading,
    exclusive for a change of the rule)."""
    cur.execute(_LOCK_RULES_SHARED if shared else _LOCK_RULES, (RULE_LOCK,))


def newest_rule(cur: Cursor) -> RuleVersion | None:
    """Inside a transaction: the rule in force (None before the first was stored)."""
    cur.execute(_RULES, (1,))
    row = cur.fetchone()
    return _rule_row(dict(row) if row else None)


async def rule_versions(db: Database, limit: int) -> list[RuleVersion]:
    """The newest rules, newest first."""
    return [v for v in map(_rule_row, await db.fetchall(_RULES, (limit,))) if v is not None]


def rebanded(cur: Cursor, rule: PassRule) -> list[Banded]:
    """Inside a transaction: every graded attempt under `rule`, from the stored figures."""
    cur.execute(_GRADED_FIGURES)
    out = []
    for row in cur.fetchall():
        verdict = rule.evaluate(row)
        out.append(Banded(row["attempt_id"], row["candidate_id"], row["band"], verdict.band,
                          verdict))
    return out


def counting_attempts(cur: Cursor) -> set[int]:
    """Inside a transaction: the attempt that counts for each graded candidate (the latest
    graded one)."""
    cur.execute(_COUNTING_ATTEMPTS)
    return {row["attempt_id"] for row in cur.fetchall()}


def write_bands(cur: Cursor, rows: list[Banded], rule_id: int) -> None:
    """Inside a transaction: store each attempt's new band under rule `rule_id`."""
    if not rows:
        return
    execute_values(cur, _WRITE_BANDS,
                   [(r.attempt_id, r.new, json.dumps(r.verdict.gates_dicts()), rule_id)
                    for r in rows],
                   template="(%s, %s, %s, %s)", page_size=1000)


def insert_rule(cur: Cursor, rule: PassRule, source: str, actor: int | None,
                changed: int) -> int:
    """Inside a transaction: a new rule in force; its id."""
    cur.execute(_INSERT_RULE, (json.dumps(rule.to_dict()), source, actor, changed))
    return int(cur.fetchone()["id"])


def banded_by_others(cur: Cursor, rule_id: int) -> set[int]:
    """Inside a transaction: the attempts some other rule than `rule_id` banded."""
    cur.execute(_BANDED_BY_OTHERS, (rule_id,))
    return {row["attempt_id"] for row in cur.fetchall()}


def store_metrics(cur: Cursor, attempt_id: int, values: dict[str, Any], report: dict[str, Any],
                  verdict: Verdict, rule_id: int | None, *, task_started: datetime | None,
                  task_ended: datetime | None, key_version: int,
                  fingerprint: dict[str, Any] | None) -> None:
    """Inside a transaction: store (or replace, keeping what it had in `metrics_history`) the
    figures of one attempt, banded by `verdict` of rule `rule_id`."""
    cur.execute(_KEEP_FIGURES, (attempt_id,))
    stored = {**report, "band": verdict.band, "gates": verdict.gates_dicts()}
    cur.execute(_STORE_METRICS, {
        **{c: values.get(c) for c in METRIC_COLUMNS}, "attempt_id": attempt_id,
        "task_started": task_started, "task_ended": task_ended,
        "report": jsonb(stored, ensure_ascii=False), "band": verdict.band,
        "gates": json.dumps(verdict.gates_dicts()), "rule_id": rule_id,
        "key_version": key_version,
        "fingerprint": jsonb(fingerprint or {}, ensure_ascii=False)})


async def load_metrics(db: Database, attempt_id: int) -> dict[str, Any] | None:
    """The stored metrics row of an attempt, or None."""
    return await db.fetchone(_LOAD_METRICS, (attempt_id,))


# --- flags -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One flag on an attempt, with the other attempt's candidate for a pair."""

    kind: str
    attempt_id: int
    evidence: dict[str, Any]
    other_attempt: int | None = None
    other_candidate: int | None = None
    other_name: str = ""
    other_number: int | None = None


@dataclass(frozen=True)
class FlagWork:
    """What flagging compares of one graded attempt: its fingerprint (boxes and texts per
    image), the time it took, its number of objects and its wrong plate texts."""

    id: int
    candidate_id: int
    fingerprint: dict[str, Any]
    task_completed: Any  # a timedelta, or None
    objects: int
    typos: list[list[Any]]


FoundFlag = tuple[str, int | None, dict[str, Any]]  # kind, the other attempt, evidence

_FLAG_WORK = (
    "SELECT a.id, a.candidate_id, m.fingerprint, m.task_completed,"
    " coalesce((m.report #>> '{per_class,car,gt_count}')::int, 0)"
    " + coalesce((m.report #>> '{per_class,plate,gt_count}')::int, 0) AS objects,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_array(p ->> 'image', p ->> 'given')), '[]')"
    "  FROM jsonb_array_elements(m.report -> 'plates') p"
    "  WHERE p ->> 'given' IS NOT NULL AND NOT (p ->> 'correct')::boolean) AS typos"
    " FROM attempts a JOIN metrics m ON m.attempt_id = a.id")
_FLAG_WORK_OF = _FLAG_WORK + " WHERE a.id = %s"
_FLAG_WORK_SHARING = (
    _FLAG_WORK + " WHERE a.candidate_id <> %s AND a.status = %s"
    " AND a.image_subset && (SELECT image_subset FROM attempts WHERE id = %s)"
    " ORDER BY a.id DESC LIMIT %s")
_FLAGS_CLEARED = ("DELETE FROM flags WHERE attempt_id = %s"
                  " OR (other_attempt = %s AND kind IN %s)")
_FLAG_STORED = ("INSERT INTO flags (attempt_id, kind, other_attempt, evidence)"
                " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING")
_FLAGS_OF = (
    "SELECT f.attempt_id, f.kind, f.other_attempt, f.evidence, o.candidate_id,"
    " o.number, coalesce(nullif(c.full_name, ''), '@' || c.telegram_username,"
    " c.telegram_id::text, '') AS name"
    " FROM flags f LEFT JOIN attempts o ON o.id = f.other_attempt"
    " LEFT JOIN candidates c ON c.id = o.candidate_id"
    " WHERE f.attempt_id = ANY(%s) ORDER BY f.attempt_id, f.kind, f.id")


async def flag_work(db: Database, attempt_id: int) -> FlagWork | None:
    """What flagging compares of one graded attempt, or None (not graded)."""
    row = await db.fetchone(_FLAG_WORK_OF, (attempt_id,))
    return FlagWork(**row) if row else None


async def flag_work_sharing_images(db: Database, mine: FlagWork, limit: int) -> list[FlagWork]:
    """The newest graded attempts of other candidates sharing an image with `mine`."""
    rows = await db.fetchall(_FLAG_WORK_SHARING, (mine.candidate_id, AttemptStatus.GRADED,
                                                  mine.id, limit))
    return [FlagWork(**row) for row in rows]


def store_flags(cur: Cursor, attempt_id: int, found: list[FoundFlag],
                pair_kinds: tuple[str, ...]) -> None:
    """Inside a transaction: replace the attempt's flags (a pair's on both attempts)."""
    cur.execute(_FLAGS_CLEARED, (attempt_id, attempt_id, pair_kinds))
    for kind, other, evidence in found:
        sides = [(attempt_id, other)] + ([(other, attempt_id)] if other is not None else [])
        for one, two in sides:
            cur.execute(_FLAG_STORED, (one, kind, two, jsonb(evidence, ensure_ascii=False)))


async def flags_of(db: Database, attempt_ids: list[int]) -> dict[int, list[Flag]]:
    """The flags of some attempts, by attempt (the other side's candidate named)."""
    if not attempt_ids:
        return {}
    out: dict[int, list[Flag]] = {}
    for row in await db.fetchall(_FLAGS_OF, (attempt_ids,)):
        out.setdefault(row["attempt_id"], []).append(Flag(
            row["kind"], row["attempt_id"], row["evidence"], row["other_attempt"],
            row["candidate_id"], row["name"] or "", row["number"]))
    return out


# --- answer keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredKey:
    """An `answer_keys` row: one version of a set's answer key after the first."""

    task_set: str
    version: int
    annotations: str | None
    excluded_images: list[str]
    excluded_objects: list[list[Any]]
    affected_images: list[str]
    change: str
    created_by: int | None
    created_at: datetime | None = None


_KEY_LOCK = 0x6B6579  # "key", shifted over the set's crc32: one lock per set
_KEY_COLUMNS = ("task_set, version, annotations, excluded_images, excluded_objects,"
                " affected_images, change, created_by, created_at")
_KEY_LOCKED = "SELECT pg_advisory_xact_lock(%s)"
_NEWEST_KEY = (f"SELECT {_KEY_COLUMNS} FROM answer_keys WHERE task_set = %s"
               " ORDER BY version DESC LIMIT 1")
_KEYS = f"SELECT {_KEY_COLUMNS} FROM answer_keys WHERE task_set = %s ORDER BY version DESC"
_KEY_STORED = (
    "INSERT INTO answer_keys (task_set, version, annotations, excluded_images,"
    " excluded_objects, affected_images, change, created_by) VALUES"
    f" (%s, %s, %s, %s, %s::jsonb, %s, %s, %s) RETURNING {_KEY_COLUMNS}")
_STALE_ATTEMPTS = (
    "SELECT a.id FROM attempts a JOIN metrics m ON m.attempt_id = a.id"
    " WHERE a.task_set = %(set)s AND a.status = %(graded)s AND EXISTS (SELECT 1 FROM"
    " answer_keys k WHERE k.task_set = %(set)s AND k.version > m.key_version"
    " AND k.affected_images && a.image_subset) ORDER BY a.id")
_CALIBRATION_ROWS = (
    "SELECT a.image_subset, m.band, jsonb_build_object('per_class', jsonb_build_object("
    " 'car', jsonb_build_object('missed_objects',"
    "  m.report #> '{per_class,car,missed_objects}'),"
    " 'plate', jsonb_build_object('missed_objects',"
    "  m.report #> '{per_class,plate,missed_objects}')),"
    " 'plates', (SELECT coalesce(jsonb_agg(p), '[]') FROM jsonb_array_elements("
    "  m.report -> 'plates') p WHERE p ->> 'given' IS NOT NULL"
    "  AND NOT (p ->> 'correct')::boolean),"
    " 'image_fit', m.report -> 'image_fit') AS report"
    " FROM attempts a JOIN metrics m ON m.attempt_id = a.id"
    " WHERE a.task_set = %s AND a.status = %s")


def lock_key(cur: Cursor, task_set: str) -> None:
    """Inside a transaction: one change of the set's key at a time (until COMMIT)."""
    cur.execute(_KEY_LOCKED, (_KEY_LOCK << 32 | zlib.crc32(task_set.encode("utf-8")),))


def newest_stored_key(cur: Cursor, task_set: str) -> StoredKey | None:
    """Inside a transaction: the newest stored version of the set's key (None: version 1)."""
    cur.execute(_NEWEST_KEY, (task_set,))
    row = cur.fetchone()
    return StoredKey(**row) if row else None


async def stored_keys(db: Database, task_set: str) -> list[StoredKey]:
    """Every stored version, newest first."""
    return [StoredKey(**row) for row in await db.fetchall(_KEYS, (task_set,))]


def store_key(cur: Cursor, key: StoredKey) -> StoredKey:
    """Inside a transaction: store the next version."""
    cur.execute(_KEY_STORED, (key.task_set, key.version, key.annotations,
                              list(key.excluded_images), json.dumps(key.excluded_objects),
                              list(key.affected_images), key.change, key.created_by))
    return StoredKey(**cur.fetchone())


async def stale_attempts(db: Database, task_set: str) -> list[int]:
    """Graded attempts of the set whose images a later key version changed."""
    rows = await db.fetchall(_STALE_ATTEMPTS, {"set": task_set, "graded": AttemptStatus.GRADED})
    return [r["id"] for r in rows]


@dataclass(frozen=True)
class CalibrationRow:
    """What calibration counts of one graded attempt: its images, band and the parts of its
    report about missed objects, misread plates and box fit."""

    image_subset: list[str]
    band: str | None
    report: dict[str, Any]


async def calibration_rows(db: Database, task_set: str) -> list[CalibrationRow]:
    """Every graded attempt on the set, as calibration counts it (a few hundred bytes each)."""
    rows = await db.fetchall(_CALIBRATION_ROWS, (task_set, AttemptStatus.GRADED))
    return [CalibrationRow(**row) for row in rows]
