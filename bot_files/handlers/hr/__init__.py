"""HR's side, one module per flow: the menu, lists, notifications, export, search, the card,
the whitelist, the pass rule, the answer key, decisions and replies to candidates.

The flows' routers answer HR users only: they are reachable only inside one parent router
whose filter (on messages and button presses) lets HR users in, so an update from anyone else
is refused once, not once per flow. The roles router comes first: it refuses viewers the
admin-only buttons and dialogs. After the parent, the denied router records HR-shaped attempts
by anyone else in the action log and lets them fall through to the ordinary fallback
answers."""

from __future__ import annotations

from aiogram import Router

from authorization import HRFilter
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
    """Fresh HR routers, in the order they must see updates: the HR-only parent with every
    flow inside, then the denied router."""
    hr = Router(name="hr")
    hr.message.filter(HRFilter())
    hr.callback_query.filter(HRFilter())
    hr.include_routers(roles.create_router(), menu.create_router(), lists.create_router(),
                       notifications.create_router(), export.create_router(),
                       search.create_router(), card.create_router(), whitelist.create_router(),
                       pass_rule.create_router(), answer_key.create_router(),
                       decisions.create_router(), reply.create_router())
    return [hr, denied.create_router()]
