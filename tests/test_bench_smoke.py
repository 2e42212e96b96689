"""The benchmark's code paths with tiny counts, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot_files.loop_monitor import LoopMonitor
from tests.bench.__main__ import print_table
from tests.bench.grading import bench_grading
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
    await asyncio.sleep(0.02)
    with caplog.at_level(logging.INFO, logger="bot_files.loop_monitor"):
        await monitor.stop()
    assert monitor.checks > 0 and monitor.max_stall >= 0.03
    assert monitor.stalls_over_warning >= 1
    assert "event loop: max stall" in caplog.text


@pytest.mark.timeout(300)
def test_live_sections_run_with_tiny_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """The bot as a subprocess, the echo bot, every live section and the table."""
    figures = asyncio.run(run_live(LiveSizes.tiny()))
    assert figures["load_flows_completed"] == figures["load_candidates"] == 2
    assert figures["idle_samples"] == 3 and figures["load_samples"] >= 1
    assert figures["bot_max_loop_stall_ms"] is not None  # read from the bot's log after SIGTERM
    assert figures["bot_exit_code"] == 0
    assert figures["throughput_bot_per_s"] > 0 and figures["throughput_echo_per_s"] > 0
    assert figures["credentials_cvat_calls"] > 0
    assert figures["memory_tasks_built"] == figures["memory_burst_answered"] == 2
    assert figures["memory_peak_rss_mb"] > 0
    assert figures["hostile_submits_answered"] >= 1 and figures["hostile_samples"] == 3
    assert figures["hostile_peak_rss_mb"] >= figures["hostile_rss_before_mb"] > 0
    print_table({**figures, "machine": {"cores": 1, "memory_gb": 1, "python": "3"},
                 "grading_ms": 1, "grading_reference_ms": 1, "grading_speedup": 1,
                 "grading_max_metric_difference": 0, "hr_export_missing": True})
    assert "Throughput ratio" in capsys.readouterr().out
