"""Logging: console, rotating info/error files, the action log, and redaction of every secret."""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import os
import queue
import re
import threading
from collections.abc import Awaitable, Callable
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

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
# A candidate's CVAT password (create_users.generation.make_password), wherever it appears: a
# run of 12-64 of these characters holding a lowercase and an uppercase letter, a digit and
# one of ! _ -. Masked by its shape, candidates' passwords need no registry: one that grew
# with every candidate cost 42 ms a log line at 20,000 candidates.
_CHARS = "A-Za-z0-9!_-"
_PASSWORD_SHAPE = re.compile(
    rf"(?<![{_CHARS}])(?=[{_CHARS}]{{12,64}}(?![{_CHARS}]))(?=[{_CHARS}]*?[a-z])"
    rf"(?=[{_CHARS}]*?[A-Z])(?=[{_CHARS}]*?[0-9])(?=[{_CHARS}]*?[!_-])[{_CHARS}]{{12,64}}")
MAX_SECRETS = 256  # the bot token, the CVAT admin password, the webhook secret and the like

_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()

action_logger = logging.getLogger("actions")


def _mask_shapes(text: str) -> str:
    # The token first: a password-shaped piece inside a token must not break the token's shape.
    text = _PATTERNS[0].sub(REDACTED, text)
    for pat in _PATTERNS[1:]:
        text = pat.sub(lambda m: m.group(1) + REDACTED, text)
    return _PASSWORD_SHAPE.sub(REDACTED, text)


def register_secret(value: str | None) -> None:
    """Never write this value to any log from now on. A value the shapes above already mask
    (every candidate's password, a bot token) is not kept: the registry stays small."""
    global _secrets_re
    if not value or len(value) < 4 or _mask_shapes(value) == REDACTED:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        if len(_secrets) >= MAX_SECRETS:
            # A bound on what every log line costs; per-user secrets belong in a shape.
            logging.getLogger(__name__).warning(
                "secret not registered: %d are registered already", MAX_SECRETS)
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def registered_secrets() -> list[str]:
    """The registered values (for checking log files for leaks)."""
    with _secrets_lock:
        return sorted(_secrets)


def redact(text: str) -> str:
    """Replace registered secrets and secret-shaped substrings with ***."""
    text = _mask_shapes(text)
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats a record, traceback included, and then removes secrets from the result.

    The last record's text is kept: every file handler formats a record twice (the rotating
    handler's size check, then the write) and the handlers share this formatter, and the
    redaction's patterns are the costly part of a log line. The pair is read and replaced whole,
    so a formatter shared by threads stays right."""

    _last: tuple[logging.LogRecord | None, str] = (None, "")

    def format(self, record: logging.LogRecord) -> str:
        last_record, text = self._last
        if last_record is not record:
            text = redact(super().format(record))
            self._last = (record, text)
        return text


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A rotating log file readable by its owner only (0600), after every rotation too: the
    logs hold names, search queries and support messages."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a file an older version made 0644
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class _Enqueue(QueueHandler):
    """Hands records to the logging thread; on the caller's thread (often the event loop) only
    the message is put together, and redaction runs in the logging thread."""


_queue: queue.Queue[logging.LogRecord] = queue.Queue()
_listener: QueueListener | None = None


def flush() -> None:
    """Wait until every record logged so far is written (tests, shutdown)."""
    if _listener is not None:
        _queue.join()
        for handler in _listener.handlers:
            handler.flush()


def _stop_listener() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()  # writes what is queued first
        for handler in _listener.handlers:
            handler.close()
        _listener = None


atexit.register(_stop_listener)


def setup_logging(level: str = "INFO", log_dir: Path | None = None, console: bool = True) -> None:
    """Configure the root logger: console, info.log, error.log, and actions.log, all written
    (and redacted) by one logging thread, off the event loop."""
    global _listener
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ours", False):
            root.removeHandler(handler)
            handler.close()
    _stop_listener()
    root.setLevel(level)
    formatter = RedactingFormatter(_FORMAT)
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler())
    if log_dir is not None:
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = PrivateRotatingFileHandler(log_dir / "info.log", maxBytes=_MAX_BYTES,
                                          backupCount=_BACKUPS, encoding="utf-8")
        info.setLevel(logging.INFO)
        error = PrivateRotatingFileHandler(log_dir / "error.log", maxBytes=_MAX_BYTES,
                                           backupCount=_BACKUPS, encoding="utf-8")
        error.setLevel(logging.ERROR)
        handlers += [info, error]
    for handler in handlers:
        handler.setFormatter(formatter)
    if log_dir is not None:
        actions = PrivateRotatingFileHandler(log_dir / "actions.log", maxBytes=_MAX_BYTES,
                                             backupCount=_BACKUPS, encoding="utf-8")
        actions.setFormatter(RedactingFormatter("%(asctime)s %(message)s"))
        actions.addFilter(logging.Filter(action_logger.name))
        handlers.append(actions)
    enqueue = _Enqueue(_queue)
    enqueue._ours = True  # type: ignore[attr-defined]
    root.addHandler(enqueue)
    _listener = QueueListener(_queue, *handlers, respect_handler_level=True)
    _listener.start()
    # aiohttp's access log would print Bot API paths; they carry the token (redacted anyway).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiogram writes a line for every update ("Update id=... is handled"): under load that is
    # most of info.log, which then rotates away the lines that matter within minutes, and a
    # twentieth of the bot's CPU. It stays on with LOG_LEVEL=DEBUG; its errors are kept.
    logging.getLogger("aiogram.event").setLevel(
        logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)


class Statements(Protocol):
    """A cursor inside a use case's transaction (log.py does not import db)."""

    def execute(self, query: Any, vars: Any = None) -> None:
        """Run one statement."""
        ...


class ActionStore(Protocol):
    """What the action log needs of the database (log.py does not import db)."""

    async def execute(self, sql: str, params: Any = None) -> int:
        """Run one statement in its own transaction; rows affected."""
        ...


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def jsonb(value: Any, **dumps: Any) -> str:
    """`value` as JSON for a jsonb column. PostgreSQL's jsonb refuses U+0000 in any string
    ("unsupported Unicode escape sequence"), and strangers' texts (a question to HR, a plate
    text typed in CVAT) may carry one: it is dropped, so that the rest is stored."""
    return json.dumps(_without_nul(value), **dumps)


# `action_log` lives here: who did what to whom.
_RECORD_ACTION = ("INSERT INTO action_log (actor_id, action, candidate_id, ok, details)"
                  " VALUES (%s, %s, %s, %s, %s::jsonb)")
_FORGET_OWN_ACTIONS = "DELETE FROM action_log WHERE actor_id = %s AND action NOT LIKE 'hr.%%'"
_SCRUB_ACTIONS_ABOUT = "UPDATE action_log SET details = '{}'::jsonb WHERE candidate_id = %s"


def forget_actions(cur: Statements, telegram_id: int, candidate_id: int) -> None:
    """Inside the transaction that deletes a candidate: what they did as a candidate (support
    messages, logins resent) goes; what HR did about them stays, without the details that
    named them."""
    cur.execute(_FORGET_OWN_ACTIONS, (telegram_id,))
    cur.execute(_SCRUB_ACTIONS_ABOUT, (candidate_id,))


def _action_line(actor_id: int | None, action: str, candidate_id: int | None,
                 details: dict[str, Any] | None, ok: bool) -> tuple[Any, ...]:
    """Write the actions.log line of an action; the parameters of its `action_log` row."""
    detail_json = jsonb(details or {}, ensure_ascii=False, default=str, sort_keys=True)
    action_logger.info(
        "actor=%s action=%s candidate=%s ok=%s details=%s",
        actor_id, action, candidate_id, ok, detail_json,
    )
    return (actor_id, action, candidate_id, ok, detail_json)


async def record_action(
    db: ActionStore,
    actor_id: int | None,
    action: str,
    candidate_id: int | None = None,
    details: dict[str, Any] | None = None,
    ok: bool = True,
) -> None:
    """Write who did what to whom: one line in actions.log and one row in the action table."""
    row = _action_line(actor_id, action, candidate_id, details, ok)
    try:
        await db.execute(_RECORD_ACTION, row)
    except Exception:
        # The file line above already holds the record; a database outage must not
        # turn a user's successful action into an error.
        logging.getLogger(__name__).exception("could not store action %s in the database", action)


def record_action_in(cur: Statements, actor_id: int | None, action: str,
                     candidate_id: int | None = None, details: dict[str, Any] | None = None,
                     ok: bool = True) -> None:
    """The same inside the transaction of the use case that did it: the row is stored with
    what it records, or neither is."""
    cur.execute(_RECORD_ACTION, _action_line(actor_id, action, candidate_id, details, ok))


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
