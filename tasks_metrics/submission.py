"""Submit: lock the job, read the work once, check that read, store it, grade that copy.

The candidate's work is untrusted: the bot reads its bytes (at most SUBMISSION_MAX_MB) and
hands them to a grading process (`tasks_metrics.grading_process`), which checks them against
the limits and for completeness. What is stored and graded is exactly the read that was
checked: the job is unassigned before it is read, so CVAT refuses any edit in between.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from config.env import Settings
from connection import AsyncCvatClient, CvatError, CvatResponseTooLarge
from create_users.db_operations import Candidate, get_candidate
from create_users.lifecycle import forget_finished_passwords
from create_users.repository import extra_attempts
from db import Database, DatabaseUnavailable
from tasks_generator import repository as attempts_repo
from tasks_generator.attempts import (
    CREATING,
    EXPIRED,
    FAILED,
    GRADED,
    READY,
    SUBMITTED,
    Attempt,
    attempts_left,
    get_attempt,
    latest_attempt,
)
from tasks_metrics.answer_key import current_key, stale_attempts
from tasks_metrics.checker import Problem
from tasks_metrics.db_operations import save_metrics
from tasks_metrics.flags import flag_attempt
from tasks_metrics.grading_process import GradingFailed, GradingProcesses
from tasks_metrics.limits import PAYLOAD, OverLimit
from tasks_metrics.pass_rule import Verdict
from tasks_metrics.timing import candidate_last_change
from tasks_metrics.types import AnnotationFormatError

logger = logging.getLogger(__name__)

# How long one Submit may hold an attempt for its check; after a crash the claim runs out and
# reconciliation gives the job back to the candidate.
CHECK_CLAIM = timedelta(minutes=5)
# A grading that failed is tried again after these pauses, then left to HR (re-grade).
GRADING_RETRIES = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=3))


@dataclass(frozen=True)
class GradedAttempt:
    """A stored grading: the figures (by `metrics` column), the verdict and the report."""

    values: dict[str, Any]
    verdict: Verdict
    report: dict[str, Any]

    @property
    def band(self) -> str:
        """pass, borderline or fail."""
        return self.verdict.band

    @property
    def score(self) -> float | None:
        """The overall figure (the mean of car IoU, plate IoU and plate accuracy)."""
        return self.values.get("score")


class SubmitKind(StrEnum):
    """What pressing Submit (or Check) led to; see SubmitOutcome."""

    NO_TASK = "no_task"
    NOT_READY = "not_ready"
    ALREADY_SUBMITTED = "already_submitted"
    EXPIRED = "expired"
    CHECKING = "checking"
    INCOMPLETE = "incomplete"
    OVER_LIMIT = "over_limit"
    UNREADABLE = "unreadable"
    GRADED = "graded"
    GRADING_FAILED = "grading_failed"
    COMPLETE = "complete"


@dataclass(frozen=True)
class SubmitOutcome:
    """What pressing Submit led to.

    kind (SubmitKind): "no_task", "not_ready" (still being built), "already_submitted",
    "expired" (its deadline passed: the job is locked, `attempts_left` says what is next),
    "checking" (an earlier press is still being checked), "incomplete" (see `problems`),
    "over_limit" (see `limit`), "unreadable" (the check ran out of time or memory: `reason`);
    the attempt stays open after these three. "graded" (see `result`), or "grading_failed"
    (stored, but the grading did not finish: HR see it, and it is tried again).
    """

    kind: SubmitKind
    attempt: Attempt | None = None
    problems: tuple[Problem, ...] = ()
    result: GradedAttempt | None = None
    attempts_left: int = 0
    limit: OverLimit | None = None
    reason: str = ""

    @property
    def stored(self) -> bool:
        """The work was stored: graded, or its grading failed (and is tried again)."""
        return self.kind in (SubmitKind.GRADED, SubmitKind.GRADING_FAILED)


class GradingError(Exception):
    """A stored submission could not be graded (the reason is kept on the attempt)."""


def stored_copy(annotations: bytes, labels: list[dict[str, Any]],
                meta: dict[str, Any]) -> bytes:
    """The stored form (attempts.submitted_annotations) of a checked read: CVAT's bytes are
    put in as they are, never parsed by the bot."""
    return (b'{"annotations": ' + annotations
            + b', "labels": ' + json.dumps(labels, ensure_ascii=False).encode("utf-8")
            + b', "meta": ' + json.dumps(meta, ensure_ascii=False).encode("utf-8") + b"}")


async def read_work(cvat: AsyncCvatClient, job_id: int,
                    max_bytes: int) -> tuple[bytes, list[dict[str, Any]], dict[str, Any]]:
    """Annotations (raw bytes, capped), labels and frame names of a job, in parallel."""
    try:
        return await asyncio.gather(cvat.get_job_annotations_raw(job_id, max_bytes),
                                    cvat.get_labels(job_id=job_id), cvat.get_job_meta(job_id))
    except CvatResponseTooLarge as exc:
        mb = 1024 * 1024
        raise OverLimit(PAYLOAD, value=f"{exc.size / mb:.1f} MB",
                        limit=f"{exc.limit / mb:.0f} MB") from None


async def _attempts_left(db: Database, settings: Settings, attempt: Attempt) -> int:
    extra = await extra_attempts(db, attempt.candidate_id)
    used = await attempts_repo.count_used(db, attempt.candidate_id)
    return attempts_left(settings.max_attempts + extra, used)


async def claim_check(db: Database, attempt_id: int) -> bool:
    """Take the attempt for one check (False: another press, on any replica, has it)."""
    return await attempts_repo.claim_check(db, attempt_id, CHECK_CLAIM)


async def release_check(db: Database, attempt_id: int, *, job_open: bool) -> None:
    """The check is over. With the job still closed (CVAT failed to reopen it) the claim is
    left expired, so that reconciliation gives the job back."""
    await attempts_repo.release_check(db, attempt_id, job_open=job_open)


async def _reopen(cvat: AsyncCvatClient, attempt: Attempt, candidate: Candidate) -> bool:
    """Give the job back to the candidate after a check that found something to fix."""
    if attempt.cvat_job_id is None or not candidate.cvat_user_id:
        return False
    try:
        await cvat.assign_job(attempt.cvat_job_id, candidate.cvat_user_id)
    except CvatError as exc:
        logger.warning("job %s of attempt %s not reopened now: %s", attempt.cvat_job_id,
                       attempt.id, exc)
        return False
    return True


async def _open_attempt(db: Database, settings: Settings,
                        telegram_id: int) -> tuple[Candidate, Attempt] | SubmitOutcome:
    """The candidate's attempt that is open for work, or why there is none."""
    candidate = await get_candidate(db, telegram_id)
    attempt = await latest_attempt(db, candidate.id) if candidate else None
    if candidate is None or attempt is None or attempt.status == FAILED:
        return SubmitOutcome(SubmitKind.NO_TASK, attempt)
    if attempt.status == CREATING:
        return SubmitOutcome(SubmitKind.NOT_READY, attempt)
    if attempt.status != READY:
        kind = SubmitKind.EXPIRED if attempt.status == EXPIRED else SubmitKind.ALREADY_SUBMITTED
        return SubmitOutcome(kind, attempt,
                             attempts_left=await _attempts_left(db, settings, attempt))
    return candidate, attempt


async def check_work(
    db: Database, cvat: AsyncCvatClient, grader: GradingProcesses, settings: Settings,
    telegram_id: int,
) -> SubmitOutcome:
    """🔎 Check my work: the same read and completeness check as Submit, with nothing locked,
    stored or used up. kind "complete" when Submit would grade the work as it is now."""
    opened = await _open_attempt(db, settings, telegram_id)
    if isinstance(opened, SubmitOutcome):
        return opened
    _, attempt = opened
    if not await claim_check(db, attempt.id):
        return SubmitOutcome(SubmitKind.CHECKING, attempt)
    try:
        checked = await _read_and_check(cvat, grader, settings, attempt)
    except AnnotationFormatError as exc:
        raise CvatError(f"CVAT sent annotations of job {attempt.cvat_job_id} that cannot be "
                        f"read: {exc}") from exc
    finally:
        await release_check(db, attempt.id, job_open=True)
    if isinstance(checked, SubmitOutcome):
        return checked
    return SubmitOutcome(SubmitKind.COMPLETE, attempt)


async def submit_work(
    db: Database, cvat: AsyncCvatClient, grader: GradingProcesses, settings: Settings,
    telegram_id: int,
) -> SubmitOutcome:
    """The whole Submit: the job is locked (unassigned: CVAT then refuses the candidate's
    edits), read once and checked; incomplete or over-limit work reopens the job and uses up
    nothing; complete work is stored as read and that copy is graded."""
    opened = await _open_attempt(db, settings, telegram_id)
    if isinstance(opened, SubmitOutcome):
        return opened
    candidate, attempt = opened
    if not await claim_check(db, attempt.id):
        return SubmitOutcome(SubmitKind.CHECKING, attempt)
    job_open = True
    try:
        outcome = await _check_and_store(db, cvat, grader, settings, candidate, attempt)
        if outcome.kind in (SubmitKind.INCOMPLETE, SubmitKind.OVER_LIMIT, SubmitKind.UNREADABLE):
            job_open = await _reopen(cvat, attempt, candidate)
        return outcome
    except CvatError:
        job_open = await _reopen(cvat, attempt, candidate)
        raise
    except AnnotationFormatError as exc:  # CVAT's answer was not annotations: CVAT's fault
        job_open = await _reopen(cvat, attempt, candidate)
        raise CvatError(f"CVAT sent annotations of job {attempt.cvat_job_id} that cannot be "
                        f"read: {exc}") from exc
    finally:
        await release_check(db, attempt.id, job_open=job_open)


@dataclass(frozen=True)
class _Read:
    """One read of a job's work that passed the limits and the completeness check."""

    annotations: bytes
    labels: list[dict[str, Any]]
    meta: dict[str, Any]


async def _read_and_check(cvat: AsyncCvatClient, grader: GradingProcesses, settings: Settings,
                          attempt: Attempt) -> _Read | SubmitOutcome:
    """Read the job's work once and check it in a grading process: the read, or what is
    wrong with it (incomplete, over a limit, or too costly to check)."""
    assert attempt.cvat_job_id is not None
    try:
        async with grader.intake:
            annotations, labels, meta = await read_work(
                cvat, attempt.cvat_job_id, settings.submission_max_mb * 1024 * 1024)
            problems = await grader.check(annotations, labels, meta, attempt.image_subset)
    except OverLimit as exc:
        logger.info("attempt %s over the %s limit: %s", attempt.id, exc.code, exc)
        return SubmitOutcome(SubmitKind.OVER_LIMIT, attempt, limit=exc)
    except GradingFailed as exc:
        logger.warning("attempt %s could not be checked: %s", attempt.id, exc)
        return SubmitOutcome(SubmitKind.UNREADABLE, attempt, reason=exc.reason)
    if problems:
        return SubmitOutcome(SubmitKind.INCOMPLETE, attempt, tuple(problems))
    return _Read(annotations, labels, meta)


async def _check_and_store(db: Database, cvat: AsyncCvatClient, grader: GradingProcesses,
                           settings: Settings, candidate: Candidate,
                           attempt: Attempt) -> SubmitOutcome:
    assert attempt.cvat_job_id is not None
    job = await cvat.get_job(attempt.cvat_job_id)  # its dates, before the bot's PATCH moves them
    ended = candidate_last_change(job.updated_date, job.assignee_updated_date) or job.updated_date
    if job.assignee_id is not None:
        await cvat.assign_job(attempt.cvat_job_id, None)  # from here on the work cannot change
    checked = await _read_and_check(cvat, grader, settings, attempt)
    if isinstance(checked, SubmitOutcome):
        return checked
    stored = stored_copy(checked.annotations, checked.labels, checked.meta)
    if not await attempts_repo.mark_submitted(db, attempt.id, ended, stored.decode("utf-8")):
        return SubmitOutcome(SubmitKind.ALREADY_SUBMITTED, attempt)
    return await _grade_submitted(db, grader, settings, candidate, attempt)


async def resume_submission(db: Database, grader: GradingProcesses, settings: Settings,
                            telegram_id: int, since: datetime) -> SubmitOutcome | None:
    """Pick up a Submit whose worker died (started at `since`): work it stored since then is
    graded (again, if the grading got that far: the figures are replaced, not added) and the
    outcome returned; an attempt still open gets its check claim back from the dead worker and
    None is returned (the Submit is then done afresh)."""
    candidate = await get_candidate(db, telegram_id)
    attempt = await latest_attempt(db, candidate.id) if candidate else None
    if candidate is None or attempt is None:
        return None
    if attempt.status == READY:
        await release_check(db, attempt.id, job_open=True)
        return None
    if attempt.status in (SUBMITTED, GRADED) and attempt.submitted_at is not None \
            and attempt.submitted_at >= since:
        return await _grade_submitted(db, grader, settings, candidate, attempt)
    return None


async def resume_check(db: Database, telegram_id: int) -> None:
    """Pick up a check whose worker died: its claim on the open attempt is given up, so the
    check can run again (the job was never closed by a check)."""
    candidate = await get_candidate(db, telegram_id)
    attempt = await latest_attempt(db, candidate.id) if candidate else None
    if attempt is not None and attempt.status == READY:
        await release_check(db, attempt.id, job_open=True)


async def _grade_submitted(db: Database, grader: GradingProcesses, settings: Settings,
                           candidate: Candidate, attempt: Attempt) -> SubmitOutcome:
    """Grade a stored submission and say what it led to."""
    try:
        result = await grade_attempt(db, grader, attempt.id)
    except GradingError as exc:
        return SubmitOutcome(SubmitKind.GRADING_FAILED, await get_attempt(db, attempt.id),
                             reason=str(exc), attempts_left=await _attempts_left(
                                 db, settings, attempt))
    graded = await get_attempt(db, attempt.id)
    left = await _attempts_left(db, settings, graded)
    if not left:  # the test is over: the bot need not show the password again
        await forget_finished_passwords(db, settings, candidate_id=candidate.id)
    return SubmitOutcome(SubmitKind.GRADED, graded, result=result, attempts_left=left)


async def grade_attempt(db: Database, grader: GradingProcesses,
                        attempt_id: int) -> GradedAttempt:
    """Grade the stored copy of a submitted attempt by the answer key in force, store the
    metrics (also a re-grade) and the flags the work raises.

    A grading that fails (over its time or memory budget, or work the grader cannot read) is
    recorded on the attempt, with when to try again, and raised as GradingError."""
    work = await attempts_repo.submitted_work(db, attempt_id)
    if work is None or work.stored is None:
        raise GradingError(f"attempt {attempt_id} has no submitted work to grade")
    key = await current_key(db, work.task_set)
    try:
        graded = await grader.grade(work.stored.encode("utf-8"), work.image_subset,
                                    key.grading_key())
    except (GradingFailed, AnnotationFormatError) as exc:
        reason = getattr(exc, "reason", "malformed")
        await _record_grading_failure(db, attempt_id, f"{reason}: {exc}")
        raise GradingError(f"{reason}: {exc}") from exc
    verdict = await save_metrics(db, attempt_id, graded.values, graded.report,
                                 task_started=work.task_started, task_ended=work.task_ended,
                                 key_version=graded.key_version,
                                 fingerprint=graded.fingerprint)
    await flag_attempt(db, attempt_id, grader.flag_rules)
    logger.info("attempt %s graded: band %s%s", attempt_id, verdict.band,
                "".join(f", {g.measure} {g.value:.3f}" for g in verdict.failing
                        if g.value is not None))
    return GradedAttempt(graded.values, verdict, graded.report)


async def _record_grading_failure(db: Database, attempt_id: int, error: str) -> None:
    """Keep why grading failed (HR see it on the card) and when to try again, if ever."""
    await attempts_repo.record_grading_failure(db, attempt_id, error, GRADING_RETRIES)
    logger.warning("attempt %s not graded: %s", attempt_id, error)


async def reopen_abandoned_checks(db: Database, cvat: AsyncCvatClient) -> int:
    """Give candidates back the jobs a Submit closed and could not reopen (CVAT failed, or the
    bot stopped mid-check): attempts still open whose check claim ran out. Returns how many."""
    reopened = 0
    for check in await attempts_repo.abandoned_checks(db):
        if not await claim_check(db, check.attempt_id):
            continue  # a Submit took it meanwhile
        job_open = False
        try:
            candidate = await get_candidate(db, check.telegram_id)
            attempt = await get_attempt(db, check.attempt_id)
            if candidate is not None and attempt.status == READY:
                job_open = await _reopen(cvat, attempt, candidate)
                reopened += job_open
        finally:
            await release_check(db, check.attempt_id, job_open=job_open)
    return reopened


async def regrade_interrupted(db: Database, grader: GradingProcesses,
                              older_than: timedelta = timedelta(minutes=2)) -> int:
    """Grade attempts stored at Submit whose grading did not finish (a crash, or a failure
    whose pause is over), leaving alone those submitted so recently that their grading may
    still be running, and those that failed every retry; return how many were graded.
    One attempt's failure never stops the others."""
    graded = 0
    due = await attempts_repo.attempts_to_regrade(db, older_than, len(GRADING_RETRIES))
    for attempt_id in due:
        try:
            await grade_attempt(db, grader, attempt_id)
            graded += 1
        except GradingError:
            continue  # recorded on the attempt, with when to try again
        except DatabaseUnavailable:
            raise  # nothing can be graded now: the next pass tries again
        except Exception as exc:  # one attempt's fault must not stop the rest
            logger.exception("attempt %s: grading raised", attempt_id)
            await _record_grading_failure(db, attempt_id, f"{type(exc).__name__}: {exc}")
    return graded


async def regrade_for_key(db: Database, grader: GradingProcesses, task_set: str) -> int:
    """Re-grade the graded attempts whose images a newer answer key changed (after HR or the
    maintainer changed the key; also at every reconciliation pass, for a change made while a
    grading was under way); how many were re-graded. One attempt's failure never stops the
    others: it keeps its figures and is tried again next time."""
    regraded = 0
    for attempt_id in await stale_attempts(db, task_set):
        try:
            await grade_attempt(db, grader, attempt_id)
            regraded += 1
        except GradingError:
            continue
    return regraded
