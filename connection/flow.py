"""Operations as flows: one definition, run blocking or awaited.

An operation is a generator that yields steps and returns its result:
- `Blocking(call)`: one short blocking call (an HTTP exchange, a sign-in); its result (or its
  exception) is sent back into the generator;
- `Sleep(seconds)`: a pause (a retry's backoff, a poll's wait).

`run_blocking` runs a flow in the calling thread. `run_async` runs each `Blocking` step in a
worker thread and each `Sleep` on the event loop, so a wait of minutes holds no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Blocking(Generic[T]):
    """One blocking call, bounded by its own timeout."""

    call: Callable[[], T]


@dataclass(frozen=True)
class Sleep:
    """A pause between calls."""

    seconds: float


Step = Blocking[Any] | Sleep
Flow = Generator[Step, Any, R]


class _Run(Generic[R]):
    """A flow being run: the next step, then the answer to it, until it returns."""

    def __init__(self, flow: Flow[R]) -> None:
        self.flow = flow
        self.result: R | None = None
        self._value: Any = None
        self._error: Exception | None = None

    def next_step(self) -> Step | None:
        """The flow's next step, or None once it returned (its value in `result`)."""
        try:
            if self._error is not None:
                return self.flow.throw(self._error)
            return self.flow.send(self._value)
        except StopIteration as stop:
            self.result = stop.value
            return None
        finally:
            self._value, self._error = None, None

    def answer(self, value: Any = None, error: Exception | None = None) -> None:
        """What the last step gave: sent into the flow, or raised in it."""
        self._value, self._error = value, error


def run_blocking(flow: Flow[R]) -> R:
    """Run a flow in this thread: calls as they come, pauses with time.sleep."""
    run = _Run(flow)
    with contextlib.closing(flow):
        while (step := run.next_step()) is not None:
            if isinstance(step, Sleep):
                time.sleep(max(0.0, step.seconds))
                continue
            try:
                run.answer(step.call())
            except Exception as exc:  # noqa: BLE001 - handed to the flow, which decides
                run.answer(error=exc)
    return run.result  # type: ignore[return-value]


async def run_async(flow: Flow[R], executor: Executor | None) -> R:
    """Run a flow on the event loop: calls in `executor`'s threads, pauses with asyncio.sleep.
    Cancelling stops the flow at its next step (a call under way runs to its timeout)."""
    loop = asyncio.get_running_loop()
    run = _Run(flow)
    with contextlib.closing(flow):
        while (step := run.next_step()) is not None:
            if isinstance(step, Sleep):
                await asyncio.sleep(max(0.0, step.seconds))
                continue
            try:
                run.answer(await loop.run_in_executor(executor, step.call))
            except Exception as exc:  # noqa: BLE001 - handed to the flow, which decides
                run.answer(error=exc)
    return run.result  # type: ignore[return-value]


def notify(callback: Callable[..., Any] | None, *args: Any) -> None:
    """Call a progress callback where the flow runs (on the loop for the async client); an
    awaitable it returns becomes a task of the running loop."""
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        asyncio.get_running_loop().create_task(result)  # type: ignore[arg-type]


def poll_until(
    probe: Callable[[], Flow[tuple[bool, T]]],
    *,
    timeout: float,
    first_delay: float,
    next_delay: Callable[[float, float, T], float],
    timed_out: Callable[[T], Exception],
) -> Flow[T]:
    """Wait `first_delay`, then ask `probe` (done?, answer) until it is done; between probes
    wait `next_delay(last delay, seconds elapsed, answer)`. Raises `timed_out(answer)` when the
    next probe would come after `timeout` seconds. The probe raises on a failure it sees."""
    started = time.monotonic()
    deadline = started + timeout
    delay = first_delay
    yield Sleep(min(delay, max(0.0, deadline - time.monotonic())))
    while True:
        done, answer = yield from probe()
        if done:
            return answer
        delay = next_delay(delay, time.monotonic() - started, answer)
        if time.monotonic() + delay > deadline:
            raise timed_out(answer)
        yield Sleep(delay)
