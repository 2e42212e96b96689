"""`./run.sh demo` tells the whole story and exits 0; the export it saves opens with pandas."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from config.env import PROJECT_DIR


def test_demo_runs_start_to_finish() -> None:
    result = subprocess.run([sys.executable, "-m", "sandbox.demo"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("Maria ▸ /start", "Almost there", "Your result: 🟡 borderline",
                 "New result: Maria, attempt 1: 🟡 borderline: plate texts right 85.7% < 90%",
                 "New result: Maria, attempt 2: ✅ pass", "[📇 Open card]", "missed",
                 "Metrics stored in PostgreSQL", "Files saved"):
        assert step in out, step
    xlsx = sorted((PROJECT_DIR / "demo-output").glob("*.xlsx"))
    assert xlsx
    frame = pd.read_excel(xlsx[-1])
    assert len(frame) == 1 and frame.loc[0, "score"] == 1.0
