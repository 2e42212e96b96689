"""HR's side, one module per flow: the menu, lists, notifications, export, search, the card,
the whitelist, the pass rule, the answer key, decisions and replies to candidates.

Every router here answers HR users only (a router-level filter on messages and button
presses). The roles router comes first: it refuses viewers the admin-only buttons and dialogs.
The denied router comes last: it records HR-shaped attempts by anyone else in the action log
and lets them fall through to the ordinary fallback answers."""

from __future__ import annotations

from aiogram import Router

from bot_files.handlers.hr import (
    answer_key,
    card,
    decisions,
    denied,
    export,
    lists,
    menu,
    notifications,
    pass_rule,
    reply,
    roles,
    search,
    whitelist,
)


def get_routers() -> list[Router]:
    """Fresh HR routers, in the order they must see updates."""
    return [roles.create_router(), menu.create_router(), lists.create_router(),
            notifications.create_router(), export.create_router(), search.create_router(),
            card.create_router(), whitelist.create_router(), pass_rule.create_router(),
            answer_key.create_router(), decisions.create_router(), reply.create_router(),
            denied.create_router()]
