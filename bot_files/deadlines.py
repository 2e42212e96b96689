"""The deadline keeper: the nudge before a test's deadline, and the expiry at it, told to the
candidate in their language through the outbound notifier (tasks_metrics.deadlines holds the
rules; this module only talks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NamedTuple

from aiogram import Bot

from bot_files.outbound import Delivery, Letter, Outbound
from bot_files.presentation import candidate as views
from bot_files.telegram_limits import Pacer
from bot_files.texts import Texts, pick_language
from config.env import Settings
from connection import AsyncCvatClient, CvatError
from db import Database, DatabaseUnavailable
from tasks_metrics.to_handlers import (
    DeadlineNotice,
    NoticeKind,
    claim_expiry_notices,
    claim_reminders,
    expire_overdue,
    release_notice,
)

logger = logging.getLogger(__name__)


class PassCounts(NamedTuple):
    """What one pass of the keeper did."""

    reminded: int
    expired: int
    told: int


class DeadlineKeeper:
    """Every RECONCILE_INTERVAL_SECONDS: nudges candidates whose deadline is near, expires
    attempts past it (given a CVAT client; the bot's leaves that to the workers) and tells
    their candidates; one per bot process, safe on several (each
    message is claimed in the database by one of them before it is sent)."""

    def __init__(self, bot: Bot, db: Database, cvat: AsyncCvatClient | None, settings: Settings,
                 pacer: Pacer) -> None:
        self.bot = bot
        self.db = db
        self.cvat = cvat
        self.settings = settings
        self.outbound = Outbound(db, pacer)

    async def run(self) -> None:
        """Until cancelled; outages only postpone it."""
        while True:
            try:
                counts = await self.run_once()
                if counts.reminded or counts.expired or counts.told:
                    logger.info("deadlines: %d reminded, %d expired, %d told", counts.reminded,
                                counts.expired, counts.told)
            except (DatabaseUnavailable, CvatError) as exc:
                logger.warning("deadlines not looked after now: %s", exc)
            except Exception:
                logger.exception("deadline pass failed; the next one tries again")
            await asyncio.sleep(self.settings.reconcile_interval_seconds)

    async def run_once(self) -> PassCounts:
        """One pass: the nudges due, the expiries due, and the expiry messages not sent yet."""
        reminded = 0
        for notice in await claim_reminders(self.db, self.settings):
            reminded += await self._deliver(notice, NoticeKind.REMINDER, lambda t, n=notice:
                                            views.reminder(t, n.number, n.hours_left))
        # Without a CVAT client (the bot's own keeper) the workers expire attempts.
        expired = 0 if self.cvat is None else await expire_overdue(self.db, self.cvat,
                                                                   self.settings)
        told = 0
        for notice in await claim_expiry_notices(self.db, self.settings):
            told += await self._deliver(notice, NoticeKind.EXPIRY, lambda t, n=notice:
                                        views.expiry(t, "deadline.expired", n.number,
                                                     n.attempts_left))
        return PassCounts(reminded, expired, told)

    async def _deliver(self, notice: DeadlineNotice, kind: NoticeKind,
                       compose: Callable[[Texts], Letter]) -> bool:
        """Send one claimed message, paced, in the language the claim read; whether it went.
        One Telegram did not take is given back for the next pass; a candidate who blocked
        the bot counts as told (trying again would not reach them either)."""
        delivery = await self.outbound.deliver(
            self.bot, notice.telegram_id, compose,
            texts=Texts(pick_language(notice.language, None)))
        if delivery is Delivery.BLOCKED:
            logger.info("candidate %s blocked the bot; %s of attempt %s dropped",
                        notice.telegram_id, kind.name.lower(), notice.attempt_id)
        elif delivery is Delivery.FAILED:
            logger.warning("%s of attempt %s not sent now", kind.name.lower(), notice.attempt_id)
            await release_notice(self.db, notice.attempt_id, kind)
            return False
        return True
