"""`Forward`: an attribute of a stand-in's front object that lives on its state object, so
the servers keep their flat public attributes while the state is shared by their parts."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

__all__ = ["Forward"]

T = TypeVar("T")


class Forward(Generic[T]):
    """Reads and writes `obj.<holder>.<name>` for `obj.<name>` (`holder`: e.g. "world")."""

    def __init__(self, holder: str) -> None:
        self._holder = holder
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Forward[T]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self._holder), self._name)

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self._holder), self._name, value)
