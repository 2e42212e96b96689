"""What the handlers use from create_users."""

from create_users.db_operations import TelegramUser, set_language, touch_user

__all__ = ["TelegramUser", "set_language", "touch_user"]
