"""Logging: console, rotating info/error files, the action log, and redaction of every secret."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from db import Database

P = ParamSpec("P")
R = TypeVar("R")

REDACTED = "***"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_MAX_BYTES = 5 * 1024 * 1024
_BACKUPS = 5

# Shapes of secrets that must never be written even if nobody registered them:
# bot tokens (also inside Bot API URLs), HTTP Basic/Token headers, password fields.
_PATTERNS = [
    re.compile(r"\d{5,20}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"(?i)((?:authorization|proxy-authorization)['\"]?\s*[:=]\s*['\"]?)"
               r"(?:basic|bearer|token)\s+[A-Za-z0-9+/=._-]+"),
    re.compile(r"(?i)(['\"]?password[12]?['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}&]+"),
]

_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()

action_logger = logging.getLogger("actions")


def register_secret(value: str | None) -> None:
    """Never write this value to any log from now on."""
    global _secrets_re
    if not value or len(value) < 4:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Replace registered secrets and secret-shaped substrings with ***."""
    # Shapes first: a registered value inside a token must not break the token's shape.
    text = _PATTERNS[0].sub(REDACTED, text)
    for pat in _PATTERNS[1:]:
        text = pat.sub(lambda m: m.group(1) + REDACTED, text)
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats a record, traceback included, and then removes secrets from the result."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", log_dir: Path | None = None, console: bool = True) -> None:
    """Configure the root logger: console, info.log, error.log, and actions.log."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ours", False):
            root.removeHandler(handler)
            handler.close()
    for handler in list(action_logger.handlers):
        action_logger.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    formatter = RedactingFormatter(_FORMAT)
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler())
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        info = RotatingFileHandler(log_dir / "info.log", maxBytes=_MAX_BYTES,
                                   backupCount=_BACKUPS, encoding="utf-8")
        info.setLevel(logging.INFO)
        error = RotatingFileHandler(log_dir / "error.log", maxBytes=_MAX_BYTES,
                                    backupCount=_BACKUPS, encoding="utf-8")
        error.setLevel(logging.ERROR)
        handlers += [info, error]
        actions = RotatingFileHandler(log_dir / "actions.log", maxBytes=_MAX_BYTES,
                                      backupCount=_BACKUPS, encoding="utf-8")
        actions.setFormatter(RedactingFormatter("%(asctime)s %(message)s"))
        actions._ours = True  # type: ignore[attr-defined]
        action_logger.addHandler(actions)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._ours = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # aiohttp's access log would print Bot API paths; they carry the token (redacted anyway).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def record_action(
    db: Database,
    actor_id: int | None,
    action: str,
    candidate_id: int | None = None,
    details: dict[str, Any] | None = None,
    ok: bool = True,
) -> None:
    """Write who did what to whom: one line in actions.log and one row in the action table."""
    detail_json = json.dumps(details or {}, ensure_ascii=False, default=str, sort_keys=True)
    action_logger.info(
        "actor=%s action=%s candidate=%s ok=%s details=%s",
        actor_id, action, candidate_id, ok, detail_json,
    )
    try:
        await db.execute(
            "INSERT INTO action_log (actor_id, action, candidate_id, ok, details)"
            " VALUES (%s, %s, %s, %s, %s::jsonb)",
            (actor_id, action, candidate_id, ok, detail_json),
        )
    except Exception:
        # The file line above already holds the record; a database outage must not
        # turn a user's successful action into an error.
        logging.getLogger(__name__).exception("could not store action %s in the database", action)


def logged_action(
    action: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an async function with parameters `db` and `actor_id` (and maybe `candidate_id`)
    so every call is recorded in the action log, failures included."""

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(func)
        for required in ("db", "actor_id"):
            if required not in signature.parameters:
                raise TypeError(f"{func.__qualname__} needs a '{required}' parameter")

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            params = bound.arguments
            db, actor_id = params["db"], params["actor_id"]
            candidate_id = params.get("candidate_id")
            try:
                result = await func(*args, **kwargs)
            except Exception as exc:
                await record_action(db, actor_id, action, candidate_id,
                                    {"error": type(exc).__name__}, ok=False)
                raise
            await record_action(db, actor_id, action, candidate_id)
            return result

        return wrapper

    return decorate
