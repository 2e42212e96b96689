"""Webhook mode: the aiohttp app that takes Telegram's updates (refused without the secret
token) and answers /healthz, and the server that runs it until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from config.env import Settings
from connection import AsyncCvatClient
from db import Database
from health import HealthMonitor

logger = logging.getLogger("bot")

WEBHOOK_PATH = "/telegram/webhook"


class TelegramRequestHandler(SimpleRequestHandler):
    """aiogram's webhook handler with the secret compared as bytes: a header holding non-ASCII
    bytes is refused with 401 like any wrong secret (str comparison raised, which gave 500)."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        """Whether the request carries our secret (constant-time)."""
        if not self.secret_token:
            return True
        given = telegram_secret_token.encode("utf-8", "surrogateescape")
        return secrets.compare_digest(given, self.secret_token.encode())


def create_webhook_app(settings: Settings, dp: Dispatcher, bot: Bot, db: Database,
                       cvat: AsyncCvatClient | None = None) -> web.Application:
    """aiohttp app for webhook mode: updates at WEBHOOK_PATH, refused (401) without the secret
    token; /healthz answers "ok" (200) or "unavailable" (503) from a state a HealthMonitor
    refreshes in the background (what is down goes to the log, not to the caller)."""
    app = web.Application()
    TelegramRequestHandler(dispatcher=dp, bot=bot, handle_in_background=True,
                           secret_token=settings.webhook_secret).register(app, path=WEBHOOK_PATH)
    monitor = HealthMonitor(db, settings)

    async def healthz(request: web.Request) -> web.Response:
        return (web.Response(text="ok") if monitor.ok
                else web.Response(text="unavailable", status=503))

    app.router.add_get("/healthz", healthz)

    async def register_webhook(app: web.Application) -> None:
        assert settings.webhook_url is not None
        await bot.set_webhook(settings.webhook_url, secret_token=settings.webhook_secret,
                              allowed_updates=dp.resolve_used_update_types())

    async def stop_monitor(app: web.Application) -> None:
        await monitor.stop()

    app.on_startup.append(lambda app: monitor.start())
    app.on_startup.append(register_webhook)
    app.on_cleanup.append(stop_monitor)
    setup_application(app, dp, bot=bot)
    return app


async def serve_webhook(settings: Settings, dp: Dispatcher, bot: Bot, db: Database,
                        cvat: AsyncCvatClient | None = None) -> None:
    """Serve webhooks until SIGINT/SIGTERM."""
    app = create_webhook_app(settings, dp, bot, db, cvat)
    host, _, port = settings.webhook_listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, int(port)).start()
    logger.info("webhook server on %s, Telegram posts to %s", settings.webhook_listen,
                settings.webhook_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
