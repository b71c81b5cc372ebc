"""Invitation letters in the state file: what each event's people were told, and the queue.

`mail_state`: per (owner, calendar, UID), the SEQUENCE last sent, who holds an
invitation, a digest of what they were shown, and the event text they got (to
build the cancellation when the event is deleted). `mail_rounds`: the event
text one round of letters shows (kept until its last letter is done). `mails`:
one row per letter, UNIQUE per (owner, calendar, UID, SEQUENCE, recipient,
method) — the "never twice" rule is that constraint: queuing is INSERT OR
IGNORE, and the state, the round and its letters are written in one
transaction. The letters themselves are built by the sender, outside any lock.

A letter is claimed with a lease like an outbox job. Just before the SMTP DATA
command the row is marked `in_data` (only by the lease holder, only once); a
worker that finds a letter whose sender died after that point cannot know
whether the SMTP server took it, and marks it `unknown` instead of sending it
again: at most once, never twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.mail.plan import Sent

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

QUEUED, SENT, FAILED, UNKNOWN = "queued", "sent", "failed", "unknown"


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


class MailQueue:
    """Mixed into RecordStore: the same sqlite file, connections and transactions."""

    _db: Callable[[], sqlite3.Connection]
    _tx: Callable[[], object]

    def mail_state(self, key: EventKey) -> Told | None:
        row = (
            self._db()
            .execute(
                "SELECT sequence, recipients, content, cancelled, snapshot FROM mail_state "
                "WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            )
            .fetchone()
        )
        return _told(row) if row else None

    def mail_round(self, key: EventKey, decide: Decide) -> list[int]:
        """Read the event's state, decide its letters, store both: one transaction.

        Returns the ids of the letters queued now (a letter queued before for the
        same event, SEQUENCE, recipient and method is not queued again).
        """
        with self._tx() as db:  # type: ignore[attr-defined]
            row = db.execute(
                "SELECT sequence, recipients, content, cancelled, snapshot FROM mail_state "
                "WHERE owner=? AND calendar=? AND uid=?",
                (key.owner, key.calendar, key.uid),
            ).fetchone()
            decided = decide(_told(row) if row else None)
            now = time.time()
            if decided.told is not None:
                sent = decided.told.sent
                db.execute(
                    "INSERT OR REPLACE INTO mail_state (owner, calendar, uid, sequence, "
                    "recipients, content, cancelled, snapshot, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
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
            round_id = db.execute(
                "INSERT INTO mail_rounds (snapshot, join_url, created_at) VALUES (?,?,?)",
                (decided.snapshot, decided.join_url, now),
            ).lastrowid
            ids = []
            for letter in decided.letters:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO mails (owner, calendar, uid, sequence, recipient, "
                    "method, kind, round_id, next_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        key.owner,
                        key.calendar,
                        key.uid,
                        letter.sequence,
                        letter.recipient,
                        letter.method,
                        letter.kind,
                        round_id,
                        now,
                        now,
                    ),
                )
                if cursor.rowcount:
                    ids.append(int(cursor.lastrowid or 0))
            if not ids:
                db.execute("DELETE FROM mail_rounds WHERE id=?", (round_id,))
            return ids

    def mail_keys_under(self, path: str) -> list[EventKey]:
        """Events of the calendar at `path` (or below it) whose people hold invitations."""
        path = path.strip("/")
        like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        rows = (
            self._db()
            .execute(
                "SELECT owner, calendar, uid FROM mail_state WHERE cancelled=0 AND "
                "(owner=? AND ?=0 OR calendar=? OR calendar LIKE ? ESCAPE '\\')",
                (path, int("/" in path), path, like),
            )
            .fetchall()
        )
        return [EventKey(*row) for row in rows]

    # --- the sender's side -------------------------------------------------------

    def claim_mail(
        self, mail_id: int, owner: str, lease: float, alive: Callable[[str], bool]
    ) -> Mail | None:
        now = time.time()
        with self._tx() as db:  # type: ignore[attr-defined]
            row = db.execute(
                "SELECT state, lease_owner, lease_until, in_data FROM mails WHERE id=?", (mail_id,)
            ).fetchone()
            if row is None or row[0] != QUEUED:
                return None
            state, holder, until, in_data = row
            if holder and holder != owner and until > now and alive(holder):
                return None
            db.execute(
                "UPDATE mails SET lease_owner=?, lease_until=? WHERE id=?",
                (owner, now + lease, mail_id),
            )
            row = db.execute(
                "SELECT m.id, m.owner, m.calendar, m.uid, m.sequence, m.recipient, m.method, "
                "m.kind, m.round_id, COALESCE(r.snapshot, ''), COALESCE(r.join_url, ''), "
                "m.tries, m.created_at FROM mails m LEFT JOIN mail_rounds r ON r.id = m.round_id "
                "WHERE m.id=?",
                (mail_id,),
            ).fetchone()
        (
            mid,
            o,
            c,
            u,
            seq,
            recipient,
            method,
            kind,
            round_id,
            snapshot,
            join_url,
            tries,
            created,
        ) = row
        return Mail(
            mid,
            EventKey(o, c, u),
            seq,
            recipient,
            method,
            kind,
            round_id,
            snapshot,
            join_url,
            tries,
            created,
            interrupted_in_data=bool(in_data),
        )

    def mail_in_data(self, mail_id: int, owner: str) -> bool:
        """About to send DATA: allowed once, and only to the lease holder."""
        with self._tx() as db:  # type: ignore[attr-defined]
            return (
                db.execute(
                    "UPDATE mails SET in_data=1 WHERE id=? AND lease_owner=? AND in_data=0 "
                    "AND state=?",
                    (mail_id, owner, QUEUED),
                ).rowcount
                == 1
            )

    def retry_mail(self, mail_id: int, owner: str, next_at: float, error: str) -> None:
        """The SMTP server did not take it (and said so): try again later."""
        with self._tx() as db:  # type: ignore[attr-defined]
            db.execute(
                "UPDATE mails SET tries = tries + 1, next_at=?, last_error=?, "
                "lease_owner='', lease_until=0, in_data=0 "
                "WHERE id=? AND lease_owner=? AND state=?",
                (next_at, error[:200], mail_id, owner, QUEUED),
            )

    def finish_mail(self, mail_id: int, state: str, error: str = "") -> None:
        """Sent, failed for good, or unknown. The round's text goes with its last letter."""
        with self._tx() as db:  # type: ignore[attr-defined]
            db.execute(
                "UPDATE mails SET state=?, last_error=?, lease_owner='', "
                "lease_until=0, done_at=?, tries = tries + 1 WHERE id=?",
                (state, error[:200], time.time(), mail_id),
            )
            db.execute(
                "DELETE FROM mail_rounds WHERE id = (SELECT round_id FROM mails "
                "WHERE id=?) AND NOT EXISTS (SELECT 1 FROM mails WHERE "
                "round_id = mail_rounds.id AND state=?)",
                (mail_id, QUEUED),
            )

    def due_mails(self, now: float, limit: int = 100) -> list[int]:
        rows = (
            self._db()
            .execute(
                "SELECT id FROM mails WHERE state=? AND next_at <= ? "
                "AND (lease_owner = '' OR lease_until <= ?) ORDER BY next_at LIMIT ?",
                (QUEUED, now, now, limit),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def mails_held_by_others(self, owner: str) -> list[tuple[int, str]]:
        return (
            self._db()
            .execute(
                "SELECT id, lease_owner FROM mails WHERE state=? AND lease_owner NOT IN ('', ?)",
                (QUEUED, owner),
            )
            .fetchall()
        )

    def next_mail_at(self) -> float | None:
        row = (
            self._db()
            .execute("SELECT MIN(MAX(next_at, lease_until)) FROM mails WHERE state=?", (QUEUED,))
            .fetchone()
        )
        return row[0] if row else None

    def mails(self, key: EventKey | None = None) -> list[tuple]:
        """(id, uid, sequence, recipient, method, kind, state, tries) for admins and tests."""
        sql = "SELECT id, uid, sequence, recipient, method, kind, state, tries FROM mails"
        if key is None:
            return self._db().execute(sql + " ORDER BY id").fetchall()
        return (
            self._db()
            .execute(
                sql + " WHERE owner=? AND calendar=? AND uid=? ORDER BY id",
                (key.owner, key.calendar, key.uid),
            )
            .fetchall()
        )


def _told(row: tuple) -> Told:
    sequence, recipients, content, cancelled, snapshot = row
    return Told(
        Sent(int(sequence), frozenset(json.loads(recipients)), content, bool(cancelled)), snapshot
    )
