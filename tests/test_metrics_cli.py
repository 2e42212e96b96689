"""The offline grader through a subprocess, and the overlays."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.generation import get_font, render_overlay, render_overlays
from tasks_metrics.metrics import grade

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
GT = FIXTURES / "gt.xml"
CAND = FIXTURES / "candidate.xml"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tasks_metrics", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_json_is_one_object() -> None:
    proc = run(GT, CAND, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["band"] in ("pass", "borderline", "fail")
    assert data["per_class"]["car"]["tp"] == 3
    assert data["per_class"]["car"]["missed"] == 1 and data["per_class"]["car"]["extra"] == 1
    reasons = sorted(p["reason"] for p in data["plates"] if not p["correct"])
    assert reasons == ["case", "lookalike"]
    assert data["plate_accuracy"] == 0.0


def test_text_report() -> None:
    proc = run(GT, CAND)
    assert proc.returncode == 0, proc.stderr
    assert "plate accuracy" in proc.stdout and "lookalike" in proc.stdout
    assert "missed car" in proc.stdout and "extra car" in proc.stdout


@pytest.mark.parametrize("args, message", [
    ((FIXTURES / "nope.xml", CAND), "ground truth file not found"),
    ((GT, FIXTURES / "nope.xml"), "candidate file not found"),
    ((FIXTURES / "not_xml.xml", CAND), "not XML"),
    ((GT, FIXTURES / "not_cvat.xml"), "not a CVAT XML"),
    ((GT, FIXTURES / "unknown_image.xml"), "not_in_gt.jpg"),
])
def test_bad_input_exits_2_with_one_line(args: tuple[Path, Path], message: str) -> None:
    proc = run(*args, "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_overlays_written(tmp_path: Path) -> None:
    proc = run(GT, CAND, "--overlays", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    # img_00 (lookalike), img_01 (case), img_02 (missed and extra car)
    assert files == ["img_00.overlay.jpg", "img_01.overlay.jpg", "img_02.overlay.jpg"]
    with Image.open(tmp_path / "out" / files[0]) as img:
        # drawn 1280 px wide (as Telegram shows it), the plate crops and the legend below
        assert img.width == 1280 and img.height > 240 * 4


def test_render_overlay_with_photo_and_cyrillic() -> None:
    gt, cand = parse_cvat_xml(GT), parse_cvat_xml(CAND)
    report = grade(gt, cand)
    photo = io.BytesIO()
    Image.new("RGB", (3200, 2400), (10, 20, 30)).save(photo, format="JPEG")
    jpeg = render_overlay(photo.getvalue(), gt.images["img_00.jpg"], cand.images["img_00.jpg"],
                          report)
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG" and img.width == 1280
    font = get_font(16)
    assert font.getbbox("Ж") is not None
    pictures = render_overlays(gt, cand, report, only_errors=False)
    assert list(pictures) == ["img_00.jpg", "img_01.jpg", "img_02.jpg"]
