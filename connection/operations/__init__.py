"""The bot's CVAT operations, each declared once: its endpoints, then a flow over `CvatCore`,
grouped by resource (server, users, tasks, jobs).

`CvatClient` runs these flows blocking, `AsyncCvatClient` awaits them (see connection.client).
A POST is never re-sent blindly: the operations that POST (register, create task, guide,
upload) first look whether the effect already exists, and after an ambiguous failure look
again before reporting it. The operations only tests, the demo and the benchmark need (acting
as a candidate, exports, frames) live in sandbox/cvat_client.py.
"""
