"""`./run.sh demo` tells the whole story and exits 0; the export it saves opens with pandas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from config.env import PROJECT_DIR


def test_demo_runs_start_to_finish() -> None:
    result = subprocess.run([sys.executable, "-m", "sandbox.demo"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("Maria ▸ /start", "Not finished yet", "Your result is borderline",
                 "Message from HR", "📨 Sent to Maria: ✅ Invite",
                 "invite you to the next step",
                 "New result: Maria, attempt 1: 🟡 borderline: plate texts right 8",
                 "New result: Maria, attempt 2: ✅ pass", "[📇 Open card]", "missed",
                 "Oleg ▸ /start", "New result: Oleg, attempt 1", "Oleg's card",
                 "Graded on answer key version 1.", "🚩 Implausibly fast",
                 "Task set default: 96 images", "calibration_default_v1.xlsx",
                 "Maria's metrics stored in PostgreSQL", "Files saved"):
        assert step in out, step
    # Two candidates, two different draws of the 96 images.
    drawn = re.search(r"Maria's first were ([\d, ]+); Oleg's are ([\d, ]+);", out)
    assert drawn is not None
    maria, oleg = (set(group.split(", ")) for group in drawn.groups())
    assert len(maria) == len(oleg) == 12 and maria != oleg
    # The flag is on the card (printed below its figures), not on Maria's careful work.
    card = out[out.index("Oleg's card"):]
    assert card.index("🚩 Implausibly fast") < card.index("HR menu")
    assert "🚩" not in out[:out.index("Another candidate draws other images")]
    xlsx = sorted((PROJECT_DIR / "demo-output").glob("candidates_*.xlsx"))
    assert xlsx
    frame = pd.read_excel(xlsx[-1])
    assert len(frame) == 2 and frame.loc[0, "Overall score"] > 0.95  # a share, shown as %
    assert frame.loc[1, "Flags"].startswith("🚩 Implausibly fast")
    assert pd.isna(frame.loc[0, "Flags"])
    calibration = pd.read_excel(PROJECT_DIR / "demo-output" / "calibration_default_v1.xlsx")
    assert len(calibration) == 381 and calibration["candidates"].max() >= 1


def _tree_modes(folder: Path) -> dict[Path, int]:
    return {f: f.stat().st_mode for f in (folder, *folder.parents)}


@pytest.mark.slow
def test_demo_from_a_clone_in_a_0700_folder_as_root() -> None:
    """A newcomer as root: `git clone` into a `mktemp -d` folder (0700), `./run.sh demo`. The
    embedded PostgreSQL then runs as its own user, which cannot pass that folder."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only then does the embedded PostgreSQL run as a user of its own")
    if shutil.which("git") is None:
        pytest.skip("needs git to clone the repository")
    closed = Path(tempfile.mkdtemp(prefix="cbt-root-clone-"))
    clone = closed / "candidate-bot"
    try:
        subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(clone)], check=True,
                       timeout=120)
        # The packages are those of this run's .venv, hard-linked (when the file system allows)
        # rather than installed again: about 25 s of pip saved; what is tested is where the
        # project lies, and the venv lies in the clone like a fresh one.
        subprocess.run(["cp", "-al", sys.prefix, str(clone / ".venv")], check=False,
                       timeout=120, capture_output=True)
        modes = _tree_modes(closed)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV")}
        result = subprocess.run(["./run.sh", "demo"], cwd=clone, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Files saved" in result.stdout
        assert _tree_modes(closed) == modes  # no folder above was opened up for the server
    finally:
        shutil.rmtree(closed, ignore_errors=True)
