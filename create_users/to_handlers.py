"""What the handlers use from create_users."""

from create_users.db_operations import Candidate, get_candidate, set_language, user_language

__all__ = ["Candidate", "get_candidate", "set_language", "user_language"]
