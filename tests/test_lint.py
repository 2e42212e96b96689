"""The house rule "ruff clean" holds for the whole tree."""

from __future__ import annotations

import subprocess
import sys

from config.env import PROJECT_DIR


def test_ruff_reports_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
