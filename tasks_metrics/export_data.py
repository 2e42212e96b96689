"""The data behind HR exports: column definitions and the containers of rows and finished
files (the SQL is in `tasks_metrics.hr_repository`). No pandas here: the bot loads pandas and
openpyxl (about 90 MB) only when HR first asks for an export (see tasks_metrics/export.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from tasks_metrics.hr_repository import ATTEMPTS_SQL, ExportRows, candidates_sql, export_rows

__all__ = ["ATTEMPTS_SQL", "ATTEMPT_COLUMNS", "BAND", "CANDIDATE_COLUMNS", "DATE", "DECISION",
           "FLAGS", "FLOAT", "GATES", "INT", "LINK", "PERCENT", "STATUS", "TEXT", "Column",
           "DescribeGates", "ExportLocale", "ExportRows", "Exports", "Summary", "candidates_sql",
           "export_file_name", "export_rows", "stored_list"]

INT, FLOAT, TEXT, DATE = "int", "float", "text", "date"
# The gates of the pass rule below pass, as words ("cars found 66% < 95%"); the rows hold the
# stored gates (JSON) and `DescribeGates` turns them into the reader's language.
GATES = "gates"
PERCENT = "percent"  # a share (0..1) shown as a percentage; the file holds the exact share
BAND = "band"        # pass / borderline / fail, in the reader's words
STATUS = "status"    # an attempt's status, in the reader's words
DECISION = "decision"  # HR's decision (invite / reject / hold), in the reader's words
FLAGS = "flags"      # the attempt's flags with their evidence (stored as JSON), in words
LINK = "link"        # the CVAT job of the attempt (from its task and job ids)
DescribeGates = Callable[[Any, Any], str]


@dataclass(frozen=True)
class Column:
    """One column of a sheet: the row field it shows and how. The sheets are these tuples:
    a new column is one more entry (and its field in the SQL, and its header and glossary
    line in media/texts, export.col_<key> and export.gloss_<key>)."""

    key: str
    kind: str


def stored_list(value: Any) -> list[dict[str, Any]]:
    """A stored list of objects (an attempt's gates or flags): jsonb arrives parsed, or as
    text from a plain cursor; anything else is no list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _columns(*spec: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(key, kind) for key, kind in spec)


_METRIC_COLUMNS = _columns(
    ("band", BAND), ("failed_gates", GATES),
    ("car_recall", PERCENT), ("car_missed", INT), ("car_extra", INT), ("car_precision", PERCENT),
    ("car_matched_iou", PERCENT),
    ("plate_recall", PERCENT), ("plate_missed", INT), ("plate_extra", INT),
    ("plate_precision", PERCENT), ("plate_matched_iou", PERCENT), ("plate_accuracy", PERCENT),
    ("wrong_plates", INT), ("plate_cer", PERCENT), ("score", PERCENT),
    ("time_spent_min", FLOAT), ("task_started", DATE), ("task_ended", DATE),
    ("graded_at", DATE), ("key_version", INT), ("flags", FLAGS),
)

# The candidates sheet, one row per candidate (the attempt that counts, ATTEMPT_COUNTS): the
# name first (frozen), what HR act on next, the identifiers last.
CANDIDATE_COLUMNS: tuple[Column, ...] = (
    *_columns(("full_name", TEXT), ("telegram_username", TEXT), ("decision", DECISION),
              ("decided_by", TEXT), ("decided_at", DATE)),
    *_METRIC_COLUMNS,
    *_columns(("attempts_submitted", INT), ("extra_attempts", INT), ("latest_attempt", INT),
              ("created_at", DATE), ("telegram_id", INT), ("cvat_username", TEXT),
              ("cvat_job", LINK), ("candidate_id", INT)),
)

# The attempts sheet, one row per attempt (graded or not).
ATTEMPT_COLUMNS: tuple[Column, ...] = (
    *_columns(("full_name", TEXT), ("telegram_username", TEXT), ("attempt", INT),
              ("status", STATUS), ("submitted_at", DATE)),
    *_METRIC_COLUMNS,
    *_columns(("telegram_id", INT), ("cvat_username", TEXT), ("cvat_job", LINK),
              ("candidate_id", INT)),
)


@dataclass(frozen=True)
class ExportLocale:
    """How a reader sees the files: headers and glossary lines by column key, the words for
    bands, statuses and sheets, their time zone, the CSV's separator and decimal mark, and
    the CVAT address of the job links. The default is the machine's view: keys as headers,
    UTC, a comma-separated CSV."""

    headers: Mapping[str, str] = field(default_factory=dict)
    glossary: Mapping[str, str] = field(default_factory=dict)
    words: Mapping[str, str] = field(default_factory=dict)
    zone: tzinfo = UTC
    zone_name: str = "UTC"
    separator: str = ","
    decimal: str = "."
    cvat_link: str = ""
    describe_gates: DescribeGates | None = None
    describe_flags: Callable[[Any], str] | None = None

    def header(self, column: Column) -> str:
        """The column's header (the zone is named in the headers of times)."""
        text = self.headers.get(column.key, column.key)
        return f"{text}, {self.zone_name}" if column.kind == DATE and self.headers else text

    def word(self, key: str, default: str) -> str:
        """A word of the files (band_pass, status_graded, sheet_candidates, …)."""
        return self.words.get(key, default)


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


def export_file_name(now: datetime, extension: str) -> str:
    """candidates_YYYY-MM-DD_HHMM.<extension>"""
    return f"candidates_{now:%Y-%m-%d_%H%M}.{extension}"
