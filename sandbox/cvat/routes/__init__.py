"""The CVAT stand-in's REST API, one module per resource; `add_routes` mounts them all.

- `auth`: /api/server/about, /api/auth/*;  `users`: /api/users;
- `tasks`: /api/tasks and /api/labels;  `data`: a task's data upload and creation status;
- `frames`: a task's or a job's media meta and frames;  `jobs`: /api/jobs;
- `annotations`: a job's or a task's annotations;  `exports`: dataset exports, downloads;
- `guides`: /api/guides;  `requests`: /api/requests.
"""

from aiohttp import web

from . import annotations, auth, data, exports, frames, guides, jobs, requests, tasks, users

__all__ = ["add_routes"]

RESOURCES = (auth, users, tasks, data, frames, annotations, exports, jobs, guides, requests)


def add_routes(app: web.Application) -> None:
    """Mount every resource's routes on the application."""
    for resource in RESOURCES:
        app.add_routes(resource.routes)
