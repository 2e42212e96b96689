"""What secret redaction costs per log line with 10 and with 20,000 candidates' passwords seen:
now (passwords masked by their shape, nothing registered per candidate) and as it was before
(one regular expression of every registered password, rebuilt at each registration); and what
a logging call costs the caller's thread (the event loop) now that a logging thread formats,
redacts and writes.

    .venv/bin/python -m tests.bench.redaction
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path

import log
from create_users.generation import make_password

LINE = ("2026-11-30 12:00:00,000 INFO    tasks_generator.generation: candidate 4711 has CVAT "
        "account cand4711_a1b2c3 (id 815); task 'Test of candidate 4711, attempt 1 (#9)' ready")
LINES = 2_000


def _per_line(redact: object, lines: int = LINES) -> float:
    """Microseconds per line (best of three runs)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(lines):
            redact(LINE)  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best / lines * 1e6


def _old_registry(passwords: list[str]) -> tuple[float, float]:
    """(ms to register the last password, µs per line) the way log.py worked before: one
    alternation of every registered password, rebuilt at each registration."""
    started = time.perf_counter()
    pattern = re.compile("|".join(re.escape(p) for p in sorted(passwords, key=len,
                                                                 reverse=True)))
    rebuild_ms = (time.perf_counter() - started) * 1000
    return rebuild_ms, _per_line(lambda text: pattern.sub("***", text), LINES // 10)


def _caller_cost(calls: int = 5_000) -> float:
    """Microseconds one logging.info call takes on the calling thread."""
    logger = logging.getLogger("bench.redaction")
    started = time.perf_counter()
    for i in range(calls):
        logger.info("candidate %s has CVAT account %s (id %s)", i, "cand_1a2b", 815)
    elapsed = time.perf_counter() - started
    log.flush()
    return elapsed / calls * 1e6


def main() -> None:
    """Print the figures and, last, one JSON object with all of them."""
    figures: dict[str, float] = {}
    for count in (10, 20_000):
        passwords = [make_password() for _ in range(count)]
        for password in passwords:
            log.register_secret(password)  # what the code paths do with each password
        figures[f"now_us_per_line_{count}"] = round(_per_line(log.redact), 1)
        figures[f"now_registered_{count}"] = len(log.registered_secrets())
        rebuild_ms, old_us = _old_registry(passwords)
        figures[f"before_us_per_line_{count}"] = round(old_us, 1)
        figures[f"before_ms_per_registration_{count}"] = round(rebuild_ms, 1)
    with tempfile.TemporaryDirectory() as folder:
        log.setup_logging("INFO", Path(folder), console=False)
        figures["caller_us_per_logging_call"] = round(_caller_cost(), 1)
    for key, value in figures.items():
        print(f"{key:40} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
