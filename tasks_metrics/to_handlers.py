"""What the handlers use from tasks_metrics."""

from tasks_metrics.checker import Problem
from tasks_metrics.export_data import ExportRows, Exports, Summary, export_file_name, export_rows
from tasks_metrics.hr_operations import (
    AttemptCard,
    CandidateCard,
    CandidateSummary,
    candidate_card,
    candidate_summary,
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


def build_exports(rows: ExportRows) -> Exports:
    """XLSX, CSV, summary and scores (blocking: run in a thread). pandas and openpyxl load here
    on the first export rather than at start: about 90 MB the bot need not hold until then."""
    from tasks_metrics.export import build_exports as build

    return build(rows)


def score_histogram(scores: list[float], **labels: str) -> bytes:
    """The score distribution as a PNG (blocking: run in a thread)."""
    from tasks_metrics.export import score_histogram as draw

    return draw(scores, **labels)


__all__ = ["AttemptCard", "CandidateCard", "CandidateSummary", "ExportRows", "Exports",
           "GradeReport", "Problem", "SubmitOutcome", "Summary", "build_exports",
           "candidate_card", "candidate_summary", "delete_cvat_account",
           "error_pictures", "export_file_name", "export_rows", "grade_attempt",
           "grant_extra_attempt", "regrade_candidate", "regrade_interrupted", "score_histogram",
           "search_candidates", "submit_work"]
