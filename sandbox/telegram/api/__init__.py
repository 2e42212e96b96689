"""The Bot API methods the stand-in implements, one module per family; `resolve` finds one.

- `updates`: getUpdates and webhooks,
- `messages`: the send* methods and chat actions,
- `edits`: edits and deletes,
- `callbacks`: answers to button presses,
- `files`: getFile and the InputFile of sending methods,
- `profile`: getMe, getChat, commands, the menu button, descriptions.
"""

from sandbox.telegram.api import callbacks, edits, files, messages, profile, updates
from sandbox.telegram.api.registry import Method, resolve

__all__ = ["Method", "callbacks", "edits", "files", "messages", "profile", "resolve", "updates"]
