"""The state database: one sqlite file (or PostgreSQL), pooled connections, joinable transactions.

`open_database(target, schema)` picks the engine: a path is a sqlite file (this
module), a `postgresql://` URL is a PostgreSQL database (postgres.py, the same
API; its statements are written once, with `?` placeholders, and translated
there). Both raise `Unavailable` (a `sqlite3.OperationalError`) when the state
cannot be reached or locked in time.

Used by the plugin's record store and by the bridge's own state. A connection is
checked out for one statement or one transaction and returned at once, so every
thread (Radicale serves each request in a new one) reuses the same few
connections instead of opening its own. WAL mode, `synchronous=NORMAL` and a
busy timeout make the file safe for several processes sharing it.

`waiting_at_most(seconds)` shortens, for the calling thread, how long a
statement waits for the file (another process's write lock) or for a free
connection: code that holds a lock others wait behind fails fast instead.

`transaction()` is `BEGIN IMMEDIATE` … `COMMIT` (or `ROLLBACK` on an error).
Opened again on a thread that is already inside one, it joins it as a
savepoint: the outer transaction commits everything at once, and a failure
inside the inner block undoes only that block. Reads on that thread see the
transaction's own writes.

The schema is a list of steps: step N brings the file from version N-1 to N.
At open, the steps the file has not seen run in one transaction and
`meta.schema_version` records the result (in a shared PostgreSQL database, where
several schemas live side by side, `schema_version:<name>`).

The few statements that differ between the engines go through the database:
`db.for_update` (the row lock a claim takes: nothing on sqlite, whose
`BEGIN IMMEDIATE` already serialises writers) and `db.lock(conn, ...)` (a lock
on a name for the rest of the transaction, for a read that decides a write).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
URL_SCHEMES = ("postgresql://", "postgres://")


class Unavailable(sqlite3.OperationalError):
    """The state could not be reached, or a lock or connection not had in time (any engine)."""


@dataclass(frozen=True)
class Schema:
    """The ordered steps of a file's schema; its version is the number of steps.

    `name` tells the schemas apart where several share one database (PostgreSQL).
    """

    steps: Sequence[str]
    name: str = "state"

    @property
    def version(self) -> int:
        return len(self.steps)

    def upto(self, version: int) -> Schema:
        """The schema as it was at `version` (its first steps)."""
        return Schema(tuple(self.steps[:version]), self.name)


def is_url(target: str) -> bool:
    """Does `target` name a PostgreSQL database rather than a sqlite file?"""
    return target.strip().lower().startswith(URL_SCHEMES)


def mask_url(target: str) -> str:
    """`target` with any password in it replaced by ***: safe for logs, errors and output.

    Any `scheme://user:password@host` form is masked (a mistyped scheme too), and a
    `password=` query parameter.
    """
    if "://" not in target:
        return target
    parts = urllib.parse.urlsplit(target.strip())
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.partition(":")[0] + ":***"
        netloc = f"{user}@{host}"
    query = "&".join(
        f"{k}=***" if k.lower() == "password" else f"{k}={v}"
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    if netloc == parts.netloc and query == parts.query:
        return target  # nothing to hide
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


class Connection(Protocol):
    """What callers do with a connection inside `connection()` or `transaction()`."""

    def execute(self, sql: str, params: Iterable = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Iterable], /) -> Any: ...


def open_database(
    target: str,
    schema: Schema,
    *,
    timeout: float = 5.0,
    pool: int = 8,
    read_only: bool = False,
    migrate: bool = True,
) -> Any:
    """The database at `target`: a sqlite file path, or a `postgresql://` URL.

    `migrate` False opens it as it is (for `meetplugin migrate --check` and copies).
    """
    if is_url(target):
        from radicale_meetplugin.state.postgres import PostgresDatabase

        return PostgresDatabase(
            target, schema, timeout=timeout, pool=pool, read_only=read_only, migrate=migrate
        )
    return Database(
        target, schema, timeout=timeout, pool=pool, read_only=read_only, migrate=migrate
    )


def sqlite_held(path: str) -> bool:
    """Has another process this sqlite file open (in WAL mode: it holds the shared-memory file)?

    Every connection to a WAL database holds a read lock on one byte of the
    `-shm` file for as long as it is open; taking a write lock on it fails while
    any other process has the file open. Call it before this process opens the
    file: closing the descriptor drops this process's own locks on it.
    """
    try:
        fd = os.open(f"{path}-shm", os.O_RDONLY)
    except FileNotFoundError:
        return False  # no connection has it open in WAL mode
    try:
        # struct flock: l_type, l_whence, l_start, l_len, l_pid; F_GETLK only asks.
        probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
        return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of a script, one by one (no implicit COMMIT)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip().rstrip(";").strip():
                yield buffer
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement: {buffer.strip()[:60]}")


class _Pool:
    """At most `size` connections, reused by every thread; a thread waits for a free one."""

    def __init__(self, open_one, size: int, wait: float) -> None:
        self._open = open_one
        self.size = max(1, size)
        self._wait = wait
        self._idle: list[sqlite3.Connection] = []
        self._count = 0  # open connections, idle or checked out
        self.opened = 0  # connections ever opened (for tests and diagnostics)
        self._closed = False
        self._cond = threading.Condition(threading.Lock())

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    def get(self, wait: float | None = None) -> sqlite3.Connection:
        deadline = time.monotonic() + (self._wait if wait is None else wait)
        with self._cond:
            while True:
                if self._closed:
                    raise sqlite3.ProgrammingError("the database is closed")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.size:
                    self._count += 1
                    self.opened += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise sqlite3.OperationalError("database is busy: no free connection")
                self._cond.wait(left)
        try:
            return self._open()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def put(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # a failed COMMIT: never hand a half transaction on
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        with self._cond:
            if not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            self._count -= 1
        conn.close()

    def discard(self) -> None:
        """A checked-out connection was closed instead of coming back."""
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections now and the others when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


@dataclass
class _Open:
    """The transaction a thread has open: its connection and how deep it is nested."""

    conn: Any
    depth: int = 0


class Transactions:
    """What both engines share: a thread's transaction, joined as a savepoint when
    nested, and single statements on the thread's open transaction or a pooled
    connection. An engine supplies `_checkout`, `_checkin`, `_begin` and `_rollback`."""

    _begin = "BEGIN"
    _local: threading.local

    def _checkout(self) -> Any:
        raise NotImplementedError

    def _checkin(self, conn: Any) -> None:
        raise NotImplementedError

    def _rollback(self, conn: Any) -> None:
        conn.execute("ROLLBACK")

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection for a few statements: the thread's open transaction's, else a pooled one."""
        open_tx: _Open | None = getattr(self._local, "tx", None)
        if open_tx is not None:
            yield open_tx.conn
            return
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._checkin(conn)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN … COMMIT; inside an open one on this thread, a savepoint of it."""
        open_tx: _Open | None = getattr(self._local, "tx", None)
        if open_tx is not None:
            open_tx.depth += 1
            name = f"nested_{open_tx.depth}"
            conn = open_tx.conn
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                conn.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                open_tx.depth -= 1
            return
        conn = self._checkout()
        try:
            conn.execute(self._begin)
            self._local.tx = _Open(conn)
            try:
                yield conn
            except BaseException:
                self._rollback(conn)
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self._local.tx = None
        finally:
            self._checkin(conn)

    @property
    def in_transaction(self) -> bool:
        """Has this thread a transaction open?"""
        return getattr(self._local, "tx", None) is not None

    # --- one statement ------------------------------------------------------------

    def query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self.connection() as conn:
            return list(conn.execute(sql, tuple(params)).fetchall())

    def query_one(self, sql: str, params: Iterable = ()) -> tuple | None:
        with self.connection() as conn:
            row: tuple | None = conn.execute(sql, tuple(params)).fetchone()
            return row

    def run(self, sql: str, params: Iterable = ()) -> int:
        """One write on its own (autocommit) or in this thread's transaction; the row count."""
        with self.connection() as conn:
            return int(conn.execute(sql, tuple(params)).rowcount)

    def run_many(self, sql: str, rows: Iterable[Iterable]) -> None:
        with self.connection() as conn:
            conn.executemany(sql, (tuple(r) for r in rows))


class Database(Transactions):
    """One sqlite file."""

    dialect = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE already keeps every other writer out
    _begin = "BEGIN IMMEDIATE"

    def __init__(
        self,
        path: str,
        schema: Schema,
        *,
        timeout: float = 5.0,
        pool: int = 8,
        read_only: bool = False,
        migrate: bool = True,
    ) -> None:
        if sqlite3.sqlite_version_info < (3, 35):  # RETURNING, used by every queue
            raise Unavailable(f"sqlite {sqlite3.sqlite_version} is too old: 3.35 or later needed")
        self.path = path
        self.shown = path  # how logs and output name it
        self.schema = schema
        self.timeout = timeout
        self.read_only = read_only  # admin views: open an existing file, change nothing
        self._pool = _Pool(self._connect, pool, timeout)
        self._local = threading.local()  # only the open transaction, never a connection
        try:
            if migrate:
                self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def lock(self, conn: Any, *name: object) -> None:
        """Hold a lock on `name` until the transaction ends (sqlite: the transaction is one)."""

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            # With no write-ahead log beside it nobody has the file open for writing:
            # read it as immutable, so sqlite makes no -wal/-shm file for this reader.
            quiet = "&immutable=1" if not os.path.exists(f"{self.path}-wal") else ""
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro{quiet}",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            return conn
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self) -> None:
        if self.read_only:
            return  # read as it is
        with self.connection() as conn:
            conn.execute(_META)
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else 0
            if version >= self.schema.version:
                return  # up to date (or written by a newer version: left as it is)
            for step in self.schema.steps[version:]:
                for statement in statements(step):
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                (str(self.schema.version),),
            )

    @property
    def version(self) -> int:
        """The schema version the file is at (0: empty or not ours)."""
        exists = self.query_one("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
        if exists is None:
            return 0
        row = self.query_one("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0]) if row and str(row[0]).isdigit() else 0

    def migrate(self) -> tuple[int, int]:
        """Run the steps the file has not seen; (version before, version after)."""
        before = self.version
        self._migrate()
        return before, self.version

    def tables(self) -> list[str]:
        """The tables of the file (but `meta`), in the order they were made."""
        return [
            r[0]
            for r in self.query(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%' "
                "AND name <> 'meta' ORDER BY rowid"
            )
        ]

    def columns(self, table: str) -> tuple[list[str], list[str]]:
        """(every column, the primary key's columns) of `table`, in order."""
        rows = self.query(f"PRAGMA table_info({table})")
        key = [r[1] for r in sorted(rows, key=lambda r: r[5]) if r[5]]
        return [r[1] for r in rows], key

    # --- connections and transactions -------------------------------------------

    @contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """On this thread, wait at most `seconds` for the file or a connection.

        A statement that would wait longer raises `sqlite3.OperationalError`
        ("database is locked") after that time.
        """
        before = getattr(self._local, "wait", None)
        self._local.wait = seconds if before is None else min(before, seconds)
        try:
            yield
        finally:
            self._local.wait = before

    def _checkout(self) -> sqlite3.Connection:
        """A pooled connection, with this thread's wait for the file."""
        wait: float | None = getattr(self._local, "wait", None)
        conn = self._pool.get(wait)
        if wait is not None:
            try:
                conn.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            except BaseException:
                self._checkin(conn)
                raise
        return conn

    def _checkin(self, conn: sqlite3.Connection) -> None:
        if getattr(self._local, "wait", None) is not None:
            try:
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            except sqlite3.Error:
                conn.close()  # never hand a connection with a short wait back to the pool
                self._pool.discard()
                return
        self._pool.put(conn)

    # --- the pool -----------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections open now (idle or in use)."""
        return self._pool.count

    @property
    def opened(self) -> int:
        """Connections opened since the start."""
        return self._pool.opened

    def close(self) -> None:
        """Release every connection (those in use when they come back)."""
        self._pool.close()
