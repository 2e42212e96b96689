"""The two faces of the CVAT client, generated from the operations declared once.

Each operation is a flow over `CvatCore` (connection.operations). `Op(flow)` makes it a method
of both clients: `CvatClient` runs it blocking in the caller's thread; `AsyncCvatClient` awaits
it, each HTTP exchange in a worker thread and each wait (a retry's backoff, polling CVAT's
processing) on the event loop, so no thread sleeps through a wait.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from connection.flow import Flow, run_async, run_blocking
from connection.http import CvatCore
from connection.operations import jobs, server, tasks, users

if TYPE_CHECKING:
    from config.env import Settings

P = ParamSpec("P")
R = TypeVar("R")


class Op(Generic[P, R]):
    """One operation as a method: blocking on a `CvatClient`, awaitable on an
    `AsyncCvatClient`, with the flow's own signature, defaults and docstring."""

    def __init__(self, flow: Callable[Concatenate[CvatCore, P], Flow[R]]) -> None:
        self.flow = flow
        self.__doc__ = flow.__doc__
        self.__name__ = flow.__name__

    @overload
    def __get__(self, obj: None, owner: type) -> Op[P, R]: ...

    @overload
    def __get__(self, obj: CvatClient, owner: type) -> Callable[P, R]: ...

    @overload
    def __get__(self, obj: AsyncCvatClient, owner: type) -> Callable[
        P, Coroutine[Any, Any, R]]: ...

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        return obj.bind(self.flow)


class ProductOperations:
    """The operations the bot uses, declared once for both clients."""

    about = Op(server.about)
    server_version = Op(server.server_version)
    whoami = Op(server.whoami)
    check_admin = Op(server.check_admin)
    verify_credentials = Op(users.verify_credentials)
    find_user = Op(users.find_user)
    get_user = Op(users.get_user)
    users_by_id = Op(users.users_by_id)
    register_user = Op(users.register_user)
    set_groups = Op(users.set_groups)
    update_user = Op(users.update_user)
    delete_user = Op(users.delete_user)
    find_tasks = Op(tasks.find_tasks)
    get_task = Op(tasks.get_task)
    create_task = Op(tasks.create_task)
    add_task_guide = Op(tasks.add_task_guide)
    delete_task = Op(tasks.delete_task)
    upload_images = Op(tasks.upload_images)
    attach_server_files = Op(tasks.attach_server_files)
    get_request = Op(tasks.get_request)
    wait_for_job = Op(tasks.wait_for_job)
    annotation_job = Op(jobs.annotation_job)
    list_jobs = Op(jobs.list_jobs)
    get_job = Op(jobs.get_job)
    jobs_by_id = Op(jobs.jobs_by_id)
    assign_job = Op(jobs.assign_job)
    get_job_annotations_raw = Op(jobs.get_job_annotations_raw)
    get_labels = Op(jobs.get_labels)
    get_job_meta = Op(jobs.get_job_meta)


class CvatClient(CvatCore, ProductOperations):
    """Blocking CVAT REST client acting as one account, with a token (see the package notes).
    For scripts and threads; the bot uses `AsyncCvatClient`."""

    def bind(self, flow: Callable[..., Flow[R]]) -> Callable[..., R]:
        """`flow` as a blocking method of this client."""

        @functools.wraps(flow)
        def method(*args: Any, **kwargs: Any) -> R:
            return run_blocking(flow(self, *args, **kwargs))

        return method

    def with_own_connections(self) -> Self:
        """The same account on connections of its own, sharing this client's sign-in: its
        calls never queue behind this one's, and the password is not sent again."""
        return self.sharing_sign_in()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCvatClient(ProductOperations):
    """The client for an event loop: every operation of `CvatClient`, awaited.

    Each HTTP exchange runs in a bounded thread pool; every wait runs on the loop. Progress
    callbacks are called on the loop (an awaitable they return becomes a task). Cancelling an
    awaiting coroutine stops the operation at its next step; an HTTP call already under way
    ends by its timeout.
    """

    def __init__(self, client: CvatCore, *, max_workers: int = 8) -> None:
        self.client = client
        self._executor = ThreadPoolExecutor(max_workers=max_workers,
                                            thread_name_prefix="cvat")

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        """Async client of the bot's admin account from its settings."""
        return cls(CvatClient.from_settings(settings, **kwargs))

    def bind(self, flow: Callable[..., Flow[R]]) -> Callable[..., Coroutine[Any, Any, R]]:
        """`flow` as a coroutine method of this client."""

        @functools.wraps(flow)
        async def method(*args: Any, **kwargs: Any) -> R:
            return await run_async(flow(self.client, *args, **kwargs), self._executor)

        return method

    def with_own_connections(self) -> Self:
        """The same account on threads and connections of its own, sharing the sign-in (see
        CvatClient.with_own_connections)."""
        return type(self)(self.client.sharing_sign_in())

    async def close(self) -> None:
        """Finish running calls, then close the pool and the connections."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
