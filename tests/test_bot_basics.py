"""The bot through the Telegram stand-in and a real database: a database restarted under it,
and the start-up checks. Commands, languages and dialogs are in the fast tier
(tests/fast/test_basics.py)."""

from __future__ import annotations

import asyncio

import pytest

from db import Database
from main import StartupError, create_bot, preflight
from sandbox.telegram import TelegramServer
from tests.conftest import PgServer, make_settings


async def test_database_restarted_under_the_running_bot(user, pg_server: PgServer) -> None:
    if pg_server.embedded is None:
        pytest.skip("needs the embedded server to restart it")
    await user.send("/support")
    await user.expect_message("Type your message to HR")
    await asyncio.to_thread(pg_server.stop)
    # While it is down the bot says so plainly (the dialog state is in the database, so
    # guessing without it could send the text to the wrong place)...
    await user.send("my message while the database is down")
    await user.expect_message("database is briefly unavailable", timeout=20)
    await user.press_data("l1:ru")
    answer = await user.expect_answer(timeout=20)
    assert "database is briefly unavailable" in answer["text"]
    await asyncio.to_thread(pg_server.start)
    # Once it is back, the next update is answered and the dialog state is intact.
    await user.send("the server was down")
    await user.expect_message("Your message is saved", timeout=20)


async def test_preflight_names_a_rejected_token(telegram: TelegramServer, db: Database) -> None:
    settings = make_settings(TELEGRAM_API_URL=telegram.base_url,
                             BOT_TOKEN="999:unknown-token-unknown-token-xx")
    bot = create_bot(settings)
    try:
        with pytest.raises(StartupError, match="rejected BOT_TOKEN"):
            await preflight(bot, db, settings)
    finally:
        await bot.session.close()


async def test_preflight_names_an_unreachable_api(db: Database) -> None:
    settings = make_settings(TELEGRAM_API_URL="http://127.0.0.1:9")
    bot = create_bot(settings)
    try:
        with pytest.raises(StartupError, match="Cannot reach the Bot API"):
            await preflight(bot, db, settings)
    finally:
        await bot.session.close()
