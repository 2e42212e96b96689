"""The main menu for whoever is writing: its buttons follow the candidate's stage."""

from __future__ import annotations

from aiogram.types import ReplyKeyboardMarkup

from authorization import is_hr
from bot_files.keyboards import main_menu
from bot_files.texts import Texts
from config.env import Settings
from db import Database
from tasks_generator.to_handlers import candidate_stage


async def current_menu(t: Texts, db: Database, settings: Settings,
                       telegram_id: int) -> ReplyKeyboardMarkup:
    """The reply keyboard fitting the user's stage (new, building, ready, done), with the HR
    menu button for HR users."""
    stage = await candidate_stage(db, settings, telegram_id)
    hr = await is_hr(db, settings.hr_admin_ids, telegram_id)
    return main_menu(t, stage.kind, stage.attempts_left, hr=hr)
