"""The conference record: which conference belongs to which (owner, calendar, UID).

sqlite in WAL mode, one connection per thread; safe for several Radicale
processes sharing one storage folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from typing import Iterator, Optional

from .model import Conference, EventKey, Record, RecordState

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conferences (
    owner TEXT NOT NULL,
    calendar TEXT NOT NULL,
    uid TEXT NOT NULL,
    provider TEXT NOT NULL,
    state TEXT NOT NULL,
    conference_id TEXT NOT NULL DEFAULT '',
    join_url TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}',
    fingerprint TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    attempt TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner, calendar, uid)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("owner, calendar, uid, provider, state, conference_id, join_url, extra, "
            "fingerprint, error_code, attempt, updated_at")


def _record(row: tuple) -> Record:
    (owner, calendar, uid, provider, state, conf_id, join_url, extra, fingerprint,
     error_code, attempt, updated_at) = row
    conference = Conference(provider, conf_id, join_url, json.loads(extra)) if join_url else None
    return Record(EventKey(owner, calendar, uid), provider, RecordState(state), conference,
                  fingerprint, error_code, attempt, updated_at)


class RecordStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        db = self._db()
        db.executescript(_SCHEMA)  # commits by itself
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                   (str(SCHEMA_VERSION),))

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _tx(self) -> "RecordStore._Tx":
        return self._Tx(self._db())

    def get(self, key: EventKey) -> Optional[Record]:
        row = self._db().execute(
            f"SELECT {_COLUMNS} FROM conferences WHERE owner=? AND calendar=? AND uid=?",
            (key.owner, key.calendar, key.uid)).fetchone()
        return _record(row) if row else None

    def put(self, record: Record) -> None:
        conf = record.conference
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO conferences ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.key.owner, record.key.calendar, record.key.uid, record.provider,
                 record.state.value, conf.conference_id if conf else "",
                 conf.join_url if conf else "", json.dumps(dict(conf.extra) if conf else {}),
                 record.fingerprint, record.error_code, record.attempt, time.time()))

    def begin_create(self, key: EventKey, provider: str, fingerprint: str) -> str:
        """Record the intent before the provider call; returns the attempt id."""
        attempt = uuid.uuid4().hex
        self.put(Record(key, provider, RecordState.CREATING, None, fingerprint, "", attempt))
        return attempt

    def finish_attempt(self, key: EventKey, attempt: str, record: Optional[Record]) -> bool:
        """Store the attempt's result if the record still waits for this attempt.

        False means the event moved on meanwhile (deleted, or another attempt):
        the caller owns what the provider made and must clean it up.
        """
        with self._tx() as db:
            row = db.execute("SELECT attempt, state FROM conferences "
                             "WHERE owner=? AND calendar=? AND uid=?",
                             (key.owner, key.calendar, key.uid)).fetchone()
            if not row or row[0] != attempt or row[1] != RecordState.CREATING.value:
                return False
            if record is None:
                db.execute("DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                           (key.owner, key.calendar, key.uid))
                return True
            conf = record.conference
            db.execute(
                "UPDATE conferences SET provider=?, state=?, conference_id=?, join_url=?, "
                "extra=?, fingerprint=?, error_code=?, attempt='', updated_at=? "
                "WHERE owner=? AND calendar=? AND uid=?",
                (record.provider, record.state.value, conf.conference_id if conf else "",
                 conf.join_url if conf else "", json.dumps(dict(conf.extra) if conf else {}),
                 record.fingerprint, record.error_code, time.time(),
                 key.owner, key.calendar, key.uid))
            return True

    def delete(self, key: EventKey) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                       (key.owner, key.calendar, key.uid))

    def move(self, old: EventKey, new: EventKey) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                       (new.owner, new.calendar, new.uid))
            db.execute("UPDATE conferences SET owner=?, calendar=?, uid=?, updated_at=? "
                       "WHERE owner=? AND calendar=? AND uid=?",
                       (new.owner, new.calendar, new.uid, time.time(),
                        old.owner, old.calendar, old.uid))

    def under(self, path: str) -> list[Record]:
        """Records of the calendar at `path` and of every calendar below it."""
        path = path.strip("/")
        if "/" not in path:  # a principal: everything the user owns
            rows = self._db().execute(f"SELECT {_COLUMNS} FROM conferences WHERE owner=?",
                                      (path,)).fetchall()
        else:
            like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            rows = self._db().execute(
                f"SELECT {_COLUMNS} FROM conferences WHERE calendar=? OR calendar LIKE ? ESCAPE '\\'",
                (path, like)).fetchall()
        return [_record(r) for r in rows]

    def has_calendar(self, calendar: str) -> bool:
        return self._db().execute("SELECT 1 FROM conferences WHERE calendar=? LIMIT 1",
                                  (calendar,)).fetchone() is not None

    def all(self) -> Iterator[Record]:
        for row in self._db().execute(f"SELECT {_COLUMNS} FROM conferences"):
            yield _record(row)
