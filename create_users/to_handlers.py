"""What the handlers use from create_users."""

from create_users.db_operations import Candidate, get_candidate, set_language, user_language
from create_users.lifecycle import (
    DELETE_ACCOUNT,
    KEEP_ACCOUNT,
    AccountKeeper,
    delete_candidate_data,
    reactivate_cvat_account,
)

__all__ = ["DELETE_ACCOUNT", "KEEP_ACCOUNT", "AccountKeeper", "Candidate",
           "delete_candidate_data", "get_candidate", "reactivate_cvat_account", "set_language",
           "user_language"]
