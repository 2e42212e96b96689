"""HR's daily digest: each HR user who chose it gets yesterday's results and the lists, once a
local day at their time, through the outbound notifier; sent by a background task."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from aiogram import Bot

from authorization import claim_due_digests
from bot_files.outbound import Outbound
from bot_files.presentation.hr import digest
from bot_files.services import clock
from bot_files.telegram_limits import Pacer
from config.env import Settings
from db import Database, DatabaseUnavailable
from tasks_metrics.to_handlers import digest_figures

__all__ = ["DigestKeeper", "clock", "send_due_digests"]

logger = logging.getLogger(__name__)

DIGEST_CHECK_SECONDS = 60


async def send_due_digests(bot: Bot, db: Database, settings: Settings,
                           now: datetime | None = None, outbound: Outbound | None = None) -> int:
    """Send every digest due at `now` (each HR user at their time, once a local day); how
    many were sent. One failed send never stops the others."""
    moment = clock(settings, now)
    due = await claim_due_digests(db, settings.hr_admin_ids, moment.now, settings.zone)
    if not due:
        return 0
    figures = await digest_figures(db, moment, moment.now - timedelta(days=1))
    outbound = outbound or Outbound(db, Pacer())
    return await outbound.send_each(
        bot, due, lambda t: digest(t, figures, moment.now, settings.zone,
                                   settings.stalled_after_days))


class DigestKeeper:
    """Sends the daily digests on time; one per bot process (a digest is claimed in the
    database before it is sent, so replicas never send one twice)."""

    def __init__(self, bot: Bot, db: Database, settings: Settings,
                 pacer: Pacer | None = None) -> None:
        self.bot = bot
        self.db = db
        self.settings = settings
        self.outbound = Outbound(db, pacer or Pacer())

    async def run(self) -> None:
        """Every minute until cancelled; outages only postpone a digest."""
        while True:
            try:
                await send_due_digests(self.bot, self.db, self.settings,
                                       outbound=self.outbound)
            except DatabaseUnavailable as exc:
                logger.warning("digests not sent now: %s", exc)
            await asyncio.sleep(DIGEST_CHECK_SECONDS)
