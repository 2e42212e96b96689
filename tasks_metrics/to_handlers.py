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
from tasks_metrics.deadlines import Notice as DeadlineNotice
from tasks_metrics.deadlines import (
    NoticeKind,
    claim_expiry_notices,
    claim_reminders,
    expire_overdue,
    release_notice,
)
from tasks_metrics.decisions import (
    Counting,
    Decision,
    DecisionRecord,
    Recorded,
    RecordedKind,
    Standing,
    current_decision,
    decision_counts,
    mark_sent,
    record_decision,
    standing,
)
from tasks_metrics.export_data import (
    ATTEMPT_COLUMNS,
    CANDIDATE_COLUMNS,
    Column,
    ExportLocale,
    ExportRows,
    Exports,
    Summary,
    export_file_name,
    export_rows,
    stored_list,
)
from tasks_metrics.flags import SAME_PERSON, SIMILAR, TOO_FAST, Flag, flags_of
from tasks_metrics.grading_process import GradingFailed, GradingProcesses
from tasks_metrics.hints import hint_codes
from tasks_metrics.hr_lists import (
    DigestFigures,
    ListClock,
    ListName,
    digest_figures,
    list_counts,
    list_page,
)
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
    BANDS,
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
from tasks_metrics.picture_labels import PictureLabels
from tasks_metrics.submission import (
    GradedAttempt,
    SubmitKind,
    SubmitOutcome,
    check_work,
    grade_attempt,
    regrade_for_key,
    regrade_interrupted,
    reopen_abandoned_checks,
    resume_check,
    resume_submission,
    submit_work,
)
from tasks_metrics.types import AnnotationFormatError


def build_exports(rows: ExportRows, locale: ExportLocale | None = None) -> Exports:
    """XLSX, CSV, summary and scores as `locale` reads them (blocking: run in a thread).
    pandas and openpyxl load here on the first export rather than at start: about 90 MB the
    bot need not hold until then."""
    from tasks_metrics.export import build_exports as build

    return build(rows, locale)


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
    "ATTEMPT_COLUMNS",
    "BANDS",
    "BORDERLINE",
    "CANDIDATE_COLUMNS",
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
    "Column",
    "Counting",
    "DeadlineNotice",
    "Decision",
    "DecisionRecord",
    "DigestFigures",
    "ExportLocale",
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
    "ListClock",
    "ListName",
    "Measure",
    "NoticeKind",
    "ObjectStats",
    "OverLimit",
    "PassRule",
    "PictureLabels",
    "Problem",
    "Recorded",
    "RecordedKind",
    "RuleError",
    "RuleVersion",
    "StaleRule",
    "Standing",
    "SubmitKind",
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
    "check_work",
    "claim_expiry_notices",
    "claim_reminders",
    "current_decision",
    "current_key",
    "current_rule",
    "decision_counts",
    "delete_cvat_account",
    "describe_object",
    "digest_figures",
    "ensure_rule",
    "error_pictures",
    "exclude_from_key",
    "expire_overdue",
    "export_file_name",
    "export_rows",
    "flags_of",
    "grade_attempt",
    "grant_extra_attempt",
    "hint_codes",
    "list_counts",
    "list_page",
    "mark_sent",
    "parse_thresholds",
    "preview_rule",
    "record_decision",
    "regrade_candidate",
    "regrade_for_key",
    "regrade_interrupted",
    "release_notice",
    "reopen_abandoned_checks",
    "resume_check",
    "resume_submission",
    "rule_history",
    "search_candidates",
    "standing",
    "stored_list",
    "submit_work",
    "suspects",
]
