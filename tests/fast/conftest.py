"""The fast tier: the production dispatcher (create_dispatcher, as tests/conftest.py builds it)
against a real PostgreSQL database of its own, with a recording Telegram session in place of
HTTP. No stand-in server runs and nothing reaches CVAT (its URL points at a closed port).

    async def test_hello(user):
        await user.send("/start")
        await user.expect_message("Hello")

Every test in this folder carries the `fast` marker: `./run.sh test --fast` runs them alone,
and `./run.sh test` runs them before the end-to-end tier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.env import Settings
from db import Database
from tests.conftest import HR_ADMIN_ID, make_settings
from tests.fast.chat import FastChat, FastTelegram


@pytest.fixture
def settings(database_url: str, log_dir: Path, tmp_path: Path) -> Settings:
    """Production settings on this test's database. Updates are fed faster than any person
    types, so the per-user flood limit (tested on its own) has a bigger burst here."""
    return dataclasses.replace(
        make_settings(DATABASE_URL=database_url, DATA_DIR=str(tmp_path / "data"),
                      LOG_DIR=str(log_dir)),
        throttle_burst=1000)


@pytest.fixture
async def telegram(settings: Settings, db: Database) -> AsyncIterator[FastTelegram]:
    """The production bot and dispatcher, talking through a recording session; make people
    with `telegram.user(...)`."""
    app = FastTelegram(settings, db)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
    assert app.session.unknown == [], (
        f"the bot called methods the fast tier does not answer: {app.session.unknown}")


@pytest.fixture
def user(telegram: FastTelegram) -> FastChat:
    """A candidate writing in English."""
    return telegram.user(1001, first_name="Anna", last_name="Smith", username="anna_s",
                         language_code="en")


@pytest.fixture
def hr_user(telegram: FastTelegram) -> FastChat:
    """The HR admin from HR_ADMIN_IDS."""
    return telegram.user(HR_ADMIN_ID, first_name="Helen", username="helen_hr",
                         language_code="en")
