"""Entry point: settings, database, bot, dispatcher; long polling (or webhooks).

Production, the tests and the demo all assemble the bot with `create_bot` and
`create_dispatcher`, so what is tested is what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import signal
import sys
from datetime import timedelta

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramUnauthorizedError,
)
from aiogram.types import BotCommand, BotCommandScopeDefault

from bot_files.deadlines import DeadlineKeeper
from bot_files.digests import DigestKeeper
from bot_files.errors import on_error
from bot_files.fsm_storage import PostgresStorage
from bot_files.handlers import get_routers
from bot_files.isolation import PostgresEventIsolation
from bot_files.jobs import JobQueue
from bot_files.loop_monitor import LoopMonitor
from bot_files.middlewares import PrivateChatsOnly, UserContextMiddleware
from bot_files.notifier import Notifier
from bot_files.outbound import Outbound
from bot_files.services import Services
from bot_files.telegram_limits import Pacer, RetryAfterMiddleware, ThrottlingMiddleware
from bot_files.telegram_session import BotSession
from bot_files.texts import LANGUAGES, Texts
from bot_files.webhook import WEBHOOK_PATH, create_webhook_app, serve_webhook
from bot_files.work import Postman, RemoteGrader, WorkerCalls
from bot_files.worker import Worker, WorkerProcesses, check_cvat
from config.env import Settings, SettingsError, load_settings
from connection import AsyncCvatClient
from db import Database, DatabaseUnavailable, EmbeddedPostgres, database_url_for
from log import register_secret, setup_logging
from tasks_generator.to_handlers import Credentials, TaskSet, load_task_set
from tasks_metrics.to_handlers import ensure_rule

# Tests and tools assemble the bot from here (the webhook app too): what they use is what runs.
__all__ = ["WEBHOOK_PATH", "StartupError", "create_bot", "create_dispatcher",
           "create_webhook_app", "main", "preflight", "run_bot"]

logger = logging.getLogger("bot")


class StartupError(Exception):
    """A pre-flight check failed; the message says what to fix."""


def create_bot(settings: Settings) -> Bot:
    """The Bot, talking to Telegram or to the server in TELEGRAM_API_URL."""
    session = BotSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryAfterMiddleware())
    return Bot(
        settings.bot_token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(settings: Settings, db: Database,
                      cvat: AsyncCvatClient | None = None) -> Dispatcher:
    """The Dispatcher with FSM state in PostgreSQL and every router. Injected into handlers by
    name: the use-case services (bot_files.services: `audit`, `account`, `hr_queries`,
    `hr_actions`, `decisions`, `rules`, `answer_key`), the `notifier` for everything said
    outside a reply, the job queue the workers take the CVAT and grading work from (`jobs`,
    and `grader`, which calls the workers' grading processes through it), and the long-lived
    dependencies (settings, database, task set). `cvat` is not used: every CVAT call is a
    worker's (the parameter stays for the callers that still pass a client)."""
    task_set = load_task_set(settings.task_set, settings.images_per_task)
    isolation = PostgresEventIsolation(db) if settings.replicas else None
    pacer = Pacer()
    jobs = JobQueue(db, lease=timedelta(seconds=settings.build_lease_seconds))
    grader = RemoteGrader(jobs, settings)
    services = Services.build(db, WorkerCalls(jobs), grader, settings, task_set)
    outbound = Outbound(db, pacer)
    notifier = Notifier(outbound, services.account, services.hr_queries, services.decisions,
                        task_set)
    dp = Dispatcher(storage=PostgresStorage(db), events_isolation=isolation, settings=settings,
                    db=db, task_set=task_set, pacer=pacer,
                    notifier=notifier, jobs=jobs, grader=grader, **services.as_kwargs(),
                    disable_fsm=True)  # registered below, after the throttle
    # First: updates from groups and floods are dropped before they cost any database work;
    # aiogram's FSM middleware (a state read, and with replicas the per-user lock) comes after.
    dp.update.outer_middleware(PrivateChatsOnly())
    dp.update.outer_middleware(ThrottlingMiddleware(settings.throttle_rate,
                                                    settings.throttle_burst))
    dp.update.outer_middleware(dp.fsm)
    dp.update.outer_middleware(UserContextMiddleware(db, settings))
    dp.errors.register(on_error)
    dp.include_routers(*get_routers())
    dp.startup.register(start_background_work)
    dp.shutdown.register(stop_background_work)
    return dp


async def start_background_work(dispatcher: Dispatcher, bot: Bot, db: Database,
                                settings: Settings, task_set: TaskSet, pacer: Pacer,
                                jobs: JobQueue, notifier: Notifier) -> None:
    """Put the pass rule of the settings in force (unless HR set one), then, off the update
    path: send what the workers' work causes (logins of builds finished after a crash, the
    deadline reminders and expiries), and HR's digests. The work itself (builds, gradings,
    the warm pool, reconciliation) runs in the workers."""
    try:
        await ensure_rule(db, settings.pass_rule)
    except DatabaseUnavailable as exc:
        logger.warning("pass rule not checked at start: %s", exc)

    async def deliver(telegram_id: int, credentials: Credentials) -> None:
        await notifier.credentials_ready(bot, telegram_id, credentials)

    dispatcher["loop_monitor"] = LoopMonitor().start()
    dispatcher["postman"] = asyncio.create_task(Postman(jobs, deliver, settings).run(),
                                                name="postman")
    dispatcher["deadlines"] = asyncio.create_task(
        DeadlineKeeper(bot, db, None, settings, pacer).run(), name="deadlines")
    dispatcher["digests"] = asyncio.create_task(DigestKeeper(bot, db, settings, pacer).run(),
                                                name="digests")


async def stop_background_work(dispatcher: Dispatcher, jobs: JobQueue) -> None:
    """Stop the background tasks (they resume at the next start) and the job listener; log
    the event loop's largest stall."""
    monitor = dispatcher.get("loop_monitor")
    if monitor is not None:
        await monitor.stop()
    for name in ("postman", "deadlines", "digests"):
        task = dispatcher.get(name)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await jobs.close()


async def set_commands(bot: Bot) -> None:
    """The command menu Telegram shows, in both languages."""
    commands = ("start", "help", "language", "support", "cancel")
    for language in LANGUAGES:
        t = Texts(language)
        items = [BotCommand(command=c, description=t(f"commands.{c}")) for c in commands]
        await bot.set_my_commands(items, scope=BotCommandScopeDefault(), language_code=language)
    en = Texts("en")
    await bot.set_my_commands(
        [BotCommand(command=c, description=en(f"commands.{c}")) for c in commands]
    )


async def preflight(bot: Bot, db: Database, settings: Settings,
                    cvat: AsyncCvatClient | None = None) -> None:
    """Check the database and the bot token before polling (and, given a `cvat` client, the
    CVAT admin: the bot checks it through a worker instead, see `check_cvat_in_worker`); raise
    StartupError with the fix. CVAT being down is only a warning: the bot can talk meanwhile."""
    try:
        await db.ping()
    except DatabaseUnavailable as exc:
        raise StartupError(f"PostgreSQL is not reachable ({exc}). Check DATABASE_URL.") from exc
    if cvat is not None:
        problem = await check_cvat(cvat, settings)
        if problem is not None:
            raise StartupError(problem)
    try:
        me = await bot.get_me()
    except TelegramUnauthorizedError as exc:
        raise StartupError("Telegram rejected BOT_TOKEN. Copy it again from @BotFather.") from exc
    except TelegramNetworkError as exc:
        raise StartupError(
            f"Cannot reach the Bot API at {settings.telegram_api_url} ({exc}). "
            "Check the network or TELEGRAM_API_URL."
        ) from exc
    logger.info("bot @%s (id %s) ready", me.username, me.id)


def freeze_startup_objects() -> None:
    """Keep the garbage collector off what start-up built: aiogram's types alone are well over
    a million long-lived objects, and a full collection walking them stopped the event loop for
    80-190 ms at a time (measured). Frozen objects are never collected, which they never are
    anyway."""
    gc.collect()
    gc.freeze()


CVAT_CHECK_SECONDS = 60.0  # how long the start waits for a worker's look at CVAT's admin


async def check_cvat_in_worker(dp: Dispatcher, settings: Settings) -> None:
    """CVAT's admin login, checked by a worker (the bot has no CVAT client): StartupError if
    it is refused (a worker of ours whose own check fails answers this one before it stops);
    no worker answering in time is only logged, and the check is dropped."""
    calls = WorkerCalls(dp["jobs"])
    try:
        problem = await asyncio.wait_for(calls.check_cvat(), CVAT_CHECK_SECONDS)
    except TimeoutError:
        logger.warning("no worker checked CVAT's admin login within %.0f s",
                       CVAT_CHECK_SECONDS)
        return
    if problem is not None:
        raise StartupError(problem)


async def run_bot(settings: Settings) -> None:
    """Start the database, check everything, and poll until SIGINT/SIGTERM."""
    url, embedded = await asyncio.to_thread(database_url_for, settings)
    db = Database(url)
    bot = create_bot(settings)
    try:
        applied = await db.migrate()
        if applied:
            logger.info("database migrations applied: %s", ", ".join(applied))
        await preflight(bot, db, settings)
        await set_commands(bot)
        dp = create_dispatcher(settings, db)
        workers = await WorkerProcesses(settings.workers, settings, url).start()
        freeze_startup_objects()
        try:
            if settings.workers:
                await check_cvat_in_worker(dp, settings)
            if settings.webhook_url:
                await serve_webhook(settings, dp, bot, db)
            else:
                await bot.delete_webhook()  # polling and a webhook exclude each other
                await dp.start_polling(bot, handle_signals=True, close_bot_session=False)
        finally:
            await dp["jobs"].close()
            await workers.stop()
    finally:
        await bot.session.close()
        await db.close()
        if embedded is not None:
            await asyncio.to_thread(_stop_embedded, embedded)
        logger.info("bot stopped (%d database statements since start)", db.statements)


async def run_worker(settings: Settings) -> None:
    """A worker alone (`./run.sh worker`): take jobs from the database until SIGINT/SIGTERM.
    Without DATABASE_URL it uses the embedded server of DATA_DIR (started if need be) and
    leaves it running: the bot beside it owns it."""
    url, _ = await asyncio.to_thread(database_url_for, settings)
    db = Database(url)
    try:
        applied = await db.migrate()
        if applied:
            logger.info("database migrations applied: %s", ", ".join(applied))
        await db.ping()
        worker = await Worker(settings, db).start()
        problem = await check_cvat(worker.cvat, settings)
        if problem is not None:
            await worker.stop()
            raise StartupError(problem)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        freeze_startup_objects()
        await stop.wait()
        await worker.stop()
    except DatabaseUnavailable as exc:
        raise StartupError(f"PostgreSQL is not reachable ({exc}). Check DATABASE_URL.") from exc
    finally:
        await db.close()


def _stop_embedded(server: EmbeddedPostgres) -> None:
    try:
        server.stop()
    except RuntimeError as exc:
        logger.warning("%s", exc)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
    the worker threads' freed buffers (image uploads, query results) stay mapped in them; two
    arenas keep the resident size close to what is really used. No-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the bot (or, with the argument `worker`, a worker); exit 2 on a configuration
    problem, 1 on a failed pre-flight check."""
    role = (sys.argv[1:] if argv is None else argv)[:1] or ["bot"]
    if role[0] not in ("bot", "worker"):
        print(f"usage: main.py [bot|worker] (not {role[0]!r})", file=sys.stderr)
        return 2
    limit_malloc_arenas()
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    for secret in (settings.bot_token, settings.cvat_admin_password, settings.webhook_secret):
        register_secret(secret)
    setup_logging(settings.log_level, settings.log_dir, console=settings.log_to_console)
    try:
        asyncio.run(run_worker(settings) if role[0] == "worker" else run_bot(settings))
    except StartupError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
