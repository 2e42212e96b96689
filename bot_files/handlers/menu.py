"""The main menu for whoever is writing: its buttons follow the candidate's stage."""

from __future__ import annotations

from aiogram.types import ReplyKeyboardMarkup

from authorization import is_hr
from bot_files.keyboards import main_menu
from bot_files.texts import Texts
from config.env import Settings
from db import Database
from tasks_generator.to_handlers import Visitor, candidate_stage


def current_menu(t: Texts, visitor: Visitor | None) -> ReplyKeyboardMarkup:
    """The reply keyboard fitting the user's stage (new, building, ready, done), with the HR
    menu button for HR users; `visitor` comes with every update (UserContextMiddleware)."""
    if visitor is None:  # the database could not be asked: the plain menu
        return main_menu(t)
    return main_menu(t, visitor.stage.kind, visitor.stage.attempts_left, hr=visitor.hr)


async def menu_for(t: Texts, db: Database, settings: Settings,
                   telegram_id: int) -> ReplyKeyboardMarkup:
    """The menu of another user (not the one writing), read from the database now."""
    stage = await candidate_stage(db, settings, telegram_id)
    hr = await is_hr(db, settings.hr_admin_ids, telegram_id)
    return main_menu(t, stage.kind, stage.attempts_left, hr=hr)
