"""What a real CVAT spends on the bot's requests, for the stand-in to charge (off by default).

A real CVAT 2.73 (one uvicorn process, so one core's worth of Python for every request, and RQ
workers beside it) spends most of a Basic-authenticated request in Django's password hasher:
PBKDF2 with a million rounds, whatever the endpoint. A request with a token skips it. Task data
is processed by one import worker, one task after another. The stand-in charges these costs as
time on a shared budget of cores (a request waits for a free core, then holds it for its cost),
so concurrent requests queue as they do on the real server, and it adds up what it charged, so
a benchmark can read "CVAT CPU" off it.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass, field

# Measured on a real CVAT 2.73 on loopback on this project's 2-core machine (../shared/realcvat,
# medians of repeated requests, CPU read from the server's processes): a token-authenticated
# request costs 20-40 ms of server CPU, a few more; PBKDF2 200-450 ms depending on how busy the
# machine is; 12 small images are processed in about 0.2-0.3 s.
MEASURED_PASSWORD_HASH = 0.22
MEASURED_REQUEST = 0.025
MEASURED_ANONYMOUS = 0.005
MEASURED_PROCESSING = 0.22
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
    server_cores: int = 1  # requests queue for these (one uvicorn process: one GIL)
    import_workers: int | None = None  # task processing one after another on this many
    # workers; None: every task at once, as before the model
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
                   import_workers=1)

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
    by kind ("hashing", "requests", "import")."""

    def __init__(self, cores: int) -> None:
        self._cores = asyncio.Semaphore(max(1, cores))
        self.spent: defaultdict[str, float] = defaultdict(float)

    async def spend(self, **seconds: float) -> None:
        """Hold a core (after waiting for one) for the seconds of each kind of work, one after
        another, and count them."""
        total = sum(seconds.values())
        if total <= 0:
            return
        async with self._cores:
            await asyncio.sleep(total)
        for kind, amount in seconds.items():
            self.spent[kind] += amount

    def count(self, seconds: float, kind: str) -> None:
        """Count work done elsewhere (a worker's) without holding a core."""
        self.spent[kind] += seconds

    @property
    def total(self) -> float:
        """Every second charged so far."""
        return sum(self.spent.values())
