"""Webhook delivery: each chat's updates posted in order, retried, and the method a bot puts
into its answer executed, as Telegram does."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from sandbox.telegram.api.registry import resolve
from sandbox.telegram.errors import ApiError
from sandbox.telegram.params import Params, Upload, read_multipart

if TYPE_CHECKING:
    from sandbox.telegram.world import BotState, World

__all__ = ["Webhook"]

log = logging.getLogger("sandbox.telegram")


class Webhook:
    """A bot's webhook: where it is, the updates on their way there (one worker per chat,
    in order, at most max_connections posts at once), and its last delivery error."""

    def __init__(
        self, world: World, bot: BotState, url: str, secret: str | None, max_connections: int
    ) -> None:
        self.url = url
        self.secret = secret
        self.max_connections = max_connections
        self.queues: dict[int, collections.deque[dict[str, Any]]] = {}
        self.workers: dict[int, asyncio.Task[None]] = {}
        self.pending = 0
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None
        self._world = world
        self._bot = bot
        self._semaphore = asyncio.Semaphore(max_connections)

    def enqueue(self, chat: int, update: dict[str, Any]) -> None:
        """Queue one update of a chat and make sure the chat's worker runs."""
        self.pending += 1
        queue = self.queues.get(chat)
        if queue is None:
            queue = self.queues[chat] = collections.deque()
        queue.append(update)
        if chat not in self.workers:
            self.workers[chat] = asyncio.get_running_loop().create_task(self._worker(chat))

    def start(self, pending: list[dict[str, Any]]) -> None:
        """Take over updates that were waiting (in update_id order) and start delivering."""
        loop = asyncio.get_running_loop()
        for update in pending:
            chat = _update_chat(update)
            self.pending += 1
            self.queues.setdefault(chat, collections.deque()).append(update)
        for chat in list(self.queues):
            self.workers[chat] = loop.create_task(self._worker(chat))

    def stop(self) -> list[dict[str, Any]]:
        """Stop delivering; the updates not delivered yet."""
        for task in self.workers.values():
            task.cancel()
        pending = [u for q in self.queues.values() for u in q]
        self.queues.clear()
        self.workers.clear()
        self.pending = 0
        return pending

    async def _worker(self, chat: int) -> None:
        queue = self.queues[chat]
        try:
            while queue:
                update = queue[0]
                async with self._semaphore:
                    await self._deliver(update)
                queue.popleft()
                self.pending -= 1
        finally:
            self.workers.pop(chat, None)
            if not queue:
                self.queues.pop(chat, None)

    async def _deliver(self, update: dict[str, Any]) -> None:
        world = self._world
        client = world.http()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.secret
        body = json.dumps(update, ensure_ascii=False)
        for delay in (0.0, *world.webhook_retry_delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                timeout = aiohttp.ClientTimeout(total=world.webhook_timeout)
                async with client.post(self.url, data=body, headers=headers,
                                       timeout=timeout) as resp:
                    if 200 <= resp.status < 300:
                        world.counters["webhook_delivered"] += 1
                        await self._run_reply(resp)
                        return
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except TimeoutError:
                error = "Read timeout expired"
            except aiohttp.ClientError as e:
                error = f"Connection error: {type(e).__name__}"
            self.last_error_date = int(time.time())
            self.last_error_message = error
            world.counters["webhook_failed"] += 1
        world.counters["webhook_dropped"] += 1
        log.warning("webhook update %s dropped after retries: %s", update["update_id"], error)

    async def _run_reply(self, resp: aiohttp.ClientResponse) -> None:
        """Execute a method the bot put into its webhook answer, as Telegram does."""
        values: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        try:
            if resp.content_type == "application/json":
                body = await resp.json(content_type=None)
                if isinstance(body, dict):
                    values = body
            elif resp.content_type == "multipart/form-data":
                await read_multipart(
                    aiohttp.MultipartReader(resp.headers, resp.content), values, files
                )
        except (ValueError, aiohttp.ClientError):
            return
        method = values.pop("method", None)
        if not isinstance(method, str):
            return
        entry = resolve(method)
        if entry is None:
            return
        params = Params(values, files)
        self._world.record(entry.name, params)
        self._world.counters[entry.name] += 1
        try:
            await entry.handler(self._world, self._bot, params)
        except ApiError as e:
            log.info("webhook reply %s failed: %s", entry.name, e.description)


def _update_chat(update: dict[str, Any]) -> int:
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict):
            return int(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict):
            return int(sender["id"])
    return 0
