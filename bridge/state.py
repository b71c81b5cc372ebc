"""What the bridge remembers between cycles and restarts: one sqlite file, or PostgreSQL.

It lives beside the engine's ``records.sqlite`` (conferences and outbox) as
``bridge.sqlite``, or in the PostgreSQL database of ``state_url`` beside the
engine's tables:

- ``homes``: each account's calendar home, so a restart skips discovery;
- ``logins``: the login scheme each account's server accepted (Basic is then sent
  with the first request of the next run: no 401 round trip);
- ``calendars``: per followed calendar, the version last seen (ctag and sync
  token property: unchanged means skip it), the RFC 6578 token to continue
  from, and how it is followed (``sync`` or ``etag``);
- ``leases``, ``workers``, ``shared``: with ``workers = shared``, which worker
  holds which account until when (and the lease's generation, the fencing
  number), when each worker last beat, and the instance id all workers share
  (bridge/leases.py);
- ``items``: per event href, its UID, the ETag last handled, and the ETag,
  hash and text of our own last write-back (loop prevention, and the engine's
  "stored version" for a re-upload), and a ``dirty`` flag for an event whose
  result could not be written (it is read and judged again next cycle, even
  if its calendar did not change).

The connections, transactions and schema version are the plugin's (state/db.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.follow import Known
from radicale_meetplugin.state.db import Schema, open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS homes (
    account TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    home TEXT NOT NULL,
    principal TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS calendars (
    account TEXT NOT NULL,
    href TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    token TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT 'sync',
    PRIMARY KEY (account, href)
);
CREATE TABLE IF NOT EXISTS items (
    account TEXT NOT NULL,
    calendar TEXT NOT NULL,
    href TEXT NOT NULL,
    uid TEXT NOT NULL DEFAULT '',
    etag TEXT NOT NULL DEFAULT '',
    written_etag TEXT NOT NULL DEFAULT '',
    written_hash TEXT NOT NULL DEFAULT '',
    written_text TEXT,
    repeats INTEGER NOT NULL DEFAULT 0,
    dirty INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, href)
);
CREATE INDEX IF NOT EXISTS items_by_calendar ON items (account, calendar, uid);
"""
_CYCLES = """
CREATE TABLE IF NOT EXISTS cycles (
    account TEXT PRIMARY KEY,
    ok_at REAL NOT NULL DEFAULT 0,
    failed_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT ''
);
"""
# The login scheme a server accepted, so a later run sends Basic up front.
_LOGINS = """
CREATE TABLE IF NOT EXISTS logins (
    account TEXT NOT NULL,
    url TEXT NOT NULL,
    scheme TEXT NOT NULL,
    PRIMARY KEY (account, url)
);
"""
# Several workers sharing the accounts (workers = shared): who holds which account until
# when (`generation` grows with every take: the fencing number), who is alive, and the
# instance id the workers share.
_LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    account TEXT PRIMARY KEY,
    worker TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS workers (
    worker TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    beat_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shared (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# 1: homes, calendars, items; 2: the cycles' outcome per account; 3: the accepted logins;
# 4: account leases, live workers, the shared instance id.
SCHEMA = Schema((_SCHEMA, _CYCLES, _LOGINS, _LEASES), name="bridge")


@dataclass(frozen=True)
class CalendarState:
    version: str = ""  # ctag + sync-token property when last followed to the end
    token: str = ""  # sync-collection token to continue from ("" = start over)
    mode: str = "sync"  # "sync" (RFC 6578), "etag" (listings, by config) or "nosync"
    #                     (listings: the server refused sync-collection)


@dataclass(frozen=True)
class Item:
    calendar: str
    href: str
    uid: str
    etag: str
    written_etag: str = ""
    written_hash: str = ""
    written_text: str | None = None
    repeats: int = 0  # how many times in a row we wrote this same text

    def known(self) -> Known:
        return Known(self.uid, self.etag, self.written_etag)


_ITEM = "calendar, href, uid, etag, written_etag, written_hash, written_text, repeats"


class BridgeState:
    def __init__(self, path: str) -> None:
        """The state in the sqlite file at `path`, or in the PostgreSQL database it names."""
        self.db = open_database(path, SCHEMA, timeout=30.0, pool=4)
        self.path = self.db.shown  # never the URL's password

    def close(self) -> None:
        self.db.close()

    # --- homes and calendars ------------------------------------------------

    def home(self, account: str, url: str) -> tuple[str, str]:
        """(calendar home, principal) found for this account at this URL; ("", "") if none."""
        row = self.db.query_one(
            "SELECT home, principal FROM homes WHERE account=? AND url=?", (account, url)
        )
        return (row[0], row[1]) if row else ("", "")

    def set_home(self, account: str, url: str, home: str, principal: str) -> None:
        self.db.run(
            "INSERT INTO homes VALUES (?,?,?,?) ON CONFLICT (account) DO UPDATE "
            "SET url=excluded.url, home=excluded.home, principal=excluded.principal",
            (account, url, home, principal),
        )

    def login_scheme(self, account: str, url: str) -> str:
        """The scheme ("basic" or "digest") this server last accepted; "" if none known."""
        row = self.db.query_one(
            "SELECT scheme FROM logins WHERE account=? AND url=?", (account, url)
        )
        return row[0] if row else ""

    def set_login_scheme(self, account: str, url: str, scheme: str) -> None:
        self.db.run(
            "INSERT INTO logins VALUES (?,?,?) "
            "ON CONFLICT (account, url) DO UPDATE SET scheme=excluded.scheme",
            (account, url, scheme),
        )

    def calendar(self, account: str, href: str) -> CalendarState | None:
        row = self.db.query_one(
            "SELECT version, token, mode FROM calendars WHERE account=? AND href=?",
            (account, href),
        )
        return CalendarState(*row) if row else None

    def save_calendar(self, account: str, href: str, state: CalendarState) -> None:
        self.db.run(
            "INSERT INTO calendars VALUES (?,?,?,?,?) ON CONFLICT (account, href) DO UPDATE "
            "SET version=excluded.version, token=excluded.token, mode=excluded.mode",
            (account, href, state.version, state.token, state.mode),
        )

    def calendars(self, account: str) -> list[str]:
        return [
            r[0]
            for r in self.db.query(
                "SELECT href FROM calendars WHERE account=? ORDER BY href", (account,)
            )
        ]

    def forget_calendar(self, account: str, href: str) -> None:
        with self.db.transaction() as db:
            db.execute("DELETE FROM calendars WHERE account=? AND href=?", (account, href))
            db.execute("DELETE FROM items WHERE account=? AND calendar=?", (account, href))

    def cycle_done(self, account: str, at: float, error: str = "") -> None:
        """An account's cycle ended: it went through (no `error`), or failed with `error`."""
        if error:
            self.db.run(
                "INSERT INTO cycles (account, failed_at, error) VALUES (?,?,?) "
                "ON CONFLICT (account) DO UPDATE SET failed_at=excluded.failed_at, "
                "error=excluded.error",
                (account, at, error[:300]),
            )
        else:
            self.db.run(
                "INSERT INTO cycles (account, ok_at) VALUES (?,?) "
                "ON CONFLICT (account) DO UPDATE SET ok_at=excluded.ok_at",
                (account, at),
            )

    def cycles(self) -> dict[str, tuple[float, float, str]]:
        """account -> (last good cycle, last failed cycle, its reason); 0 for never."""
        return {
            r[0]: (r[1], r[2], r[3])
            for r in self.db.query("SELECT account, ok_at, failed_at, error FROM cycles")
        }

    # --- items ---------------------------------------------------------------

    def known(
        self, account: str, calendar: str, hrefs: Iterable[str] | None = None
    ) -> dict[str, Known]:
        """What we know of the calendar's hrefs (all of them, or just `hrefs`)."""
        with self.db.connection() as db:
            if hrefs is None:
                rows = db.execute(
                    f"SELECT {_ITEM} FROM items WHERE account=? AND calendar=?",
                    (account, calendar),
                ).fetchall()
            else:
                wanted = list(dict.fromkeys(hrefs))
                rows = []
                for i in range(0, len(wanted), 500):
                    part = wanted[i : i + 500]
                    rows += db.execute(
                        f"SELECT {_ITEM} FROM items WHERE account=? AND calendar=? AND href IN "
                        f"({','.join('?' * len(part))})",
                        (account, calendar, *part),
                    ).fetchall()
        return {row[1]: Item(*row).known() for row in rows}

    def item(self, account: str, href: str) -> Item | None:
        row = self.db.query_one(
            f"SELECT {_ITEM} FROM items WHERE account=? AND href=?", (account, href)
        )
        return Item(*row) if row else None

    def href_of(self, account: str, calendar: str, uid: str) -> str:
        row = self.db.query_one(
            "SELECT href FROM items WHERE account=? AND calendar=? AND uid=? LIMIT 1",
            (account, calendar, uid),
        )
        return row[0] if row else ""

    def seen(self, account: str, calendar: str, href: str, uid: str, etag: str) -> None:
        """The engine judged this version (or it needs nothing): remember its ETag."""
        self.db.run(
            "INSERT INTO items (account, calendar, href, uid, etag) VALUES (?,?,?,?,?) "
            "ON CONFLICT (account, href) DO UPDATE SET calendar=excluded.calendar, "
            "uid=excluded.uid, etag=excluded.etag, dirty=0",
            (account, calendar, href, uid, etag),
        )

    def seen_many(self, account: str, calendar: str, etags: dict[str, str]) -> None:
        """Handled versions that need no work: only the ETag moves (UIDs stay)."""
        if not etags:
            return
        self.db.run_many(
            "UPDATE items SET etag=? WHERE account=? AND href=?",
            [(etag, account, href) for href, etag in etags.items() if etag],
        )

    def wrote(
        self,
        account: str,
        calendar: str,
        href: str,
        uid: str,
        etag: str,
        text_hash: str,
        text: str,
        repeats: int = 0,
    ) -> None:
        """Our write-back produced version `etag`: it is handled, and ours."""
        self.db.run(
            "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?,0) "
            "ON CONFLICT (account, href) DO UPDATE SET calendar=excluded.calendar, "
            "uid=excluded.uid, etag=excluded.etag, written_etag=excluded.written_etag, "
            "written_hash=excluded.written_hash, written_text=excluded.written_text, "
            "repeats=excluded.repeats, dirty=0",
            (account, calendar, href, uid, etag, etag, text_hash, text, repeats),
        )

    def mark_dirty(self, account: str, calendar: str, href: str, uid: str) -> None:
        """Judge this event again next cycle (its result could not be written)."""
        self.db.run(
            "INSERT INTO items (account, calendar, href, uid, dirty) VALUES (?,?,?,?,1) "
            "ON CONFLICT (account, href) DO UPDATE SET dirty=1",
            (account, calendar, href, uid),
        )

    def left_alone(self, account: str, calendar: str, href: str, uid: str) -> None:
        """Another bridge instance's event: known, but no version of it counts as handled
        (`adopt_again` finds it; a later change of the calendar reads it again)."""
        self.seen(account, calendar, href, uid, "")

    def adopt_again(self, account: str) -> int:
        """Judge every event left alone again (a run with --adopt); how many."""
        return self.db.run(
            "UPDATE items SET dirty=1 WHERE account=? AND etag='' AND uid!=''", (account,)
        )

    def dirty(self, account: str) -> list[tuple[str, str]]:
        """(calendar, href) of the events to judge again."""
        return [
            (r[0], r[1])
            for r in self.db.query(
                "SELECT calendar, href FROM items WHERE account=? AND dirty=1", (account,)
            )
        ]

    def drop_item(self, account: str, href: str) -> None:
        self.db.run("DELETE FROM items WHERE account=? AND href=?", (account, href))

    # --- shared workers (bridge/leases.py) ------------------------------------------
    # Times are the caller's clock, passed in: no engine-specific SQL functions.

    def shared_value(self, name: str, proposed: str) -> str:
        """The value every worker shares under `name`: the first proposal wins."""
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO shared (name, value) VALUES (?,?) ON CONFLICT (name) DO NOTHING",
                (name, proposed),
            )
            row = db.execute("SELECT value FROM shared WHERE name=?", (name,)).fetchone()
        return str(row[0])

    def beat(self, worker: str, now: float) -> None:
        """The worker is alive (its row is made on the first beat)."""
        self.db.run(
            "INSERT INTO workers (worker, started_at, beat_at) VALUES (?,?,?) "
            "ON CONFLICT (worker) DO UPDATE SET beat_at=excluded.beat_at",
            (worker, now, now),
        )

    def live_workers(self, since: float) -> list[str]:
        """Workers that beat after `since`."""
        return [
            r[0]
            for r in self.db.query(
                "SELECT worker FROM workers WHERE beat_at > ? ORDER BY worker", (since,)
            )
        ]

    def drop_worker(self, worker: str, forget_before: float) -> None:
        """The worker stopped; rows of workers silent since `forget_before` go too."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM workers WHERE worker=? OR beat_at < ?", (worker, forget_before))

    def leases(self) -> dict[str, tuple[str, int, float]]:
        """account -> (worker, generation, expires_at) of every lease row."""
        return {
            r[0]: (r[1], int(r[2]), float(r[3]))
            for r in self.db.query("SELECT account, worker, generation, expires_at FROM leases")
        }

    def take_lease(
        self, account: str, worker: str, now: float, until: float
    ) -> tuple[int, str, float]:
        """Lease `account` to `worker` until `until` if nobody holds it at `now`.

        (new generation, 0 when not taken; the previous holder; when its lease ran out).
        """
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO leases (account) VALUES (?) ON CONFLICT (account) DO NOTHING",
                (account,),
            )
            before = db.execute(
                "SELECT worker, expires_at FROM leases WHERE account=?", (account,)
            ).fetchone()
            taken = db.execute(
                "UPDATE leases SET worker=?, generation=generation+1, expires_at=? "
                "WHERE account=? AND (worker='' OR expires_at <= ?)",
                (worker, until, account, now),
            ).rowcount
            if taken != 1:
                return 0, str(before[0]), float(before[1])
            row = db.execute("SELECT generation FROM leases WHERE account=?", (account,)).fetchone()
        return int(row[0]), str(before[0]), float(before[1])

    def renew_leases(self, worker: str, now: float, until: float) -> dict[str, int]:
        """Extend the worker's leases that have not run out; account -> generation held."""
        with self.db.transaction() as db:
            db.execute(
                "UPDATE leases SET expires_at=? WHERE worker=? AND expires_at > ?",
                (until, worker, now),
            )
            rows = db.execute(
                "SELECT account, generation FROM leases WHERE worker=? AND expires_at > ?",
                (worker, now),
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def holds_lease(self, account: str, worker: str, generation: int, after: float) -> bool:
        """Does `worker` still hold this generation of the lease beyond the time `after`?"""
        return (
            self.db.query_one(
                "SELECT 1 FROM leases WHERE account=? AND worker=? AND generation=? "
                "AND expires_at > ?",
                (account, worker, generation, after),
            )
            is not None
        )

    def release_lease(self, account: str, worker: str, generation: int) -> bool:
        """Give the lease up (only this worker's, of this generation)."""
        return (
            self.db.run(
                "UPDATE leases SET worker='', expires_at=0 "
                "WHERE account=? AND worker=? AND generation=?",
                (account, worker, generation),
            )
            == 1
        )
