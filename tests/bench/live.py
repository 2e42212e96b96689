"""Benchmark sections with the bot running as in production (`python main.py` in a subprocess)
against the Telegram and CVAT stand-ins and a real PostgreSQL: responsiveness under load,
throughput against a bare echo bot, the bot's own time to credentials, and memory.

Nothing here asserts a timing: the figures are returned for the table and the JSON line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from sandbox.telegram import TelegramUser
from tests.bench.calibration import POOL_OFF, measure_target
from tests.bench.harness import (
    ECHO_TOKEN,
    CpuWindow,
    Postgres,
    Prober,
    RssSampler,
    Stage,
    bounded,
    get_task,
    latency_figures,
    ms,
    paced_load,
    stage,
    timed_reply,
    whole_flow,
)
from tests.bench.hostile import bench_hostile

logger = logging.getLogger(__name__)

REALISTIC_LATENCY = 0.1  # seconds added to every CVAT call
REALISTIC_PROCESSING = 2.0  # seconds CVAT takes to process a task's images


@dataclass(frozen=True)
class LiveSizes:
    """How big each live section is."""

    load_candidates: int = 200
    idle_probes: int = 200
    probe_interval: float = 0.05
    throughput_users: int = 800
    throughput_seconds: float = 8.0
    cpu_users: int = 200  # CPU per update at the same pace for both bots: about 190 updates/s
    credential_candidates: int = 5
    pool_candidates: int = 5
    memory_candidates: int = 1000
    memory_concurrency: int = 40
    hostile_candidates: int = 3      # with work over the limits, and as many with slow work
    hostile_probes: int = 300
    hostile_pause: float = 2.0       # seconds between one candidate's Submit presses
    idle_seconds: float = 0.0  # CVAT's CPU while the bot idles with a full pool; 0 = skipped

    @classmethod
    def quick(cls) -> LiveSizes:
        """Smaller counts: the whole --quick run stays under a minute."""
        return cls(load_candidates=15, idle_probes=30, throughput_users=800,
                   throughput_seconds=2.0, cpu_users=100, credential_candidates=1,
                   pool_candidates=2, memory_candidates=60,
                   memory_concurrency=20, hostile_candidates=1, hostile_probes=60)

    @classmethod
    def tiny(cls) -> LiveSizes:
        """The smoke test's counts: every code path, no meaningful figure."""
        return cls(load_candidates=2, idle_probes=3, probe_interval=0.02, throughput_users=2,
                   throughput_seconds=0.5, cpu_users=2, credential_candidates=1, pool_candidates=1,
                   memory_candidates=2,
                   memory_concurrency=2, hostile_candidates=1, hostile_probes=3,
                   hostile_pause=0.5, idle_seconds=1.0)


async def bench_responsiveness(postgres: Postgres, workdir: Path,
                               sizes: LiveSizes) -> dict[str, Any]:
    """Light-update latency idle and with `load_candidates` candidates doing the whole test at
    once against a CVAT with realistic delays; the bot's largest event-loop stall."""
    async with stage(postgres, workdir, "responsiveness", latency=REALISTIC_LATENCY,
                     processing_time=REALISTIC_PROCESSING) as s:
        bot = await s.start_bot()
        probers = Prober(s.users(40, prefix="Probe"), sizes.probe_interval)
        await probers.run(count=10)  # warm-up: connections, caches, first-time imports
        idle = await probers.run(count=sizes.idle_probes)
        candidates = s.users(sizes.load_candidates)
        cpu = CpuWindow({"bot": bot.pid, "driver": _self_pid()})
        started = time.perf_counter()
        flows = asyncio.gather(*(whole_flow(u) for u in candidates), return_exceptions=True)
        loaded = await probers.run(until=flows.done)
        results = await flows
        flow_seconds = time.perf_counter() - started
        cpu_use = cpu.percent()
        failed = [r for r in results if isinstance(r, BaseException)]
        for exc in failed[:3]:
            logger.warning("a candidate's flow failed: %r", exc)
        exit_code = await bot.stop()
        stall_ms, checks, warned, collection_ms = bot.loop_stalls()
        driver_stall = s.driver_monitor.max_stall
    figures = {
        **latency_figures("idle", idle),
        **latency_figures("load", loaded),
        "load_candidates": sizes.load_candidates,
        "load_flows_completed": len(results) - len(failed),
        "load_flow_seconds": round(flow_seconds, 1),
        "load_probe_failures": probers.failures,
        "load_bot_cpu_percent": cpu_use.get("bot"),
        "load_driver_cpu_percent": cpu_use.get("driver"),
        "bot_max_loop_stall_ms": stall_ms,
        "bot_loop_checks": checks,
        "bot_stalls_over_100ms": warned,
        "bot_longest_gc_ms": collection_ms,
        "bot_exit_code": exit_code,
        "driver_max_loop_stall_ms": ms(driver_stall),
    }
    idle_p99, load_p99 = figures["idle_p99_ms"], figures["load_p99_ms"]
    figures["load_idle_p99_ratio"] = round(load_p99 / idle_p99, 2) if idle_p99 else None
    return figures


async def bench_throughput(postgres: Postgres, workdir: Path, sizes: LiveSizes) -> dict[str, Any]:
    """Light updates (/help) per second answered by the bot and by a bare aiogram echo bot,
    with `throughput_users` users each sending as soon as the previous reply arrives; then the
    CPU each spends per update at one and the same pace (`cpu_users` users, one update a second
    each), which both keep up with. At full speed the two answer at different rates, and a
    bot polling at a lower rate gets fewer updates per getUpdates: its CPU per update would
    say as much about the rate as about the bot."""
    async with stage(postgres, workdir, "throughput") as s:
        bot = await s.start_bot()
        users = s.users(sizes.throughput_users)
        await asyncio.gather(*(timed_reply(u, "/start", "Hello") for u in users))  # known users
        cpu = CpuWindow({"bot": bot.pid, "driver": _self_pid()})
        replies, seconds = await paced_load(users, "/help", sizes.throughput_seconds)
        bot_cpu = cpu.percent()
        paced = await _paced_cpu(bot.pid, users[:sizes.cpu_users], sizes.throughput_seconds)
        await bot.stop()
        echo = await s.start_echo_bot()
        echo_users = s.users(sizes.throughput_users, token=ECHO_TOKEN, prefix="Echo")
        cpu = CpuWindow({"bot": echo.pid, "driver": _self_pid()})
        echo_replies, echo_seconds = await paced_load(echo_users, "/help",
                                                      sizes.throughput_seconds)
        echo_cpu = cpu.percent()
        echo_paced = await _paced_cpu(echo.pid, echo_users[:sizes.cpu_users],
                                      sizes.throughput_seconds)
        echo_rss = RssSampler(echo.pid).sample()
        await echo.stop()
    ours = replies / seconds
    bare = echo_replies / echo_seconds
    return {
        "throughput_users": sizes.throughput_users,
        "throughput_bot_per_s": round(ours, 1),
        "throughput_echo_per_s": round(bare, 1),
        "throughput_ratio": round(ours / bare, 2) if bare else None,
        "throughput_bot_cpu_percent": bot_cpu.get("bot"),
        "throughput_driver_cpu_percent": bot_cpu.get("driver"),
        "throughput_echo_cpu_percent": echo_cpu.get("bot"),
        "throughput_echo_driver_cpu_percent": echo_cpu.get("driver"),
        # CPU per answered update at full speed: what each costs at its own rate.
        "throughput_bot_cpu_ms_per_update": _per_update(bot_cpu.get("bot"), ours),
        "throughput_echo_cpu_ms_per_update": _per_update(echo_cpu.get("bot"), bare),
        # ... and at the same pace for both: the comparison of the table.
        "cpu_paced_bot_per_s": paced[0],
        "cpu_paced_echo_per_s": echo_paced[0],
        "cpu_paced_bot_ms_per_update": paced[1],
        "cpu_paced_echo_ms_per_update": echo_paced[1],
        "cpu_paced_ratio": (round(paced[1] / echo_paced[1], 2)
                            if paced[1] and echo_paced[1] else None),
        "echo_bot_rss_mb": round(echo_rss / 1024 / 1024, 1),
    }


async def _paced_cpu(pid: int, users: list[TelegramUser],
                     seconds: float) -> tuple[float, float | None]:
    """(updates a second, CPU ms per update) of a bot while `users` send /help at a person's
    pace (one a second each)."""
    cpu = CpuWindow({"bot": pid})
    replies, elapsed = await paced_load(users, "/help", seconds)
    rate = replies / elapsed
    return round(rate, 1), _per_update(cpu.percent().get("bot"), rate)


def _per_update(cpu_percent: float | None, rate: float) -> float | None:
    """CPU milliseconds per update from % of a core and updates a second."""
    return round(cpu_percent * 10 / rate, 2) if cpu_percent and rate else None


def covered_time(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of intervals, clipped to [start, end]."""
    covered, reach = 0.0, start
    for a, b in sorted(intervals):
        a, b = max(a, reach), min(b, end)
        if b > a:
            covered += b - a
            reach = b
    return covered


async def bench_credentials(postgres: Postgres, workdir: Path, sizes: LiveSizes) -> dict[str, Any]:
    """From pressing "Yes, create my task" to the credentials message, one candidate at a time:
    with realistic CVAT delays minus those delays (the bot's own overhead), and raw with none."""
    async with stage(postgres, workdir, "credentials", latency=REALISTIC_LATENCY,
                     processing_time=REALISTIC_PROCESSING) as s:
        await s.start_bot(**POOL_OFF)  # the build itself is measured here; the pool: below
        totals, overheads, calls = [], [], []
        for user in s.users(sizes.credential_candidates):
            await user.send("📝 Get a test task")
            await user.expect_message("Ready to start?")
            before = len(s.cvat.request_log)
            s.cvat.delay_log.clear()
            start = time.monotonic()
            await user.press("✅ Yes, create my task")
            await user.expect_message("Your CVAT login", timeout=120)
            end = time.monotonic()
            total = end - start
            n_calls = len(s.cvat.request_log) - before
            # The account and the task are built at the same time, so injected delays overlap:
            # subtract the time covered by at least one of them, not their sum.
            injected = covered_time(s.cvat.delay_log, start, end)
            totals.append(total)
            overheads.append(total - injected)
            calls.append(n_calls)
            await user.expect_message("What to do")
        s.cvat.latency, s.cvat.processing_time = 0.0, 0.0
        raw = [(await _time_to_credentials(s, user))[0]
               for user in s.users(sizes.credential_candidates, prefix="Raw")]
    return {
        "credentials_candidates": sizes.credential_candidates,
        "credentials_total_ms": ms(statistics.median(totals)),
        "credentials_cvat_calls": statistics.median(calls),
        "credentials_injected_ms": ms(statistics.median(t - o for t, o in zip(totals, overheads,
                                                                               strict=True))),
        "credentials_own_overhead_ms": ms(statistics.median(overheads)),
        "credentials_raw_zero_delay_ms": ms(statistics.median(raw)),
    }


async def _time_to_credentials(s: Stage, user: TelegramUser) -> tuple[float, int]:
    """Seconds from pressing "Yes, create my task" to the credentials, and the CVAT calls made
    meanwhile."""
    await user.send("📝 Get a test task")
    await user.expect_message("Ready to start?")
    before = len(s.cvat.request_log)
    start = time.perf_counter()
    await user.press("✅ Yes, create my task")
    await user.expect_message("Your CVAT login", timeout=120)
    seconds = time.perf_counter() - start
    calls = len(s.cvat.request_log) - before
    await user.expect_message("What to do")
    return seconds, calls


async def bench_pool(postgres: Postgres, workdir: Path, sizes: LiveSizes) -> dict[str, Any]:
    """Time to credentials with the warm pool off and warm, and what each candidate costs
    CVAT, against the CVAT stand-in charging a real server's costs (CvatCosts.measured)."""
    return await measure_target(postgres, workdir, "standin", sizes.pool_candidates,
                                sizes.idle_seconds, None)


async def bench_memory(postgres: Postgres, workdir: Path, sizes: LiveSizes) -> dict[str, Any]:
    """Peak RSS of the bot while `memory_candidates` candidates get their tasks (at modest
    concurrency, CVAT without delays) and then all ask for their credentials at once."""
    async with stage(postgres, workdir, "memory") as s:
        bot = await s.start_bot()
        sampler = RssSampler(bot.pid).start()
        # The worker processes the bot started (as production does), each sampled apart.
        workers = [RssSampler(child.pid).start() for child in psutil.Process(bot.pid).children()]
        await asyncio.sleep(0.3)
        rss_idle = sampler.sample()
        users = s.users(sizes.memory_candidates)
        started = time.perf_counter()
        results = await bounded([get_task(u) for u in users], sizes.memory_concurrency)
        build_seconds = time.perf_counter() - started
        rss_built = sampler.sample()
        ready = [u for u, r in zip(users, results, strict=True)
                 if not isinstance(r, BaseException)]
        burst = await asyncio.gather(*(timed_reply(u, "🔑 My credentials", "Your CVAT login",
                                                   timeout=120) for u in ready),
                                     return_exceptions=True)
        await sampler.stop()
        for worker in workers:
            await worker.stop()
        await bot.stop()
    answered = [b for b in burst if not isinstance(b, BaseException)]
    mb = 1024 * 1024
    return {
        "memory_candidates": sizes.memory_candidates,
        "memory_tasks_built": len(ready),
        "memory_build_seconds": round(build_seconds, 1),
        "memory_rss_idle_mb": round(rss_idle / mb, 1),
        "memory_rss_after_build_mb": round(rss_built / mb, 1),
        "memory_peak_rss_mb": round(sampler.peak / mb, 1),
        "memory_workers": len(workers),
        "memory_worker_peak_rss_mb": round(max((w.peak for w in workers), default=0) / mb, 1),
        "memory_burst_answered": len(answered),
        "memory_burst_slowest_ms": ms(max(answered)) if answered else None,
    }


def _self_pid() -> int:
    return os.getpid()


LIVE_SECTIONS = ("throughput", "credentials", "pool", "responsiveness", "memory", "hostile")


async def run_live(sizes: LiveSizes, sections: tuple[str, ...] = LIVE_SECTIONS) -> dict[str, Any]:
    """The live sections, one PostgreSQL server for all, a fresh database each."""
    keep = os.environ.get("BENCH_KEEP_DIR")  # keep the bots' logs (and profiles) here
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cbt-bench-"))
    postgres = Postgres()
    await postgres.start()
    results: dict[str, Any] = {}
    functions = {"throughput": bench_throughput, "credentials": bench_credentials,
                 "pool": bench_pool,
                 "responsiveness": bench_responsiveness, "memory": bench_memory,
                 "hostile": bench_hostile}
    try:
        for name in sections:
            started = time.perf_counter()
            results.update(await functions[name](postgres, workdir, sizes))
            results[f"{name}_section_seconds"] = round(time.perf_counter() - started, 1)
    finally:
        await postgres.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return results
