"""A faithful in-memory CVAT 2.73 stand-in (aiohttp) for the bot's tests.

Start it in-process::

    server = CvatServer(admin=("admin", "Adm1n-Passw0rd"), version="2.73.0", validate_schema=False)
    await server.start(host="127.0.0.1", port=0)   # server.base_url -> "http://127.0.0.1:PORT"
    ...
    await server.stop()

or from synchronous code: ``url = server.start_in_thread()`` ... ``server.stop_thread()``;
or as ``python -m sandbox.cvat --host 127.0.0.1 --port PORT --admin USER:PASSWORD
[--latency 0.1] [--processing-time 2] [--version 2.73.0] [--share-dir DIR] [--validate-schema]
[--measured-costs]``.

Constructor keywords (all also attributes, changeable while running):
    admin (superuser, groups ["admin"]), version ("2.73.0"; "2.3.0" = old mode),
    validate_schema (openapi-core middleware; violations in ``schema_violations``),
    latency (seconds added to each call), processing_time (seconds task creation takes),
    error_rate (fraction of calls answering 500/502/503) + seed, share_dir (server_files root),
    request_ttl (seconds a finished creation request stays visible; CVAT: 500),
    costs (``CvatCosts``: server CPU charged per request on a shared budget of cores, Basic
    authentication's password hashing, one import worker taking tasks one after another; free by
    default, ``CvatCosts.measured()`` = a real CVAT 2.73; ``server.cpu_seconds`` adds it up).

Knobs:
    ``server.fail_next(method, path_regex, status=503, count=1, drop=False, hang=False,
    after=False, body=None)`` (method "*" matches any; regex searched in path+query; drop closes
    the connection without an answer; hang never answers until the client gives up; after=True
    runs the call first, then replaces its answer; body answers that JSON with `status`),
    ``server.clear_faults()``,
    ``server.empty_task_failure = True`` (processing "finishes" but the task stays empty).

State for assertions:
    ``server.request_log`` (list of (method, path, status, username|None); path without query;
    status 0 for dropped/hung calls), ``server.schema_violations`` (list of (method, path,
    message)), ``server.users_by_name(name)`` (User or None), ``server.users`` / ``server.tasks``
    / ``server.jobs`` / ``server.requests`` (dicts by id), ``server.annotations(job_id)`` (as GET
    /api/jobs/{id}/annotations returns it), ``server.add_user(username, password, groups=[...],
    is_superuser=False, is_staff=False)`` to seed accounts directly.
"""

from .costs import CvatCosts
from .server import ApiError, CvatServer

__all__ = ["ApiError", "CvatCosts", "CvatServer"]
