"""Usernames, passwords and e-mails for candidates' CVAT accounts."""

from __future__ import annotations

import secrets
import string

# No look-alikes (0/O, 1/l/I): candidates may retype the password from a phone screen.
_LETTERS = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_DIGITS = "23456789"
_SYMBOLS = "-_!"
PASSWORD_LENGTH = 14


def make_username(candidate_id: int) -> str:
    """A CVAT username that names the candidate's row and cannot be guessed from it."""
    return f"cand{candidate_id}_{secrets.token_hex(3)}"


def make_pool_username() -> str:
    """A CVAT username for an account registered before anyone asks for it (the warm pool): the
    candidate's row is not known yet, so the name holds none."""
    return f"cand_{secrets.token_hex(4)}"


def make_password() -> str:
    """A random password that passes CVAT's validators: long, mixed, never common or numeric."""
    alphabet = _LETTERS + _DIGITS + _SYMBOLS
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(PASSWORD_LENGTH))
        if (any(c in string.ascii_lowercase for c in password)
                and any(c in string.ascii_uppercase for c in password)
                and any(c in _DIGITS for c in password)
                and any(c in _SYMBOLS for c in password)):
            return password


def make_email(username: str, domain: str) -> str:
    """A unique placeholder e-mail (CVAT needs one per account; nothing is sent to it)."""
    return f"{username}@{domain}"
