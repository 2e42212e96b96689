"""The lists HR work from, and the figures of the daily digest.

Each list is one SQL condition over a candidate `c` and their latest graded attempt `l`
(band, score, number), declared in `hr_repository.LIST_CONDITIONS`: the only place that says
who is on which list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from db import Database
from tasks_metrics import hr_repository as repository
from tasks_metrics.hr_repository import LIST_CONDITIONS, CandidateSummary, ListName

__all__ = ["LIST_CONDITIONS", "DigestFigures", "ListClock", "ListName", "digest_figures",
           "list_counts", "list_page"]


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
    return await repository.list_counts(db, clock.params())


async def list_page(db: Database, name: ListName, clock: ListClock, page: int,
                    size: int) -> tuple[int, list[CandidateSummary]]:
    """(how many are on the list, the candidates of page `page`), newest first."""
    return await repository.list_page(db, name, clock.params(), size, (max(page, 1) - 1) * size)


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
    graded = await repository.graded_between(db, since, clock.now)
    return DigestFigures(graded.graded, graded.passed, graded.borderline, graded.failed,
                         await list_counts(db, clock))
