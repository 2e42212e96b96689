"""`./run.sh bench [--quick]`: a readable table, then one JSON object as the last line.

Benchmarks are a tool, not tests: nothing here fails on a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

from tests.bench.grading import bench_grading


def machine() -> dict[str, Any]:
    """Cores, memory and Python of this machine."""
    memory_gb = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gb = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": os.cpu_count(), "memory_gb": memory_gb,
            "python": platform.python_version(), "platform": platform.platform()}


def run(quick: bool) -> dict[str, Any]:
    """Every benchmark section, smaller with `quick`."""
    results: dict[str, Any] = {"quick": quick, "machine": machine()}
    results.update(bench_grading(repeats=10 if quick else 50,
                                 reference_repeats=1 if quick else 3))
    return results


def print_table(results: dict[str, Any]) -> None:
    """The human-readable part."""
    rows = [
        ("Grading 20 images (~6 objects each)", f"{results['grading_ms']} ms", "< 20 ms"),
        ("Reference (full-size PNG masks)", f"{results['grading_reference_ms']} ms", ""),
        ("Speed-up over the reference", f"{results['grading_speedup']}x", ">= 50x"),
        ("Max metric difference", f"{results['grading_max_metric_difference']}", "<= 0.005"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>14}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")
    m = results["machine"]
    print(f"machine: {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}")


def main(argv: list[str] | None = None) -> int:
    """Run and print."""
    parser = argparse.ArgumentParser(prog="./run.sh bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, under a minute")
    args = parser.parse_args(argv)
    results = run(args.quick)
    print_table(results)
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
