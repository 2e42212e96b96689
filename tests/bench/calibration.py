"""The bot against a CVAT, measured as a candidate and CVAT's owner see it: time to credentials
with the warm pool off and warm, the bot's CVAT requests and CVAT's CPU per candidate (to the
login, and from Submit to the grade), what filling the pool costs, and CVAT's CPU while the bot
idles with a full pool. Run against the stand-in at a real server's costs (CvatCosts.measured)
and, with `./run.sh bench --cvat-url URL`, against a real CVAT too, side by side in one run.

Requests are counted by a proxy between the bot and CVAT (the same for both); a candidate's own
calls (annotating) go to CVAT directly and are not the bot's. Nothing here asserts a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connection import AsyncCvatClient, CvatClient
from db import Database
from sandbox.candidate import Login, annotate_lightly
from sandbox.cvat import CvatCosts
from sandbox.cvat.costs import MEASURED_PROCESSING
from sandbox.telegram import TelegramUser
from tests.bench.cvat_side import CpuReader, real_cpu_reader, standin_cpu_reader
from tests.bench.harness import Postgres, RealCvat, Stage, ms, stage
from tests.flow import delete_from_cvat, read_login, submit, wait_for_pool

logger = logging.getLogger(__name__)

POOL_OFF = {"POOL_ACCOUNTS": "0", "POOL_TASKS": "0"}
POOL_SIZE = 3  # the default POOL_ACCOUNTS and POOL_TASKS


@dataclass(frozen=True)
class Window:
    """What happened between two moments: seconds, the bot's CVAT calls, CVAT's CPU seconds
    (None when it cannot be read)."""

    seconds: float
    calls: int
    cpu: float | None


class Meter:
    """Opens windows on a stage: wall time, the proxy's call count and CVAT's CPU."""

    def __init__(self, s: Stage, cpu: CpuReader) -> None:
        self.stage = s
        self.cpu = cpu

    async def start(self) -> tuple[float, int, float | None]:
        """A window's start."""
        assert self.stage.proxy is not None
        return time.monotonic(), len(self.stage.proxy.calls), await self.cpu()

    async def since(self, start: tuple[float, int, float | None]) -> Window:
        """The window from `start` to now."""
        assert self.stage.proxy is not None
        began, calls, cpu = start
        now_cpu = await self.cpu()
        used = None if cpu is None or now_cpu is None else now_cpu - cpu
        return Window(time.monotonic() - began, len(self.stage.proxy.calls) - calls, used)


def _median(values: list[float | None], digits: int = 2) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), digits) if known else None


def _to_login(key: str, logins: list[Window]) -> dict[str, Any]:
    """Time to credentials (median and slowest), CVAT calls and CVAT CPU (medians)."""
    return {f"{key}_credentials_ms": ms(statistics.median(w.seconds for w in logins)),
            f"{key}_credentials_max_ms": ms(max(w.seconds for w in logins)),
            f"{key}_calls_to_login": statistics.median(w.calls for w in logins),
            f"{key}_cpu_to_login_s": _median([w.cpu for w in logins])}


async def _press_to_login(meter: Meter, user: TelegramUser) -> tuple[Window, Any]:
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?", timeout=60)
    start = await meter.start()
    await user.press("✅ Yes, create my task")
    login = read_login(await user.expect_message("Your CVAT login", timeout=180))
    window = await meter.since(start)
    await user.expect_message("What to do", timeout=60)
    return window, login


async def _submit_to_grade(meter: Meter, user: TelegramUser) -> Window:
    start = await meter.start()
    await submit(user)
    await user.expect_message("Checking your work", timeout=60)
    await user.expect_edit("Thank you!", timeout=180)
    return await meter.since(start)


@contextlib.asynccontextmanager
async def measured_stage(postgres: Postgres, workdir: Path, scenario: str,
                         real: RealCvat | None) -> AsyncIterator[tuple[Stage, Meter]]:
    """A stage on the stand-in at a real server's costs, or on the real CVAT, and a meter on
    it; afterwards its bot stopped and (on a real CVAT) what the bot made there deleted."""
    knobs: dict[str, Any] = ({"real_cvat": real} if real is not None else {
        "costs": CvatCosts.measured(), "processing_time": MEASURED_PROCESSING,
        "count_calls": True})
    async with stage(postgres, workdir, scenario, **knobs) as s:
        cpu = (real_cpu_reader(real.pids_file) if real is not None
               else standin_cpu_reader(s.cvat))
        try:
            yield s, Meter(s, cpu)
        finally:
            if s.bot is not None:
                await s.bot.stop()
            if real is not None and s.database_url:
                db = Database(s.database_url)
                admin = AsyncCvatClient(CvatClient(real.url, real.username, real.password))
                try:
                    await delete_from_cvat(db, admin)
                finally:
                    await admin.close()
                    await db.close()


async def measure_pool_off(postgres: Postgres, workdir: Path, prefix: str, candidates: int,
                           real: RealCvat | None) -> dict[str, Any]:
    """Candidates one at a time with the pool off, each through the whole test."""
    logins, submits = [], []
    async with measured_stage(postgres, workdir, f"{prefix}_off", real) as (s, meter):
        await s.start_bot(**POOL_OFF)
        for user in s.users(candidates):
            window, login = await _press_to_login(meter, user)
            logins.append(window)
            await annotate_lightly(Login(s.cvat_public_url, login.username, login.password))
            submits.append(await _submit_to_grade(meter, user))
    return {
        **_to_login(f"{prefix}_off", logins),
        f"{prefix}_submit_calls": statistics.median(w.calls for w in submits),
        f"{prefix}_submit_cpu_s": _median([w.cpu for w in submits]),
        f"{prefix}_journey_calls": statistics.median(
            a.calls + b.calls for a, b in zip(logins, submits, strict=True)),
    }


async def measure_warm(postgres: Postgres, workdir: Path, prefix: str, candidates: int,
                       idle_seconds: float, real: RealCvat | None) -> dict[str, Any]:
    """A fresh bot fills its pool; candidates one at a time, each when the pool is full
    again; then the bot idles (the pool checked every idle_seconds / 2)."""
    logins, refills = [], []
    figures: dict[str, Any] = {}
    check_every = max(1, int(idle_seconds / 2)) if idle_seconds else 300
    async with measured_stage(postgres, workdir, f"{prefix}_warm", real) as (s, meter):
        start = await meter.start()
        await s.start_bot(POOL_CHECK_INTERVAL_SECONDS=str(check_every))
        db = Database(s.database_url)
        try:
            await wait_for_pool(db, POOL_SIZE, POOL_SIZE, within=300)
            fill = await meter.since(start)
            for user in s.users(candidates):
                before = await meter.start()
                window, _ = await _press_to_login(meter, user)
                logins.append(window)
                await wait_for_pool(db, POOL_SIZE, POOL_SIZE, within=300)
                refills.append(await meter.since(before))  # the hand-out and the refill
        finally:
            await db.close()
        if idle_seconds:
            start = await meter.start()
            await asyncio.sleep(idle_seconds)
            idle = await meter.since(start)
            figures.update({
                f"{prefix}_idle_seconds": round(idle.seconds),
                f"{prefix}_idle_check_every_s": check_every,
                f"{prefix}_idle_calls_per_minute": round(idle.calls * 60 / idle.seconds, 2),
                f"{prefix}_idle_cpu_percent": None if idle.cpu is None else round(
                    100 * idle.cpu / idle.seconds, 2),
            })
    figures.update({
        **_to_login(f"{prefix}_warm", logins),
        f"{prefix}_warm_refill_calls": statistics.median(w.calls for w in refills),
        f"{prefix}_warm_refill_cpu_s": _median([w.cpu for w in refills]),
        f"{prefix}_fill_seconds": round(fill.seconds, 1),
        f"{prefix}_fill_calls": fill.calls,
        f"{prefix}_fill_cpu_s": None if fill.cpu is None else round(fill.cpu, 2),
    })
    return figures


async def idle_baseline(real: RealCvat, seconds: float) -> dict[str, Any]:
    """CVAT's own CPU with no bot at all (its workers and databases idle too)."""
    cpu = real_cpu_reader(real.pids_file)
    before, started = await cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    after = await cpu()
    if before is None or after is None:
        return {"real_idle_baseline_percent": None}
    return {"real_idle_baseline_percent": round(
        100 * (after - before) / (time.monotonic() - started), 2)}


async def measure_target(postgres: Postgres, workdir: Path, prefix: str, candidates: int,
                         idle_seconds: float, real: RealCvat | None) -> dict[str, Any]:
    """Every figure for one CVAT (keys start with `prefix`)."""
    figures = await measure_pool_off(postgres, workdir, prefix, candidates, real)
    figures.update(await measure_warm(postgres, workdir, prefix, candidates, idle_seconds,
                                      real))
    return figures


def side_by_side(figures: dict[str, Any]) -> dict[str, Any]:
    """stand-in / real for the figures the stand-in is calibrated on."""
    ratios = {}
    for key in ("warm_credentials_ms", "off_credentials_ms", "off_cpu_to_login_s",
                "warm_cpu_to_login_s", "submit_cpu_s", "fill_cpu_s", "off_calls_to_login"):
        ours, theirs = figures.get(f"standin_{key}"), figures.get(f"real_{key}")
        if isinstance(ours, int | float) and isinstance(theirs, int | float) and theirs:
            ratios[f"ratio_{key}"] = round(ours / theirs, 2)
    return ratios
