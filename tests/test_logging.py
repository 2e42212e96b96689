"""No secret reaches a log: registered values and secret-shaped strings are redacted."""

from __future__ import annotations

import logging
import stat
from logging.handlers import QueueHandler
from pathlib import Path

import log
from create_users.generation import make_password
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
    log.flush()
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


def test_candidates_passwords_are_masked_by_shape_not_kept_in_a_registry(log_dir: Path) -> None:
    """20,000 candidates' passwords cost the redaction nothing: none is kept, each is masked
    wherever it appears because of its shape."""
    kept = len(log.registered_secrets())
    passwords = [make_password() for _ in range(20_000)]
    for password in passwords:
        log.register_secret(password)  # what the CVAT client does with every password
    assert len(log.registered_secrets()) == kept
    logger = logging.getLogger("test.shapes")
    for password in passwords[:200]:
        logger.info("login %s: %s; body %s; in a sentence: %s.", "cand_1a2b", password,
                    {"password1": password}, password)
    log.flush()
    info = (log_dir / "info.log").read_text()
    assert "login cand_1a2b: ***; body {'password1': '***'}; in a sentence: ***." in info
    assert not any(password in info for password in passwords[:200])


def test_log_files_are_for_their_owner_only_and_written_off_the_callers_thread(
        log_dir: Path) -> None:
    logging.getLogger("test.files").error("an error line")
    log.flush()
    files = list(log_dir.glob("*.log"))
    assert {f.name for f in files} >= {"info.log", "error.log", "actions.log"}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    # The caller (often the event loop) only queues the record: formatting and redaction
    # happen in the logging thread.
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_ours", False)]
    assert ours and all(isinstance(h, QueueHandler) for h in ours)
