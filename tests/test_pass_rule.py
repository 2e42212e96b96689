"""The pass rule: the kinds of work an annotation lead judges, through the offline grader with
the default rule; rules from settings, files and flags; rules stored, previewed, applied and
re-banded in a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from config.env import SettingsError
from db import Database
from sandbox.candidate import TASK_SET
from tasks_metrics.__main__ import main as grade_offline
from tasks_metrics.cvat_xml import to_cvat_xml
from tasks_metrics.db_operations import (
    StaleRule,
    apply_rule,
    current_rule,
    ensure_rule,
    preview_rule,
    rule_history,
    save_metrics,
)
from tasks_metrics.metrics import grade
from tasks_metrics.pass_rule import Measure, PassRule, RuleError, parse_thresholds
from tasks_metrics.types import ImageAnnotations, Shape, TaskAnnotations
from tests.conftest import make_settings

SUBSET = TASK_SET.reference_images
GROUND_TRUTH = TASK_SET.ground_truth_for(SUBSET)
Edit = Callable[[str, Shape, ImageAnnotations], list[Shape]]


def work(edit: Edit) -> TaskAnnotations:
    """The ground truth of attempt 1's images, each shape passed through `edit`."""
    images = {}
    for name, image in GROUND_TRUTH.images.items():
        shapes = [new for shape in image.shapes for new in edit(name, shape, image)]
        images[name] = dataclasses.replace(image, shapes=tuple(shapes))
    return TaskAnnotations(images)


def box(shape: Shape, x0: float, y0: float, x1: float, y1: float) -> Shape:
    return dataclasses.replace(shape, points=(x0, y0, x1, y1))


def every_nth_car_left_out(n: int) -> Edit:
    seen = [0]

    def edit(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
        if shape.label != "car":
            return [shape]
        seen[0] += 1
        return [] if seen[0] % n == 0 else [shape]
    return edit


def cars_cut_to_60_percent(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
    if shape.label != "car":
        return [shape]
    x0, y0, x1, y1 = shape.points
    return [box(shape, x0, y0, x0 + 0.6 * (x1 - x0), y1)]


def cars_loose_by(pixels: float) -> Edit:
    def edit(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
        if shape.label != "car":
            return [shape]
        x0, y0, x1, y1 = shape.points
        return [box(shape, max(0, x0 - pixels), max(0, y0 - pixels),
                    min(image.width, x1 + pixels), min(image.height, y1 + pixels))]
    return edit


def plate_texts(change: Callable[[str], str]) -> Edit:
    def edit(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
        if shape.label != "plate":
            return [shape]
        return [dataclasses.replace(shape, attributes={"plate": change(shape.text)})]
    return edit


def cars_boxed_twice(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
    if shape.label != "car":
        return [shape]
    x0, y0, x1, y1 = shape.points
    return [shape, box(shape, x0 + 2, y0 + 2, x1 - 2, y1 - 2)]


def junk_box_on_every_image(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
    if shape is not image.shapes[0]:
        return [shape]
    return [shape, Shape("car", "rectangle", (5, 5, 60, 40))]


def expert(seed: int) -> Edit:
    """Every box within 3 px of the truth, and one plate mistyped."""
    rng = random.Random(seed)
    typo = [True]

    def edit(name: str, shape: Shape, image: ImageAnnotations) -> list[Shape]:
        x0, y0, x1, y1 = (v + rng.uniform(-3, 3) for v in shape.points)
        shape = box(shape, x0, y0, x1, y1)
        if shape.label == "plate" and typo[0]:
            typo[0] = False
            text = shape.text
            shape = dataclasses.replace(shape, attributes={"plate": text[:-1] + (
                "0" if text[-1] != "0" else "1")})
        return [shape]
    return edit


CYRILLIC = str.maketrans("ABCEHKMOPTXY", "АВСЕНКМОРТХУ")

# (the work, the band a lead gives, the gates that must be named)
KINDS_OF_WORK: list[tuple[str, Edit, str, set[str]]] = [
    ("a third of the cars left out", every_nth_car_left_out(3), "fail", {"car_recall"}),
    ("one car in ten left out", every_nth_car_left_out(10), "borderline", {"car_recall"}),
    ("car boxes cut to 60% of the width", cars_cut_to_60_percent, "fail", {"car_fit"}),
    ("car boxes 30 px loose", cars_loose_by(30), "fail", {"car_fit"}),
    ("car boxes 40 px loose", cars_loose_by(40), "fail", {"car_fit"}),
    ("plates in lower case", plate_texts(str.lower), "fail", {"plate_text"}),
    ("plates with Cyrillic look-alikes", plate_texts(lambda t: t.translate(CYRILLIC)), "fail",
     {"plate_text"}),
    ("every car boxed twice", cars_boxed_twice, "fail", {"car_precision"}),
    ("a junk box on every image", junk_box_on_every_image, "fail", {"car_precision"}),
    ("an expert: boxes within 3 px, one typo", expert(1), "pass", set()),
    ("another expert", expert(2), "pass", set()),
]


def offline(*args: str | Path) -> tuple[int, str, str]:
    """`python -m tasks_metrics ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = grade_offline([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("label, edit, band, gates", KINDS_OF_WORK,
                         ids=[k[0] for k in KINDS_OF_WORK])
def test_the_offline_grader_bands_work_as_a_lead_would(
    tmp_path: Path, label: str, edit: Edit, band: str, gates: set[str]
) -> None:
    (tmp_path / "gt.xml").write_bytes(to_cvat_xml(GROUND_TRUTH))
    (tmp_path / "work.xml").write_bytes(to_cvat_xml(work(edit)))
    code, out, err = offline(tmp_path / "gt.xml", tmp_path / "work.xml", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["band"] == band, (label, report["gates"])
    named = {g["measure"] for g in report["gates"] if g["band"] != "pass"}
    assert named == gates, label
    for gate in report["gates"]:
        assert set(gate) == {"measure", "value", "pass_at", "borderline_at", "band"}


def test_the_old_average_hid_what_the_gates_catch() -> None:
    """The averaged score called these pass; each now fails on the gate that shows why."""
    for edit in (every_nth_car_left_out(3), cars_cut_to_60_percent, cars_loose_by(30)):
        report = grade(GROUND_TRUTH, work(edit))
        assert report.score is not None and report.score >= 0.85
        assert report.band == "fail"


def test_the_text_report_names_the_failing_gates(tmp_path: Path) -> None:
    (tmp_path / "gt.xml").write_bytes(to_cvat_xml(GROUND_TRUTH))
    (tmp_path / "work.xml").write_bytes(to_cvat_xml(work(every_nth_car_left_out(3))))
    code, out, _ = offline(tmp_path / "gt.xml", tmp_path / "work.xml")
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("band FAIL: car_recall 69.2% < 95%")
    assert any(line.split()[:1] == ["car_recall"] and line.endswith("fail")
               for line in out.splitlines())


def test_a_rule_file_and_flags_change_the_verdict(tmp_path: Path) -> None:
    (tmp_path / "gt.xml").write_bytes(to_cvat_xml(GROUND_TRUTH))
    (tmp_path / "work.xml").write_bytes(to_cvat_xml(work(every_nth_car_left_out(3))))
    (tmp_path / "rule.json").write_text(json.dumps({"car_recall": [0.6, 0.5]}))
    (tmp_path / "rule.toml").write_text('car_recall = "off"\nplate_text = "95%/90%"\n')
    args = (tmp_path / "gt.xml", tmp_path / "work.xml", "--json")
    by_file = json.loads(offline(*args, "--rule", tmp_path / "rule.json")[1])
    assert by_file["band"] == "pass" and [g["measure"] for g in by_file["gates"]] == [
        "car_recall"]
    by_toml = json.loads(offline(*args, "--rule", tmp_path / "rule.toml")[1])
    assert by_toml["band"] == "pass"
    assert {g["measure"] for g in by_toml["gates"]} == {"plate_text"}
    by_flag = json.loads(offline(*args, "--gate", "car_recall=60/50")[1])
    assert by_flag["band"] == "pass" and len(by_flag["gates"]) == 7
    off = json.loads(offline(*args, "--gate", "car_recall=off")[1])
    assert off["band"] == "pass" and "car_recall" not in {g["measure"] for g in off["gates"]}


@pytest.mark.parametrize("args, message", [
    (("--gate", "car_recall=85/95"), "borderline threshold (95%) is above the pass one"),
    (("--gate", "cars=95/85"), "unknown measure 'cars'"),
    (("--gate", "car_recall"), "expected MEASURE=PASS/BORDERLINE"),
    (("--rule", "missing.json"), "rule file not found"),
])
def test_a_bad_rule_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                           message: str) -> None:
    (tmp_path / "gt.xml").write_bytes(to_cvat_xml(GROUND_TRUTH))
    fixed = [str(tmp_path / a) if a.endswith(".json") else a for a in args]
    code, out, err = offline(tmp_path / "gt.xml", tmp_path / "gt.xml", *fixed)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_thresholds_are_read_as_people_write_them() -> None:
    assert parse_thresholds("95 85") == parse_thresholds("0.95/0.85") == (0.95, 0.85)
    assert parse_thresholds("95% / 85%") == parse_thresholds("0,95;0,85") == (0.95, 0.85)
    assert parse_thresholds("72.5 60") == (0.725, 0.6)
    for bad in ("95", "a b", "85 95", "150 90", "95 85 75"):
        with pytest.raises(RuleError):
            parse_thresholds(bad)


def test_settings_give_the_first_rule() -> None:
    assert make_settings().pass_rule == PassRule.default()
    changed = make_settings(GATE_CAR_RECALL="90%/80%", GATE_PLATE_FIT="off")
    assert changed.pass_rule.gate(Measure.CAR_RECALL).pass_at == 0.9  # type: ignore[union-attr]
    assert changed.pass_rule.gate(Measure.PLATE_FIT) is None
    with pytest.raises(SettingsError, match="GATE_CAR_FIT") as caught:
        make_settings(GATE_CAR_FIT="75 85")
    assert "borderline threshold" in str(caught.value)


def test_a_gate_with_nothing_to_measure_does_not_count() -> None:
    no_plates = TaskAnnotations({n: dataclasses.replace(i, shapes=tuple(
        s for s in i.shapes if s.label == "car")) for n, i in GROUND_TRUTH.images.items()})
    report = grade(no_plates, no_plates)
    plate = {g.measure: g for g in report.verdict.gates}[Measure.PLATE_RECALL]
    assert plate.value is None and plate.band == "n/a" and report.band == "pass"


# --- the rule in the database ----------------------------------------------------------------


async def graded_attempt(db: Database, telegram_id: int, report: Any, number: int = 1) -> int:
    """A candidate with a graded attempt whose figures are `report`'s."""
    candidate = await db.fetchval(
        "INSERT INTO candidates (telegram_id) VALUES (%s) ON CONFLICT (telegram_id) DO UPDATE"
        " SET telegram_id = EXCLUDED.telegram_id RETURNING id", (telegram_id,))
    attempt = await db.fetchval(
        "INSERT INTO attempts (candidate_id, number, status) VALUES (%s, %s, 'submitted')"
        " RETURNING id", (candidate, number))
    await save_metrics(db, attempt, report.metric_values(), report.to_dict(),
                       task_started=None, task_ended=None)
    return attempt


async def bands(db: Database) -> dict[int, str]:
    rows = await db.fetchall("SELECT attempt_id, band FROM metrics ORDER BY attempt_id")
    return {r["attempt_id"]: r["band"] for r in rows}


async def test_rules_are_kept_previewed_applied_and_rebanded(db: Database) -> None:
    # Graded before any rule was saved (as after an upgrade): the default rule bands them.
    third = await graded_attempt(db, 1, grade(GROUND_TRUTH, work(every_nth_car_left_out(3))))
    tenth = await graded_attempt(db, 2, grade(GROUND_TRUTH, work(every_nth_car_left_out(10))))
    first = await graded_attempt(db, 3, grade(GROUND_TRUTH, work(every_nth_car_left_out(10))))
    perfect = await graded_attempt(db, 3, grade(GROUND_TRUTH, GROUND_TRUTH), number=2)
    assert await bands(db) == {third: "fail", tenth: "borderline", first: "borderline",
                               perfect: "pass"}

    # The settings' rule at the first start: stored, and every attempt banded by it.
    lenient = PassRule.default().with_gate(Measure.CAR_RECALL, (0.9, 0.6))
    version = await ensure_rule(db, lenient)
    assert version.source == "settings" and version.rule == lenient
    assert await bands(db) == {third: "borderline", tenth: "pass", first: "pass",
                               perfect: "pass"}
    assert await db.fetchval("SELECT count(*) FROM metrics WHERE rule_id = %s",
                             (version.id,)) == 4
    assert await ensure_rule(db, lenient) == version  # a restart changes nothing

    # HR's preview counts candidates by the attempt that counts (their latest).
    strict = PassRule.default()
    preview = await preview_rule(db, strict)
    assert preview.candidates == 3 and preview.attempts_changed == 3
    assert preview.moves == {("borderline", "fail"): 1, ("pass", "borderline"): 1}
    assert await bands(db) == {third: "borderline", tenth: "pass", first: "pass",
                               perfect: "pass"}  # a preview writes nothing

    number, applied = await apply_rule(db, strict, actor=900_001, based_on=version.id)
    assert applied == preview and number > (version.id or 0)
    assert await bands(db) == {third: "fail", tenth: "borderline", first: "borderline",
                               perfect: "pass"}
    stored = await db.fetchone("SELECT gates, report, rule_id FROM metrics WHERE attempt_id"
                               " = %s", (third,))
    assert stored["rule_id"] == number and stored["report"]["band"] == "fail"
    assert stored["report"]["gates"] == stored["gates"]
    assert {"measure": "car_recall", "band": "fail"}.items() <= stored["gates"][0].items()

    # A draft made from the old rule is refused: someone changed the rule since.
    with pytest.raises(StaleRule):
        await apply_rule(db, lenient, actor=900_002, based_on=version.id)
    # The settings change later, but HR's rule stays in force.
    assert (await ensure_rule(db, lenient)).id == number
    history = await rule_history(db)
    assert [(v.id, v.source, v.created_by) for v in history] == [
        (number, "hr", 900_001), (version.id, "settings", None)]
    assert history[0].changed == 3 and (await current_rule(db)).rule == strict

    # A new grading is banded by the rule in force.
    later = await graded_attempt(db, 4, grade(GROUND_TRUTH, work(every_nth_car_left_out(10))))
    assert (await bands(db))[later] == "borderline"
