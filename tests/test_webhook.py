"""Webhook mode: Telegram (the stand-in) posts updates with the secret token; anything without
it is refused; /healthz answers from a state kept up to date in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from config.env import Settings
from connection import AsyncCvatClient
from db import Database, free_port
from main import WEBHOOK_PATH, create_bot, create_dispatcher, create_webhook_app
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer
from tests.conftest import HANG, make_settings
from tests.flow import text_update

SECRET = "webhook-Secret_42"



@pytest.fixture
async def webhook_bot(settings: Settings, db: Database) -> AsyncIterator[str]:
    """The production bot in webhook mode; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    hooked = make_settings(
        TELEGRAM_API_URL=settings.telegram_api_url, CVAT_URL=settings.cvat_url,
        DATABASE_URL=str(settings.database_url), WEBHOOK_URL=base + WEBHOOK_PATH,
        WEBHOOK_SECRET=SECRET, WEBHOOK_LISTEN=f"127.0.0.1:{port}", LOG_DIR=str(settings.log_dir),
        HEALTH_CHECK_INTERVAL_SECONDS="1")
    bot = create_bot(hooked)
    cvat = AsyncCvatClient.from_settings(hooked)
    dp = create_dispatcher(hooked, db, cvat)
    runner = web.AppRunner(create_webhook_app(hooked, dp, bot, db, cvat))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield base
    finally:
        await runner.cleanup()
        await bot.session.close()
        await cvat.close()


async def test_updates_arrive_by_webhook_with_the_secret(
    telegram: TelegramServer, webhook_bot: str
) -> None:
    person = telegram.user(8001, first_name="Web", language_code="en")
    await person.send("/start")
    await person.expect_message("Hello, Web!")
    info = telegram.calls_of("setWebhook")[-1]
    assert info["secret_token"] == SECRET


async def test_requests_without_the_right_secret_are_refused(
    telegram: TelegramServer, webhook_bot: str
) -> None:
    person = telegram.user(8002, first_name="Eve", language_code="en")
    update = text_update(person, "/start")
    # No secret, a wrong one, and two with non-ASCII bytes (those gave 500 before).
    wrong = ["wrong", b"\xff\xfe".decode("latin-1"), "wébhook-Secret_42"]
    async with aiohttp.ClientSession() as http:
        for headers in ({}, *({"X-Telegram-Bot-Api-Secret-Token": s} for s in wrong)):
            async with http.post(webhook_bot + WEBHOOK_PATH, json=update,
                                 headers=headers) as answer:
                assert answer.status == 401
    await person.expect_nothing(within=1.0)


async def test_healthz_says_only_ok_or_unavailable_and_costs_no_cvat_call(
    webhook_bot: str, cvat: CvatServer
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(webhook_bot + "/healthz") as answer:
            assert (answer.status, await answer.text()) == (200, "ok")
        asked = len(cvat.request_log)
        answers = await asyncio.gather(*(http.get(webhook_bot + "/healthz") for _ in range(50)))
        assert all(a.status == 200 for a in answers)
        # 50 anonymous calls asked CVAT nothing (the monitor's own check may have run once).
        assert len(cvat.request_log) - asked <= 1
        await cvat.stop()
        # The monitor notices within its interval (1 s here); the bound is only for a hang.
        deadline = time.monotonic() + HANG
        while True:
            async with http.get(webhook_bot + "/healthz") as answer:
                status, body = answer.status, await answer.text()
            if status == 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert (status, body) == (503, "unavailable")  # no address, no error text
