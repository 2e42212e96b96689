"""The lists HR work from, and the figures of the daily digest.

Each list is one SQL condition over a candidate `c` and their latest graded attempt `l`
(band, score, number), declared in `LIST_CONDITIONS`: the only place that says who is on which
list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from db import Database
from tasks_metrics.hr_operations import SUMMARY_FROM, SUMMARY_SQL, CandidateSummary, summary_of


class ListName(StrEnum):
    """HR's lists, in the order the menu shows them."""

    REVIEW = "review"          # graded, no decision yet
    BORDERLINE = "borderline"  # the latest graded attempt is borderline
    TODAY = "today"            # submitted since local midnight
    STALLED = "stalled"        # a task received STALLED_AFTER_DAYS ago or more, not submitted
    EXPIRED = "expired"        # the time for the task ran out
    FLAGGED = "flagged"        # flagged for a closer look


LIST_CONDITIONS: dict[ListName, str] = {
    # Graded, nothing newer in progress, and no decision of HR yet.
    ListName.REVIEW: "l.band IS NOT NULL AND NOT EXISTS (SELECT 1 FROM attempts a"
                   " WHERE a.candidate_id = c.id AND a.number > l.number"
                   " AND a.status NOT IN ('failed', 'expired'))"
                   " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.candidate_id = c.id)",
    ListName.BORDERLINE: "l.band = 'borderline'",
    ListName.TODAY: "EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
                  " AND a.submitted_at >= %(today)s AND a.submitted_at < %(now)s)",
    ListName.STALLED: "EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
                    " AND a.status = 'ready' AND a.task_started < %(stalled_before)s)",
    ListName.EXPIRED: "EXISTS (SELECT 1 FROM attempts a WHERE a.candidate_id = c.id"
                    " AND a.status = 'expired')",
    ListName.FLAGGED: "EXISTS (SELECT 1 FROM flags f JOIN attempts a ON a.id = f.attempt_id"
                    " WHERE a.candidate_id = c.id)",
}
_ORDER = " ORDER BY c.created_at DESC, c.id DESC"


@dataclass(frozen=True)
class ListClock:
    """What the lists are measured against: now, HR's time zone, when a task is stalled."""

    now: datetime
    zone: tzinfo
    stalled_after: timedelta

    def params(self) -> dict[str, Any]:
        """The SQL parameters of the conditions."""
        local = self.now.astimezone(self.zone)
        today = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return {"now": self.now, "today": today,
                "stalled_before": self.now - self.stalled_after}


async def list_counts(db: Database, clock: ListClock) -> dict[ListName, int]:
    """How many candidates are on each list, in one query."""
    counts = ", ".join(f"count(*) FILTER (WHERE {LIST_CONDITIONS[name]}) AS {name}"
                       for name in ListName)
    row = await db.fetchone(f"SELECT {counts} {SUMMARY_FROM}", clock.params())
    assert row is not None
    return {name: int(row[name]) for name in ListName}


async def list_page(db: Database, name: ListName, clock: ListClock, page: int,
                    size: int) -> tuple[int, list[CandidateSummary]]:
    """(how many are on the list, the candidates of page `page`), newest first."""
    params = clock.params() | {"limit": size, "offset": (max(page, 1) - 1) * size}
    where = f" WHERE {LIST_CONDITIONS[name]}"
    total = await db.fetchval(f"SELECT count(*) FROM ({SUMMARY_SQL}{where}) listed", params)
    rows = await db.fetchall(f"{SUMMARY_SQL}{where}{_ORDER}"
                             " LIMIT %(limit)s OFFSET %(offset)s", params)
    return int(total or 0), [summary_of(row) for row in rows]


@dataclass(frozen=True)
class DigestFigures:
    """What a daily digest says."""

    graded: int
    passed: int
    borderline: int
    failed: int
    lists: dict[ListName, int]


async def digest_figures(db: Database, clock: ListClock, since: datetime) -> DigestFigures:
    """Attempts graded since `since` by band, and the sizes of the lists now."""
    row = await db.fetchone(
        "SELECT count(*) AS graded, count(*) FILTER (WHERE band = 'pass') AS passed,"
        " count(*) FILTER (WHERE band = 'borderline') AS borderline,"
        " count(*) FILTER (WHERE band = 'fail') AS failed"
        " FROM metrics WHERE graded_at >= %s AND graded_at < %s", (since, clock.now))
    assert row is not None
    return DigestFigures(row["graded"], row["passed"], row["borderline"], row["failed"],
                         await list_counts(db, clock))
