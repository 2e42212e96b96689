"""The CVAT client's errors: one tree, CVAT's own message, HTTP status and field errors."""

from __future__ import annotations

from typing import Any

import log


class CvatError(Exception):
    """Base of every CVAT client error: CVAT's own message, HTTP status and field errors."""

    def __init__(self, message: str, *, status: int | None = None, details: Any = None) -> None:
        message = log.redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


class CvatUnavailable(CvatError):
    """CVAT could not be reached, timed out, or kept answering 5xx/429 after the retries."""


class CvatRejected(CvatError):
    """CVAT refused the request as invalid (4xx); `details` holds its field errors."""


class CvatNotFound(CvatError):
    """The object does not exist (404)."""


class CvatForbidden(CvatError):
    """The account may not do this (403)."""


class CvatMisconfigured(CvatError):
    """The bot's CVAT account or the server is set up wrongly; an engineer must fix it."""


class CvatAuthError(CvatMisconfigured):
    """CVAT did not accept the username/password (401)."""


class CvatResponseTooLarge(CvatError):
    """CVAT's answer is larger than the caller accepts (`size` bytes, or more; `limit`)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"CVAT's answer is over {limit} bytes ({size} read)")
        self.size = size
        self.limit = limit


class CvatTaskProcessingError(CvatError):
    """CVAT failed to turn uploaded images into task data, or left the task empty."""
