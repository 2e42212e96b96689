"""What a real CVAT spends on the bot's requests, for the stand-in to charge (off by default).

A real CVAT 2.73 (one uvicorn process, so one core's worth of Python for every request, and RQ
workers beside it) spends most of a Basic-authenticated request in Django's password hasher:
PBKDF2 with a million rounds, whatever the endpoint. A request with a token skips it. The hasher
is C code that lets go of Python's lock, so hashings run on the machine's cores beside the
requests' Python. Task data is processed by one import worker, one task after another. The
stand-in charges these costs as time on shared budgets of cores (work waits for a free core,
then holds it for its cost), so concurrent requests queue as they do on the real server, and it
adds up what it charged, so a benchmark can read "CVAT CPU" off it.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass, field

# Measured on a real CVAT 2.73 on loopback on this project's 2-core machine (../shared/realcvat,
# medians of repeated requests, CPU read from the server's processes): a token-authenticated
# request costs 20-40 ms of server CPU, a few more; PBKDF2 200-450 ms depending on how busy the
# machine is; 12 small images are processed in about 0.2 s, their progress left at 0 meanwhile.
MEASURED_PASSWORD_HASH = 0.22
MEASURED_REQUEST = 0.022
MEASURED_ANONYMOUS = 0.005
MEASURED_PROCESSING = 0.17
MEASURED_EXTRA = (
    ("PATCH", r"^/api/jobs/\d+$", 0.035),  # the job, its task and OPA's rules
    ("DELETE", r"^/api/tasks/\d+", 0.035),
    ("GET", r"^/api/jobs$", 0.01),
    ("POST", r"^/api/tasks$", 0.01),
)


@dataclass(frozen=True)
class CvatCosts:
    """Seconds of server CPU the stand-in charges; all zero by default (tests stay fast)."""

    password_hash: float = 0.0  # HTTP Basic on every request; signing in; registering
    request: float = 0.0  # the rest of any authenticated request
    anonymous: float = 0.0  # a request without credentials (/api/server/about)
    extra: tuple[tuple[str, str, float], ...] = ()  # (method, path regex, seconds) on top
    server_cores: int = 1  # requests' Python queues for these (one uvicorn process: one GIL)
    hash_cores: int = 2  # password hashing queues for these (the machine's cores)
    import_workers: int | None = None  # task processing one after another on this many
    # workers; None: every task at once, as before the model
    progress: bool = True  # processing reports its progress (CVAT 2.73 leaves it at 0 for a
    # task of a few images)
    _extra_re: tuple[tuple[str, re.Pattern[str], float], ...] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple((m, re.compile(p), s) for m, p, s in self.extra)
        object.__setattr__(self, "_extra_re", compiled)

    @classmethod
    def measured(cls) -> CvatCosts:
        """A real CVAT 2.73 on a 2-core machine (see the module's notes)."""
        return cls(password_hash=MEASURED_PASSWORD_HASH, request=MEASURED_REQUEST,
                   anonymous=MEASURED_ANONYMOUS, extra=MEASURED_EXTRA, server_cores=1,
                   hash_cores=2, import_workers=1, progress=False)

    @property
    def free(self) -> bool:
        """Nothing is charged."""
        return not (self.password_hash or self.request or self.anonymous or self.extra)

    def of_request(self, method: str, path: str, scheme: str | None) -> tuple[float, float]:
        """(password hashing, other work) a request costs; `scheme` is its Authorization
        scheme in lower case ("basic", "token", ...), or None without credentials."""
        path = path.rstrip("/") or "/"
        hashing = self.password_hash if scheme == "basic" else 0.0
        if path in ("/api/auth/login", "/api/auth/register") and method == "POST":
            hashing += self.password_hash  # checking, or setting, the password
            work = self.request
        elif scheme is None and path == "/api/server/about":
            work = self.anonymous
        else:
            work = self.request
        work += sum(s for m, p, s in self._extra_re if m == method and p.search(path))
        return hashing, work


class CpuBudget:
    """A server's cores: work waits for a free one, holds it for what it costs, and is added up
    by kind ("hashing", "requests", "import"). Hashing has cores of its own (`hash_cores`)."""

    def __init__(self, cores: int, hash_cores: int = 1) -> None:
        self._cores = asyncio.Semaphore(max(1, cores))
        self._hash_cores = asyncio.Semaphore(max(1, hash_cores))
        self.spent: defaultdict[str, float] = defaultdict(float)

    async def spend(self, hashing: float = 0.0, requests: float = 0.0) -> None:
        """A request's work: its password hashing on a hashing core, then the rest on a
        server core (each after waiting for a free one), counted."""
        for seconds, cores, kind in ((hashing, self._hash_cores, "hashing"),
                                     (requests, self._cores, "requests")):
            if seconds > 0:
                async with cores:
                    await asyncio.sleep(seconds)
                self.spent[kind] += seconds

    def count(self, seconds: float, kind: str) -> None:
        """Count work done elsewhere (a worker's) without holding a core."""
        self.spent[kind] += seconds

    @property
    def total(self) -> float:
        """Every second charged so far."""
        return sum(self.spent.values())
