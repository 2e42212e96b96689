"""Everything the bot says unprompted, by name: a result to HR, a support message to HR, HR's
reply, decision and extra attempt to the candidate, a login finished in the background. Built
once in `create_dispatcher` and injected as `notifier`; each message is rendered by the
presentation layer and sent through `Outbound` (paced, in the recipient's stored language,
a failed send logged and reported, never raised)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import User

from bot_files.outbound import Letter, Outbound
from bot_files.presentation import candidate as views
from bot_files.presentation.hr import graded_notice
from bot_files.services import Account, Decisions, HrQueries
from bot_files.texts import Texts
from db import DatabaseUnavailable
from tasks_generator.to_handlers import Credentials, TaskSet
from tasks_metrics.to_handlers import CandidateSummary, SubmitOutcome

logger = logging.getLogger(__name__)


class Notifier:
    """The bot's unprompted messages, each one paced and in its reader's language."""

    def __init__(self, outbound: Outbound, account: Account, hr_queries: HrQueries,
                 decisions: Decisions, task_set: TaskSet) -> None:
        self.outbound = outbound
        self.account = account
        self.hr_queries = hr_queries
        self.decisions = decisions
        self.task_set = task_set

    async def texts_for(self, telegram_id: int) -> Texts:
        """Texts in the language a message to `telegram_id` would be in."""
        return await self.outbound.texts_for(telegram_id)

    async def graded(self, bot: Bot | None, outcome: SubmitOutcome) -> int:
        """After a submission: the band and the gates that made it (or, if the grading failed,
        that it did) to every HR user with notifications on. How many were told."""
        if bot is None or not outcome.stored or outcome.attempt is None:
            return 0
        try:
            candidate = await self.hr_queries.summary(outcome.attempt.candidate_id)
            recipients = await self.hr_queries.notification_recipients()
            flags = await self.hr_queries.flags(outcome.attempt.id)
        except DatabaseUnavailable as exc:
            logger.warning("HR not notified of attempt %s: %s", outcome.attempt.id, exc)
            return 0
        if candidate is None:
            return 0
        return await self.outbound.send_each(
            bot, recipients, lambda t: graded_notice(t, candidate, outcome, flags))

    async def support_message(self, bot: Bot, sender: User, text: str) -> int:
        """A candidate's message to every HR user, with a Reply button. How many got it."""
        recipients = await self.hr_queries.support_recipients()
        return await self.outbound.send_each(
            bot, recipients, lambda t: views.support_message(t, sender, text))

    async def hr_reply(self, bot: Bot, telegram_id: int, text: str) -> bool:
        """HR's answer to a support message."""
        return await self.outbound.send(bot, telegram_id, lambda t: views.hr_reply(t, text))

    async def extra_attempt(self, bot: Bot, telegram_id: int) -> bool:
        """HR granted the candidate one more attempt: say so, with the menu that now fits."""
        async def compose(t: Texts) -> Letter:
            stage = await self.account.stage(telegram_id)
            hr = await self.account.is_hr(telegram_id)
            return views.extra_attempt(t, views.stage_menu(t, stage, hr=hr))

        try:
            return await self.outbound.send(bot, telegram_id, compose)
        except DatabaseUnavailable as exc:
            logger.warning("candidate %s not told about the extra attempt: %s", telegram_id,
                           exc)
            return False

    async def decision_letter(self, t: Texts, candidate: CandidateSummary, decision: str,
                              note: str) -> Letter:
        """HR's decision as the candidate will read it (in `t`): for HR's preview and to
        send."""
        return views.decision_letter(t, candidate, decision, note,
                                     await self.decisions.standing(candidate.id),
                                     self.decisions.result_shown)

    async def decision(self, bot: Bot, candidate: CandidateSummary, decision: str,
                       note: str) -> bool:
        """HR's decision to the candidate."""
        return await self.outbound.send(
            bot, candidate.telegram_id,
            lambda t: self.decision_letter(t, candidate, decision, note))

    async def credentials_ready(self, bot: Bot, telegram_id: int,
                                credentials: Credentials) -> bool:
        """The login of a task finished in the background (after a restart)."""
        return await self.outbound.send(
            bot, telegram_id, lambda t: views.credentials_ready(t, credentials, self.task_set))
