"""The benchmark's code paths with tiny counts, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

from tests.bench.grading import bench_grading


def test_grading_bench_runs_and_agrees_with_the_reference() -> None:
    figures = bench_grading(images=2, repeats=1, reference_repeats=1)
    assert figures["grading_images"] == 2
    assert figures["grading_metrics_equal"] is True
