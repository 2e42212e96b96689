"""The deadline keeper: the nudge before a test's deadline, and the expiry at it, told to the
candidate in their language, paced within Telegram's limits (tasks_metrics.deadlines holds the
rules; this module only talks)."""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ReplyKeyboardMarkup

from bot_files.keyboards import main_menu
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


def expiry_next(t: Texts, attempts_left: int) -> str:
    """What a candidate whose attempt expired can do: a new attempt, or write to HR."""
    return t("deadline.expired_more" if attempts_left else "deadline.expired_none")


def expiry_text(t: Texts, key: str, number: int, attempts_left: int) -> str:
    """Why attempt `number` is closed (`key`: what happened) and what the candidate can do."""
    return f"{t(key, number=number)}\n\n{expiry_next(t, attempts_left)}"


def expiry_menu(t: Texts, attempts_left: int) -> ReplyKeyboardMarkup:
    """The candidate's menu after an expiry: a new attempt while any are left."""
    return main_menu(t, "done", attempts_left)


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
        self.pacer = pacer

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
            t = _texts(notice)
            reminded += await self._deliver(notice, NoticeKind.REMINDER, t(
                "deadline.reminder", number=notice.number, hours=notice.hours_left))
        # Without a CVAT client (the bot's own keeper) the workers expire attempts.
        expired = 0 if self.cvat is None else await expire_overdue(self.db, self.cvat,
                                                                   self.settings)
        told = 0
        for notice in await claim_expiry_notices(self.db, self.settings):
            t = _texts(notice)
            told += await self._deliver(
                notice, NoticeKind.EXPIRY,
                expiry_text(t, "deadline.expired", notice.number, notice.attempts_left),
                expiry_menu(t, notice.attempts_left))
        return PassCounts(reminded, expired, told)

    async def _deliver(self, notice: DeadlineNotice, kind: NoticeKind, text: str,
                       markup: ReplyKeyboardMarkup | None = None) -> bool:
        """Send one claimed message, paced; whether it went. One Telegram did not take is
        given back for the next pass; a candidate who blocked the bot counts as told (trying
        again would not reach them either)."""
        await self.pacer.wait(notice.telegram_id)
        try:
            await self.bot.send_message(notice.telegram_id, text, reply_markup=markup)
        except TelegramForbiddenError:
            logger.info("candidate %s blocked the bot; %s of attempt %s dropped",
                        notice.telegram_id, kind.name.lower(), notice.attempt_id)
        except TelegramAPIError as exc:
            logger.warning("%s of attempt %s not sent now: %s", kind.name.lower(),
                           notice.attempt_id, exc)
            await release_notice(self.db, notice.attempt_id, kind)
            return False
        return True


def _texts(notice: DeadlineNotice) -> Texts:
    return Texts(pick_language(notice.language, None))
