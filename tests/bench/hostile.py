"""Benchmark section: other users' light updates while candidates hammer Submit on work built
to be expensive, against `python main.py`; and what the grading processes cost per
submission compared with grading in-process.

Two kinds of hostile work: over the limits (a 100,000-vertex polygon and a mask whose box is
20,000 x 20,000 px, about 4 MB), which the grading process refuses at once; and within the
limits but slow (image-wide 1,000-vertex polygons), which it checks for seconds of its own CPU.
Neither runs in the bot's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from sandbox.candidate import perfect_shapes
from sandbox.telegram import TelegramUser
from tasks_generator.task_set import load_task_set
from tasks_metrics.checker import check_completeness
from tasks_metrics.grading_process import GradingProcesses
from tasks_metrics.metrics import grade
from tasks_metrics.rest import from_cvat_rest
from tasks_metrics.submission import stored_copy
from tests.bench.harness import (
    CpuWindow,
    Postgres,
    Prober,
    RssSampler,
    get_task,
    latency_figures,
    ms,
    stage,
)
from tests.bench.tasks import DEFAULT_SET_XML
from tests.flow import read_login, submit


def _polygon(n: int, frame: int, label: int, radius: float, squash: float = 1.0) -> dict[str, Any]:
    points = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        r = radius * (squash if i % 2 else 1.0)
        points += [400 + r * math.cos(angle), 300 + 0.7 * r * math.sin(angle)]
    return {"type": "polygon", "frame": frame, "label_id": label, "points": points}


def over_limits(frames: list[str], labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete work plus a 100,000-vertex polygon and a 20,000 x 20,000 px mask."""
    car = next(lb["id"] for lb in labels if lb["name"] == "car")
    return [*perfect_shapes(frames, labels), _polygon(100_000, 0, car, 250),
            {"type": "mask", "frame": 1, "label_id": car,
             "points": [0, 20_000 * 20_000, 0, 0, 19_999, 19_999]}]


def slow_within_limits(frames: list[str], labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eight image-wide 1,000-vertex polygons per image (96,000 vertices, under the limits),
    and the first image left without cars, so that every Submit checks it all again."""
    car = next(lb["id"] for lb in labels if lb["name"] == "car")
    shapes = [s for s in perfect_shapes(frames, labels)
              if not (s["frame"] == 0 and s["label_id"] == car)]
    return shapes + [_polygon(1000, f, car, 399, squash=0.3) for f in range(1, len(frames))
                     for _ in range(8)]


async def _save(login_message: Any, build: Any) -> None:
    """Save `build(frames, labels)` as the candidate, through CVAT's REST API."""
    login = read_login(login_message)
    headers = {"Authorization": aiohttp.encode_basic_auth(login.username, login.password)}
    async with aiohttp.ClientSession(login.url, headers=headers) as http:
        async with http.get("/api/jobs") as resp:
            job = (await resp.json(content_type=None))["results"][0]
        async with http.get(f"/api/jobs/{job['id']}/data/meta") as resp:
            frames = [f["name"].rsplit("/", 1)[-1]
                      for f in (await resp.json(content_type=None))["frames"]]
        async with http.get("/api/labels", params={"job_id": str(job["id"])}) as resp:
            labels = (await resp.json(content_type=None))["results"]
        body = {"version": 0, "tags": [], "shapes": build(frames, labels), "tracks": []}
        async with http.put(f"/api/jobs/{job['id']}/annotations", json=body) as resp:
            resp.raise_for_status()


async def _keep_submitting(user: TelegramUser, stop: asyncio.Event, answers: list[str],
                           pause: float) -> None:
    """Press Submit, wait for the answer, pause, again, until `stop`."""
    while not stop.is_set():
        await submit(user)
        with contextlib.suppress(AssertionError):
            answer = await user.expect_edit(timeout=120)
            answers.append(answer.text.split(":")[0].split("\n")[0][:40])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)


async def bench_hostile(postgres: Postgres, workdir: Path, sizes: Any) -> dict[str, Any]:
    """Light-update latency idle, then while `hostile_candidates` candidates with work over
    the limits and as many with slow work within them press Submit every couple of seconds;
    the bot's resident memory before and at its peak, and the CPU of its grading processes."""
    async with stage(postgres, workdir, "hostile") as s:
        bot = await s.start_bot(POOL_ACCOUNTS="0", POOL_TASKS="0", THROTTLE_BURST="100")
        probers = Prober(s.users(20, prefix="Probe"), sizes.probe_interval)
        await probers.run(count=10)
        idle = await probers.run(count=sizes.idle_probes)
        attackers = s.users(sizes.hostile_candidates, prefix="Over")
        slow = s.users(sizes.hostile_candidates, prefix="Slow")
        logins = await asyncio.gather(*(get_task(u) for u in attackers + slow))
        for user in attackers + slow:
            user.skip_all()  # the progress message's edits: read already
        await asyncio.gather(*(_save(m, over_limits) for m in logins[:len(attackers)]),
                             *(_save(m, slow_within_limits) for m in logins[len(attackers):]))
        sampler = RssSampler(bot.pid, interval=0.05).start()
        await asyncio.sleep(0.2)
        rss_before = sampler.sample()
        cpu = CpuWindow({"bot_and_graders": bot.pid})  # the grading processes are its children
        stop = asyncio.Event()
        answers: list[str] = []
        pressing = asyncio.gather(*(_keep_submitting(u, stop, answers, sizes.hostile_pause)
                                    for u in attackers + slow))
        started = time.perf_counter()
        loaded = await probers.run(count=sizes.hostile_probes)
        stop.set()
        await pressing
        seconds = time.perf_counter() - started
        total_cpu = cpu.percent().get("bot_and_graders")
        await sampler.stop()
        await bot.stop()
        driver_stall = s.driver_monitor.max_stall
    kinds: dict[str, int] = {}
    for answer in answers:
        kinds[answer] = kinds.get(answer, 0) + 1
    mb = 1024 * 1024
    figures = {
        **latency_figures("hostile_idle", idle),
        **latency_figures("hostile", loaded),
        "hostile_candidates": sizes.hostile_candidates * 2,
        "hostile_submits_answered": len(answers),
        "hostile_answers": kinds,
        "hostile_seconds": round(seconds, 1),
        "hostile_rss_before_mb": round(rss_before / mb, 1),
        "hostile_peak_rss_mb": round(sampler.peak / mb, 1),
        "hostile_bot_and_graders_cpu_percent": total_cpu,
        # The driver serves the 4 MB answers from the CVAT stand-in on its own loop: a stall
        # here delays the probes too, and is not the bot's.
        "hostile_driver_max_loop_stall_ms": ms(driver_stall),
    }
    idle_p99 = figures["hostile_idle_p99_ms"]
    figures["hostile_idle_p99_ratio"] = (round(figures["hostile_p99_ms"] / idle_p99, 2)
                                         if idle_p99 else None)
    return figures


async def bench_grading_processes(repeats: int) -> dict[str, Any]:
    """One attempt of the default set (12 images), checked and graded in this process and
    through the bot's warm grading processes: the difference is what isolation costs per
    submission (pipes, JSON, a second parse). Also the first job's cost, a process start."""
    task_set = load_task_set(DEFAULT_SET_XML.parent)
    subset = list(task_set.reference_images)
    labels = [{"id": 1, "name": "car", "attributes": []},
              {"id": 2, "name": "plate", "attributes": [{"id": 3, "name": "plate"}]}]
    meta = {"start_frame": 0, "frames": [{"name": n, "width": 800, "height": 600}
                                         for n in subset]}
    annotations = json.dumps({"version": 0, "tags": [], "tracks": [],
                              "shapes": perfect_shapes(subset, labels)}).encode()
    stored = stored_copy(annotations, labels, meta)

    def in_process() -> None:
        work = from_cvat_rest(json.loads(annotations), labels, meta["frames"]).named_as(subset)
        check_completeness(work, subset)
        grade(task_set.ground_truth_for(subset), work)

    local = []
    for _ in range(repeats):
        start = time.perf_counter()
        in_process()
        local.append(time.perf_counter() - start)
    grader = GradingProcesses(task_set.folder, task_set.images_per_task)
    try:
        start = time.perf_counter()
        await grader.check(annotations, labels, meta, subset)
        first = time.perf_counter() - start
        remote = []
        for _ in range(repeats):
            start = time.perf_counter()
            await grader.check(annotations, labels, meta, subset)
            await grader.grade(stored, subset)
            remote.append(time.perf_counter() - start)
    finally:
        await grader.close()
    return {
        "grading_submission_in_process_ms": ms(statistics.median(local)),
        "grading_submission_processes_ms": ms(statistics.median(remote)),
        "grading_process_overhead_ms": ms(statistics.median(remote) - statistics.median(local)),
        "grading_process_first_job_ms": ms(first),
    }
