"""What the handlers use from create_users."""

from create_users.db_operations import Candidate, get_candidate, set_language, user_language
from create_users.lifecycle import (
    DELETE_ACCOUNT,
    KEEP_ACCOUNT,
    AccountKeeper,
    apply_retention,
    delete_candidate_data,
    reactivate_cvat_account,
)
from create_users.privacy import has_consented, notice_texts, notice_version, record_consent
from create_users.repository import Correspondent, correspondent

__all__ = ["DELETE_ACCOUNT", "KEEP_ACCOUNT", "AccountKeeper", "Candidate", "Correspondent",
           "apply_retention", "correspondent", "delete_candidate_data", "get_candidate",
           "has_consented", "notice_texts", "notice_version", "reactivate_cvat_account",
           "record_consent", "set_language", "user_language"]
