"""No secret reaches a log: registered values and secret-shaped strings are redacted."""

from __future__ import annotations

import logging
from pathlib import Path

import log
from tests.conftest import BOT_TOKEN, find_secrets_in_logs


def test_secrets_are_redacted_in_every_file(log_dir: Path) -> None:
    password = "Cand1date-Pa55word-xyz"
    log.register_secret(password)
    logger = logging.getLogger("test.secrets")
    logger.info("calling https://api.telegram.org/bot%s/getMe", BOT_TOKEN)
    logger.error("registration failed for payload %s", {"username": "anna", "password1": password})
    logger.warning("header Authorization: Basic YWRtaW46c2VjcmV0")
    try:
        raise ValueError(f"boom {password}")
    except ValueError:
        logger.exception("with a traceback")
    for handler in logging.getLogger().handlers:
        handler.flush()
    info = (log_dir / "info.log").read_text()
    assert "calling https://api.telegram.org/bot***/getMe" in info
    assert "'password1': '***'" in info
    assert "Authorization: ***" in info
    assert "boom ***" in info
    assert find_secrets_in_logs([log_dir]) == []


def test_redact_catches_unregistered_token_shapes() -> None:
    assert log.redact("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1 end") == "token *** end"
    assert log.redact('{"password": "hunter22"}') == '{"password": "***"}'
    assert log.redact("nothing secret here") == "nothing secret here"
