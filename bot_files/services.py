"""The use cases the handlers call, each built once in `create_dispatcher` and injected by
aiogram by name (`audit`, `account`, `hr_queries`, `hr_actions`, `decisions`, `rules`,
`answer_key`): a handler asks for what it does, not for the database, the settings and the
task set to thread through.

Each service is a thin, typed front to the packages' `to_handlers` facades: the SQL and the
rules stay there; what a service adds is what it was built with (the database, the settings
a use case reads, the grading processes, the CVAT client), so a test can swap one whole.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from authorization import (
    HrMember,
    Notify,
    NotifyChoice,
    Role,
    add_to_whitelist,
    hr_members,
    hr_recipients,
    is_admin,
    is_hr,
    notification_recipients,
    notify_choice,
    remove_from_whitelist,
    set_notify,
    set_role,
)
from bot_files.texts import LANGUAGES, Texts
from bot_files.work import CalibrationFile, ExportFiles, WorkerCalls
from config.env import Settings
from create_users.to_handlers import (
    DELETE_ACCOUNT,
    KEEP_ACCOUNT,
    has_consented,
    notice_texts,
    notice_version,
    record_consent,
    set_language,
)
from db import Database
from log import record_action
from tasks_generator.to_handlers import (
    Credentials,
    Stage,
    TaskSet,
    candidate_stage,
    next_attempt_at,
    resend_credentials,
)
from tasks_metrics.to_handlers import (
    BandChanges,
    CandidateCard,
    CandidateSummary,
    Decision,
    DecisionRecord,
    Flag,
    GradedAttempt,
    GradingProcesses,
    KeyVersion,
    ListClock,
    ListName,
    ObjectStats,
    PassRule,
    RuleVersion,
    Standing,
    apply_rule,
    candidate_card,
    candidate_summary,
    current_decision,
    current_key,
    current_rule,
    decision_counts,
    error_pictures,
    exclude_from_key,
    flags_of,
    grant_extra_attempt,
    list_counts,
    list_page,
    mark_sent,
    preview_rule,
    record_decision,
    regrade_candidate,
    regrade_for_key,
    rule_history,
    search_candidates,
    standing,
)
from tasks_metrics.to_handlers import Recorded as RecordedDecision

SEARCH_QUERY_LIMIT = 100  # characters of a search HR typed that are searched for


def normalise_query(text: str | None) -> str:
    """What HR typed to find someone, on one line and cut to a searchable length."""
    return " ".join((text or "").split())[:SEARCH_QUERY_LIMIT]


def valid_telegram_id(value: int) -> bool:
    """Whether `value` can be a Telegram user id (positive, within 53 bits)."""
    return 0 < value < 2**53


def clock(settings: Settings, now: datetime | None = None) -> ListClock:
    """HR's lists measured at `now` (the real time unless a test moves it)."""
    return ListClock(now or datetime.now(UTC), settings.zone,
                     timedelta(days=settings.stalled_after_days))


@dataclass(frozen=True)
class Audit:
    """The action log: who did what to whom."""

    db: Database

    async def record(self, actor: int | None, action: str, candidate_id: int | None = None,
                     details: dict[str, Any] | None = None, ok: bool = True) -> None:
        """One line in the action log."""
        await record_action(self.db, actor, action, candidate_id, details, ok)


@dataclass(frozen=True)
class Account:
    """The candidate's side that is database only: language, privacy consent, stage, login;
    with the terms of the test (`settings`, `task_set`) the candidate's texts quote."""

    db: Database
    settings: Settings
    task_set: TaskSet

    def privacy_notice(self) -> dict[str, str]:
        """The privacy notice in each language: the company's PRIVACY_NOTICE, or a generic
        one that says what is kept and for how long."""
        days = self.settings.retention_days
        key = "privacy.default_notice" if days else "privacy.default_notice_forever"
        return notice_texts(self.settings, {lang: html.unescape(Texts(lang)(key, days=days))
                                            for lang in LANGUAGES})

    def notice_version(self) -> str:
        """The version of the notice in force (what a consent is given to)."""
        return notice_version(self.privacy_notice())

    async def has_consented(self, telegram_id: int) -> bool:
        """Whether the user agreed to the notice in force."""
        return await has_consented(self.db, telegram_id, self.notice_version())

    async def consent(self, telegram_id: int) -> None:
        """Store the user's agreement to the notice in force."""
        await record_consent(self.db, telegram_id, self.privacy_notice())

    async def set_language(self, telegram_id: int, language: str) -> None:
        """The user's own choice of language, from now on."""
        await set_language(self.db, telegram_id, language)

    async def stage(self, telegram_id: int) -> Stage:
        """Where the user is in the test (new, building, ready, done)."""
        return await candidate_stage(self.db, self.settings, telegram_id)

    async def is_hr(self, telegram_id: int) -> bool:
        """Whether the user is HR (settings or whitelist)."""
        return await is_hr(self.db, self.settings.hr_admin_ids, telegram_id)

    async def credentials(self, telegram_id: int) -> Credentials | None:
        """The login of the open attempt again (recorded in the action log)."""
        return await resend_credentials(self.db, telegram_id, self.settings)

    async def next_attempt_at(self, candidate_id: int) -> datetime | None:
        """When the cooldown lets the next attempt start (None: now)."""
        return await next_attempt_at(self.db, self.settings, candidate_id)

    async def standing(self, candidate_id: int) -> Standing | None:
        """The counting attempt's verdict, as the counting rule reads it."""
        return await standing(self.db, candidate_id, self.settings.attempt_counts)


@dataclass(frozen=True)
class CardView:
    """A candidate's card as one HR user reads it: with HR's decision, and whether the reader
    may act on it (an admin)."""

    card: CandidateCard
    decision: DecisionRecord | None
    admin: bool


@dataclass(frozen=True)
class HrQueries:
    """What HR read: candidates, cards, lists, the whitelist, their own preferences, the
    export (a worker makes its files)."""

    db: Database
    settings: Settings
    calls: WorkerCalls

    async def search(self, query: str) -> list[CandidateSummary]:
        """Candidates matching a username, a name or an id."""
        return await search_candidates(self.db, query)

    async def card(self, candidate_id: int) -> CandidateCard | None:
        """The candidate with every attempt."""
        return await candidate_card(self.db, candidate_id)

    async def card_view(self, candidate_id: int, reader: int) -> CardView | None:
        """The card with HR's decision, as `reader` may act on it."""
        card = await candidate_card(self.db, candidate_id)
        if card is None:
            return None
        return CardView(card, await current_decision(self.db, candidate_id),
                        await self.is_admin(reader))

    async def summary(self, candidate_id: int) -> CandidateSummary | None:
        """The candidate in one row."""
        return await candidate_summary(self.db, candidate_id)

    async def decision(self, candidate_id: int) -> DecisionRecord | None:
        """HR's decision in force on the candidate."""
        return await current_decision(self.db, candidate_id)

    async def decision_counts(self) -> dict[str, int]:
        """How many candidates have each decision."""
        return await decision_counts(self.db)

    async def flags(self, attempt_id: int) -> list[Flag]:
        """What looked odd about one attempt."""
        return (await flags_of(self.db, [attempt_id])).get(attempt_id, [])

    async def is_admin(self, telegram_id: int) -> bool:
        """Whether the HR user may change things (not only read)."""
        return await is_admin(self.db, self.settings.hr_admin_ids, telegram_id)

    async def notify_choice(self, telegram_id: int) -> NotifyChoice:
        """How the HR user hears about results."""
        return await notify_choice(self.db, telegram_id)

    async def members(self) -> list[HrMember]:
        """Every HR user, with their role."""
        return await hr_members(self.db, self.settings.hr_admin_ids)

    async def member(self, telegram_id: int) -> HrMember | None:
        """One HR user, if they are one."""
        return next((m for m in await self.members() if m.telegram_id == telegram_id), None)

    async def notification_recipients(self) -> list[tuple[int, str | None]]:
        """HR users who hear about each result, with their language."""
        return await notification_recipients(self.db, self.settings.hr_admin_ids)

    async def support_recipients(self) -> list[tuple[int, str | None]]:
        """HR users who get candidates' support messages, with their language."""
        return await hr_recipients(self.db, self.settings.hr_admin_ids)

    async def list_counts(self) -> dict[ListName, int]:
        """How many candidates are on each list now."""
        return await list_counts(self.db, clock(self.settings))

    async def list_page(self, name: ListName, page: int,
                        size: int) -> tuple[int, list[CandidateSummary]]:
        """How many are on a list, and one page of them."""
        return await list_page(self.db, name, clock(self.settings), page, size)

    async def export(self, language: str) -> ExportFiles | None:
        """Every candidate as XLSX and CSV, and the score chart, in `language`, made by a
        worker; None if there is no candidate."""
        return await self.calls.export(language)


@dataclass(frozen=True)
class HrActions:
    """What HR change: attempts, grading, accounts and data, the whitelist, notifications.
    The CVAT and grading ones are thin: a worker does them (`calls`, `grader`)."""

    db: Database
    calls: WorkerCalls
    grader: GradingProcesses
    settings: Settings

    async def grant_extra_attempt(self, actor: int, candidate_id: int) -> int | None:
        """One more attempt; the candidate's extra attempts now."""
        return await grant_extra_attempt(self.db, actor, candidate_id)

    async def regrade(self, actor: int,
                      candidate_id: int) -> list[tuple[int, GradedAttempt | None]]:
        """Grade every submitted attempt again from its stored work."""
        return await regrade_candidate(self.db, self.grader, actor, candidate_id)

    async def error_pictures(self, attempt_id: int,
                             labels: dict[str, str]) -> list[tuple[str, bytes]]:
        """The attempt's mistakes drawn on its images."""
        return await error_pictures(self.db, self.grader, attempt_id, labels)

    async def scorecard(self, fields: dict[str, object], labels: dict[str, str]) -> bytes:
        """The one-page scorecard, drawn."""
        return await self.grader.scorecard(fields, labels)

    async def delete_cvat_account(self, actor: int, candidate_id: int) -> str:
        """Delete the candidate's CVAT account: "deleted", "already_gone" or "no_account"."""
        return await self.calls.delete_cvat_account(actor, candidate_id)

    async def delete_data(self, actor: int, candidate_id: int, *, account: bool) -> str:
        """Delete the candidate's data (and, with `account`, the CVAT account)."""
        return await self.calls.delete_data(actor, candidate_id,
                                            DELETE_ACCOUNT if account else KEEP_ACCOUNT)

    async def reactivate(self, actor: int, candidate_id: int) -> str:
        """Let a deactivated CVAT account sign in again."""
        return await self.calls.reactivate(actor, candidate_id)

    async def add_to_whitelist(self, actor: int, telegram_id: int,
                               username: str | None) -> bool:
        """Make someone HR; False if they already were."""
        return await add_to_whitelist(self.db, actor, telegram_id, username)

    async def remove_from_whitelist(self, actor: int, telegram_id: int) -> str:
        """"removed", "last", "settings" or "not_found"."""
        return await remove_from_whitelist(self.db, actor, telegram_id,
                                           self.settings.hr_admin_ids)

    async def set_role(self, actor: int, telegram_id: int, role: Role) -> str:
        """Make an HR user a viewer or an admin."""
        return await set_role(self.db, actor, telegram_id, role, self.settings.hr_admin_ids)

    async def set_notify(self, telegram_id: int, mode: Notify,
                         digest_at: time | None = None) -> NotifyChoice:
        """How the HR user hears about results from now on."""
        return await set_notify(self.db, telegram_id, mode, digest_at)


@dataclass(frozen=True)
class Decisions:
    """HR's decisions on candidates: recorded once each, marked when their message went."""

    db: Database
    settings: Settings

    async def summary(self, candidate_id: int) -> CandidateSummary | None:
        """The candidate the decision is about."""
        return await candidate_summary(self.db, candidate_id)

    async def current(self, candidate_id: int) -> DecisionRecord | None:
        """The decision in force."""
        return await current_decision(self.db, candidate_id)

    async def record(self, candidate_id: int, decision: Decision, note: str,
                     actor: int) -> RecordedDecision:
        """Store the decision (the same one twice is "same")."""
        return await record_decision(self.db, candidate_id, decision, note, actor)

    async def mark_sent(self, decision_id: int) -> None:
        """The decision's message reached the candidate."""
        await mark_sent(self.db, decision_id)

    @property
    def result_shown(self) -> str:
        """How much of the result a decision's message shows (CANDIDATE_RESULT)."""
        return self.settings.candidate_result

    async def standing(self, candidate_id: int) -> Standing | None:
        """The counting attempt's verdict, shown with the decision if CANDIDATE_RESULT says."""
        if self.settings.candidate_result == "off":
            return None
        return await standing(self.db, candidate_id, self.settings.attempt_counts)


@dataclass(frozen=True)
class PassRules:
    """The pass rule: in force, previewed, applied, its history."""

    db: Database

    async def current(self) -> RuleVersion:
        """The rule in force."""
        return await current_rule(self.db)

    async def preview(self, rule: PassRule) -> BandChanges:
        """Who would change band under `rule`."""
        return await preview_rule(self.db, rule)

    async def apply(self, rule: PassRule, actor: int,
                    based_on: int | None) -> tuple[int, BandChanges]:
        """Put `rule` in force (StaleRule if it changed since `based_on`)."""
        return await apply_rule(self.db, rule, actor=actor, based_on=based_on)

    async def history(self, limit: int) -> list[RuleVersion]:
        """The last rules, newest first."""
        return await rule_history(self.db, limit)


@dataclass(frozen=True)
class AnswerKey:
    """The task set's answer key: its calibration, exclusions and the re-grading they cause."""

    db: Database
    task_set: TaskSet
    grader: GradingProcesses
    calls: WorkerCalls

    async def suspects(self, limit: int) -> tuple[KeyVersion, list[tuple[ObjectStats, str]]]:
        """The key in force and its `limit` most probable errors, described (a worker
        computes the calibration)."""
        return await self.calls.key_suspects(limit)

    async def calibration_file(self) -> CalibrationFile:
        """The calibration of the key in force as XLSX, made by a worker."""
        return await self.calls.calibration_file()

    async def describe_object(self, image: str, number: int) -> str:
        """Object `number` of `image` in the key in force, in words (KeyChangeError if none);
        a worker reads the key."""
        return await self.calls.describe_object(image, number)

    async def current(self) -> KeyVersion:
        """The key in force."""
        return await current_key(self.db, self.task_set.name)

    async def exclude(self, image: str, number: int | None, actor: int) -> KeyVersion:
        """Exclude an image (or one object in it) from grading (KeyChangeError if none)."""
        return await exclude_from_key(self.db, self.task_set, image, number, actor=actor)

    async def regrade(self) -> int:
        """Grade again what was graded on an older key; how many."""
        return await regrade_for_key(self.db, self.grader, self.task_set.name)


@dataclass(frozen=True)
class Services:
    """Every service, built once from the long-lived dependencies."""

    audit: Audit
    account: Account
    hr_queries: HrQueries
    hr_actions: HrActions
    decisions: Decisions
    rules: PassRules
    answer_key: AnswerKey

    @classmethod
    def build(cls, db: Database, calls: WorkerCalls, grader: GradingProcesses,
              settings: Settings, task_set: TaskSet) -> Services:
        """The services over these dependencies."""
        return cls(audit=Audit(db), account=Account(db, settings, task_set),
                   hr_queries=HrQueries(db, settings, calls),
                   hr_actions=HrActions(db, calls, grader, settings),
                   decisions=Decisions(db, settings), rules=PassRules(db),
                   answer_key=AnswerKey(db, task_set, grader, calls))

    def as_kwargs(self) -> dict[str, object]:
        """The services by the names handlers ask for them."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
