"""PostgreSQL: a small thread-backed pool that survives server restarts, migrations, and an
embedded real PostgreSQL server for when no DATABASE_URL is given.

Every blocking psycopg2 call runs in this module's own thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from log import register_secret

logger = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_ID = 7_240_311_001  # pg_advisory lock key for migrations
_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


class Cursor(psycopg2.extras.RealDictCursor):
    """Rows as dicts; counts the statements it sends (Database.statements adds them up)."""

    sent = 0

    def execute(self, query: Any, vars: Any = None) -> None:
        """Send one statement."""
        self.sent += 1
        super().execute(query, vars)


class DatabaseUnavailable(Exception):
    """The database server cannot be reached right now (it may be restarting)."""


class Database:
    """Async facade over psycopg2: a bounded pool, a thread per call, reconnects after restarts.

    A call that meets a dead connection drops every idle connection (a failure almost always
    means the server restarted, so they are all dead) and is retried with backoff. Each call is
    one transaction, so a connection lost before COMMIT leaves nothing behind and the retry is
    safe; the SQL in this project is written to be idempotent for the rare lost-COMMIT case.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_connections: int = 8,
        retry_delays: tuple[float, ...] = (0.1, 0.3, 0.7, 1.5, 3.0),
        connect_timeout: int = 5,
    ) -> None:
        self.dsn = dsn
        self.max_connections = max_connections
        self.retry_delays = retry_delays
        self.connect_timeout = connect_timeout
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._executor = ThreadPoolExecutor(max_connections, thread_name_prefix="db")
        self._closed = False
        self._statements = 0

    # --- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg2.extensions.connection:
        try:
            conn = psycopg2.connect(
                self.dsn,
                connect_timeout=self.connect_timeout,
                application_name="candidate-test-bot",
                # TCP keepalives let a half-dead connection fail instead of hanging.
                keepalives=1, keepalives_idle=30, keepalives_interval=5, keepalives_count=3,
            )
        except psycopg2.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc
        conn.autocommit = False
        return conn

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg2.extensions.connection]:
        self._slots.acquire()
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            healthy = False
            try:
                yield conn
                healthy = not conn.closed
            finally:
                if healthy and not self._closed:
                    with self._lock:
                        self._idle.append(conn)
                else:
                    with contextlib.suppress(Exception):
                        conn.close()
        finally:
            self._slots.release()

    # --- running work ------------------------------------------------------------------------

    def run_sync(self, work: Callable[[Cursor], T], *, retry: bool = True,
                 one_statement: bool = False) -> T:
        """Run work(cursor) in one transaction on this thread, retrying on a lost connection.
        With `one_statement` (work sends a single statement) the statement runs in autocommit
        mode, its own transaction all the same, without the BEGIN and COMMIT round trips."""
        delays = self.retry_delays if retry else ()
        attempt = 0
        while True:
            try:
                with self._connection() as conn:
                    conn.autocommit = one_statement
                    try:
                        with conn.cursor(cursor_factory=Cursor) as cur:
                            try:
                                result = work(cur)
                            finally:
                                self.count_statements(cur.sent)
                        conn.commit()
                        return result
                    except _CONNECTION_ERRORS:
                        with contextlib.suppress(Exception):
                            conn.close()
                        raise
                    except BaseException:
                        with contextlib.suppress(Exception):
                            conn.rollback()
                        raise
            except (*_CONNECTION_ERRORS, DatabaseUnavailable) as exc:
                self._drop_idle()
                if attempt >= len(delays) or self._closed:
                    raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
                logger.warning("database connection lost (%s); retrying", _first_line(exc))
                time.sleep(delays[attempt])
                attempt += 1

    @property
    def statements(self) -> int:
        """Statements sent to the server since this object was made (every process keeps its
        own count): what a piece of work costs the database, e.g. a flood of updates."""
        return self._statements

    def count_statements(self, number: int) -> None:
        """Add statements sent outside run_sync (the advisory-lock connections)."""
        with self._lock:
            self._statements += number

    async def run(self, work: Callable[[Cursor], T], *, retry: bool = True,
                  one_statement: bool = False) -> T:
        """Run work(cursor) in one transaction in the database thread pool (`one_statement`:
        see run_sync)."""
        if self._closed:
            raise DatabaseUnavailable("database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self.run_sync(work, retry=retry, one_statement=one_statement))

    async def execute(self, sql: str, params: Any = None) -> int:
        """Run one statement; return the number of rows it touched."""

        def work(cur: Cursor) -> int:
            cur.execute(sql, params)
            return cur.rowcount

        return await self.run(work, one_statement=True)

    async def fetchone(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        """Run one statement and return its first row as a dict, or None."""

        def work(cur: Cursor) -> dict[str, Any] | None:
            cur.execute(sql, params)
            row = cur.fetchone()
            return dict(row) if row is not None else None

        return await self.run(work, one_statement=True)

    async def fetchall(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Run one statement and return all rows as dicts."""

        def work(cur: Cursor) -> list[dict[str, Any]]:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()]

        return await self.run(work, one_statement=True)

    async def fetchval(self, sql: str, params: Any = None) -> Any:
        """Run one statement and return the first column of its first row, or None."""
        row = await self.fetchone(sql, params)
        return next(iter(row.values())) if row else None

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the server answers."""
        await self.fetchval("SELECT 1")

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the versions applied now."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: migrate(self.dsn))

    async def close(self) -> None:
        """Close every connection and the thread pool."""
        self._closed = True
        self._drop_idle()
        self._executor.shutdown(wait=False, cancel_futures=True)


class AdvisoryLocks:
    """PostgreSQL session-level advisory locks, each held while something runs.

    A free lock is taken on one dedicated connection with pg_try_advisory_lock: one round trip,
    no waiting. A lock another process holds is waited for inside PostgreSQL: pg_advisory_lock,
    on a connection of its own, returns when the holder releases it, or when the holder's
    session ends (a crashed process releases its locks at once). Nothing polls. Session locks
    are re-entrant, so the caller must not ask for one key twice at once within a process.
    Every statement counts in the Database's `statements`.
    """

    IDLE_WAITERS = 4  # connections kept open for the next wait

    def __init__(self, db: Database, *, max_waiting: int = 16) -> None:
        self._db = db
        self._main: psycopg2.extensions.connection | None = None
        self._main_thread = ThreadPoolExecutor(1, thread_name_prefix="db-locks")
        self._waiting = ThreadPoolExecutor(max_waiting, thread_name_prefix="db-lock-wait")
        self._idle: list[psycopg2.extensions.connection] = []
        self._idle_lock = threading.Lock()

    def _connect(self) -> psycopg2.extensions.connection:
        conn = self._db._connect()
        conn.autocommit = True  # session locks, no transaction left open
        return conn

    def _ask(self, conn: psycopg2.extensions.connection, sql: str, key: int) -> Any:
        try:
            with conn.cursor() as cur:
                cur.execute(sql, (key,))
                row = cur.fetchone()
        except _CONNECTION_ERRORS as exc:
            with contextlib.suppress(Exception):
                conn.close()
            raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
        finally:
            self._db.count_statements(1)
        return row[0] if row else None

    def _on_main(self, sql: str, key: int) -> Any:
        if self._main is None or self._main.closed:
            if self._main is not None:
                logger.warning("the advisory-lock connection was lost; locks taken through it "
                               "were released by the server")
            self._main = self._connect()
        return self._ask(self._main, sql, key)

    def _waiter(self) -> psycopg2.extensions.connection:
        with self._idle_lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return self._connect()

    def _give_back(self, conn: psycopg2.extensions.connection) -> None:
        with self._idle_lock:
            if not conn.closed and len(self._idle) < self.IDLE_WAITERS:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.close()

    async def _wait_for(self, key: int) -> psycopg2.extensions.connection:
        """A connection whose session now holds the lock (after waiting inside PostgreSQL)."""
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(self._waiting, self._waiter)
        waiting = loop.run_in_executor(self._waiting, self._ask, conn,
                                       "SELECT pg_advisory_lock(%s)", key)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # End the wait inside PostgreSQL; closing the session drops the lock if the wait
            # ended in it anyway.
            await asyncio.to_thread(conn.cancel)
            with contextlib.suppress(Exception):
                await waiting
            await asyncio.to_thread(conn.close)
            raise
        return conn

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        """Hold the lock `key` (a signed 64-bit number) for the body, waiting for it if needed."""
        if self._db._closed:
            raise DatabaseUnavailable("database is closed")
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._main_thread, self._on_main,
                                      "SELECT pg_try_advisory_lock(%s)", key):
            try:
                yield
            finally:
                try:
                    await loop.run_in_executor(self._main_thread, self._on_main,
                                               "SELECT pg_advisory_unlock(%s)", key)
                except DatabaseUnavailable as exc:
                    logger.warning("advisory lock %s not released (its session is gone): %s",
                                   key, exc)
            return
        conn = await self._wait_for(key)
        try:
            yield
        finally:
            try:
                await loop.run_in_executor(self._waiting, self._ask, conn,
                                           "SELECT pg_advisory_unlock(%s)", key)
                self._give_back(conn)
            except DatabaseUnavailable as exc:
                logger.warning("advisory lock %s not released (its session is gone): %s",
                               key, exc)

    async def close(self) -> None:
        """Close every connection (which releases any lock still held) and the threads."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in [*idle, *([self._main] if self._main is not None else [])]:
            with contextlib.suppress(Exception):
                conn.close()
        self._main = None
        self._main_thread.shutdown(wait=False, cancel_futures=True)
        self._waiting.shutdown(wait=False, cancel_futures=True)


def lock_key(name: str) -> int:
    """A 64-bit advisory-lock key for a name (a hash: names need no registry)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- migrations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file in migrations/."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's text, to notice an applied migration edited afterwards."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations in order of their number (files named NNNN_name.sql)."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if not version.isdigit():
            raise ValueError(f"migration file {path.name} must start with a number")
        found.append(Migration(version, name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {directory}")
    return found


def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations under an advisory lock: safe twice and from many processes."""
    applied_now: list[str] = []
    conn = psycopg2.connect(dsn, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            # One transaction: the lock is held until COMMIT, so a second process waits here
            # and then sees every migration as applied.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version, checksum FROM schema_migrations")
            done = dict(cur.fetchall())
            for migration in load_migrations(directory):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        logger.warning(
                            "migration %s_%s changed after it was applied; not re-applied",
                            migration.version, migration.name,
                        )
                    continue
                logger.info("applying migration %s_%s", migration.version, migration.name)
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration.version)
    finally:
        conn.close()
    return applied_now


# --- the embedded server -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As PostgreSQL binds: a port whose old connections linger in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _postgres_install_dir() -> Path:
    """PostgreSQL as shipped in the pgserver wheel (bin/, lib/, share/), found without importing
    it: its import has side effects we do not need."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver package is not installed: run ./run.sh once to set up")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


# Where a server started by root keeps its cluster when DATA_DIR lies in a folder its own user
# cannot pass through (a clone under /root, a `mktemp -d` folder): one folder per DATA_DIR.
SERVER_HOMES = Path("/var/lib/candidate-bot")
_INSTALL_PARTS = ("bin", "lib", "share")
_INSTALL_IN_WHEEL = Path("pgserver") / "pginstall"  # the copy keeps the wheel's layout
_COPY = "postgres-binaries"


def reachable_temp_dir(prefix: str) -> Path:
    """A new temporary folder for an embedded server (tests, demo, benchmark): mode 0711, so that
    a server run as its own user when we are root can pass through it. The folder is ours, made
    just now; no other folder's mode is touched."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    return folder


def _write_new_file(path: Path, text: str, owner: str | None = None) -> None:
    """Create a file that must not exist yet, readable by its owner only from the first byte."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        if owner is not None:
            shutil.chown(path, owner, owner)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _copy_readable(source: str, target: str) -> None:
    """Copy one file of the PostgreSQL install so that any user can read it (and run it, if it
    is a program): the copy exists for a user who could not reach the original."""
    shutil.copyfile(source, target)
    executable = os.stat(source).st_mode & 0o111
    os.chmod(target, 0o755 if executable else 0o644)


class EmbeddedPostgres:
    """A real PostgreSQL server (binaries from the pgserver wheel) with its data in a folder.

    It listens on 127.0.0.1 only, with a random password kept in the folder, on a port that is
    remembered so a restart comes back at the same address. Start and stop are guarded by a file
    lock, so two processes sharing the folder never start two servers.

    Run as root, the server runs as the system user `pgserver`, which must reach its binaries
    and its cluster. Nothing's mode is changed for that: where the wheel's binaries are out of
    its reach (the project under /root or in a 0700 folder), the server gets a copy of them
    beside its cluster; where DATA_DIR itself is out of its reach, the cluster lives in a folder
    of its own under SERVER_HOMES, named in DATA_DIR/postgres/server_home.
    """

    SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root

    def __init__(self, data_dir: Path, database: str = "candidate_bot") -> None:
        self.root = Path(data_dir).resolve() / "postgres"
        self.database = database
        self._user = self._system_user()

    # ---- helpers
    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        import pwd

        try:
            pwd.getpwnam(self.SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 self.SYSTEM_USER], check=True, capture_output=True,
            )
        return self.SYSTEM_USER

    @property
    def home(self) -> Path:
        """The folder of the cluster (pgdata/), the server's log and, if needed, its binaries:
        DATA_DIR/postgres, or the server's own folder named in DATA_DIR/postgres/server_home."""
        pointer = self.root / "server_home"
        return Path(pointer.read_text().strip()) if pointer.is_file() else self.root

    @property
    def pgdata(self) -> Path:
        """The cluster's folder."""
        return self.home / "pgdata"

    @property
    def bin(self) -> Path:
        """The binaries the server runs: its own copy when it has one, else the wheel's."""
        copy = self.home / _COPY / _INSTALL_IN_WHEEL / "bin"
        return copy if copy.is_dir() else _postgres_install_dir() / "bin"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]], check=False, capture_output=True, text=True,
            timeout=timeout, cwd="/", **self._as_user(),
        )

    def _as_user(self) -> dict[str, Any]:
        # uid, gid and groups all switched: with root's groups kept, file checks misbehave.
        if self._user is None:
            return {}
        return {"user": self._user, "group": self._user, "extra_groups": []}

    def _server_can(self, test: str, path: Path) -> bool:
        """Whether the server's own user passes `test -<test> path` (every folder on the way
        must let it through); always true when we are not root."""
        if self._user is None:
            return True
        return subprocess.run(["test", f"-{test}", str(path)], check=False, cwd="/",
                              **self._as_user()).returncode == 0

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            shutil.chown(path, self._user, self._user)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "server.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def password(self) -> str:
        """The superuser password, made at initdb time."""
        return (self.root / "password").read_text().strip()

    @property
    def port(self) -> int:
        """The port the server listens on (remembered across restarts)."""
        return int((self.root / "port").read_text())

    def url(self, database: str | None = None) -> str:
        """A libpq URL for a database on this server."""
        return (f"postgresql://postgres:{quote(self.password, safe='')}@127.0.0.1:{self.port}/"
                f"{database or self.database}")

    # ---- where the server's files go (root only)
    def _choose_home(self) -> None:
        """Before the first initdb as root: keep the cluster in DATA_DIR/postgres if the server's
        user can pass every folder above it, else give it a folder of its own (recorded)."""
        if self._user is None or (self.root / "server_home").is_file():
            return
        if self._server_can("x", self.root.parent):
            self._chown(self.root)
            return
        if (self.root / "pgdata" / "PG_VERSION").exists():
            raise RuntimeError(
                f"the embedded PostgreSQL runs as user {self._user}, which cannot reach its "
                f"cluster in {self.root}: let it pass through the folders above "
                f"(e.g. chmod o+x), or move DATA_DIR; the bot changes no folder's mode itself")
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        if not SERVER_HOMES.exists():
            SERVER_HOMES.mkdir(parents=True)
            SERVER_HOMES.chmod(0o755)  # made by us just now, whatever the umask
        home = SERVER_HOMES / digest
        home.mkdir(mode=0o700, exist_ok=True)
        self._chown(home)
        if not self._server_can("w", home):
            raise RuntimeError(
                f"the embedded PostgreSQL runs as user {self._user} and cannot reach {home}: "
                f"let {self._user} pass through {SERVER_HOMES} and the folders above it, or set "
                "DATABASE_URL to a server of your own")
        (self.root / "server_home").write_text(f"{home}\n")
        logger.info("DATA_DIR %s is out of reach of user %s: the cluster lives in %s",
                    self.root.parent, self._user, home)

    def _provide_binaries(self) -> None:
        """As root, when the wheel's binaries are out of the server user's reach: copy them
        (bin/, lib/, share/, and the wheel's own shared libraries, which the programs find
        relative to themselves) into the server's folder; again after the wheel changed."""
        source = _postgres_install_dir()
        copy = self.home / _COPY
        if self._user is None or self._server_can("x", source / "bin" / "postgres"):
            if copy.exists():
                shutil.rmtree(copy)  # the wheel is reachable now: no stale copy to run
            return
        stamp = f"{source}\n{(source / 'bin' / 'postgres').stat().st_mtime_ns}\n"
        if (copy / ".source").is_file() and (copy / ".source").read_text() == stamp:
            return
        if copy.exists():
            shutil.rmtree(copy)
        wheel_libs = source.parent.parent / "pgserver.libs"
        for part, target in [*((source / p, copy / _INSTALL_IN_WHEEL / p) for p in _INSTALL_PARTS),
                             (wheel_libs, copy / "pgserver.libs")]:
            if part.is_dir():
                shutil.copytree(part, target, symlinks=True, copy_function=_copy_readable)
        for folder in [copy, *(p for p in copy.rglob("*") if p.is_dir() and not p.is_symlink())]:
            folder.chmod(0o755)  # copytree copies the folders' modes, which may be 0700
        (copy / ".source").write_text(stamp)
        logger.info("PostgreSQL binaries copied to %s, where user %s can run them", copy,
                    self._user)

    # ---- life cycle
    def _init(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted initdb
        password_file = self.root / "password"
        if password_file.exists():  # an earlier initdb was interrupted: keep its password
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(24)
            _write_new_file(password_file, password)
        # initdb reads the password from a file of the server's own, deleted right after.
        pwfile = self.home / f"initdb-{secrets.token_hex(4)}.pw"
        _write_new_file(pwfile, password, owner=self._user)
        try:
            result = self._run(
                "initdb", "-D", str(self.pgdata), "-U", "postgres", "--pwfile", str(pwfile),
                "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
            )
        finally:
            pwfile.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def _running_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return None
        return pid

    def start(self) -> str:
        """Initialise (first time) and start the server if needed; return the database URL."""
        with self._file_lock():
            self._choose_home()
            running = self._running_pid() is not None
            if not running:
                self._provide_binaries()
            self._init()
            register_secret(self.password)
            if not running:
                port_file = self.root / "port"
                port = int(port_file.read_text()) if port_file.exists() else 0
                if not port or not _port_is_free(port):
                    port = free_port()
                port_file.write_text(str(port))
                log_file = self.home / "server.log"  # written by the server's own user
                result = self._run(
                    "pg_ctl", "-D", str(self.pgdata), "-l", str(log_file), "-w", "-t", "60",
                    "-o", f"-h 127.0.0.1 -p {port} -k '' -c max_connections=200", "start",
                    timeout=90,
                )
                if result.returncode != 0:
                    tail = log_file.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"embedded PostgreSQL did not start:\n{tail}")
                logger.info("embedded PostgreSQL started on 127.0.0.1:%s (%s)", port, self.pgdata)
            self._ensure_database(self.database)
        return self.url()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended)."""
        with self._file_lock():
            if self._running_pid() is None:
                return
            result = self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
            if result.returncode != 0:
                raise RuntimeError(f"embedded PostgreSQL did not stop: {result.stderr.strip()}")
            logger.info("embedded PostgreSQL stopped")

    def remove(self) -> None:
        """Stop the server and delete everything it kept (for temporary servers: tests, the
        demo, the benchmark)."""
        self.stop()
        home = self.home
        if home != self.root:
            shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._running_pid() is not None

    def _ensure_database(self, name: str) -> None:
        conn = psycopg2.connect(self.url("postgres"), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                        cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()


def database_url_for(settings: Any) -> tuple[str, EmbeddedPostgres | None]:
    """The URL from the settings, or an embedded server's (started if needed)."""
    if settings.database_url:
        return settings.database_url, None
    server = EmbeddedPostgres(settings.data_dir)
    return server.start(), server


def _main() -> None:
    """`python -m db migrate|url|start|stop`: operate the database by hand."""
    import argparse
    import sys

    from config.env import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog="python -m db", description=_main.__doc__)
    parser.add_argument("command", choices=["migrate", "start", "stop", "status"])
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.database_url:
        url = args.database_url
        if args.command == "migrate":
            print("applied:", ", ".join(migrate(url)) or "nothing (up to date)")
        return
    try:
        data_dir = load_settings().data_dir
    except SettingsError:
        data_dir = Path(os.environ.get("DATA_DIR", "data"))
    server = EmbeddedPostgres(data_dir)
    if args.command == "stop":
        server.stop()
    elif args.command == "status":
        print("running" if server.running else "stopped")
        sys.exit(0 if server.running else 3)
    else:
        url = server.start()
        if args.command == "migrate":
            print("applied:", ", ".join(migrate(url)) or "nothing (up to date)")


if __name__ == "__main__":
    _main()
