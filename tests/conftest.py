"""Test harness: a real PostgreSQL (fresh database per test), the Telegram stand-in on a free
port, and the real bot assembled by the production factories.

    async def test_hello(user):
        await user.send("/start")
        await user.expect_message("Hello")

With DATABASE_URL set, tests use that server (the role needs CREATEDB); otherwise an embedded
PostgreSQL from the pgserver wheel runs for the session in a temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

import log
from bot_files.worker import Worker
from config.env import Settings, load_settings
from connection import AsyncCvatClient
from db import Database, EmbeddedPostgres, migrate, reachable_temp_dir
from main import create_bot, create_dispatcher
from sandbox.cvat import CvatServer
from sandbox.telegram import TelegramServer, TelegramUser
from tests.flow import HANG

BOT_TOKEN = "7012345678:AAF-test-token-for-the-sandbox-0123456789"
CVAT_ADMIN_USERNAME = "bot-admin"
CVAT_ADMIN_PASSWORD = "Sandbox-Adm1n-Passw0rd"
HR_ADMIN_ID = 900_001
TEMPLATE_DB = "cbt_template"


# --- the database server ---------------------------------------------------------------------


@dataclass
class PgServer:
    """The session's PostgreSQL server: an embedded one we control, or DATABASE_URL's."""

    base_url: str
    embedded: EmbeddedPostgres | None

    def url(self, database: str) -> str:
        """URL of another database on the same server."""
        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def admin(self, sql: str, params: tuple[object, ...] = ()) -> None:
        """Run a statement outside a transaction on the maintenance database."""
        conn = psycopg2.connect(self.url("postgres"), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
        finally:
            conn.close()

    def stop(self) -> None:
        """Really stop the server (embedded only)."""
        assert self.embedded is not None, "needs the embedded server"
        self.embedded.stop()

    def start(self) -> None:
        """Start it again at the same address."""
        assert self.embedded is not None, "needs the embedded server"
        self.embedded.start()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every log file written during the run; checked for secrets at the end."""
    directory = tmp_path_factory.mktemp("logs")
    log.register_secret(BOT_TOKEN)
    log.register_secret(CVAT_ADMIN_PASSWORD)
    log.setup_logging("DEBUG", directory, console=False)
    _LOG_DIRS.append(directory)
    return directory


@pytest.fixture(scope="session")
def pg_server(log_dir: Path) -> Iterator[PgServer]:
    """A real PostgreSQL server for the whole session, with a migrated template database."""
    external = os.environ.get("DATABASE_URL")
    embedded = None
    folder = None
    if external:
        server = PgServer(external, None)
    else:
        folder = reachable_temp_dir("cbt-test-pg-")
        embedded = EmbeddedPostgres(folder, database="postgres")
        server = PgServer(embedded.start(), embedded)
    server.admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    server.admin(f'CREATE DATABASE "{TEMPLATE_DB}"')
    migrate(server.url(TEMPLATE_DB))
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            if embedded is None or embedded.running:
                server.admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        if embedded is not None:
            embedded.remove()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"cbt_{uuid.uuid4().hex[:12]}"
    pg_server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    try:
        yield pg_server.url(name)
    finally:
        with contextlib.suppress(Exception):
            if pg_server.embedded is not None and not pg_server.embedded.running:
                pg_server.start()
            pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The project's Database on this test's fresh database."""
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.close()


# --- Telegram and the bot ----------------------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramServer]:
    """The Telegram Bot API stand-in on a free port, with the test bot registered."""
    server = TelegramServer()
    server.add_bot(BOT_TOKEN, username="candidate_test_bot", first_name="Candidate Test")
    server.expect_at_least = HANG
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def cvat(log_dir: Path) -> AsyncIterator[CvatServer]:
    """The CVAT stand-in; every request and response is checked against CVAT's OpenAPI schema
    and the test fails if any falls outside it."""
    server = CvatServer(admin=(CVAT_ADMIN_USERNAME, CVAT_ADMIN_PASSWORD), version="2.73.0",
                        validate_schema=True, processing_time=0.2)
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.stop()
        # Candidates' passwords are masked by their shape, not registered: the leak scan at
        # the end looks for every password an account on the stand-in had.
        _CVAT_PASSWORDS.update(u.password for u in server.users.values())
    assert server.schema_violations == [], "CVAT traffic outside CVAT's OpenAPI schema"


def make_settings(**overrides: str) -> Settings:
    """Settings as production reads them, from an environment mapping.

    The warm pool is off unless a test turns it on: most tests count, fault or time what the
    candidate's own build sends to CVAT, and a pool refilling beside it would blur that.
    test_pool.py, the demo and the benchmark run with it on."""
    environ = {
        "BOT_TOKEN": BOT_TOKEN,
        "CVAT_URL": "http://127.0.0.1:9",
        "CVAT_ADMIN_USERNAME": CVAT_ADMIN_USERNAME,
        "CVAT_ADMIN_PASSWORD": CVAT_ADMIN_PASSWORD,
        "HR_ADMIN_IDS": str(HR_ADMIN_ID),
        "LOG_TO_CONSOLE": "false",
        "POOL_ACCOUNTS": "0",
        "POOL_TASKS": "0",
    }
    environ.update(overrides)
    return load_settings(environ=environ, env_file=None)


@pytest.fixture
def settings(telegram: TelegramServer, cvat: CvatServer, database_url: str, log_dir: Path,
             tmp_path: Path) -> Settings:
    """Settings pointing at both stand-ins and this test's database."""
    return make_settings(
        TELEGRAM_API_URL=telegram.base_url,
        CVAT_URL=cvat.base_url,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        LOG_DIR=str(log_dir),
    )


class BotApp:
    """The production bot (create_bot + create_dispatcher) polling the stand-in, with the
    production worker beside it on the same event loop (a process of its own per test would
    cost a Python start each; tests/test_process.py runs the real processes)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Build the bot, CVAT client, dispatcher and worker afresh and start long polling."""
        self.bot = create_bot(self.settings)
        self.cvat = AsyncCvatClient.from_settings(self.settings)
        self.dp = create_dispatcher(self.settings, self.db, self.cvat)
        self.worker = await Worker(self.settings, self.db).start()
        started = asyncio.Event()
        self.dp.startup.register(lambda: started.set())
        self._task = asyncio.create_task(
            self.dp.start_polling(self.bot, handle_signals=False, close_bot_session=False,
                                  polling_timeout=5)
        )
        await asyncio.wait_for(started.wait(), HANG)

    async def stop(self) -> None:
        """Stop polling and close the bot's HTTP session (the database stays)."""
        if self._task is None:
            return
        with contextlib.suppress(RuntimeError):
            await self.dp.stop_polling()
        await asyncio.wait_for(self._task, HANG)
        await self.worker.stop(grace=0)
        await self.bot.session.close()
        await self.cvat.close()
        self._task = None

    async def restart(self) -> None:
        """A process restart as far as the bot can tell: new bot, dispatcher and storage."""
        await self.stop()
        await self.start()


@pytest.fixture
async def bot_app(settings: Settings, db: Database) -> AsyncIterator[BotApp]:
    """The running bot."""
    app = BotApp(settings, db)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def app_with(settings: Settings,
                   db: Database) -> AsyncIterator[Callable[..., Awaitable[BotApp]]]:
    """Start the production bot with some settings changed."""
    apps: list[BotApp] = []

    async def start(**changes: object) -> BotApp:
        app = BotApp(dataclasses.replace(settings, **changes), db)
        await app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.stop()


@pytest.fixture
def user(telegram: TelegramServer, bot_app: BotApp) -> TelegramUser:
    """A candidate talking to the running bot in English."""
    return telegram.user(1001, first_name="Anna", last_name="Smith", username="anna_s",
                         language_code="en")


@pytest.fixture
def hr_user(telegram: TelegramServer, bot_app: BotApp) -> TelegramUser:
    """The HR admin from HR_ADMIN_IDS."""
    return telegram.user(HR_ADMIN_ID, first_name="Helen", username="helen_hr",
                         language_code="en")


# --- the two tiers ---------------------------------------------------------------------------

_FAST_DIR = Path(__file__).parent / "fast"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier (tests/fast/, marked `fast`) runs first, then the end-to-end tier."""
    for item in items:
        if item.path.is_relative_to(_FAST_DIR):
            item.add_marker(pytest.mark.fast)
    items.sort(key=lambda item: item.get_closest_marker("fast") is None)


# --- no secret in any log --------------------------------------------------------------------

_LOG_DIRS: list[Path] = []
_CVAT_PASSWORDS: set[str] = set()


def find_secrets_in_logs(directories: list[Path]) -> list[str]:
    """Every (file, secret kind) where a registered secret, a password of a CVAT account the
    tests made, or a token shape appears."""
    log.flush()
    secrets = sorted({*log.registered_secrets(), *_CVAT_PASSWORDS}, key=len, reverse=True)
    token_shape = re.compile(r"\d{5,20}:[A-Za-z0-9_-]{30,}")
    found = []
    for directory in directories:
        for path in directory.rglob("*.log*"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for secret in secrets:
                if secret in text:
                    found.append(f"{path.name}: a registered secret ({secret[:2]}...)")
            if token_shape.search(text):
                found.append(f"{path.name}: a bot-token-shaped string")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run, fail it if any log file holds a secret."""
    leaks = find_secrets_in_logs(_LOG_DIRS)
    if leaks:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "SECRETS FOUND IN LOG FILES:\n  " + "\n  ".join(leaks), red=True
        )
        session.exitstatus = 1
