"""What the bot costs a CVAT, measured the same way for the stand-in and a real server: a
counting proxy between the bot and CVAT (every request the bot sends, with its answer's status
and time), and CVAT's CPU (the stand-in's charged cost model, or a real server's processes read
from /proc when they run on this machine)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import psutil
from aiohttp import web

from sandbox.cvat import CvatServer

# Headers that describe one hop's connection, not the request (RFC 9110, 7.6.1); aiohttp sets
# its own Content-Length and decompresses bodies, so those go too.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-authenticate",
                          "proxy-authorization", "te", "trailer", "transfer-encoding",
                          "upgrade", "host", "content-length", "content-encoding"})
CpuReader = Callable[[], Awaitable[float | None]]


@dataclass(frozen=True)
class Call:
    """One request the bot sent to CVAT."""

    method: str
    path: str
    status: int
    started: float
    ended: float


class CountingProxy:
    """A plain HTTP proxy on loopback in front of one CVAT that records every call through it
    (the bot's; a candidate's own calls go to CVAT directly)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.calls: list[Call] = []
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on a free port; the proxy's address."""
        self._client = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                             auto_decompress=True)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        started = time.monotonic()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["Host"] = urlsplit(self.target).netloc
        body = await request.read()
        status = 0
        try:
            async with self._client.request(
                    request.method, self.target + request.path_qs, headers=headers,
                    data=body or None, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=600)) as answer:
                content = await answer.read()
                status = answer.status
                out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
                return web.Response(status=status, body=content, headers=out)
        finally:
            self.calls.append(Call(request.method, request.path, status, started,
                                   time.monotonic()))

    def since(self, mark: int) -> list[Call]:
        """The calls after `mark` (a length of `calls` taken earlier)."""
        return self.calls[mark:]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()


def process_tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system, reaped children included) of these processes and all their
    descendants so far, as ../shared/realcvat/cvat_cpu.sh reads them."""
    seen: set[int] = set()
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for process in (root, *root.children(recursive=True)):
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                with contextlib.suppress(psutil.Error):
                    t = process.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
    return total


def pids_from_file(path: Path) -> list[int]:
    """The pids in a realcvat-style pids file (lines of `name pid starttime`)."""
    pids = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            pids.append(int(parts[1]))
    return pids


def real_cpu_reader(pids_file: Path | None) -> CpuReader:
    """CVAT's CPU seconds so far from its processes on this machine (None without a pids
    file: CVAT runs elsewhere)."""

    def read_now() -> float | None:
        if pids_file is None or not pids_file.is_file():
            return None
        return process_tree_cpu(pids_from_file(pids_file))

    async def read() -> float | None:
        return await asyncio.to_thread(read_now)

    return read


def standin_cpu_reader(server: CvatServer) -> CpuReader:
    """What the stand-in's cost model charged so far."""

    async def read() -> float | None:
        return server.cpu_seconds

    return read
