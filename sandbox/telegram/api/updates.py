"""Updates: getUpdates long polling, and webhooks (set, delete, info)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import re
from typing import TYPE_CHECKING, Any

from sandbox.telegram.api.registry import method
from sandbox.telegram.errors import ApiError, bad
from sandbox.telegram.webhooks import Webhook

if TYPE_CHECKING:
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, World

GETUPDATES_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


def _set_allowed_updates(bot: BotState, params: Params) -> None:
    allowed = params.json("allowed_updates")
    if isinstance(allowed, list):
        bot.allowed_updates = {str(a) for a in allowed} or None


@method("getUpdates")
async def get_updates(world: World, bot: BotState, params: Params) -> Any:
    """Confirm updates below `offset`, then answer what is queued or wait up to `timeout`."""
    if bot.webhook is not None:
        raise ApiError(409, GETUPDATES_CONFLICT)
    offset = params.int("offset", 0) or 0
    limit = params.int("limit", 100) or 100
    limit = 100 if limit < 1 or limit > 100 else limit
    timeout = max(0, params.int("timeout", 0) or 0)
    _set_allowed_updates(bot, params)
    queue = bot.updates
    if offset < 0:
        while len(queue) > -offset:
            queue.popleft()
    elif offset:
        while queue and queue[0]["update_id"] < offset:
            queue.popleft()
    bot.poll_generation += 1
    generation = bot.poll_generation
    bot.wake_pollers()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    bot.polling += 1
    try:
        while True:
            if queue:
                out = _allowed_slice(bot, queue, limit)
                if out:
                    return out
            remaining = deadline - loop.time()
            if remaining <= 0 or world.stopping:
                return []
            ev = bot.update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), remaining)
            if generation != bot.poll_generation:
                raise ApiError(409, TERMINATED)
            if bot.webhook is not None:
                raise ApiError(409, GETUPDATES_CONFLICT)
    finally:
        bot.polling -= 1


def _allowed_slice(
    bot: BotState, queue: collections.deque[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    allowed_set = bot.allowed_updates
    if allowed_set is None:
        return list(itertools.islice(queue, limit))
    out = []
    for u in queue:
        if any(k in allowed_set for k in u if k != "update_id"):
            out.append(u)
            if len(out) >= limit:
                break
    return out


@method("setWebhook")
async def set_webhook(world: World, bot: BotState, params: Params) -> Any:
    """Deliver updates by POST to `url` from now on (an empty url deletes the webhook)."""
    url = params.str("url", "") or ""
    if not url:
        return await delete_webhook(world, bot, params)
    if not url.startswith(("http://", "https://")):
        raise bad("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.str("secret_token")
    if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise bad("secret token contains unallowed characters")
    max_conn = params.int("max_connections", 40) or 40
    if not 1 <= max_conn <= 100:
        raise bad("bad webhook: invalid max_connections specified")
    _set_allowed_updates(bot, params)
    old = bot.webhook
    pending: list[dict[str, Any]] = []
    if old is not None:
        pending = old.stop()
    wh = Webhook(world, bot, url, secret, max_conn)
    if old is not None:
        wh.last_error_date, wh.last_error_message = old.last_error_date, old.last_error_message
    bot.webhook = wh
    bot.wake_pollers()
    pending.extend(bot.updates)
    bot.updates.clear()
    if params.bool("drop_pending_updates"):
        pending = []
    pending.sort(key=lambda u: u["update_id"])
    wh.start(pending)
    return True


@method("deleteWebhook")
async def delete_webhook(world: World, bot: BotState, params: Params) -> Any:
    """Back to getUpdates; undelivered updates wait there unless drop_pending_updates."""
    if bot.webhook is not None:
        pending = bot.webhook.stop()
        bot.webhook = None
        if not params.bool("drop_pending_updates"):
            merged = sorted([*pending, *bot.updates], key=lambda u: u["update_id"])
            bot.updates = collections.deque(merged)
        else:
            bot.updates.clear()
    elif params.bool("drop_pending_updates"):
        bot.updates.clear()
    return True


@method("getWebhookInfo")
async def get_webhook_info(world: World, bot: BotState, params: Params) -> Any:
    """The webhook's url, pending count and last error."""
    wh = bot.webhook
    if wh is None:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
    info: dict[str, Any] = {
        "url": wh.url,
        "has_custom_certificate": False,
        "pending_update_count": wh.pending,
        "max_connections": wh.max_connections,
        "ip_address": "127.0.0.1",
    }
    if wh.last_error_date is not None:
        info["last_error_date"] = wh.last_error_date
        info["last_error_message"] = wh.last_error_message
    if bot.allowed_updates is not None:
        info["allowed_updates"] = sorted(bot.allowed_updates)
    return info
