"""Benchmark: the HR export (XLSX + CSV) of many candidates from a real PostgreSQL.

The database is seeded with set-based INSERT ... SELECT generate_series (a couple of seconds for
10,000 candidates), on DATABASE_URL's server or an embedded one in a temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from db import Database, EmbeddedPostgres, migrate, reachable_temp_dir
from tasks_metrics.export import build_exports
from tasks_metrics.export_data import export_rows

_SEED_SQL = """
INSERT INTO candidates (telegram_id, telegram_username, full_name, cvat_username, cvat_user_id,
                        created_at)
SELECT 100000000 + g, 'user_' || g, 'Кандидат Candidate ' || g, 'candidate-' || g, g,
       now() - make_interval(mins => g)
FROM generate_series(1, %(n)s) g;

INSERT INTO attempts (candidate_id, number, status, cvat_task_name, task_started, task_ended,
                      submitted_at)
SELECT c.id, k, 'graded', 'bench-' || c.id || '-' || k,
       now() - interval '2 hours',
       now() - interval '2 hours' + make_interval(secs => 600 + mod(c.id, 3000)),
       now() - interval '1 hour'
FROM candidates c CROSS JOIN LATERAL generate_series(1, 1 + mod(c.id, 2)::int) k;

INSERT INTO metrics (attempt_id, candidate_id, car_iou, plate_iou, plate_accuracy, task_started,
                     task_ended, times_attempted, score, band, car_precision, car_recall,
                     car_matched_iou, car_missed, car_extra, plate_precision, plate_recall,
                     plate_matched_iou, plate_missed, plate_extra, plate_cer, report)
SELECT a.id, a.candidate_id, r.car, r.plate, r.acc, a.task_started, a.task_ended, a.number,
       (r.car + r.plate + r.acc) / 3,
       CASE WHEN (r.car + r.plate + r.acc) / 3 >= 0.8 THEN 'pass'
            WHEN (r.car + r.plate + r.acc) / 3 >= 0.65 THEN 'borderline' ELSE 'fail' END,
       random(), random(), random(), (random() * 5)::int, (random() * 3)::int,
       random(), random(), random(), (random() * 5)::int, (random() * 3)::int, random(),
       jsonb_build_object('plates', jsonb_build_array(
           jsonb_build_object('image', 'scene_001.jpg', 'expected', 'A123BC', 'given', 'A123BS',
                              'correct', false, 'reason', 'other'),
           jsonb_build_object('image', 'scene_002.jpg', 'expected', 'K777KK', 'given', 'K777KK',
                              'correct', true, 'reason', null)))
FROM attempts a CROSS JOIN LATERAL (
    SELECT 0.5 + random() / 2 AS car, 0.4 + random() * 0.6 AS plate, random() AS acc) r;
"""


@contextlib.contextmanager
def _database() -> Iterator[str]:
    """A fresh migrated database URL, dropped afterwards."""
    external = os.environ.get("DATABASE_URL")
    folder = None
    server = None
    if external:
        base = external
    else:
        folder = reachable_temp_dir("cbt-bench-pg-")
        server = EmbeddedPostgres(folder, database="postgres")
        base = server.start()
    name = f"cbt_bench_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base)

    def admin(sql: str) -> None:
        conn = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    admin(f'CREATE DATABASE "{name}"')
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        migrate(url)
        yield url
    finally:
        with contextlib.suppress(Exception):
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.remove()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def seed_candidates(url: str, candidates: int) -> None:
    """N candidates, one or two graded attempts each, with metrics and a small report."""
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_SEED_SQL, {"n": candidates})
            cur.execute("ANALYZE")
    finally:
        conn.close()


async def _measure(url: str, repeats: int) -> dict[str, Any]:
    db = Database(url)
    try:
        query, build, total = [], [], []
        exports = None
        for _ in range(repeats):
            start = time.perf_counter()
            rows = await export_rows(db)
            fetched = time.perf_counter()
            exports = await asyncio.to_thread(build_exports, rows)
            done = time.perf_counter()
            query.append(fetched - start)
            build.append(done - fetched)
            total.append(done - start)
        assert exports is not None
        return {"query_s": min(query), "build_s": min(build), "total_s": min(total),
                "xlsx_bytes": len(exports.xlsx), "csv_bytes": len(exports.csv),
                "rows": exports.summary.candidates, "attempts": len(rows.attempts)}
    finally:
        await db.close()


def bench_hr_export(candidates: int = 10_000, repeats: int = 3) -> dict[str, Any]:
    """Seed N candidates and time the export: the query, building XLSX + CSV, and both."""
    with _database() as url:
        start = time.perf_counter()
        seed_candidates(url, candidates)
        seeded = time.perf_counter() - start
        figures = asyncio.run(_measure(url, repeats))
    return {
        "hr_export_candidates": candidates,
        "hr_export_attempts": figures["attempts"],
        "hr_export_seed_s": round(seeded, 2),
        "hr_export_query_s": round(figures["query_s"], 3),
        "hr_export_build_s": round(figures["build_s"], 3),
        "hr_export_total_s": round(figures["total_s"], 3),
        "hr_export_xlsx_kb": round(figures["xlsx_bytes"] / 1024),
        "hr_export_csv_kb": round(figures["csv_bytes"] / 1024),
        "hr_export_under_3s": figures["total_s"] < 3.0,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_hr_export(), indent=2))
