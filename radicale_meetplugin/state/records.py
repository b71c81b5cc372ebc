"""The conference records, the provider jobs and the suspects, in the state database.

`conferences`: which conference belongs to which (owner, calendar, UID) — the
source of truth. `jobs`: provider calls still to make (the outbox), a leased
queue (queue.py) whose marker `interrupted` is set just before the provider
call. `suspects`: creates whose outcome is unknown. The invitation letters'
tables are in letters.py, in the same file. A record and the job that serves it
are written in one transaction, so a crash never leaves one without the other;
every write method also joins the caller's `transaction()`, so the effects of
one save can be committed together. Safe for several Radicale processes
sharing one storage folder, or one PostgreSQL database (db.py, postgres.py).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Meeting,
    Record,
    RecordState,
)
from radicale_meetplugin.state.db import Connection, Schema, open_database
from radicale_meetplugin.state.letters import MAIL_SCHEMA, Decide, LetterQueue, Letters, Told
from radicale_meetplugin.state.queue import LeasedQueue

_CONFERENCES = """
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
"""
_JOBS = """
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
# 1: the records; 2: the outbox and the suspects; 3: the invitation letters.
SCHEMA = Schema((_CONFERENCES, _JOBS, MAIL_SCHEMA), name="records")
SCHEMA_VERSION = SCHEMA.version
_JOB_PAYLOAD = (
    "kind",
    "owner",
    "calendar",
    "uid",
    "provider",
    "attempt",
    "meeting",
    "conference",
    "old",
    "href",
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


def _job(_conn: Connection, row: Mapping[str, Any]) -> Job:
    return Job(
        row["id"],
        ActionKind(row["kind"]),
        EventKey(row["owner"], row["calendar"], row["uid"]),
        row["provider"],
        row["attempt"],
        _meeting(row["meeting"]),
        _conference(row["conference"]),
        _conference(row["old"]),
        row["href"],
        row["tries"],
        row["created_at"],
        row["last_error"],
        bool(row["interrupted"]),
    )


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "kind": job.kind.value,
        "owner": job.key.owner,
        "calendar": job.key.calendar,
        "uid": job.key.uid,
        "provider": job.provider,
        "attempt": job.attempt,
        "meeting": _dump(job.meeting),
        "conference": _dump(job.conference),
        "old": _dump(job.old),
        "href": job.href,
    }


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


_UPSERT = (
    f"INSERT INTO conferences ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (owner, calendar, uid) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS.split(", ")[3:])
)


class RecordStore:
    def __init__(
        self, path: str, *, pool: int = 8, read_only: bool = False, migrate: bool = True
    ) -> None:
        """The records in the sqlite file at `path`, or in the PostgreSQL database it names."""
        # Short waits: callers may hold Radicale's global lock; past this the
        # event is stored as sent rather than freezing every user.
        self.db = open_database(
            path, SCHEMA, timeout=5.0, pool=pool, read_only=read_only, migrate=migrate
        )
        self.path = self.db.shown  # never the URL's password
        self.jobs_queue: LeasedQueue[Job] = LeasedQueue(
            self.db, "jobs", _JOB_PAYLOAD, _job, marker="interrupted"
        )
        self.letters = Letters(self.db)
        self.letters_queue: LetterQueue = self.letters.queue

    def transaction(self) -> AbstractContextManager[Connection]:
        """One transaction for several writes on this thread (each write method joins it)."""
        return self.db.transaction()

    def close(self) -> None:
        """Release every connection; the store is not used afterwards."""
        self.db.close()

    # --- records ---------------------------------------------------------------

    def get(self, key: EventKey) -> Record | None:
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM conferences WHERE owner=? AND calendar=? AND uid=?",
            (key.owner, key.calendar, key.uid),
        )
        return _record(row) if row else None

    def put(self, record: Record) -> None:
        conf = record.conference
        with self.db.transaction() as db:
            db.execute(
                _UPSERT,
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
        with self.db.transaction() as db:
            db.execute(
                _UPSERT,
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

    def _insert_job(self, db: Connection, job: Job) -> Job:
        job_id = self.jobs_queue.insert(db, _job_values(job))
        return dataclasses.replace(job, id=job_id or 0, created_at=time.time())

    def enqueue(self, job: Job) -> Job:
        with self.db.transaction() as db:
            return self._insert_job(db, job)

    def drop(self, key: EventKey, then: Job | None = None) -> Job | None:
        """Forget the record; with `then`, queue its conference's deletion atomically."""
        with self.db.transaction() as db:
            db.execute(
                "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )
            return self._insert_job(db, then) if then is not None else None

    def holds(self, key: EventKey, record: Record | None) -> bool:
        """Is the record of `key` still `record`? Inside a transaction the record stays so
        until it ends: on PostgreSQL a lock on the key (on sqlite BEGIN IMMEDIATE does it),
        so two processes deciding one new event at once cannot both find it absent."""
        with self.db.transaction() as db:
            self.db.lock(db, "conference", key.owner, key.calendar, key.uid)
            return self.get(key) == record

    def finish_attempt(self, key: EventKey, attempt: str, record: Record | None) -> bool:
        """Store the attempt's result if the record still waits for this attempt.

        `record` None forgets it. False means the event moved on meanwhile
        (deleted, or another attempt): the caller owns what the provider made.
        """
        with self.db.transaction() as db:
            self.db.lock(db, "conference", key.owner, key.calendar, key.uid)
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
        with self.db.transaction() as db:
            db.execute(
                "DELETE FROM conferences WHERE owner=? AND calendar=? AND uid=? "
                "AND attempt=? AND state=?",
                (key.owner, key.calendar, key.uid, attempt, RecordState.CREATING.value),
            )
            return self._insert_job(db, orphan)

    # --- the provider jobs (run by the outbox through `jobs_queue`) -----------------

    def jobs(self) -> list[Job]:
        return self.jobs_queue.items()

    def pending_job_for(self, key: EventKey, attempt: str) -> bool:
        return (
            self.db.query_one(
                "SELECT 1 FROM jobs WHERE owner=? AND calendar=? AND uid=? AND attempt=? LIMIT 1",
                (key.owner, key.calendar, key.uid, attempt),
            )
            is not None
        )

    def add_suspect(self, job: Job, reason: str) -> None:
        """A create whose outcome is unknown: the provider may hold a room nobody knows of."""
        with self.db.transaction() as db:
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
        rows = self.db.query(
            "SELECT provider, owner, calendar, uid, reason, at FROM suspects ORDER BY id"
        )
        return [(p, EventKey(o, c, u), r, at) for p, o, c, u, r, at in rows]

    def forget_suspects(self) -> int:
        with self.db.transaction() as db:
            return db.execute("DELETE FROM suspects").rowcount

    # --- events that move ----------------------------------------------------------

    def move(self, old: EventKey, new: EventKey) -> Job | None:
        """The record, its queued jobs and its letters' state follow the event to `new`.

        A record the move overwrites loses its conference: its deletion is
        queued in the same transaction and returned.
        """
        with self.db.transaction() as db:
            self.db.lock(db, "conference", new.owner, new.calendar, new.uid)
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
                "DELETE FROM mail_state WHERE owner=? AND calendar=? AND uid=? AND EXISTS "
                "(SELECT 1 FROM mail_state WHERE owner=? AND calendar=? AND uid=?)",
                (new.owner, new.calendar, new.uid, old.owner, old.calendar, old.uid),
            )
            db.execute(
                "UPDATE mail_state SET owner=?, calendar=?, uid=? "
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

    def find_adoptable(self, key: EventKey, conference_id: str) -> Record | None:
        """The owner's active record of this UID and conference in another calendar (read only)."""
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM conferences WHERE owner=? AND uid=? AND calendar<>? "
            "AND conference_id=? AND state=? LIMIT 1",
            (key.owner, key.uid, key.calendar, conference_id, RecordState.ACTIVE.value),
        )
        return _record(row) if row else None

    def sharing(self, key: EventKey, conference: Conference) -> list[EventKey]:
        """Other events whose active record holds the same conference (copies of one event)."""
        rows = self.db.query(
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
        return [EventKey(*row) for row in rows]

    def copy_letters(self, old: EventKey, new: EventKey) -> None:
        """A copy of the event knows what its people were told (so it tells them nothing twice)."""
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO mail_state (owner, calendar, uid, sequence, recipients, "
                "content, cancelled, snapshot, updated_at) SELECT ?, ?, ?, sequence, recipients, "
                "content, cancelled, snapshot, ? FROM mail_state "
                "WHERE owner=? AND calendar=? AND uid=? ON CONFLICT DO NOTHING",
                (new.owner, new.calendar, new.uid, time.time(), old.owner, old.calendar, old.uid),
            )

    def forget_letters(self, key: EventKey) -> None:
        """Forget what this event's people were told (another copy of it tells them now)."""
        with self.db.transaction() as db:
            db.execute(
                "DELETE FROM mail_state WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )

    # --- listings --------------------------------------------------------------------

    def under(self, path: str) -> list[Record]:
        """Records of the calendar at `path` and of every calendar below it."""
        path = path.strip("/")
        if "/" not in path:  # a principal: everything the user owns
            rows = self.db.query(f"SELECT {_COLUMNS} FROM conferences WHERE owner=?", (path,))
        else:
            like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM conferences "
                "WHERE calendar=? OR calendar LIKE ? ESCAPE '\\'",
                (path, like),
            )
        return [_record(r) for r in rows]

    def has_calendar(self, calendar: str) -> bool:
        return (
            self.db.query_one("SELECT 1 FROM conferences WHERE calendar=? LIMIT 1", (calendar,))
            is not None
        )

    def all(self) -> Iterator[Record]:
        # Read at once: a connection is never held while the caller works on the rows.
        for row in self.db.query(f"SELECT {_COLUMNS} FROM conferences"):
            yield _record(row)

    # --- invitation letters (letters.py) -------------------------------------------

    def mail_state(self, key: EventKey) -> Told | None:
        return self.letters.state(key)

    def mail_round(self, key: EventKey, decide: Decide) -> list[int]:
        return self.letters.round(key, decide)

    def mail_keys_under(self, path: str) -> list[EventKey]:
        return self.letters.keys_under(path)

    def mail_keys_of_uid(self, uid: str) -> list[EventKey]:
        return self.letters.keys_of_uid(uid)

    def last_sequence_to(self, key: EventKey, recipient: str) -> int | None:
        return self.letters.last_sequence(key, recipient)

    def mails(self, key: EventKey | None = None) -> list[tuple]:
        return self.letters.listing(key)
