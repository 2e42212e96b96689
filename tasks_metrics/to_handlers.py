"""What the handlers use from tasks_metrics."""

from tasks_metrics.answer_key import KeyChangeError, KeyVersion, current_key, describe_object
from tasks_metrics.answer_key import exclude as exclude_from_key
from tasks_metrics.calibration import ImageStats, ObjectStats, calibration, suspects
from tasks_metrics.checker import Problem
from tasks_metrics.db_operations import (
    BandChanges,
    RuleVersion,
    StaleRule,
    apply_rule,
    current_rule,
    ensure_rule,
    preview_rule,
    rule_history,
)
from tasks_metrics.export_data import ExportRows, Exports, Summary, export_file_name, export_rows
from tasks_metrics.flags import SAME_PERSON, SIMILAR, TOO_FAST, Flag, flags_of
from tasks_metrics.grading_process import GradingFailed, GradingProcesses
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
from tasks_metrics.limits import OverLimit
from tasks_metrics.pass_rule import (
    BORDERLINE,
    FAIL,
    MEASURES,
    PASS,
    GateResult,
    Measure,
    PassRule,
    RuleError,
    Verdict,
    parse_thresholds,
)
from tasks_metrics.submission import (
    GradedAttempt,
    SubmitOutcome,
    grade_attempt,
    regrade_for_key,
    regrade_interrupted,
    reopen_abandoned_checks,
    submit_work,
)
from tasks_metrics.types import AnnotationFormatError


def build_exports(rows: ExportRows, language: str = "en") -> Exports:
    """XLSX, CSV, summary and scores (blocking: run in a thread). pandas and openpyxl load here
    on the first export rather than at start: about 90 MB the bot need not hold until then."""
    from tasks_metrics.export import build_exports as build

    return build(rows, language)


def calibration_xlsx(stats: list[ImageStats], title: str) -> bytes:
    """The calibration as an XLSX sheet (blocking: run in a thread)."""
    from tasks_metrics.calibration import xlsx

    return xlsx(stats, title)


def band_histogram(scores: list[tuple[float, str]], **labels: str) -> bytes:
    """The score distribution, each candidate coloured by their band, as a PNG (blocking:
    run in a thread)."""
    from tasks_metrics.export import score_histogram as draw

    return draw(scores, **labels)


__all__ = [
    "BORDERLINE",
    "FAIL",
    "MEASURES",
    "PASS",
    "SAME_PERSON",
    "SIMILAR",
    "TOO_FAST",
    "AnnotationFormatError",
    "AttemptCard",
    "BandChanges",
    "CandidateCard",
    "CandidateSummary",
    "ExportRows",
    "Exports",
    "Flag",
    "GateResult",
    "GradedAttempt",
    "GradingFailed",
    "GradingProcesses",
    "ImageStats",
    "KeyChangeError",
    "KeyVersion",
    "Measure",
    "ObjectStats",
    "OverLimit",
    "PassRule",
    "Problem",
    "RuleError",
    "RuleVersion",
    "StaleRule",
    "SubmitOutcome",
    "Summary",
    "Verdict",
    "apply_rule",
    "band_histogram",
    "build_exports",
    "calibration",
    "calibration_xlsx",
    "candidate_card",
    "candidate_summary",
    "current_key",
    "current_rule",
    "delete_cvat_account",
    "describe_object",
    "ensure_rule",
    "error_pictures",
    "exclude_from_key",
    "export_file_name",
    "export_rows",
    "flags_of",
    "grade_attempt",
    "grant_extra_attempt",
    "parse_thresholds",
    "preview_rule",
    "regrade_candidate",
    "regrade_for_key",
    "regrade_interrupted",
    "reopen_abandoned_checks",
    "rule_history",
    "search_candidates",
    "submit_work",
    "suspects",
]
