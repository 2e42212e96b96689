"""The benchmark's stage: a real PostgreSQL, the Telegram and CVAT stand-ins in this process, and
the bot run as production runs it (`python main.py` in a subprocess, configured by environment).

Users are driven from this process; the driver is kept light (no call recording, plain aiohttp
for the candidate's own CVAT calls) and its own event-loop lag and CPU are measured, so a slow
driver shows in the figures instead of passing for a slow bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2

from bot_files.loop_monitor import LoopMonitor
from config.env import PROJECT_DIR
from db import EmbeddedPostgres, reachable_temp_dir
from sandbox.candidate import annotate_lightly
from sandbox.cvat import CvatCosts, CvatServer
from sandbox.telegram import BotMessage, TelegramServer, TelegramUser
from tests.bench.cvat_side import CountingProxy
from tests.flow import read_login, submit


@dataclass(frozen=True)
class RealCvat:
    """A real CVAT server to run against: its address, a superuser, and (when it runs on this
    machine) the file listing its processes, to read its CPU."""

    url: str
    username: str
    password: str
    pids_file: Path | None = None


BOT_TOKEN = "7100000001:AAF-bench-token-for-the-sandbox-0123456789"
ECHO_TOKEN = "7100000002:AAF-bench-echo-token-for-the-sandbox-01234"
CVAT_ADMIN = ("bench-admin", "Bench-Adm1n-Passw0rd")
MAX_STALL_RE = re.compile(r"event loop: max stall ([\d.]+) ms over (\d+) checks;"
                          r" longest garbage collection ([\d.]+) ms")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded for the report."""
    return round(seconds * 1000, 1) if not math.isnan(seconds) else seconds


def latency_figures(prefix: str, samples: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99 (ms) and the sample count, keyed with a prefix."""
    return {f"{prefix}_p50_ms": ms(percentile(samples, 50)),
            f"{prefix}_p95_ms": ms(percentile(samples, 95)),
            f"{prefix}_p99_ms": ms(percentile(samples, 99)),
            f"{prefix}_samples": len(samples)}


class Postgres:
    """One embedded PostgreSQL for the whole benchmark run; a fresh database per scenario."""

    def __init__(self) -> None:
        self.folder = reachable_temp_dir("cbt-bench-pg-")
        self.server = EmbeddedPostgres(self.folder, database="postgres")
        self.url = ""

    async def start(self) -> None:
        """Start the server."""
        self.url = await asyncio.to_thread(self.server.start)

    def new_database(self, scenario: str) -> str:
        """Create an empty database for a scenario (the bot migrates it); return its URL."""
        name = f"bench_{scenario}_{uuid.uuid4().hex[:6]}"
        conn = psycopg2.connect(self.url, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    async def stop(self) -> None:
        """Stop the server and remove its folder."""
        await asyncio.to_thread(self.server.remove)
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class BotProcess:
    """A bot (main.py or the echo bot) in a subprocess, against the stand-ins."""

    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    token: str
    telegram: TelegramServer
    process: asyncio.subprocess.Process | None = None
    stderr_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stderr_path = self.log_dir / "stderr.txt"

    @property
    def pid(self) -> int:
        """The subprocess's pid."""
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 90.0) -> None:  # noqa: ASYNC109
        """Start it and wait until it long-polls the Telegram stand-in."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stderr = await asyncio.to_thread(self.stderr_path.open, "wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, cwd=str(PROJECT_DIR), env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        finally:
            stderr.close()
        deadline = time.monotonic() + timeout
        bot = self.telegram.bots[self.token]
        while bot.polling == 0:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.argv[-1]} did not start polling:\n{self.output()}")
            await asyncio.sleep(0.02)

    def output(self) -> str:
        """What the process wrote to stdout/stderr and its log (the tail)."""
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        info = self.log_dir / "info.log"
        if info.exists():
            text += info.read_text(errors="replace")
        return text[-4000:]

    async def stop(self, timeout: float = 60.0) -> int | None:  # noqa: ASYNC109
        """SIGTERM (as `./run.sh stop`), wait for a clean exit; the exit code."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    def loop_stalls(self) -> tuple[float | None, int | None, int, float | None]:
        """From the bot's log: max stall (ms), checks, the stalls warned about (> 100 ms), and
        the longest garbage collection (ms)."""
        text = ""
        for path in sorted(self.log_dir.glob("info.log*")):
            text += path.read_text(errors="replace")
        found = MAX_STALL_RE.findall(text)
        warned = text.count("event loop stalled for")
        if not found:
            return None, None, warned, None
        stall, checks, collection = found[-1]
        return float(stall), int(checks), warned, float(collection)


class RssSampler:
    """Samples a process's resident memory every `interval` seconds (peak and last)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.last = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> int:
        """One sample now (bytes)."""
        try:
            rss = int(self.process.memory_info().rss)
        except psutil.Error:
            return self.last
        self.peak = max(self.peak, rss)
        self.last = rss
        self.samples += 1
        return rss

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> RssSampler:
        """Start sampling in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        """Stop sampling (after one last sample)."""
        self.sample()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class CpuWindow:
    """CPU seconds used by processes over a window (this process, the bot, PostgreSQL)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.processes[name] = psutil.Process(pid)
        self.start_times = {n: self._cpu(p) for n, p in self.processes.items()}
        self.started = time.perf_counter()

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        try:
            t = process.cpu_times()
            total = t.user + t.system
            with contextlib.suppress(psutil.Error):
                for child in process.children(recursive=True):
                    ct = child.cpu_times()
                    total += ct.user + ct.system
            return total
        except psutil.Error:
            return 0.0

    def percent(self) -> dict[str, float]:
        """Per process: CPU use over the window in % of one core."""
        wall = time.perf_counter() - self.started
        return {n: round(100 * (self._cpu(p) - self.start_times[n]) / wall, 0)
                for n, p in self.processes.items()}


class Stage:
    """The Telegram and CVAT stand-ins (fresh per scenario) and a bot subprocess against them;
    or, with `real_cvat`, a real CVAT server instead of the stand-in. With `count_calls` (always
    with a real CVAT) the bot calls CVAT through a CountingProxy (`proxy.calls`)."""

    def __init__(self, postgres: Postgres, workdir: Path, scenario: str, *,
                 latency: float = 0.0, processing_time: float = 0.0,
                 costs: CvatCosts | None = None, real_cvat: RealCvat | None = None,
                 count_calls: bool = False) -> None:
        self.postgres = postgres
        self.workdir = workdir / scenario
        self.scenario = scenario
        self.telegram = TelegramServer(record_calls=False)
        self.telegram.add_bot(BOT_TOKEN, username="bench_bot", first_name="Bench")
        self.telegram.add_bot(ECHO_TOKEN, username="bench_echo_bot", first_name="Echo")
        self.real_cvat = real_cvat
        self.cvat = CvatServer(admin=CVAT_ADMIN, validate_schema=False, latency=latency,
                               processing_time=processing_time, costs=costs)
        self.cvat_admin = (real_cvat.username, real_cvat.password) if real_cvat else CVAT_ADMIN
        self.proxy: CountingProxy | None = None
        self._count_calls = count_calls or real_cvat is not None
        self.cvat_url = ""  # what the bot calls
        self.cvat_public_url = ""  # what candidates open
        self.bot: BotProcess | None = None
        self.database_url = ""
        self.driver_monitor = LoopMonitor(warn_after=math.inf)
        self._next_user = 1_000_000

    async def start(self) -> None:
        """Start the stand-ins (the CVAT one unless a real CVAT is used), the counting proxy
        and the driver's own loop monitor."""
        await self.telegram.start(host="127.0.0.1", port=0)
        if self.real_cvat is None:
            await self.cvat.start(host="127.0.0.1", port=0)
            self.cvat_public_url = self.cvat.base_url
        else:
            self.cvat_public_url = self.real_cvat.url
        self.cvat_url = self.cvat_public_url
        if self._count_calls:
            self.proxy = CountingProxy(self.cvat_public_url)
            self.cvat_url = await self.proxy.start()
        self.driver_monitor.start()

    async def start_bot(self, **extra_env: str) -> BotProcess:
        """`python main.py` with its own database, as production starts it."""
        self.database_url = await asyncio.to_thread(self.postgres.new_database, self.scenario)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CVAT_", "BOT_"))}
        env.update({
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": self.telegram.base_url,
            "CVAT_URL": self.cvat_url,
            "CVAT_PUBLIC_URL": self.cvat_public_url,
            "CVAT_ADMIN_USERNAME": self.cvat_admin[0],
            "CVAT_ADMIN_PASSWORD": self.cvat_admin[1],
            "DATABASE_URL": self.database_url,
            "LOG_DIR": str(self.workdir / "bot-logs"),
            "LOG_TO_CONSOLE": "false",
            "ENV_FILE": "/nonexistent",
            "DATA_DIR": str(self.workdir / "data"),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra_env)
        # Diagnosis knobs: BENCH_BOT_ENV="PYTHONASYNCIODEBUG=1 ..." adds variables to the bot's
        # environment; BENCH_PROFILE=1 runs it under cProfile (bot-logs/profile.out).
        for pair in os.environ.get("BENCH_BOT_ENV", "").split():
            key, _, value = pair.partition("=")
            env[key] = value
        argv = [sys.executable, "main.py"]
        if os.environ.get("BENCH_BOT_SCRIPT"):
            argv[1] = os.environ["BENCH_BOT_SCRIPT"]
        if os.environ.get("BENCH_PROFILE"):
            argv[1:1] = ["-m", "cProfile", "-o", str(self.workdir / "bot-logs" / "profile.out")]
        self.bot = BotProcess(argv, env, self.workdir / "bot-logs", BOT_TOKEN, self.telegram)
        await self.bot.start()
        return self.bot

    async def start_echo_bot(self) -> BotProcess:
        """The bare aiogram echo bot against the same Telegram stand-in."""
        env = dict(os.environ, BOT_TOKEN=ECHO_TOKEN, TELEGRAM_API_URL=self.telegram.base_url)
        echo = BotProcess([sys.executable, "-m", "tests.bench.echo_bot"], env,
                          self.workdir / "echo-logs", ECHO_TOKEN, self.telegram)
        await echo.start()
        return echo

    def users(self, count: int, *, token: str = BOT_TOKEN, prefix: str = "Cand") -> list[
            TelegramUser]:
        """`count` new English-speaking users of a bot."""
        made = []
        for _ in range(count):
            self._next_user += 1
            made.append(self.telegram.user(self._next_user, first_name=f"{prefix}{self._next_user}",
                                           username=f"u{self._next_user}", language_code="en",
                                           bot=token))
        return made

    async def stop(self) -> None:
        """Stop the bot (if still running) and both stand-ins."""
        if self.bot is not None:
            await self.bot.stop()
        await self.driver_monitor.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.real_cvat is None:
            await self.cvat.stop()
        await self.telegram.stop()


async def timed_reply(user: TelegramUser, text: str, expect: str,
                      timeout: float = 30.0) -> float:  # noqa: ASYNC109
    """Send a message and return the seconds until the bot's reply containing `expect`."""
    start = time.perf_counter()
    await user.send(text)
    await user.expect_message(expect, timeout=timeout)
    return time.perf_counter() - start


class Prober:
    """Light updates at a steady rate (another user's /start), each timed to the bot's reply."""

    def __init__(self, users: list[TelegramUser], interval: float) -> None:
        self.users = users
        self.interval = interval
        self.samples: list[float] = []
        self.failures = 0
        self._free: asyncio.Queue[TelegramUser] = asyncio.Queue()
        for u in users:
            self._free.put_nowait(u)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _probe(self, user: TelegramUser) -> None:
        try:
            self.samples.append(await timed_reply(user, "/start", "Hello"))
        except AssertionError:
            self.failures += 1
        finally:
            self._free.put_nowait(user)

    async def run(self, *, count: int | None = None,
                  until: Callable[[], bool] | None = None) -> list[float]:
        """Probe `count` times, or until `until()` is true; returns the samples (seconds)."""
        self.samples = []
        sent = 0
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while (count is None or sent < count) and not (until is not None and until()):
            user = await self._free.get()
            task = loop.create_task(self._probe(user))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            sent += 1
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        if self._tasks:
            await asyncio.gather(*self._tasks)
        return self.samples


async def paced_load(users: list[TelegramUser], text: str, seconds: float, *,
                     interval: float = 1.05, warmup: float = 1.5) -> tuple[int, float]:
    """Every user sends `text`, waits for the reply, and sends again no sooner than `interval`
    after its previous message (a person's pace: the bot throttles a user beyond one update a
    second); (replies, seconds) counted after a warm-up. The offered load is at most
    len(users) / interval updates a second."""
    loop = asyncio.get_running_loop()
    counting = False
    replies = 0
    stop_at = loop.time() + warmup + seconds

    async def one(user: TelegramUser, offset: float) -> None:
        nonlocal replies
        await asyncio.sleep(offset)
        while True:
            sent = loop.time()
            if sent >= stop_at:
                return
            await user.send(text)
            await user.expect_message(timeout=30)
            if counting and loop.time() <= stop_at:
                replies += 1
            await asyncio.sleep(max(0.0, sent + interval - loop.time()))

    workers = [loop.create_task(one(u, interval * k / len(users))) for k, u in enumerate(users)]
    await asyncio.sleep(warmup)
    counting = True
    started = time.perf_counter()
    await asyncio.gather(*workers)
    return replies, min(time.perf_counter() - started, seconds)


async def get_task(user: TelegramUser, timeout: float = 600.0) -> BotMessage:  # noqa: ASYNC109
    """Ask for a test task, confirm, and wait for the credentials message."""
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?", timeout=timeout)
    await user.press("✅ Yes, create my task")
    credentials = await user.expect_message("Your CVAT login", timeout=timeout)
    await user.expect_message("What to do", timeout=timeout)
    return credentials


async def whole_flow(user: TelegramUser, timeout: float = 600.0) -> None:  # noqa: ASYNC109
    """A candidate's whole test: /start, get a task, annotate in CVAT, submit, graded."""
    await user.send("/start")
    await user.expect_message("Hello", timeout=timeout)
    login = read_login(await get_task(user, timeout))
    await annotate_lightly(login)
    await submit(user)
    await user.expect_message("Checking your work", timeout=timeout)
    await user.expect_edit("Thank you!", timeout=timeout)


async def bounded(coros: Sequence[Awaitable[Any]], limit: int) -> list[Any]:
    """Await coroutines with at most `limit` running at once; exceptions are returned."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


@contextlib.asynccontextmanager
async def stage(postgres: Postgres, workdir: Path, scenario: str,
                **knobs: Any) -> AsyncIterator[Stage]:
    """A started Stage, stopped afterwards."""
    s = Stage(postgres, workdir, scenario, **knobs)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()
