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
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
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
from bot_files.loop_monitor import LoopMonitor
from bot_files.middlewares import PrivateChatsOnly, UserContextMiddleware
from bot_files.notifier import Notifier
from bot_files.outbound import Outbound
from bot_files.services import Services
from bot_files.telegram_limits import Pacer, RetryAfterMiddleware, ThrottlingMiddleware
from bot_files.telegram_session import BotSession
from bot_files.texts import LANGUAGES, Texts
from bot_files.webhook import WEBHOOK_PATH, create_webhook_app, serve_webhook
from config.env import Settings, SettingsError, load_settings
from connection import AsyncCvatClient, CvatError, CvatMisconfigured
from create_users.to_handlers import AccountKeeper
from db import Database, DatabaseUnavailable, EmbeddedPostgres, database_url_for
from log import register_secret, setup_logging
from tasks_generator.to_handlers import (
    Credentials,
    PoolKeeper,
    TaskSet,
    load_task_set,
    reconcile,
)
from tasks_metrics.to_handlers import (
    GradingProcesses,
    ensure_rule,
    regrade_for_key,
    regrade_interrupted,
    reopen_abandoned_checks,
)

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


def create_dispatcher(settings: Settings, db: Database, cvat: AsyncCvatClient) -> Dispatcher:
    """The Dispatcher with FSM state in PostgreSQL and every router. Injected into handlers by
    name: the use-case services (bot_files.services: `audit`, `account`, `hr_queries`,
    `hr_actions`, `decisions`, `rules`, `answer_key`), the `notifier` for everything said
    outside a reply, and the long-lived dependencies the CVAT and grading calls still take
    (settings, database, CVAT client, task set, grading processes)."""
    task_set = load_task_set(settings.task_set, settings.images_per_task)
    isolation = PostgresEventIsolation(db) if settings.replicas else None
    pacer = Pacer()
    grader = GradingProcesses.from_settings(settings)
    services = Services.build(db, cvat, grader, settings, task_set)
    outbound = Outbound(db, pacer)
    notifier = Notifier(outbound, services.account, services.hr_queries, services.decisions,
                        task_set)
    dp = Dispatcher(storage=PostgresStorage(db), events_isolation=isolation, settings=settings,
                    db=db, cvat=cvat, task_set=task_set, pacer=pacer,
                    notifier=notifier, grader=grader, **services.as_kwargs(),
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
                                cvat: AsyncCvatClient, settings: Settings, task_set: TaskSet,
                                grader: GradingProcesses, pacer: Pacer,
                                notifier: Notifier) -> None:
    """Put the pass rule of the settings in force (unless HR set one), then from start on,
    periodically: finish what a crash interrupted (builds, checks, gradings), keep the warm
    pool of accounts and tasks full, and keep the candidates' deadlines (the nudge, the
    expiry); all off the update path."""
    try:
        await ensure_rule(db, settings.pass_rule)
    except DatabaseUnavailable as exc:
        logger.warning("pass rule not checked at start: %s", exc)

    async def deliver(telegram_id: int, credentials: Credentials) -> None:
        await notifier.credentials_ready(bot, telegram_id, credentials)

    async def recover() -> None:
        # Each step handles its items one by one (an item's failure is recorded on it and the
        # others go on); an error here is one no item explains, and the next pass tries again.
        while True:
            try:
                counts = await reconcile(db, cvat, settings, task_set, deliver)
                reopened = await reopen_abandoned_checks(db, cvat)
                regraded = await regrade_interrupted(db, grader)
                regraded += await regrade_for_key(db, grader, task_set.name)
                if any(counts.values()) or reopened or regraded:
                    logger.info("reconciled: %s, %d jobs reopened, %d graded", counts,
                                reopened, regraded)
            except (DatabaseUnavailable, CvatError, TelegramAPIError) as exc:
                logger.warning("reconciliation stopped for now: %s", exc)
            except Exception:
                logger.exception("reconciliation pass failed; the next one tries again")
            await asyncio.sleep(settings.reconcile_interval_seconds)

    dispatcher["background"] = asyncio.create_task(recover(), name="reconcile")
    dispatcher["loop_monitor"] = LoopMonitor().start()
    # The warm pool gets its own CVAT connections and threads: a refill never queues in front
    # of a candidate's call. It shares the sign-in: CVAT hashes the password once, not twice.
    pool_cvat = cvat.with_own_connections()
    dispatcher["pool_cvat"] = pool_cvat
    dispatcher["pool"] = asyncio.create_task(PoolKeeper(db, pool_cvat, settings, task_set).run(),
                                             name="warm-pool")
    dispatcher["accounts"] = asyncio.create_task(AccountKeeper(db, pool_cvat, settings).run(),
                                                 name="finished-accounts")
    dispatcher["deadlines"] = asyncio.create_task(
        DeadlineKeeper(bot, db, pool_cvat, settings, pacer).run(), name="deadlines")
    dispatcher["digests"] = asyncio.create_task(DigestKeeper(bot, db, settings, pacer).run(),
                                                name="digests")


async def stop_background_work(dispatcher: Dispatcher, grader: GradingProcesses) -> None:
    """Stop reconciliation and the pool keeper if they are still running (both resume at the
    next start), and the grading processes; log the event loop's largest stall."""
    monitor = dispatcher.get("loop_monitor")
    if monitor is not None:
        await monitor.stop()
    for name in ("background", "pool", "accounts", "deadlines", "digests"):
        task = dispatcher.get(name)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    pool_cvat = dispatcher.get("pool_cvat")
    if pool_cvat is not None:
        await pool_cvat.close()
    await grader.close()


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
    """Check the database, the bot token and the CVAT admin before polling; raise StartupError
    with the fix. CVAT being down is only a warning: the bot can talk meanwhile."""
    try:
        await db.ping()
    except DatabaseUnavailable as exc:
        raise StartupError(f"PostgreSQL is not reachable ({exc}). Check DATABASE_URL.") from exc
    if cvat is not None:
        try:
            await cvat.check_admin()
        except CvatMisconfigured as exc:
            raise StartupError(f"CVAT at {settings.cvat_url}: {exc}") from exc
        except CvatError as exc:
            logger.warning("CVAT at %s is not answering yet: %s", settings.cvat_url, exc)
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


async def run_bot(settings: Settings) -> None:
    """Start the database, check everything, and poll until SIGINT/SIGTERM."""
    url, embedded = await asyncio.to_thread(database_url_for, settings)
    db = Database(url)
    bot = create_bot(settings)
    cvat = AsyncCvatClient.from_settings(settings)
    try:
        applied = await db.migrate()
        if applied:
            logger.info("database migrations applied: %s", ", ".join(applied))
        await preflight(bot, db, settings, cvat)
        await set_commands(bot)
        dp = create_dispatcher(settings, db, cvat)
        freeze_startup_objects()
        if settings.webhook_url:
            await serve_webhook(settings, dp, bot, db, cvat)
        else:
            await bot.delete_webhook()  # polling and a webhook exclude each other
            await dp.start_polling(bot, handle_signals=True, close_bot_session=False)
    finally:
        await bot.session.close()
        await cvat.close()
        await db.close()
        if embedded is not None:
            await asyncio.to_thread(_stop_embedded, embedded)
        logger.info("bot stopped (%d database statements since start)", db.statements)


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


def main() -> int:
    """Run the bot; exit 2 on a configuration problem, 1 on a failed pre-flight check."""
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
        asyncio.run(run_bot(settings))
    except StartupError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
