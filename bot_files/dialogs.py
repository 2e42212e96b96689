"""Every dialog that waits for typed text: its states, and the limits and data keys that more
than one handler module reads (the fallback offers what the support dialog sends; the roles
router refuses viewers the admin-only dialogs). Handler modules import these, never each
other."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup

MAX_SUPPORT_TEXT = 3000  # leaves room for the header within Telegram's 4096
TYPED_KEY = "typed_for_hr"  # dialog data: the text the fallback offered to pass on


class Support(StatesGroup):
    """A candidate: waiting for the text of a message to HR."""

    waiting_text = State()


class HrStates(StatesGroup):
    """HR: waiting for a username or id to find, or for the id (or a forwarded message) of
    someone to add to the whitelist. (The names are stored with a dialog in PostgreSQL: a
    rename would drop the dialogs open at a deploy.)"""

    find = State()
    whitelist_add = State()


class NotifyStates(StatesGroup):
    """HR: waiting for the digest's time."""

    digest_time = State()


class RuleStates(StatesGroup):
    """HR: waiting for the thresholds of one measure."""

    thresholds = State()


class KeyStates(StatesGroup):
    """HR: waiting for the image (and object) to exclude from the answer key."""

    exclude = State()


class DecisionStates(StatesGroup):
    """HR: a decision picked, its preview shown; HR may type a line to add."""

    note = State()


class ReplyStates(StatesGroup):
    """HR: waiting for the answer to a support message."""

    text = State()


# Dialogs that end in an admin action (a viewer can be in one only if demoted meanwhile).
ADMIN_STATES = (HrStates.whitelist_add, RuleStates.thresholds, DecisionStates.note,
                ReplyStates.text, KeyStates.exclude)
