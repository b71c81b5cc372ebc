"""The conference record and the outbox, in one sqlite file.

`conferences`: which conference belongs to which (owner, calendar, UID) — the
source of truth. `jobs`: provider calls still to make (the outbox). The
invitation letters' tables (`mail_state`, `mail_rounds`, `mails`) are in
mail_queue.py. A record
and the job that serves it are written in one transaction, so a crash never
leaves one without the other. WAL mode, one connection per thread; safe for
several Radicale processes sharing one storage folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Meeting,
    Record,
    RecordState,
)
from radicale_meetplugin.state.letters import MAIL_SCHEMA, MailQueue

SCHEMA_VERSION = 3
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
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    calendar TEXT NOT NULL,
    uid TEXT NOT NULL,
    provider TEXT NOT NULL,
    attempt TEXT NOT NULL DEFAULT '',
    meeting TEXT NOT NULL DEFAULT '',
    conference TEXT NOT NULL DEFAULT '',
    old TEXT NOT NULL DEFAULT '',
    href TEXT NOT NULL DEFAULT '',
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    interrupted INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (next_at);
CREATE TABLE IF NOT EXISTS suspects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    owner TEXT NOT NULL,
    calendar TEXT NOT NULL,
    uid TEXT NOT NULL,
    attempt TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""
_JOB_COLUMNS = (
    "id, kind, owner, calendar, uid, provider, attempt, meeting, conference, old, "
    "href, tries, created_at, last_error, interrupted"
)


def _dump(value) -> str:
    return json.dumps(dataclasses.asdict(value), ensure_ascii=False) if value is not None else ""


def _conference(text: str) -> Conference | None:
    return Conference(**json.loads(text)) if text else None


def _meeting(text: str) -> Meeting | None:
    if not text:
        return None
    data = json.loads(text)
    data["key"] = EventKey(**data["key"])
    data["attendees"] = tuple(data["attendees"])
    data["options"] = tuple(tuple(pair) for pair in data.get("options", ()))
    return Meeting(**data)


def _job(row: tuple) -> Job:
    (
        job_id,
        kind,
        owner,
        calendar,
        uid,
        provider,
        attempt,
        meeting,
        conference,
        old,
        href,
        tries,
        created_at,
        last_error,
        interrupted,
    ) = row
    return Job(
        job_id,
        ActionKind(kind),
        EventKey(owner, calendar, uid),
        provider,
        attempt,
        _meeting(meeting),
        _conference(conference),
        _conference(old),
        href,
        tries,
        created_at,
        last_error,
        bool(interrupted),
    )


_COLUMNS = (
    "owner, calendar, uid, provider, state, conference_id, join_url, extra, "
    "fingerprint, error_code, attempt, updated_at"
)


def _record(row: tuple) -> Record:
    (
        owner,
        calendar,
        uid,
        provider,
        state,
        conf_id,
        join_url,
        extra,
        fingerprint,
        error_code,
        attempt,
        updated_at,
    ) = row
    conference = Conference(provider, conf_id, join_url, json.loads(extra)) if join_url else None
    return Record(
        EventKey(owner, calendar, uid),
        provider,
        RecordState(state),
        conference,
        fingerprint,
        error_code,
        attempt,
        updated_at,
    )


class RecordStore(MailQueue):
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        db = self._db()
        db.executescript(_SCHEMA + MAIL_SCHEMA)  # commits by itself
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # Short waits: callers may hold Radicale's global lock; past this the
            # event is stored as sent rather than freezing every user.
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
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

    def _tx(self) -> RecordStore._Tx:
        return self._Tx(self._db())

    def get(self, key: EventKey) -> Record | None:
        row = (
            self._db()
            .execute(
                f"SELECT {_COLUMNS} FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )
            .fetchone()
        )
        return _record(row) if row else None

    def put(self, record: Record) -> None:
        conf = record.conference
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO conferences ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.key.owner,
                    record.key.calendar,
                    record.key.uid,
                    record.provider,
                    record.state.value,
                    conf.conference_id if conf else "",
                    conf.join_url if conf else "",
                    json.dumps(dict(conf.extra) if conf else {}),
                    record.fingerprint,
                    record.error_code,
                    record.attempt,
                    time.time(),
                ),
            )

    def begin_create(self, key: EventKey, provider: str, fingerprint: str, job: Job) -> Job:
        """Record the intent and its job in one transaction, before any provider call."""
        attempt = uuid.uuid4().hex
        job = dataclasses.replace(job, attempt=attempt)
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO conferences ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key.owner,
                    key.calendar,
                    key.uid,
                    provider,
                    RecordState.CREATING.value,
                    "",
                    "",
                    "{}",
                    fingerprint,
                    "",
                    attempt,
                    time.time(),
                ),
            )
            return self._insert_job(db, job)

    def _insert_job(self, db: sqlite3.Connection, job: Job) -> Job:
        now = time.time()
        cursor = db.execute(
            "INSERT INTO jobs (kind, owner, calendar, uid, provider, attempt, meeting, conference, "
            "old, href, next_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job.kind.value,
                job.key.owner,
                job.key.calendar,
                job.key.uid,
                job.provider,
                job.attempt,
                _dump(job.meeting),
                _dump(job.conference),
                _dump(job.old),
                job.href,
                now,
                now,
            ),
        )
        return dataclasses.replace(job, id=int(cursor.lastrowid or 0), created_at=now)

    def enqueue(self, job: Job) -> Job:
        with self._tx() as db:
            return self._insert_job(db, job)

    def drop(self, key: EventKey, then: Job | None = None) -> Job | None:
        """Forget the record; with `then`, queue its conference's deletion atomically."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )
            return self._insert_job(db, then) if then is not None else None

    def finish_attempt(self, key: EventKey, attempt: str, record: Record | None) -> bool:
        """Store the attempt's result if the record still waits for this attempt.

        `record` None forgets it. False means the event moved on meanwhile
        (deleted, or another attempt): the caller owns what the provider made.
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT attempt, state FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            ).fetchone()
            current = bool(row and row[0] == attempt and row[1] == RecordState.CREATING.value)
            if not current or record is None:
                if current:
                    db.execute(
                        "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                        (key.owner, key.calendar, key.uid),
                    )
                return current and record is not None
            conf = record.conference
            db.execute(
                "UPDATE conferences SET provider=?, state=?, conference_id=?, join_url=?, "
                "extra=?, fingerprint=?, error_code=?, attempt='', updated_at=? "
                "WHERE owner=? AND calendar=? AND uid=?",
                (
                    record.provider,
                    record.state.value,
                    conf.conference_id if conf else "",
                    conf.join_url if conf else "",
                    json.dumps(dict(conf.extra) if conf else {}),
                    record.fingerprint,
                    record.error_code,
                    time.time(),
                    key.owner,
                    key.calendar,
                    key.uid,
                ),
            )
            return True

    def abandon_attempt(self, key: EventKey, attempt: str, orphan: Job) -> Job:
        """The attempt made a conference nobody wants: forget it, queue its deletion."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=? "
                "AND attempt=? AND state=?",
                (key.owner, key.calendar, key.uid, attempt, RecordState.CREATING.value),
            )
            return self._insert_job(db, orphan)

    # --- the outbox ----------------------------------------------------------

    def claim(
        self, job_id: int, owner: str, lease: float, alive: Callable[[str], bool]
    ) -> Job | None:
        """Take the job for `lease` seconds, unless a live worker holds it.

        A job whose holder died (lease run out, or its process is gone) is
        taken over and marked `interrupted`: its last call's outcome is unknown.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT lease_owner, lease_until FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
            if row is None:
                return None
            holder, until = row
            if holder and holder != owner and until > now and alive(holder):
                return None
            interrupted = bool(holder) and holder != owner
            db.execute(
                "UPDATE jobs SET lease_owner=?, lease_until=?, "
                "interrupted = interrupted OR ? WHERE id=?",
                (owner, now + lease, int(interrupted), job_id),
            )
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
            return _job(row)

    def reschedule(self, job_id: int, owner: str, next_at: float, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET tries = tries + 1, next_at=?, last_error=?, "
                "lease_owner='', lease_until=0, interrupted=0 "
                "WHERE id=? AND lease_owner=?",
                (next_at, error[:200], job_id, owner),
            )

    def finish_job(self, job_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def due_jobs(self, now: float, limit: int = 100) -> list[int]:
        rows = (
            self._db()
            .execute(
                "SELECT id FROM jobs WHERE next_at <= ? AND (lease_owner = '' OR lease_until <= ?) "
                "ORDER BY next_at LIMIT ?",
                (now, now, limit),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def held_by_others(self, owner: str) -> list[tuple[int, str]]:
        return (
            self._db()
            .execute("SELECT id, lease_owner FROM jobs WHERE lease_owner NOT IN ('', ?)", (owner,))
            .fetchall()
        )

    def next_due_at(self) -> float | None:
        row = self._db().execute("SELECT MIN(MAX(next_at, lease_until)) FROM jobs").fetchone()
        return row[0] if row else None

    def add_suspect(self, job: Job, reason: str) -> None:
        """A create whose outcome is unknown: the provider may hold a room nobody knows of."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO suspects (provider, owner, calendar, uid, attempt, reason, at) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    job.provider,
                    job.key.owner,
                    job.key.calendar,
                    job.key.uid,
                    job.attempt,
                    reason,
                    time.time(),
                ),
            )

    def suspects(self) -> list[tuple[str, EventKey, str, float]]:
        rows = (
            self._db()
            .execute("SELECT provider, owner, calendar, uid, reason, at FROM suspects ORDER BY id")
            .fetchall()
        )
        return [(p, EventKey(o, c, u), r, at) for p, o, c, u, r, at in rows]

    def forget_suspects(self) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM suspects").rowcount

    def jobs(self) -> list[Job]:
        rows = self._db().execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id").fetchall()
        return [_job(r) for r in rows]

    def pending_job_for(self, key: EventKey, attempt: str) -> bool:
        return (
            self._db()
            .execute(
                "SELECT 1 FROM jobs WHERE owner=? AND calendar=? AND uid=? AND attempt=? LIMIT 1",
                (key.owner, key.calendar, key.uid, attempt),
            )
            .fetchone()
            is not None
        )

    def delete(self, key: EventKey) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )

    def move(self, old: EventKey, new: EventKey) -> Job | None:
        """The record, its queued jobs and its letters' state follow the event to `new`.

        A record the move overwrites loses its conference: its deletion is
        queued in the same transaction and returned.
        """
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (new.owner, new.calendar, new.uid),
            ).fetchone()
            replaced = _record(row) if row else None
            db.execute(
                "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (new.owner, new.calendar, new.uid),
            )
            db.execute(
                "UPDATE conferences SET owner=?, calendar=?, uid=?, updated_at=? "
                "WHERE owner=? AND calendar=? AND uid=?",
                (new.owner, new.calendar, new.uid, time.time(), old.owner, old.calendar, old.uid),
            )
            db.execute(
                "UPDATE jobs SET owner=?, calendar=?, uid=?, href='' "
                "WHERE owner=? AND calendar=? AND uid=?",
                (new.owner, new.calendar, new.uid, old.owner, old.calendar, old.uid),
            )
            # What the attendees were told follows the event too (the moved one wins).
            db.execute(
                "UPDATE OR REPLACE mail_state SET owner=?, calendar=?, uid=? "
                "WHERE owner=? AND calendar=? AND uid=?",
                (new.owner, new.calendar, new.uid, old.owner, old.calendar, old.uid),
            )
            if replaced is not None and replaced.conference is not None:
                return self._insert_job(
                    db,
                    Job(
                        0, ActionKind.DELETE, new, replaced.provider, conference=replaced.conference
                    ),
                )
        return None

    def transaction(self) -> contextlib.AbstractContextManager[object]:
        """Effects committed together. (Each write still commits on its own here.)"""
        return contextlib.nullcontext()

    def find_adoptable(self, key: EventKey, conference_id: str) -> Record | None:
        """The owner's active record of this UID and conference in another calendar (read only)."""
        row = (
            self._db()
            .execute(
                f"SELECT {_COLUMNS} FROM conferences WHERE owner=? AND uid=? AND calendar<>? "
                "AND conference_id=? AND state=? LIMIT 1",
                (key.owner, key.uid, key.calendar, conference_id, RecordState.ACTIVE.value),
            )
            .fetchone()
        )
        return _record(row) if row else None

    def sharing(self, key: EventKey, conference: Conference) -> list[EventKey]:
        """Other events whose active record holds the same conference (copies of one event)."""
        rows = (
            self._db()
            .execute(
                "SELECT owner, calendar, uid FROM conferences WHERE provider=? AND "
                "conference_id=? AND state=? AND NOT (owner=? AND calendar=? AND uid=?)",
                (
                    conference.provider,
                    conference.conference_id,
                    RecordState.ACTIVE.value,
                    key.owner,
                    key.calendar,
                    key.uid,
                ),
            )
            .fetchall()
        )
        return [EventKey(*row) for row in rows]

    def copy_letters(self, old: EventKey, new: EventKey) -> None:
        """A copy of the event knows what its people were told (so it tells them nothing twice)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO mail_state (owner, calendar, uid, sequence, recipients, "
                "content, cancelled, snapshot, updated_at) SELECT ?, ?, ?, sequence, recipients, "
                "content, cancelled, snapshot, ? FROM mail_state "
                "WHERE owner=? AND calendar=? AND uid=?",
                (new.owner, new.calendar, new.uid, time.time(), old.owner, old.calendar, old.uid),
            )

    def forget_letters(self, key: EventKey) -> None:
        """Forget what this event's people were told (another copy of it tells them now)."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM mail_state WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )

    def under(self, path: str) -> list[Record]:
        """Records of the calendar at `path` and of every calendar below it."""
        path = path.strip("/")
        if "/" not in path:  # a principal: everything the user owns
            rows = (
                self._db()
                .execute(f"SELECT {_COLUMNS} FROM conferences WHERE owner=?", (path,))
                .fetchall()
            )
        else:
            like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            rows = (
                self._db()
                .execute(
                    f"SELECT {_COLUMNS} FROM conferences WHERE calendar=? OR calendar LIKE ? ESCAPE '\\'",
                    (path, like),
                )
                .fetchall()
            )
        return [_record(r) for r in rows]

    def has_calendar(self, calendar: str) -> bool:
        return (
            self._db()
            .execute("SELECT 1 FROM conferences WHERE calendar=? LIMIT 1", (calendar,))
            .fetchone()
            is not None
        )

    def all(self) -> Iterator[Record]:
        for row in self._db().execute(f"SELECT {_COLUMNS} FROM conferences"):
            yield _record(row)
