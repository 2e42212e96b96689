"""The benchmark's code paths with tiny counts, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from bot_files.loop_monitor import LoopMonitor
from sandbox.cvat import CvatServer
from tests.bench.__main__ import calibrate, calibration_rows, print_table
from tests.bench.grading import bench_grading
from tests.bench.harness import RealCvat
from tests.bench.hostile import bench_grading_processes
from tests.bench.live import LiveSizes, run_live


def _block(seconds: float) -> None:
    time.sleep(seconds)


def test_grading_bench_runs_and_agrees_with_the_reference() -> None:
    figures = bench_grading(images=2, repeats=1, reference_repeats=1)
    assert figures["grading_images"] == 2
    assert figures["grading_metrics_equal"] is True
    isolated = asyncio.run(bench_grading_processes(1))
    assert isolated["grading_submission_processes_ms"] > 0


async def test_loop_monitor_sees_a_blocked_loop_and_reports_at_stop(
        caplog: pytest.LogCaptureFixture) -> None:
    monitor = LoopMonitor(interval=0.005, warn_after=0.03).start()
    await asyncio.sleep(0.02)
    _block(0.06)  # a deliberate stall
    gc.collect()  # and a collection, told apart from it
    await asyncio.sleep(0.02)
    with caplog.at_level(logging.INFO, logger="bot_files.loop_monitor"):
        await monitor.stop()
    assert monitor.checks > 0 and monitor.max_stall >= 0.03
    assert monitor.stalls_over_warning >= 1
    assert "event loop: max stall" in caplog.text
    assert monitor.max_collection_generation == 2 and "longest garbage collection" in caplog.text


@pytest.mark.timeout(300)
def test_live_sections_run_with_tiny_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """The bot as a subprocess, the echo bot, every live section and the table (the pool's
    section runs in the side-by-side test below)."""
    figures = asyncio.run(run_live(LiveSizes.tiny(), sections=(
        "throughput", "credentials", "responsiveness", "memory", "hostile")))
    assert figures["load_flows_completed"] == figures["load_candidates"] == 2
    assert figures["idle_samples"] == 3 and figures["load_samples"] >= 1
    assert figures["bot_max_loop_stall_ms"] is not None  # read from the bot's log after SIGTERM
    assert figures["bot_longest_gc_ms"] is not None
    assert figures["bot_exit_code"] == 0
    assert figures["throughput_bot_per_s"] > 0 and figures["throughput_echo_per_s"] > 0
    assert figures["cpu_paced_bot_per_s"] > 0 and figures["cpu_paced_echo_per_s"] > 0
    assert figures["credentials_cvat_calls"] > 0
    assert figures["memory_tasks_built"] == figures["memory_burst_answered"] == 2
    assert figures["memory_peak_rss_mb"] > 0
    assert figures["hostile_submits_answered"] >= 1 and figures["hostile_samples"] == 3
    assert figures["hostile_peak_rss_mb"] >= figures["hostile_rss_before_mb"] > 0
    print_table({**figures, "machine": {"cores": 1, "memory_gb": 1, "python": "3"},
                 "grading_ms": 1, "grading_reference_ms": 1, "grading_speedup": 1,
                 "grading_max_metric_difference": 0, "hr_export_missing": True})
    assert "Throughput ratio" in capsys.readouterr().out


@pytest.mark.timeout(300)
async def test_the_side_by_side_run_works_against_an_outside_cvat(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--cvat-url` with a stand-in playing the real server (it has no processes to read),
    beside the stand-in at a real server's costs (the benchmark's pool section)."""
    outside = CvatServer(admin=("outside-admin", "Outside-Adm1n-Passw0rd"))
    await outside.start(host="127.0.0.1", port=0)
    try:
        figures = await calibrate(RealCvat(outside.base_url, "outside-admin",
                                           "Outside-Adm1n-Passw0rd"), candidates=1, idle=1.0)
    finally:
        await outside.stop()
    assert figures["real_journey_calls"] > figures["real_off_calls_to_login"] > 0
    # The stand-in at a real server's costs: requests counted, CVAT's CPU charged.
    assert figures["standin_journey_calls"] > figures["standin_off_calls_to_login"] > \
        figures["standin_warm_calls_to_login"] > 0
    assert figures["standin_off_cpu_to_login_s"] > figures["standin_warm_cpu_to_login_s"] > 0
    assert figures["standin_idle_calls_per_minute"] is not None
    assert "ratio_off_calls_to_login" in figures
    assert figures["real_off_cpu_to_login_s"] is None  # not on this machine's processes
    assert outside.tasks == {} and [u.username for u in outside.users.values()] == [
        "outside-admin"]  # what the bot made there is deleted afterwards
    print_table({**figures, "machine": {"cores": 1, "memory_gb": 1, "python": "3"}},
                calibration_rows(figures))
    assert "stand-in / real: off_calls_to_login" in capsys.readouterr().out
