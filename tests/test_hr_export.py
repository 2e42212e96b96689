"""HR exports against a real PostgreSQL: the files hold the stored metrics exactly, formatted."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pandas as pd
import pytest
from PIL import Image

from authorization import remove_from_whitelist
from db import Database
from tasks_metrics.export import build_exports, score_histogram
from tasks_metrics.export_data import (
    ATTEMPT_COLUMNS,
    CANDIDATE_COLUMNS,
    PERCENT,
    ExportLocale,
    export_rows,
)
from tasks_metrics.hr_operations import search_candidates
from tests.bench.hr_export import seed_candidates

STARTED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


async def add_candidate(db: Database, telegram_id: int, *, username: str | None = None,
                        name: str = "", cvat: str | None = None) -> int:
    """A candidate row."""
    return await db.fetchval(
        "INSERT INTO candidates (telegram_id, telegram_username, full_name, cvat_username,"
        " cvat_user_id) VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (telegram_id, username, name, cvat, telegram_id % 10_000 if cvat else None))


async def add_graded_attempt(db: Database, candidate_id: int, number: int,
                             metrics: dict[str, Any], minutes: float = 30.0,
                             plates: list[dict[str, Any]] | None = None) -> int:
    """A graded attempt with its metrics row."""
    attempt_id = await db.fetchval(
        "INSERT INTO attempts (candidate_id, number, status, task_started, task_ended,"
        " submitted_at) VALUES (%s, %s, 'graded', %s, %s, %s) RETURNING id",
        (candidate_id, number, STARTED, STARTED + timedelta(minutes=minutes),
         STARTED + timedelta(minutes=minutes + 1)))
    columns = ["attempt_id", "candidate_id", "times_attempted", "task_started", "task_ended",
               "report", *metrics]
    values = [attempt_id, candidate_id, number, STARTED, STARTED + timedelta(minutes=minutes),
              json.dumps({"plates": plates or []}), *metrics.values()]
    await db.execute(
        f"INSERT INTO metrics ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(values))})",
        values)
    return attempt_id


def metrics(score: float, band: str, **more: Any) -> dict[str, Any]:
    """A plausible metrics row with awkward floats (exactness matters)."""
    return {"score": score, "band": band, "car_iou": score + 0.0123456789012345,
            "plate_iou": score / 3, "plate_accuracy": 2 / 3, "car_precision": 0.1 + 0.2,
            "car_recall": 1.0, "car_matched_iou": 0.876543210987654, "car_missed": 1,
            "car_extra": 0, "plate_precision": None, "plate_recall": 0.5,
            "plate_matched_iou": 0.7, "plate_missed": 2, "plate_extra": 3,
            "plate_cer": 0.0625, **more}


async def seed_several(db: Database) -> dict[str, int]:
    """Four candidates: two attempts (latest counts), one attempt, none, odd names."""
    ids = {
        "two": await add_candidate(db, 5001, username="two_tries", name="Пётр Two",
                                   cvat="cand1_aa"),
        "one": await add_candidate(db, 5002, username="one_try", name="=HYPERLINK(\"x\")",
                                   cvat="cand2_bb"),
        "none": await add_candidate(db, 5003, name="<Nobody & Co>"),
        "fail": await add_candidate(db, 5004, username="fails", name="Fay"),
    }
    await add_graded_attempt(db, ids["two"], 1, metrics(0.5123, "fail"), minutes=41.5)
    await add_graded_attempt(db, ids["two"], 2, metrics(0.91234567, "pass"), minutes=17.25,
                             plates=[{"image": "a.jpg", "expected": "A1", "given": "A2",
                                      "correct": False, "reason": "other"},
                                     {"image": "b.jpg", "expected": "B1", "given": "B1",
                                      "correct": True, "reason": None}])
    await add_graded_attempt(db, ids["one"], 1, metrics(0.7, "borderline"))
    await add_graded_attempt(db, ids["fail"], 1, metrics(0.1, "fail"))
    return ids


def assert_same(value: Any, stored: Any) -> None:
    """A value read back from a file equals the stored one exactly (NaN for NULL)."""
    if stored is None:
        assert value is None or pd.isna(value), (value, stored)
    elif isinstance(stored, float):
        assert float(value) == stored, (value, stored)
    else:
        assert value == stored, (value, stored)


METRIC_NAMES = ("score", "plate_accuracy", "car_precision", "car_recall", "car_matched_iou",
                "car_missed", "car_extra", "plate_precision", "plate_recall",
                "plate_matched_iou", "plate_missed", "plate_extra", "plate_cer")
PERCENTS = {c.key for c in CANDIDATE_COLUMNS if c.kind == PERCENT}


def machine_view(frame: pd.DataFrame, locale: ExportLocale) -> pd.DataFrame:
    """A sheet read back with the column keys as headers (whatever language it is in)."""
    names = {locale.header(c): c.key for c in (*CANDIDATE_COLUMNS, *ATTEMPT_COLUMNS)}
    return frame.rename(columns=names)


async def check_files_against_database(db: Database, xlsx: bytes, csv: bytes,
                                       locale: ExportLocale | None = None) -> None:
    """Both files: one row per candidate with the latest graded attempt's stored metrics (the
    XLSX exactly, a people's CSV as the percentages it shows), and the XLSX's second sheet
    with every attempt."""
    locale = locale or ExportLocale()
    latest = {row["candidate_id"]: row for row in await db.fetchall(
        "SELECT DISTINCT ON (m.candidate_id) m.* FROM metrics m"
        " ORDER BY m.candidate_id, m.times_attempted DESC")}
    candidates = await db.fetchall("SELECT id, telegram_id, full_name FROM candidates")
    people = bool(locale.headers)
    sheets = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True).sheetnames
    for frame, rounded in (
            (pd.read_excel(io.BytesIO(xlsx), sheet_name=sheets[0]), False),
            (pd.read_csv(io.BytesIO(csv), sep=locale.separator, decimal=locale.decimal),
             people)):
        frame = machine_view(frame, locale)
        assert sorted(frame["candidate_id"].tolist()) == sorted(c["id"] for c in candidates)
        for _, row in frame.iterrows():
            stored = latest.get(int(row["candidate_id"]))
            assert_same(row["band"], None if stored is None else
                        locale.word(f"band_{stored['band']}", stored["band"]))
            for name in METRIC_NAMES:
                value = None if stored is None else stored[name]
                if rounded and name in PERCENTS and value is not None:
                    assert row[name] == pytest.approx(round(value * 100, 1)), name
                else:
                    assert_same(row[name], value)
            if stored is not None:
                spent = stored["task_completed"].total_seconds() / 60
                assert row["time_spent_min"] == pytest.approx(spent, abs=1e-9)
                assert int(row["latest_attempt"]) == stored["times_attempted"]
    every = machine_view(pd.read_excel(io.BytesIO(xlsx), sheet_name=sheets[1]), locale)
    stored_all = await db.fetchall(
        "SELECT m.*, a.number FROM attempts a LEFT JOIN metrics m ON m.attempt_id = a.id")
    assert len(every) == len(stored_all)
    by_key = {(r["candidate_id"], r["number"]): r for r in stored_all}
    for _, row in every.iterrows():
        stored = by_key[(int(row["candidate_id"]), int(row["attempt"]))]
        for name in METRIC_NAMES:
            assert_same(row[name], stored[name])


async def test_export_files_hold_the_stored_metrics_exactly(db: Database) -> None:
    ids = await seed_several(db)
    exports = await _build(db)
    await check_files_against_database(db, exports.xlsx, exports.csv)

    frame = pd.read_excel(io.BytesIO(exports.xlsx), sheet_name="Candidates")
    two = frame[frame["candidate_id"] == ids["two"]].iloc[0]
    assert two["latest_attempt"] == 2 and two["band"] == "pass" and two["wrong_plates"] == 1
    assert two["full_name"] == "Пётр Two" and two["attempts_submitted"] == 2
    nobody = frame[frame["candidate_id"] == ids["none"]].iloc[0]
    assert nobody["full_name"] == "<Nobody & Co>" and pd.isna(nobody["score"])
    # The CSV defuses text a spreadsheet would run as a formula; the XLSX keeps it as text.
    csv = pd.read_csv(io.BytesIO(exports.csv))
    assert csv[csv["candidate_id"] == ids["one"]].iloc[0]["full_name"].startswith("'=")
    assert frame[frame["candidate_id"] == ids["one"]].iloc[0]["full_name"].startswith("=")

    summary = exports.summary
    assert (summary.candidates, summary.submitted, summary.graded) == (4, 3, 3)
    assert (summary.passed, summary.borderline, summary.failed) == (1, 1, 1)
    assert summary.medians["score"] == 0.7
    assert sorted(exports.scores) == [(0.1, "fail"), (0.7, "borderline"), (0.91234567, "pass")]


async def test_workbook_is_formatted(db: Database) -> None:
    await seed_several(db)
    exports = await _build(db)
    workbook = openpyxl.load_workbook(io.BytesIO(exports.xlsx))
    assert workbook.sheetnames == ["Candidates", "Attempts", "Glossary"]
    sheet = workbook["Candidates"]
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["full_name", "telegram_username", "decision", "decided_by",
                          "decided_at", "band"]
    assert sheet["A1"].font.bold and sheet.freeze_panes == "B2"  # the name stays in view
    score_col = header.index("score") + 1
    assert sheet.cell(row=2, column=score_col).number_format == "0.0%"
    created_col = header.index("created_at") + 1
    assert sheet.cell(row=2, column=created_col).is_date
    assert sheet.column_dimensions["A"].width >= 20
    assert workbook["Attempts"]["A2"].value is not None  # names on the attempts sheet too
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(row=1, column=len(header)).column_letter}5"
    rules = [r for cf in sheet.conditional_formatting for r in cf.rules]
    assert {r.formula[0].split("=")[1] for r in rules} == {'"pass"', '"borderline"', '"fail"'}
    assert workbook["Attempts"].max_row == 1 + 4


async def test_no_candidates_still_builds_valid_files(db: Database) -> None:
    exports = await _build(db)
    assert pd.read_excel(io.BytesIO(exports.xlsx)).empty
    assert exports.summary.candidates == 0 and exports.summary.medians["score"] is None


def test_score_histogram_is_a_png() -> None:
    png = score_histogram([(0.1, "fail"), (0.5, "fail"), (0.5, "borderline"), (0.82, "pass"),
                           (0.99, "fail"), (1.0, "pass")], title="Scores", x_label="score",
                          y_label="n", legend={"pass": "pass", "fail": "fail"})
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.width >= 600
    assert score_histogram([], title="t", x_label="x", y_label="y")


async def test_bench_seed_and_export_agree(database_url: str, db: Database) -> None:
    # The benchmark's own seeding SQL with a tiny count, exported and checked like the real data.
    seed_candidates(database_url, 25)
    exports = await _build(db)
    assert exports.summary.candidates == 25
    await check_files_against_database(db, exports.xlsx, exports.csv)


async def test_search_by_username_cvat_id_and_part(db: Database) -> None:
    ids = await seed_several(db)
    assert [c.id for c in await search_candidates(db, "@TWO_TRIES")] == [ids["two"]]
    assert [c.id for c in await search_candidates(db, "cand2_bb")] == [ids["one"]]
    assert [c.id for c in await search_candidates(db, "5004")] == [ids["fail"]]
    assert {c.id for c in await search_candidates(db, "tr")} == {ids["two"], ids["one"]}
    assert await search_candidates(db, "%") == []
    assert await search_candidates(db, "nobody-like-this") == []
    found = (await search_candidates(db, "two_tries"))[0]
    assert found.band == "pass" and found.latest == 2


async def test_the_last_hr_user_is_never_removed(db: Database) -> None:
    await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (1), (2)")
    await db.execute("INSERT INTO hr_preferences (telegram_id, role) VALUES (1, 'admin')")
    assert await remove_from_whitelist(db, 2, 1, frozenset()) == "last"  # the only admin
    assert await remove_from_whitelist(db, 1, 2, frozenset()) == "removed"
    assert await remove_from_whitelist(db, 1, 1, frozenset()) == "last"
    assert await remove_from_whitelist(db, 1, 7, frozenset({7})) == "settings"
    assert await remove_from_whitelist(db, 1, 8, frozenset({7})) == "not_found"
    assert await db.fetchval("SELECT count(*) FROM trainingdata_whitelist") == 1
    outcomes = await db.fetchall("SELECT details ->> 'outcome' AS o FROM action_log"
                                 " WHERE action = 'hr.whitelist_remove' ORDER BY id")
    assert [r["o"] for r in outcomes] == ["last", "removed", "last", "settings", "not_found"]


async def _build(db: Database) -> Any:
    return build_exports(await export_rows(db))
