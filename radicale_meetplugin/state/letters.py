"""Invitation letters in the state database: what each event's people were told, and the queue.

`mail_state`: per (owner, calendar, UID), the SEQUENCE last sent, who holds an
invitation, a digest of what they were shown, and the event text they got (to
build the cancellation when the event is deleted). `mail_rounds`: the event
text one round of letters shows (kept until its last letter is done). `mails`:
one row per letter, UNIQUE per (owner, calendar, UID, SEQUENCE, recipient,
method) — the "never twice" rule is that constraint: queuing is INSERT … ON
CONFLICT DO NOTHING, and the state, the round and its letters are written in one
transaction. The letters themselves are built by the sender, outside any lock.

`mails` is a leased queue (queue.py) whose marker is `in_data`: just before the
SMTP DATA command the row is marked (only by the lease holder, only once); a
worker that finds a letter whose sender died after that point cannot know
whether the SMTP server took it, and marks it `unknown` instead of sending it
again: at most once, never twice. A finished letter keeps its final state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.state.db import Connection
from radicale_meetplugin.state.queue import QUEUED, LeasedQueue

MAIL_SCHEMA = """
CREATE TABLE IF NOT EXISTS mail_state (
    owner TEXT NOT NULL,
    calendar TEXT NOT NULL,
    uid TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    content TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner, calendar, uid)
);
CREATE TABLE IF NOT EXISTS mail_rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot TEXT NOT NULL,
    join_url TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    calendar TEXT NOT NULL,
    uid TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    method TEXT NOT NULL,
    kind TEXT NOT NULL,
    round_id INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    in_data INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    done_at REAL NOT NULL DEFAULT 0,
    UNIQUE (owner, calendar, uid, sequence, recipient, method)
);
CREATE INDEX IF NOT EXISTS mails_due ON mails (state, next_at);
CREATE INDEX IF NOT EXISTS mails_round ON mails (round_id, state);
"""

SENT, FAILED, UNKNOWN = "sent", "failed", "unknown"  # a letter's final states (QUEUED: pending)


@dataclass(frozen=True)
class Sent:
    """What the recipients were last told about the event."""

    sequence: int
    recipients: frozenset[str]
    content: str
    cancelled: bool = False


@dataclass(frozen=True)
class Told:
    """The stored `mail_state` of one event."""

    sent: Sent
    snapshot: str = ""  # the event text the last letters showed ("" once cancelled)


@dataclass(frozen=True)
class Outgoing:
    """A letter to queue (its text is made when it is sent)."""

    sequence: int
    recipient: str
    method: str
    kind: str


@dataclass(frozen=True)
class Round:
    """What one decision queues: the letters, the event text they show, the new state."""

    letters: list[Outgoing]
    told: Told | None
    snapshot: str = ""
    join_url: str = ""


@dataclass(frozen=True)
class Mail:
    """A queued letter, as a sender claims it."""

    id: int
    key: EventKey
    sequence: int
    recipient: str
    method: str
    kind: str
    round_id: int
    snapshot: str  # the event as the letter shows it
    join_url: str
    tries: int
    created_at: float
    interrupted_in_data: bool = False  # an earlier sender died during DATA: outcome unknown


Decide = Callable[[Told | None], Round]


class LetterQueue(LeasedQueue[Mail]):
    """The `mails` queue; the round's event text goes with its last letter."""

    def __init__(self, db: Any) -> None:
        super().__init__(
            db,
            "mails",
            ("owner", "calendar", "uid", "sequence", "recipient", "method", "kind", "round_id"),
            _mail,
            marker="in_data",
            keep_done=True,
        )

    def finish(self, item_id: int, state: str = SENT, error: str = "") -> None:
        """Sent, failed for good, or unknown."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT round_id FROM mails WHERE id=?", (item_id,)).fetchone()
            if row is not None:
                self.db.lock(conn, "round", row[0])  # its last two letters may end together
            super().finish(item_id, state, error)
            conn.execute(
                "DELETE FROM mail_rounds WHERE id = (SELECT round_id FROM mails "
                "WHERE id=?) AND NOT EXISTS (SELECT 1 FROM mails WHERE "
                "round_id = mail_rounds.id AND state=?)",
                (item_id, QUEUED),
            )


def _mail(conn: Connection, row: Mapping[str, Any]) -> Mail:
    shown = conn.execute(
        "SELECT snapshot, join_url FROM mail_rounds WHERE id=?", (row["round_id"],)
    ).fetchone()
    return Mail(
        row["id"],
        EventKey(row["owner"], row["calendar"], row["uid"]),
        row["sequence"],
        row["recipient"],
        row["method"],
        row["kind"],
        row["round_id"],
        shown[0] if shown else "",
        shown[1] if shown else "",
        row["tries"],
        row["created_at"],
        interrupted_in_data=bool(row["in_data"]),
    )


class Letters:
    """What each event's people were told, and the letters' queue."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.queue = LetterQueue(db)

    def state(self, key: EventKey) -> Told | None:
        row = self.db.query_one(
            "SELECT sequence, recipients, content, cancelled, snapshot FROM mail_state "
            "WHERE owner=? AND calendar=? AND uid=?",
            (key.owner, key.calendar, key.uid),
        )
        return _told(row) if row else None

    def round(self, key: EventKey, decide: Decide) -> list[int]:
        """Read the event's state, decide its letters, store both: one transaction.

        Returns the ids of the letters queued now (a letter queued before for the
        same event, SEQUENCE, recipient and method is not queued again).
        """
        with self.db.transaction() as conn:
            self.db.lock(conn, "letters", key.owner, key.calendar, key.uid)
            row = conn.execute(
                "SELECT sequence, recipients, content, cancelled, snapshot FROM mail_state "
                "WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            ).fetchone()
            decided = decide(_told(row) if row else None)
            now = time.time()
            if decided.told is not None:
                sent = decided.told.sent
                conn.execute(
                    "INSERT INTO mail_state (owner, calendar, uid, sequence, "
                    "recipients, content, cancelled, snapshot, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (owner, calendar, uid) DO UPDATE "
                    "SET sequence=excluded.sequence, recipients=excluded.recipients, "
                    "content=excluded.content, cancelled=excluded.cancelled, "
                    "snapshot=excluded.snapshot, updated_at=excluded.updated_at",
                    (
                        key.owner,
                        key.calendar,
                        key.uid,
                        sent.sequence,
                        json.dumps(sorted(sent.recipients)),
                        sent.content,
                        int(sent.cancelled),
                        decided.told.snapshot,
                        now,
                    ),
                )
            if not decided.letters:
                return []
            round_id = conn.execute(
                "INSERT INTO mail_rounds (snapshot, join_url, created_at) VALUES (?,?,?) "
                "RETURNING id",
                (decided.snapshot, decided.join_url, now),
            ).fetchone()[0]
            ids = []
            for letter in decided.letters:
                mail_id = self.queue.insert(
                    conn,
                    {
                        "owner": key.owner,
                        "calendar": key.calendar,
                        "uid": key.uid,
                        "sequence": letter.sequence,
                        "recipient": letter.recipient,
                        "method": letter.method,
                        "kind": letter.kind,
                        "round_id": round_id,
                    },
                    unique=True,
                )
                if mail_id is not None:
                    ids.append(mail_id)
            if not ids:
                conn.execute("DELETE FROM mail_rounds WHERE id=?", (round_id,))
            return ids

    def keys_under(self, path: str) -> list[EventKey]:
        """Events of the calendar at `path` (or below it) whose people hold invitations."""
        path = path.strip("/")
        like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        rows = self.db.query(
            "SELECT owner, calendar, uid FROM mail_state WHERE cancelled=0 AND "
            "(owner=? AND ?=0 OR calendar=? OR calendar LIKE ? ESCAPE '\\')",
            (path, int("/" in path), path, like),
        )
        return [EventKey(*row) for row in rows]

    def listing(self, key: EventKey | None = None) -> list[tuple]:
        """(id, uid, sequence, recipient, method, kind, state, tries) for admins and tests."""
        sql = "SELECT id, uid, sequence, recipient, method, kind, state, tries FROM mails"
        if key is None:
            return self.db.query(sql + " ORDER BY id")
        return self.db.query(
            sql + " WHERE owner=? AND calendar=? AND uid=? ORDER BY id",
            (key.owner, key.calendar, key.uid),
        )


def _told(row: tuple) -> Told:
    sequence, recipients, content, cancelled, snapshot = row
    return Told(
        Sent(int(sequence), frozenset(json.loads(recipients)), content, bool(cancelled)), snapshot
    )
