"""What the handlers use from tasks_metrics."""

from tasks_metrics.checker import Problem
from tasks_metrics.export import (
    ExportRows,
    Exports,
    Summary,
    build_exports,
    export_file_name,
    export_rows,
    score_histogram,
)
from tasks_metrics.hr_operations import (
    AttemptCard,
    CandidateCard,
    CandidateSummary,
    candidate_card,
    candidate_summary,
    delete_candidate_data,
    delete_cvat_account,
    error_pictures,
    grant_extra_attempt,
    regrade_candidate,
    search_candidates,
)
from tasks_metrics.metrics import GradeReport
from tasks_metrics.submission import (
    SubmitOutcome,
    grade_attempt,
    regrade_interrupted,
    submit_work,
)

__all__ = ["AttemptCard", "CandidateCard", "CandidateSummary", "ExportRows", "Exports",
           "GradeReport", "Problem", "SubmitOutcome", "Summary", "build_exports",
           "candidate_card", "candidate_summary", "delete_candidate_data", "delete_cvat_account",
           "error_pictures", "export_file_name", "export_rows", "grade_attempt",
           "grant_extra_attempt", "regrade_candidate", "regrade_interrupted", "score_histogram",
           "search_candidates", "submit_work"]
