"""The data behind HR exports: column definitions, the SQL, and the containers of rows and
finished files. No pandas here: the bot loads pandas and openpyxl (about 90 MB) only when HR
first asks for an export (see tasks_metrics/export.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from db import Cursor, Database

INT, FLOAT, TEXT, DATE = "int", "float", "text", "date"
# The gates of the pass rule below pass, as words ("cars found 66% < 95%"); the rows hold the
# stored gates (JSON) and `DescribeGates` turns them into the reader's language.
GATES = "gates"
DescribeGates = Callable[[Any, Any], str]

_METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("score", FLOAT), ("band", TEXT), ("failed_gates", GATES), ("car_iou", FLOAT),
    ("plate_iou", FLOAT), ("plate_accuracy", FLOAT), ("task_started", DATE), ("task_ended", DATE),
    ("time_spent_min", FLOAT), ("times_attempted", INT), ("wrong_plates", INT),
    ("car_precision", FLOAT), ("car_recall", FLOAT), ("car_matched_iou", FLOAT),
    ("car_missed", INT), ("car_extra", INT),
    ("plate_precision", FLOAT), ("plate_recall", FLOAT), ("plate_matched_iou", FLOAT),
    ("plate_missed", INT), ("plate_extra", INT), ("plate_cer", FLOAT), ("graded_at", DATE),
    ("key_version", INT), ("flags", TEXT),
)

# (column, kind): the candidates sheet, one row per candidate.
CANDIDATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("candidate_id", INT), ("telegram_id", INT), ("telegram_username", TEXT),
    ("full_name", TEXT), ("cvat_username", TEXT), ("created_at", DATE),
    ("cvat_deleted_at", DATE), ("attempts_submitted", INT), ("extra_attempts", INT),
    ("latest_attempt", INT), *_METRIC_COLUMNS,
)

# The attempts sheet, one row per attempt (graded or not).
ATTEMPT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("candidate_id", INT), ("telegram_id", INT), ("telegram_username", TEXT),
    ("cvat_username", TEXT), ("attempt", INT), ("status", TEXT), ("submitted_at", DATE),
    *_METRIC_COLUMNS,
)

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
    m.plate_cer, m.graded_at, m.key_version,
    (SELECT string_agg(CASE f.kind
        WHEN 'too_fast' THEN format('too fast: %s objects in %s s (%s s an object)',
            f.evidence ->> 'objects', f.evidence ->> 'seconds', f.evidence ->> 'per_object')
        ELSE format('%s to candidate %s attempt %s: %s of %s boxes within %s px on %s shared'
                    ' images%s', replace(f.kind, '_', ' '), o.candidate_id, o.number,
            f.evidence ->> 'close', f.evidence ->> 'boxes', f.evidence ->> 'pixels',
            f.evidence ->> 'images', CASE WHEN jsonb_array_length(f.evidence -> 'typos') > 0
            THEN ', the same wrong plates ' || (f.evidence ->> 'typos') ELSE '' END) END,
        '; ' ORDER BY f.kind, f.id)
     FROM flags f LEFT JOIN attempts o ON o.id = f.other_attempt
     WHERE f.attempt_id = a.id AND m.attempt_id IS NOT NULL) AS flags"""

CANDIDATES_SQL = f"""
SELECT c.id AS candidate_id, c.telegram_id, c.telegram_username, c.full_name, c.cvat_username,
       c.created_at, c.cvat_deleted_at,
       (SELECT count(*) FROM attempts s WHERE s.candidate_id = c.id
          AND s.status IN ('submitted', 'graded'))::int AS attempts_submitted,
       c.extra_attempts, a.number AS latest_attempt, {_METRIC_SQL}
FROM candidates c
LEFT JOIN LATERAL (
    SELECT la.id, la.number FROM attempts la JOIN metrics lm ON lm.attempt_id = la.id
    WHERE la.candidate_id = c.id ORDER BY la.number DESC LIMIT 1) a ON true
LEFT JOIN metrics m ON m.attempt_id = a.id
ORDER BY c.id"""

ATTEMPTS_SQL = f"""
SELECT c.id AS candidate_id, c.telegram_id, c.telegram_username, c.cvat_username,
       a.number AS attempt, a.status, a.submitted_at, {_METRIC_SQL}
FROM attempts a JOIN candidates c ON c.id = a.candidate_id
LEFT JOIN metrics m ON m.attempt_id = a.id
ORDER BY c.id, a.number"""

@dataclass(frozen=True)
class ExportRows:
    """What the database holds for an export: column names and row tuples of both sheets."""

    candidate_columns: list[str]
    candidates: list[tuple[Any, ...]]
    attempt_columns: list[str]
    attempts: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Summary:
    """Headline figures for the HR summary message (medians over the latest graded attempts)."""

    candidates: int
    submitted: int
    graded: int
    passed: int
    borderline: int
    failed: int
    medians: dict[str, float | None] = field(default_factory=dict)
    below_pass: dict[str, int] = field(default_factory=dict)  # measure: candidates below pass


@dataclass(frozen=True)
class Exports:
    """The finished files and figures."""

    xlsx: bytes
    csv: bytes
    summary: Summary
    scores: list[tuple[float, str]]  # (score, band) of each graded candidate


async def export_rows(db: Database) -> ExportRows:
    """Every candidate and every attempt with their metrics, in one transaction."""

    def work(cur: Cursor) -> ExportRows:
        # A plain tuple cursor: much cheaper than dict rows for tens of thousands of rows.
        with cur.connection.cursor() as plain:
            plain.execute(CANDIDATES_SQL)
            candidate_columns = [d.name for d in plain.description]
            candidates = plain.fetchall()
            plain.execute(ATTEMPTS_SQL)
            attempt_columns = [d.name for d in plain.description]
            attempts = plain.fetchall()
        return ExportRows(candidate_columns, candidates, attempt_columns, attempts)

    return await db.run(work)

def export_file_name(now: datetime, extension: str) -> str:
    """candidates_YYYY-MM-DD_HHMM.<extension>"""
    return f"candidates_{now:%Y-%m-%d_%H%M}.{extension}"
