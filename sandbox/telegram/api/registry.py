"""The table of Bot API methods: each family module registers its methods with `@method`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, World

__all__ = ["Handler", "Method", "method", "resolve"]

Handler = Callable[["World", "BotState", "Params"], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    """A Bot API method: its canonical name and implementation."""

    name: str
    handler: Handler


_METHODS: dict[str, Method] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a Bot API method implementation (names are case-insensitive, as in Telegram)."""

    def deco(fn: Handler) -> Handler:
        _METHODS[name.lower()] = Method(name, fn)
        return fn

    return deco


def resolve(name: str) -> Method | None:
    """The method of this name (any case), or None."""
    return _METHODS.get(name.lower())
