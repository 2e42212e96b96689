"""What the handlers use from tasks_metrics."""

from tasks_metrics.checker import Problem
from tasks_metrics.metrics import GradeReport
from tasks_metrics.submission import (
    SubmitOutcome,
    grade_attempt,
    regrade_interrupted,
    submit_work,
)

__all__ = ["GradeReport", "Problem", "SubmitOutcome", "grade_attempt", "regrade_interrupted",
           "submit_work"]
