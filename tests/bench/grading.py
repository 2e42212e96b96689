"""Benchmark: grading a 20-image task, against the original design's render-to-PNG reference."""

from __future__ import annotations

import statistics
import time
from typing import Any

from tasks_metrics.metrics import grade
from tests.bench.reference_grader import reference_union_ious
from tests.bench.tasks import synthetic_task


def _timed(func: Any, repeats: int) -> tuple[float, Any]:
    """Median milliseconds over `repeats` calls (after one warm-up) and the last result."""
    result = func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def bench_grading(*, images: int = 20, repeats: int = 30, reference_repeats: int = 3,
                  seed: int = 7) -> dict[str, Any]:
    """Grade a task of `images` images with ~6 objects each; compare with the reference."""
    gt, cand = synthetic_task(seed, images=images)
    ours_ms, report = _timed(lambda: grade(gt, cand), repeats)
    ref_ms, reference = _timed(lambda: reference_union_ious(gt, cand), reference_repeats)
    difference = float(max(abs(report.car_iou - reference["car"]),
                           abs(report.plate_iou - reference["plate"])))
    return {
        "grading_images": images,
        "grading_objects": sum(len(i.shapes) for i in gt.images.values()),
        "grading_ms": round(ours_ms, 2),
        "grading_reference_ms": round(ref_ms, 1),
        "grading_speedup": round(ref_ms / ours_ms, 1),
        "grading_max_metric_difference": round(difference, 5),
        "grading_metrics_equal": difference <= 0.005,
    }
