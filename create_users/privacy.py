"""The privacy notice and each person's consent to it.

The notice is the company's text (PRIVACY_NOTICE) or, without one, a short generic text in the
reader's language saying what is kept and for how long. Its version is a hash of its texts, so
a changed notice is a new version and is asked for again. Every version shown is stored with
its texts; a person's consent names the version and the time (in `telegram_users`, so it goes
with the rest of their data when they are forgotten)."""

from __future__ import annotations

import hashlib

from config.env import Settings
from create_users.repository import has_consented, store_consent
from db import Database

__all__ = ["LANGUAGES", "has_consented", "notice_texts", "notice_version", "record_consent"]

LANGUAGES = ("en", "ru")


def notice_texts(settings: Settings, default: dict[str, str]) -> dict[str, str]:
    """The notice in each language: the company's text, or the generic `default` ones."""
    company = " ".join(settings.privacy_notice.split())
    return {language: company or default[language] for language in LANGUAGES}


def notice_version(texts: dict[str, str]) -> str:
    """A short stable name of a notice: 12 hex digits of a hash of its texts."""
    digest = hashlib.sha256("\x00".join(texts[lang] for lang in LANGUAGES).encode("utf-8"))
    return digest.hexdigest()[:12]


async def record_consent(db: Database, telegram_id: int, texts: dict[str, str]) -> str:
    """Store the notice (once per version) and that this person agreed to it now; the
    version."""
    version = notice_version(texts)
    await store_consent(db, telegram_id, version, texts)
    return version
