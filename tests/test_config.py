"""Settings: parsed from the environment and .env, every problem reported at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import PROJECT_DIR, SettingsError, load_settings, settings_variables
from tests.conftest import make_settings

REQUIRED = {"BOT_TOKEN": "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345",
            "CVAT_URL": "http://cvat.local:8080/", "CVAT_ADMIN_USERNAME": "bot",
            "CVAT_ADMIN_PASSWORD": "secret-pass"}


def test_defaults_and_parsing() -> None:
    settings = load_settings(environ={**REQUIRED, "HR_ADMIN_IDS": "11, 22 33"}, env_file=None)
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.database_url is None
    assert settings.data_dir == PROJECT_DIR / "data"
    assert settings.hr_admin_ids == frozenset({11, 22, 33})
    assert settings.cvat_url == "http://cvat.local:8080"
    assert settings.cvat_link == "http://cvat.local:8080"
    assert settings.log_level == "INFO"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"BOT_TOKEN": "nonsense", "HR_ADMIN_IDS": "12,abc",
                               "LOG_LEVEL": "LOUD", "CVAT_TIMEOUT": "-1"}, env_file=None)
    text = caught.value.render()
    for name in ("BOT_TOKEN", "HR_ADMIN_IDS", "LOG_LEVEL", "CVAT_TIMEOUT", "CVAT_URL",
                 "CVAT_ADMIN_USERNAME", "CVAT_ADMIN_PASSWORD"):
        assert name in text
    assert ".env.example" in text
    assert len(caught.value.problems) == 7


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_TOKEN=1:from-file-aaaaaaaaaaaaaaaaaaaaa\nLOG_LEVEL=debug\n"
                        "CVAT_URL=http://a\nCVAT_ADMIN_USERNAME=u\nCVAT_ADMIN_PASSWORD=p\n")
    settings = load_settings(environ={"LOG_LEVEL": "WARNING"}, env_file=env_file)
    assert settings.bot_token.startswith("1:from-file")
    assert settings.log_level == "WARNING"


def test_env_example_documents_every_variable() -> None:
    example = (PROJECT_DIR / ".env.example").read_text()
    for name, _doc, default in settings_variables():
        assert f"{name}=" in example, f"{name} is missing from .env.example"
        if default:
            assert f"{name}={default}" in example, f"{name}'s default differs in .env.example"


def test_make_settings_helper_builds_valid_settings() -> None:
    assert make_settings().hr_admin_ids


def test_missing_token_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {n for n, _, _ in settings_variables()}}
    env["PYTHONPATH"] = str(PROJECT_DIR)
    env["ENV_FILE"] = str(tmp_path / "no-such.env")
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "main.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "BOT_TOKEN is not set" in result.stderr
    assert ".env.example" in result.stderr
    assert "Traceback" not in result.stderr
