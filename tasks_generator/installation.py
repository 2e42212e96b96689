"""This deployment's mark on CVAT: a random id kept in the database (migration 0006)."""

from __future__ import annotations

import secrets

from db import Cursor

MARK_BYTES = 5  # 10 hex digits: two deployments on one CVAT never draw the same


def installation_mark(cur: Cursor) -> str:
    """Inside a transaction: this database's mark, made the first time it is asked for (two
    processes asking at once agree on one)."""
    cur.execute("SELECT mark FROM installation")
    row = cur.fetchone()
    if row is None:
        cur.execute("INSERT INTO installation (mark) VALUES (%s) ON CONFLICT DO NOTHING",
                    (secrets.token_hex(MARK_BYTES),))
        cur.execute("SELECT mark FROM installation")
        row = cur.fetchone()
    return str(row["mark"])
