"""The names other modules import from here since the original design; the SQL for
`candidates` and `telegram_users` lives in `create_users.repository`."""

from create_users.repository import (
    Candidate,
    forget_lost_account,
    get_candidate,
    get_candidate_by_id,
    lock_or_create_candidate,
    mark_account_activated,
    reserve_cvat_credentials,
    set_cvat_user_id,
    set_language,
    tombstone_hash_sql,
    user_language,
)

__all__ = ["Candidate", "forget_lost_account", "get_candidate", "get_candidate_by_id",
           "lock_or_create_candidate", "mark_account_activated", "reserve_cvat_credentials",
           "set_cvat_user_id", "set_language", "tombstone_hash_sql", "user_language"]
