"""Routers in the order they must see updates: /cancel and commands first, fallbacks last."""

from __future__ import annotations

from aiogram import Router

from bot_files.handlers import (
    answer_key,
    candidate,
    common,
    decisions,
    fallback,
    hr,
    hr_lists,
    hr_reply,
    pass_rule,
    roles,
    support,
)


def get_routers() -> list[Router]:
    """Fresh routers (a router can belong to one dispatcher only, and tests build several).
    The roles router comes before every HR router: it refuses viewers the admin-only ones."""
    return [common.create_router(), candidate.create_router(), support.create_router(),
            roles.create_router(), hr_lists.create_router(), pass_rule.create_router(),
            answer_key.create_router(), decisions.create_router(), hr_reply.create_router(),
            hr.create_router(),
            hr.create_denied_router(), fallback.create_router()]
