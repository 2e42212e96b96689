"""What the handlers use from create_users."""

from create_users.db_operations import (
    Candidate,
    TelegramUser,
    get_candidate,
    set_language,
    touch_user,
    user_language,
)

__all__ = ["Candidate", "TelegramUser", "get_candidate", "set_language", "touch_user",
           "user_language"]
