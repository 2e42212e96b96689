"""When the candidate worked: CVAT's job dates, minus the bot's own changes."""

from __future__ import annotations

from datetime import datetime, timedelta

# CVAT moves a job's updated_date on any job PATCH, the bot's own assignment included; an
# updated_date this close to assignee_updated_date means nobody edited after the assignment.
ASSIGNMENT_SLACK = timedelta(seconds=2)


def candidate_last_change(
    updated_date: datetime | None, assignee_updated_date: datetime | None
) -> datetime | None:
    """The candidate's last change (job updated_date), or None if they changed nothing.

    Read the job before the bot closes it at Submit: closing is a PATCH and moves the date.
    """
    if updated_date is None:
        return None
    assigned = assignee_updated_date
    if assigned is not None and updated_date - assigned <= ASSIGNMENT_SLACK:
        return None
    return updated_date
