"""Routers in the order they must see updates: /cancel and commands first, fallbacks last."""

from __future__ import annotations

from aiogram import Router

from bot_files.handlers import answer_key, candidate, common, fallback, hr, pass_rule, support


def get_routers() -> list[Router]:
    """Fresh routers (a router can belong to one dispatcher only, and tests build several)."""
    return [common.create_router(), candidate.create_router(), support.create_router(),
            pass_rule.create_router(), answer_key.create_router(), hr.create_router(),
            hr.create_denied_router(), fallback.create_router()]
