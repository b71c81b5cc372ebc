"""A leased queue in one table: each row run by one worker at a time, retried until finished.

Provider jobs and invitation letters are both such queues. The table has its
own payload columns plus these: `id` (INTEGER PRIMARY KEY), `tries`,
`next_at` (not before), `lease_owner` and `lease_until` (who runs it, until
when), `last_error`, `created_at`, and a marker column set just before the
step whose outcome cannot be known if the worker dies during it (the provider
call, the SMTP DATA command). A queue whose finished rows stay (letters) also
has `state` ('queued' while pending) and `done_at`; otherwise a finished row
is deleted.

A row is claimed with a lease. A process whose worker runs its queue
(`hold_new_rows`) leases each row it adds to that worker from the start: it
runs the row itself right away (a save waits for its provider call), and
another process sharing the state must not take it first — it would look for
an event its maker has not stored yet. A worker whose lease ran out, or whose process
is gone (`alive(holder)` is False), loses it to the next claim; if it had set
the marker, the new holder learns that the row was interrupted mid-step. On
PostgreSQL the claim reads the row with FOR UPDATE SKIP LOCKED: of several
workers (processes, hosts) claiming one row at once, one gets it and the others
pass on at once instead of waiting; on sqlite the claim's transaction already
keeps the others out. Either way a row is run only by the worker that leased it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from radicale_meetplugin.state.db import Connection

T = TypeVar("T")

QUEUED = "queued"
_COMMON = ("id", "tries", "next_at", "last_error", "created_at")

# Builds the item a worker gets from its row (payload columns, the common ones and
# the marker, by name), with the claim's connection for anything else it needs.
Load = Callable[[Connection, Mapping[str, Any]], T]


class LeasedQueue(Generic[T]):
    def __init__(
        self,
        db: Any,  # db.Database or postgres.PostgresDatabase
        table: str,
        columns: Sequence[str],
        load: Load[T],
        *,
        marker: str,
        keep_done: bool = False,
    ) -> None:
        for name in (table, marker, *columns):
            if not name.isidentifier():
                raise ValueError(f"not a column or table name: {name!r}")
        self.db = db
        self.table = table
        self.columns = tuple(columns)
        self.load = load
        self.marker = marker
        self.keep_done = keep_done
        self._names = (*_COMMON, marker, *self.columns)
        self._maker = ""  # the worker new rows are leased to (hold_new_rows); "" = nobody
        self._hold = 0.0
        self._select = f"SELECT {', '.join(self._names)} FROM {table}"
        # Pending rows: all of them, or those still 'queued' in a queue that keeps its done rows.
        self._pending = f"state='{QUEUED}'" if keep_done else "1=1"

    # --- adding ----------------------------------------------------------------------

    def hold_new_rows(self, owner: str, seconds: float) -> None:
        """Lease every row added from now on to the worker `owner`, for `seconds`."""
        self._maker, self._hold = owner, seconds

    def insert(
        self, conn: Connection, values: Mapping[str, Any], *, unique: bool = False
    ) -> int | None:
        """Queue one row, due now, on `conn` (the caller's transaction).

        With `unique`, a row the table's UNIQUE constraints already hold is not
        queued again: None.
        """
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"not a payload column of {self.table}: {sorted(unknown)}")
        now = time.time()
        names = (*values, "next_at", "created_at", "lease_owner", "lease_until")
        held = (self._maker, now + self._hold) if self._maker else ("", 0.0)
        row = conn.execute(
            f"INSERT INTO {self.table} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
            f"{' ON CONFLICT DO NOTHING' if unique else ''} RETURNING id",
            (*values.values(), now, now, *held),
        ).fetchone()
        return None if row is None else int(row[0])

    def add(self, values: Mapping[str, Any], *, unique: bool = False) -> int | None:
        """`insert` in its own transaction (or the thread's open one)."""
        with self.db.transaction() as conn:
            return self.insert(conn, values, unique=unique)

    # --- a worker's side ---------------------------------------------------------------

    def claim(
        self, item_id: int, owner: str, lease: float, alive: Callable[[str], bool]
    ) -> T | None:
        """Take the row for `lease` seconds, unless it is done or a live worker holds it."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute(
                f"SELECT lease_owner, lease_until, next_at FROM {self.table} "
                f"WHERE id=? AND {self._pending}{self.db.for_update}",
                (item_id,),
            ).fetchone()
            if row is None:
                return None
            holder, until, next_at = row
            if holder and holder != owner and until > now and alive(holder):
                return None
            if not holder and next_at > now + 0.05:
                return None  # rescheduled (backoff, Retry-After): the loop runs it when due
            conn.execute(
                f"UPDATE {self.table} SET lease_owner=?, lease_until=? WHERE id=?",
                (owner, now + lease, item_id),
            )
            return self._fetch(conn, item_id)

    def start(self, item_id: int, owner: str) -> bool:
        """Set the marker before the step that cannot be undone: once, by the lease holder."""
        with self.db.transaction() as conn:
            return (
                conn.execute(
                    f"UPDATE {self.table} SET {self.marker}=1 WHERE id=? AND lease_owner=? "
                    f"AND {self.marker}=0 AND {self._pending}",
                    (item_id, owner),
                ).rowcount
                == 1
            )

    def retry(self, item_id: int, owner: str, next_at: float, error: str) -> None:
        """Not done: free the row for another try at `next_at` (only the lease holder can)."""
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE {self.table} SET tries = tries + 1, next_at=?, last_error=?, "
                f"lease_owner='', lease_until=0, {self.marker}=0 "
                f"WHERE id=? AND lease_owner=? AND {self._pending}",
                (next_at, error[:200], item_id, owner),
            )

    def finish(self, item_id: int, state: str = "done", error: str = "") -> None:
        """Done for good: the row goes (or, in a queue that keeps them, gets its final state)."""
        with self.db.transaction() as conn:
            if not self.keep_done:
                conn.execute(f"DELETE FROM {self.table} WHERE id=?", (item_id,))
                return
            conn.execute(
                f"UPDATE {self.table} SET state=?, last_error=?, lease_owner='', lease_until=0, "
                "done_at=?, tries = tries + 1 WHERE id=?",
                (state, error[:200], time.time(), item_id),
            )

    # --- the worker's loop ----------------------------------------------------------------

    def due(self, now: float, limit: int = 100, owner: str = "") -> list[int]:
        """Pending rows whose time has come and that nobody holds (or whose lease ran out),
        and those `owner` holds itself (rows it added and has not run yet)."""
        rows = self.db.query(
            f"SELECT id FROM {self.table} WHERE {self._pending} AND next_at <= ? "
            "AND (lease_owner IN ('', ?) OR lease_until <= ?) ORDER BY next_at LIMIT ?",
            (now, owner, now, limit),
        )
        return [r[0] for r in rows]

    def held_by_others(self, owner: str) -> list[tuple[int, str]]:
        """(id, holder) of pending rows leased by any other worker (perhaps a dead one)."""
        return [
            (int(i), str(holder))
            for i, holder in self.db.query(
                f"SELECT id, lease_owner FROM {self.table} "
                f"WHERE {self._pending} AND lease_owner NOT IN ('', ?)",
                (owner,),
            )
        ]

    def next_at(self) -> float | None:
        """When the next pending row is due or its lease runs out; None when there is none."""
        row = self.db.query_one(
            "SELECT MIN(CASE WHEN next_at > lease_until THEN next_at ELSE lease_until END) "
            f"FROM {self.table} WHERE {self._pending}"
        )
        return row[0] if row else None

    # --- reading -------------------------------------------------------------------------

    def items(self, where: str = "", params: Iterable = ()) -> list[T]:
        """Every row (or those matching `where`) as items, oldest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                f"{self._select}{' WHERE ' + where if where else ''} ORDER BY id", tuple(params)
            ).fetchall()
            return [self.load(conn, dict(zip(self._names, row, strict=True))) for row in rows]

    def _fetch(self, conn: Connection, item_id: int) -> T | None:
        row = conn.execute(f"{self._select} WHERE id=?", (item_id,)).fetchone()
        return self.load(conn, dict(zip(self._names, row, strict=True))) if row else None
