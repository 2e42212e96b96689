"""Routers in the order they must see updates: /cancel and commands first, fallbacks last.
No handler module imports another: what several share lives in bot_files (dialogs, replies,
presentation, services, notifier)."""

from __future__ import annotations

from aiogram import Router

from bot_files.handlers import candidate, common, fallback, hr, support


def get_routers() -> list[Router]:
    """Fresh routers (a router can belong to one dispatcher only, and tests build several)."""
    return [common.create_router(), candidate.create_router(), support.create_router(),
            *hr.get_routers(), fallback.create_router()]
