"""CVAT REST client: a token signed in for once, no cookies, bounded retries, typed results.

Built from declarations: every CVAT operation is declared once (connection/operations/: its
`Endpoint`s and a flow over the request core), and both clients are generated from them:
`CvatClient` runs an operation blocking; `AsyncCvatClient` awaits it, with each HTTP exchange
in a worker thread and each wait (backoff, polling CVAT's processing) on the event loop. Both
work with CVAT 2.3 ... 2.73: the server version is read once and used where the API differs
(user lookup, waiting for task data, rq_id).

Authentication: CVAT runs its password hasher (PBKDF2, a million rounds: 0.2-0.45 s of server
CPU) on every request that carries HTTP Basic, whatever the endpoint. So the client signs in once
(`POST /api/auth/login` -> `Authorization: Token <key>`), keeps the token in memory only, shares
it with every client of the same account (`with_own_connections`), and signs in again when CVAT
answers 401 (the token is deleted by any logout of that account). Personal access tokens (2.48+)
do not fit: CVAT refuses them for changing and deleting users, even for a superuser.

Retries: only idempotent calls (GET, PUT, DELETE, PATCH with absolute values, and the sign-in)
are re-sent, on connection errors, timeouts, 502/503/504 and 429. A POST is never re-sent
blindly: the operations that POST (register, create task, guide, upload) first look whether the
effect already exists, and after an ambiguous failure look again before reporting it.

Package layout: errors, models (typed answers, version gates), flow (steps, the two runners,
polling), http (Endpoint, the request core), operations/ (the bot's operations by resource:
server, users, tasks, jobs), client (the two clients). The operations only tests, the demo
and the benchmark use are in sandbox/cvat_client.py.
"""

from connection.client import AsyncCvatClient, CvatClient, Op, ProductOperations
from connection.errors import (
    CvatAuthError,
    CvatError,
    CvatForbidden,
    CvatMisconfigured,
    CvatNotFound,
    CvatRejected,
    CvatResponseTooLarge,
    CvatTaskProcessingError,
    CvatUnavailable,
)
from connection.http import MEDIA_TYPE, CvatCore, CvatSignIn, Endpoint
from connection.models import (
    CLOCK_SLACK,
    DEFAULT_LABELS,
    CvatJob,
    CvatTask,
    CvatUser,
    CvatVersion,
    made_since,
    task_create_rq_id,
)
from connection.operations.tasks import FIRST_POLL, FractionCallback, ProgressCallback

__all__ = [
    "CLOCK_SLACK",
    "DEFAULT_LABELS",
    "FIRST_POLL",
    "MEDIA_TYPE",
    "AsyncCvatClient",
    "CvatAuthError",
    "CvatClient",
    "CvatCore",
    "CvatError",
    "CvatForbidden",
    "CvatJob",
    "CvatMisconfigured",
    "CvatNotFound",
    "CvatRejected",
    "CvatResponseTooLarge",
    "CvatSignIn",
    "CvatTask",
    "CvatTaskProcessingError",
    "CvatUnavailable",
    "CvatUser",
    "CvatVersion",
    "Endpoint",
    "FractionCallback",
    "Op",
    "ProductOperations",
    "ProgressCallback",
    "made_since",
    "task_create_rq_id",
]
