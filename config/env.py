"""Settings read from the environment and `.env`, validated, with every problem reported at once."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from tasks_metrics.pass_rule import (
    DEFAULT_THRESHOLDS,
    Measure,
    PassRule,
    RuleError,
    parse_thresholds,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
TELEGRAM_DEFAULT_API = "https://api.telegram.org"
_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """Raised with every configuration problem found, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def render(self) -> str:
        """Plain-words report for a person starting the bot."""
        lines = ["The bot cannot start: its configuration has problems."]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(
            "Set these variables in the environment or in .env "
            "(copy .env.example, where every variable is described)."
        )
        return "\n".join(lines)


# --- parsers: each takes the raw string and returns a value or raises ValueError(reason) ---


def _str(raw: str) -> str:
    return raw


def _token(raw: str) -> str:
    if not _TOKEN_RE.match(raw):
        raise ValueError("does not look like a bot token from @BotFather (digits:letters)")
    return raw


def _url(raw: str) -> str:
    if not re.match(r"^https?://[^\s/]+", raw):
        raise ValueError(f"must be an http:// or https:// address, got {raw!r}")
    return raw.rstrip("/")


def _optional_url(raw: str) -> str | None:
    return _url(raw) if raw else None


def _path(raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_DIR / path


def _ids(raw: str) -> frozenset[int]:
    ids = set()
    for part in re.split(r"[,\s]+", raw.strip()):
        if not part:
            continue
        if not re.fullmatch(r"-?\d{1,20}", part):
            raise ValueError(f"must be Telegram ids separated by commas, {part!r} is not one")
        ids.add(int(part))
    return frozenset(ids)


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return level


def _number(kind: type, low: float, high: float) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be a {kind.__name__} number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {raw}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _task_set(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute() and "/" not in raw:
        path = PROJECT_DIR / "media" / "task_sets" / raw
    elif not path.is_absolute():
        path = PROJECT_DIR / path
    if not (path / "annotations.xml").is_file():
        raise ValueError(f"is not a task set folder with annotations.xml: {path}")
    return path


def _secret_token(raw: str) -> str:
    if raw and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", raw):
        raise ValueError("may hold only 1-256 of the characters A-Z a-z 0-9 _ -")
    return raw


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"is not a time zone name like UTC or Europe/Moscow: {raw!r}") from None
    return raw


def _gate(raw: str) -> tuple[float, float] | None:
    if raw.strip().lower() == "off":
        return None
    try:
        return parse_thresholds(raw)
    except RuleError as exc:
        raise ValueError(str(exc)) from None


def _gate_default(measure: Measure) -> str:
    pass_at, borderline_at = DEFAULT_THRESHOLDS[measure]
    return f"{pass_at:g}/{borderline_at:g}"


def _meta(env: str, parse: Callable[[str], Any], doc: str, default: str | None = None) -> Any:
    """Field metadata: the variable's name, parser, description and default (None = required)."""
    return field(metadata={"env": env, "parse": parse, "doc": doc, "default": default})


@dataclass(frozen=True)
class Settings:
    """Everything the bot reads from its environment."""

    bot_token: str = _meta("BOT_TOKEN", _token, "Bot token from @BotFather.")
    cvat_url: str = _meta("CVAT_URL", _url, "CVAT server address the bot calls.")
    cvat_admin_username: str = _meta(
        "CVAT_ADMIN_USERNAME", _str, "CVAT superuser the bot acts as."
    )
    cvat_admin_password: str = _meta("CVAT_ADMIN_PASSWORD", _str, "Its password.")
    telegram_api_url: str = _meta(
        "TELEGRAM_API_URL", _url,
        "Bot API server: Telegram's, a self-hosted one, or the sandbox.", TELEGRAM_DEFAULT_API,
    )
    database_url: str | None = _meta(
        "DATABASE_URL", _str,
        "PostgreSQL URL; empty = an embedded server with its data in DATA_DIR.", "",
    )
    data_dir: Path = _meta("DATA_DIR", _path, "Where the embedded database lives.", "./data")
    hr_admin_ids: frozenset[int] = _meta(
        "HR_ADMIN_IDS", _ids, "Telegram ids of HR admins, comma-separated.", ""
    )
    log_level: str = _meta("LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR.", "INFO")
    log_dir: Path = _meta(
        "LOG_DIR", _path, "Folder for info.log, error.log, actions.log.", "./logs"
    )
    cvat_public_url: str | None = _meta(
        "CVAT_PUBLIC_URL", _optional_url,
        "The CVAT link candidates open; empty = CVAT_URL.", "",
    )
    cvat_timeout: float = _meta(
        "CVAT_TIMEOUT", _number(float, 1, 600), "Seconds to wait for one CVAT call.", "30",
    )
    log_to_console: bool = _meta("LOG_TO_CONSOLE", _bool, "Also log to the console.", "true")
    max_attempts: int = _meta(
        "MAX_ATTEMPTS", _number(int, 1, 10), "Test attempts per candidate.", "2"
    )
    attempt_cooldown_minutes: int = _meta(
        "ATTEMPT_COOLDOWN_MINUTES", _number(int, 0, 60 * 24 * 30),
        "Minutes a candidate waits after a submission before the next attempt.", "0",
    )
    test_duration_minutes: int = _meta(
        "TEST_DURATION_MINUTES", _number(int, 5, 24 * 60),
        "How long the test takes, as told to candidates.", "60",
    )
    task_set: Path = _meta(
        "TASK_SET", _task_set, "Task set folder (a name under media/task_sets, or a path).",
        "default",
    )
    images_per_task: int = _meta(
        "IMAGES_PER_TASK", _number(int, 0, 1000),
        "Images in one test task; 0 = the task set's own number.", "0",
    )
    gate_car_recall: tuple[float, float] | None = _meta(
        "GATE_CAR_RECALL", _gate,
        "Pass rule: share of the cars found, as pass/borderline (fractions or percentages;"
        " off = not judged).", _gate_default(Measure.CAR_RECALL),
    )
    gate_plate_recall: tuple[float, float] | None = _meta(
        "GATE_PLATE_RECALL", _gate, "Pass rule: share of the plates found.",
        _gate_default(Measure.PLATE_RECALL),
    )
    gate_car_precision: tuple[float, float] | None = _meta(
        "GATE_CAR_PRECISION", _gate,
        "Pass rule: share of the candidate's car boxes that are real cars (extra boxes"
        " lower it).", _gate_default(Measure.CAR_PRECISION),
    )
    gate_plate_precision: tuple[float, float] | None = _meta(
        "GATE_PLATE_PRECISION", _gate,
        "Pass rule: share of the candidate's plate boxes that are real plates.",
        _gate_default(Measure.PLATE_PRECISION),
    )
    gate_car_fit: tuple[float, float] | None = _meta(
        "GATE_CAR_FIT", _gate,
        "Pass rule: box fit of the cars found (mean IoU of matched pairs).",
        _gate_default(Measure.CAR_FIT),
    )
    gate_plate_fit: tuple[float, float] | None = _meta(
        "GATE_PLATE_FIT", _gate, "Pass rule: box fit of the plates found.",
        _gate_default(Measure.PLATE_FIT),
    )
    gate_plate_text: tuple[float, float] | None = _meta(
        "GATE_PLATE_TEXT", _gate,
        "Pass rule: share of the plates whose text is exactly right.",
        _gate_default(Measure.PLATE_TEXT),
    )
    show_score: bool = _meta(
        "SHOW_SCORE_TO_CANDIDATE", _bool,
        "Tell candidates their result (the band and how each measure fared) after grading.",
        "false",
    )
    attempt_counts: str = _meta(
        "ATTEMPT_COUNTS", _choice("latest", "best", "first"),
        "Which graded attempt decides a candidate's result: latest, best (the highest band,"
        " then score) or first. Candidates are told before a second attempt.", "latest",
    )
    hints: bool = _meta(
        "HINTS_AFTER_ATTEMPT", _bool,
        "After an attempt that leaves another: up to three hints from the pass rule's weakest"
        " measures (never the answer key).", "true",
    )
    candidate_result: str = _meta(
        "CANDIDATE_RESULT", _choice("off", "band", "gates"),
        "What candidates learn of their result after the final attempt or with HR's decision:"
        " off, band (passed / borderline / not passed) or gates (the band and each measure).",
        "band",
    )
    result_after_final: bool = _meta(
        "RESULT_AFTER_FINAL_ATTEMPT", _bool,
        "Send the result (CANDIDATE_RESULT) right after the final attempt is graded; false ="
        " only with HR's decision.", "false",
    )
    reply_days: int = _meta(
        "HR_REPLY_DAYS", _number(int, 0, 60),
        "Working days within which candidates are told HR will write to them (0 = not said).",
        "3",
    )
    cvat_image_source: str = _meta(
        "CVAT_IMAGE_SOURCE", _choice("upload", "share"),
        "upload: send the images with every task; share: use files on CVAT's share.", "upload",
    )
    cvat_share_dir: str = _meta(
        "CVAT_SHARE_DIR", _str,
        "With CVAT_IMAGE_SOURCE=share: the task set's images folder on CVAT's share.", "",
    )
    replicas: bool = _meta(
        "SHARED_BY_REPLICAS", _bool,
        "Several bot processes share this database (webhooks behind a load balancer): each "
        "user's updates are handled one at a time across all of them.", "false",
    )
    throttle_rate: float = _meta(
        "THROTTLE_RATE", _number(float, 0.1, 1000),
        "Updates a second one user may send on average before being slowed down.", "1",
    )
    throttle_burst: int = _meta(
        "THROTTLE_BURST", _number(int, 1, 100000),
        "Updates one user may send in a quick burst.", "8",
    )
    webhook_url: str | None = _meta(
        "WEBHOOK_URL", _optional_url,
        "Public https address Telegram posts updates to; empty = long polling.", "",
    )
    webhook_secret: str = _meta(
        "WEBHOOK_SECRET", _secret_token,
        "Secret Telegram sends with every webhook request (1-256 of A-Z a-z 0-9 _ -).", "",
    )
    webhook_listen: str = _meta(
        "WEBHOOK_LISTEN", _str, "host:port the webhook server listens on.", "127.0.0.1:8080",
    )
    build_lease_seconds: int = _meta(
        "BUILD_LEASE_SECONDS", _number(int, 2, 3600),
        "A task build not heard of for this long is taken over (after a crash).", "60",
    )
    workers: int = _meta(
        "WORKERS", _number(int, 0, 64),
        "Worker processes the bot starts (and restarts) to build tasks, check and grade: "
        "0 = they run elsewhere (./run.sh worker).", "2",
    )
    worker_jobs: int = _meta(
        "WORKER_JOBS", _number(int, 1, 256),
        "Jobs one worker process runs at once (builds mostly wait for CVAT).", "16",
    )
    reconcile_interval_seconds: int = _meta(
        "RECONCILE_INTERVAL_SECONDS", _number(int, 1, 3600),
        "How often interrupted builds and gradings are looked for.", "30",
    )
    cvat_email_domain: str = _meta(
        "CVAT_EMAIL_DOMAIN", _str, "Domain of the placeholder e-mails of candidate accounts.",
        "candidates.invalid",
    )
    pool_accounts: int = _meta(
        "POOL_ACCOUNTS", _number(int, 0, 200),
        "CVAT accounts kept registered and waiting for candidates (0 = register on demand).",
        "3",
    )
    pool_tasks: int = _meta(
        "POOL_TASKS", _number(int, 0, 200),
        "CVAT tasks kept created, with their images processed, waiting for candidates"
        " (0 = create on demand).", "3",
    )
    pool_accounts_refill_below: int = _meta(
        "POOL_ACCOUNTS_REFILL_BELOW", _number(int, 1, 200),
        "Refill the account pool (up to POOL_ACCOUNTS) when fewer than this many are ready.",
        "3",
    )
    pool_tasks_refill_below: int = _meta(
        "POOL_TASKS_REFILL_BELOW", _number(int, 1, 200),
        "Refill the task pool (up to POOL_TASKS) when fewer than this many are ready.", "3",
    )
    pool_inactive_accounts: bool = _meta(
        "POOL_INACTIVE_ACCOUNTS", _bool,
        "Pooled accounts cannot log in until handed out (activated in parallel with the job"
        " assignment).", "true",
    )
    submission_max_mb: int = _meta(
        "SUBMISSION_MAX_MB", _number(int, 1, 100),
        "Largest submission (CVAT's annotations of one job) the bot reads, in MB.", "10",
    )
    submission_max_shapes_per_image: int = _meta(
        "SUBMISSION_MAX_SHAPES_PER_IMAGE", _number(int, 10, 10000),
        "Most shapes a submission may have on one image.", "100",
    )
    submission_max_points_per_shape: int = _meta(
        "SUBMISSION_MAX_POINTS_PER_SHAPE", _number(int, 4, 100000),
        "Most vertices one polygon, polyline or points shape may have.", "1000",
    )
    grading_processes: int = _meta(
        "GRADING_PROCESSES", _number(int, 1, 64),
        "Processes that check, grade and draw submissions, one job each at a time.", "2",
    )
    grading_cpu_seconds: int = _meta(
        "GRADING_CPU_SECONDS", _number(int, 1, 3600),
        "CPU time one check, grading or set of pictures may take before it is stopped.", "30",
    )
    grading_memory_mb: int = _meta(
        "GRADING_MEMORY_MB", _number(int, 64, 65536),
        "Memory a grading process may take beyond its own code, in MB.", "1024",
    )
    flag_seconds_per_object: float = _meta(
        "FLAG_SECONDS_PER_OBJECT", _number(float, 0, 600),
        "Work done faster than this many seconds per object of its images is flagged to HR as"
        " implausibly fast; 0 = never.", "3",
    )
    flag_similar_pixels: float = _meta(
        "FLAG_SIMILAR_PIXELS", _number(float, 0.1, 50),
        "Two candidates' boxes this many pixels apart or closer count as the same box when"
        " their work is compared for copying.", "2",
    )
    pool_check_interval_seconds: int = _meta(
        "POOL_CHECK_INTERVAL_SECONDS", _number(int, 1, 86400),
        "How often pooled accounts and tasks are checked to still exist on CVAT.", "300",
    )
    cvat_deactivate_after_days: float = _meta(
        "CVAT_DEACTIVATE_AFTER_DAYS", _number(float, 0, 3650),
        "Days after a candidate's last attempt was graded (none left) before their CVAT account"
        " is deactivated; HR can reactivate it. 0 = at once.", "7",
    )
    timezone: str = _meta(
        "TIMEZONE", _timezone,
        "Time zone of the times HR read (exports, cards, lists, the digest), e.g."
        " Europe/Moscow.", "UTC",
    )
    privacy_notice: str = _meta(
        "PRIVACY_NOTICE", _str,
        "The company's privacy text shown at /start and agreed to before the first task (who"
        " keeps the data and how to reach them); empty = a generic text.", "",
    )
    retention_days: int = _meta(
        "RETENTION_DAYS", _number(int, 0, 3650),
        "Days after a candidate's last activity before their data, CVAT account and tasks are"
        " deleted (an anonymous tombstone stays); 0 = kept until HR delete them.", "180",
    )
    stalled_after_days: int = _meta(
        "STALLED_AFTER_DAYS", _number(int, 1, 365),
        "HR's list of candidates who started a task and have not submitted it for this many"
        " days.", "3",
    )
    health_check_interval_seconds: int = _meta(
        "HEALTH_CHECK_INTERVAL_SECONDS", _number(int, 1, 3600),
        "How often the database and CVAT are checked for /healthz (webhook mode); a call to"
        " /healthz itself checks nothing.", "10",
    )
    test_deadline_hours: float = _meta(
        "TEST_DEADLINE_HOURS", _number(float, 0, 24 * 365),
        "Hours a candidate has for a test task, from when its login arrives; then the job is"
        " locked and the attempt closed as expired (it counts as used). 0 = no deadline.", "72",
    )
    test_reminder_hours: float = _meta(
        "TEST_REMINDER_HOURS", _number(float, 0, 24 * 365),
        "Hours before the deadline a candidate who has not submitted is reminded once."
        " 0 = no reminder.", "24",
    )

    @property
    def pass_rule(self) -> PassRule:
        """The pass rule the settings describe (the first rule; HR may change it in the bot)."""
        return PassRule.from_dict({str(m): getattr(self, f"gate_{m}") for m in Measure})

    @property
    def zone(self) -> ZoneInfo:
        """The time zone HR read times in."""
        return ZoneInfo(self.timezone)

    @property
    def cvat_link(self) -> str:
        """The CVAT address candidates are given."""
        return self.cvat_public_url or self.cvat_url


def settings_variables() -> list[tuple[str, str, str | None]]:
    """(variable, description, default or None when required) for every setting."""
    return [(f.metadata["env"], f.metadata["doc"], f.metadata["default"]) for f in fields(Settings)]


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | str | None = "",
) -> Settings:
    """Read, parse and validate settings; raise SettingsError listing every problem.

    `env_file` "" means $ENV_FILE or the project's .env; None reads no file.
    """
    if env_file == "":
        env_file = os.environ.get("ENV_FILE") or PROJECT_DIR / ".env"
    values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update(dotenv_values(env_file))
    values.update(os.environ if environ is None else environ)

    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for f in fields(Settings):
        name, parse, default = f.metadata["env"], f.metadata["parse"], f.metadata["default"]
        raw = values.get(name)
        raw = raw.strip() if isinstance(raw, str) else None
        if not raw:
            if default is None:
                problems.append(f"{name} is not set ({f.metadata['doc']})")
                continue
            raw = default
        try:
            parsed[f.name] = parse(raw)
        except ValueError as exc:
            problems.append(f"{name} {exc}")
    if not problems and parsed["cvat_image_source"] == "share" and not parsed["cvat_share_dir"]:
        problems.append("CVAT_SHARE_DIR is needed when CVAT_IMAGE_SOURCE=share")
    if not problems and parsed["webhook_url"] and not parsed["webhook_secret"]:
        problems.append("WEBHOOK_SECRET is needed with WEBHOOK_URL (Telegram signs every "
                        "webhook request with it; requests without it are refused)")
    if not problems and not re.fullmatch(r"[^\s:]+:\d{1,5}", parsed["webhook_listen"]):
        problems.append("WEBHOOK_LISTEN must look like host:port, e.g. 127.0.0.1:8080")
    if problems:
        raise SettingsError(problems)
    parsed["database_url"] = parsed["database_url"] or None
    return Settings(**parsed)
