"""Fault injection: calls that fail, drop, hang or answer something unexpected
(`CvatServer.fail_next`), and calls held on their way in (`CvatServer.hold_next`)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .rest import LOGGED, cvat_response, error_page

__all__ = ["Fault", "Faults", "Hold"]


@dataclass
class Fault:
    """A `fail_next` rule."""

    method: str
    path_re: re.Pattern[str]
    status: int
    count: int
    drop: bool
    hang: bool
    after: bool
    body: Any = None


@dataclass
class Hold:
    """A call paused on its way in (`CvatServer.hold_next`): `reached` is set when it arrives;
    it goes on (and is answered as usual) once `release()` is called."""

    method: str
    path_re: re.Pattern[str]
    reached: asyncio.Event
    released: asyncio.Event

    def release(self) -> None:
        """Let the held call go on."""
        self.released.set()


class Faults:
    """The pending fault rules and holds, and the calls hanging on purpose."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self.holds: list[Hold] = []
        self._hangs: set[asyncio.Future[Any]] = set()

    def fail_next(self, fault: Fault) -> None:
        """Add a rule."""
        self.rules.append(fault)

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Hold the next matching call until the returned hold is released."""
        hold = Hold(method.upper(), re.compile(path_regex), asyncio.Event(), asyncio.Event())
        self.holds.append(hold)
        return hold

    def clear(self) -> None:
        """Forget all pending rules."""
        self.rules.clear()

    def release_all(self) -> None:
        """Release every hold and end every hang (the server stops)."""
        for hold in self.holds:
            hold.release()
        for fut in list(self._hangs):
            fut.cancel()

    async def wait_if_held(self, request: web.Request) -> None:
        """Pause the call while a hold that matches it is not released."""
        hold = next((h for h in self.holds if not h.reached.is_set()
                     and h.method in ("*", request.method)
                     and h.path_re.search(request.path_qs)), None)
        if hold is not None:
            hold.reached.set()
            await hold.released.wait()

    def match(self, request: web.Request) -> Fault | None:
        """The rule for this call, if any (counting the call against it)."""
        for fault in self.rules:
            if fault.method in ("*", request.method) and fault.path_re.search(request.path_qs):
                fault.count -= 1
                if fault.count <= 0:
                    self.rules.remove(fault)
                return fault
        return None

    async def apply(
        self,
        request: web.Request,
        fault: Fault,
        request_log: list[tuple[str, str, int, str | None]],
    ) -> web.StreamResponse:
        """Answer the call as the rule says (a hang is logged with status 0 as it starts)."""
        if fault.hang:
            request[LOGGED] = True
            request_log.append((request.method, request.path, 0, None))
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._hangs.add(fut)
            try:
                await fut
            finally:
                self._hangs.discard(fut)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault.body is not None:
            return cvat_response(fault.body, fault.status)
        return error_page(fault.status)
