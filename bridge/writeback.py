"""One event through the engine, and its result written back safely.

The same three steps as the Radicale adapter, with a CalDAV server in place
of Radicale's storage:

1. `judge`: the event as read (text + ETag) goes through ``engine.on_put``;
   a rewritten text is written back with ``If-Match`` on the ETag read. On
   412 (the person edited it meanwhile) the event is read again and judged
   again — the engine's records make sure no second conference is made and
   nothing the person typed is overwritten. The ETag of our own write is
   remembered, so the next sync recognises it and does nothing (no loops).
2. provider calls run in the outbox, outside the bridge's lock;
3. `settle`: a late result (a provider's link) is put into the event as it is
   *now* (read again), written with ``If-Match``, and that version is judged
   once more.

Servers that refuse what we write (``CONFERENCE``, ``X-`` properties) get it
again without those: the link stays in LOCATION and DESCRIPTION. Every call
here happens under the bridge's lock, so the engine never judges one event
twice at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from bridge import ownership
from bridge.caldav_client import CalDAVClient, Resource
from bridge.config import Account
from bridge.state import BridgeState
from radicale_meetplugin.core import ical, rewrite
from radicale_meetplugin.core.detect import Grammar
from radicale_meetplugin.core.model import EventKey, Job
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.ports import Outcome
from radicale_meetplugin.protocol.session import Session, Stored, Write
from radicale_meetplugin.state.records import RecordStore

logger = logging.getLogger("meetplugin.bridge")

MAX_SAME_WRITES = 2  # writing the very same text again and again: the server keeps changing it
REFUSED = frozenset({400, 403, 409, 415, 422, 500})  # "not this content" answers to a PUT
EXTRAS = (*rewrite.BOOKKEEPING, "CONFERENCE", ownership.MARK)  # + providers' link properties


@dataclass
class Link:
    """One configured account and its connection."""

    account: Account
    client: CalDAVClient
    reduced: bool = False  # the server refused CONFERENCE / X- properties: leave them out

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def owner(self) -> str:
        return self.account.owner


@dataclass
class Tally:
    """What one cycle (or one settle) did; summed up in the log."""

    read: int = 0
    written: int = 0
    conflicts: int = 0
    ours: int = 0  # our own write-backs (or unchanged versions) seen again
    deleted: int = 0
    refused: int = 0
    jobs: list[Job] = field(default_factory=list)  # queued, not yet handed to the outbox
    submitted: int = 0

    def add(self, other: Tally) -> None:
        for name in ("read", "written", "conflicts", "ours", "deleted", "refused", "submitted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.jobs.extend(other.jobs)


def calendar_key(href: str) -> str:
    """The calendar part of the conference key: the calendar's path without slashes."""
    return href.strip("/")


def calendar_href(key: str) -> str:
    return "/" + key.strip("/") + "/"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def uid_of(text: str) -> str:
    """The UID of the first VEVENT ("" if none), read without a full parse."""
    inside = False
    for line in ical.unfold(text):
        upper = line[:12].upper()
        if upper.startswith("BEGIN:VEVENT"):
            inside = True
        elif upper.startswith("END:VEVENT"):
            inside = False
        elif inside and (upper.startswith("UID:") or upper.startswith("UID;")):
            quoted = False
            for i, ch in enumerate(line):
                if ch == '"':
                    quoted = not quoted
                elif ch == ":" and not quoted:
                    return line[i + 1 :].strip()
    return ""


def without_extras(text: str, grammar: Grammar | None = None) -> str:
    """The event without CONFERENCE and our X- properties (for servers that refuse them)."""
    try:
        cal = ical.parse(text)
    except ical.EventParseError:
        return text
    names = (*EXTRAS, *(grammar.all_link_properties() if grammar else ()))
    for comp in ical.vevents(cal):
        for name in names:
            comp.pop(name, None)
    return ical.to_text(cal)


class CalDAVEventStore:
    """The `EventStore` port over one account's CalDAV server: If-Match, 412, reduced mode.

    What it writes and sees is remembered in the bridge's state, so the next
    sync recognises our own versions (no loops). `tally` counts for the cycle.
    """

    rejudge_after_settle = True  # a write can race with a person's edit: look once more
    optimistic = False  # no lock over the server: settled under our lock, with If-Match

    def __init__(
        self,
        link: Link,
        state: BridgeState,
        lock: AbstractContextManager[object],
        grammar: Grammar | None = None,
        instance: str = "",
        adopt: bool = False,
        fence: Callable[[str], object] | None = None,
    ):
        """`fence(account)`: raises (LeaseLost) when this worker may no longer write."""
        self.link = link
        self.fence = fence
        self.state = state
        self.grammar = grammar  # whose link properties a reduced write leaves out
        self.instance = instance  # this bridge's id, marked in every event it writes
        self.adopt = adopt  # write into events another instance marked as its own
        self._lock = lock
        self.tally = Tally()

    def lock(self) -> AbstractContextManager[object]:
        return self._lock

    def locate(self, job: Job) -> str:
        calendar = calendar_href(job.key.calendar)
        return self.state.href_of(self.link.name, calendar, job.key.uid) or job.href

    def read(self, key: EventKey, ref: str) -> Stored | None:
        res = self.link.client.get(ref)
        return Stored(res.href, res.text, res.etag) if res is not None else None

    def unreadable(self, key: EventKey, ref: str, error: Exception) -> Stored | None:
        """The server is away: the version we wrote, to be written when it is back."""
        logger.warning(
            "bridge: %s: %s: cannot read the event to add the result (%s); "
            "it is read again next cycle",
            self.link.name,
            ref,
            error,
        )
        item = self.state.item(self.link.name, ref)
        if item and item.written_text and item.etag == item.written_etag:
            return Stored(ref, item.written_text, "")  # no version: written next cycle
        return None

    def write(self, key: EventKey, ref: str, text: str, version: str) -> Write:
        link, calendar, where = self.link, calendar_href(key.calendar), f"{self.link.name}: {ref}"
        if not version:  # no version to write against: never blindly
            self.state.mark_dirty(link.name, calendar, ref, key.uid)
            return Write(ok=False)
        if self.instance:
            owner = self.owner_of(text)
            if owner and owner != self.instance and not self.adopt:
                logger.info(
                    "bridge: %s: %s belongs to bridge instance %s; not written "
                    "(run with --adopt to take it over)",
                    where,
                    key.uid,
                    owner,
                )
                self.state.seen(link.name, calendar, ref, key.uid, version)
                return Write(ok=False)
            text = ownership.stamp(text, self.instance)
        if self.fence is not None:
            try:
                self.fence(link.name)
            except Exception:  # not ours any more: the lease holder judges it again
                self.state.mark_dirty(link.name, calendar, ref, key.uid)
                raise
        text_hash = digest(text)
        prev = self.state.item(link.name, ref)
        repeats = prev.repeats + 1 if prev and prev.written_hash == text_hash else 0
        if repeats >= MAX_SAME_WRITES:
            logger.info(
                "bridge: %s: the server keeps changing what we write; taking its version as ours",
                where,
            )
            self.state.seen(link.name, calendar, ref, key.uid, version)
            self.tally.ours += 1
            return Write(ok=False)
        try:
            put = self._put(ref, text, version)
            if put.ok:
                etag = put.etag or link.client.etag(ref)
        except Exception as e:  # the server went away mid-write: the next cycle tries again
            logger.warning("bridge: %s: cannot write (%s); next cycle tries again", where, e)
            self.state.mark_dirty(link.name, calendar, ref, key.uid)
            return Write(ok=False)
        if put.ok:
            self.state.wrote(link.name, calendar, ref, key.uid, etag, text_hash, text, repeats)
            self.tally.written += 1
            return Write(ok=True, version=etag)
        if put.status == 412:
            self.tally.conflicts += 1
            return Write(ok=False, conflict=True)
        logger.warning(
            "bridge: %s: the server refused the rewritten event (HTTP %s); it is left as it is",
            where,
            put.status,
        )
        self.state.seen(link.name, calendar, ref, key.uid, version)
        self.tally.refused += 1
        return Write(ok=False)

    @staticmethod
    def owner_of(text: str) -> str:
        try:
            return ownership.mark_of(ical.parse(text))
        except ical.EventParseError:
            return ""

    def previous(self, key: EventKey, ref: str) -> str | None:
        item = self.state.item(self.link.name, ref)
        return item.written_text if item else None

    def unchanged(self, key: EventKey, stored: Stored) -> None:
        self.state.seen(
            self.link.name, calendar_href(key.calendar), stored.ref, key.uid, stored.version
        )

    def gave_up(self, key: EventKey, stored: Stored) -> None:
        self.state.mark_dirty(self.link.name, calendar_href(key.calendar), stored.ref, key.uid)

    def settling(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def commit_settled(self, key, ref, version, text, commit) -> list[Job] | None:
        raise NotImplementedError("not optimistic: the session settles under the lock")

    def _put(self, href: str, text: str, etag: str):
        """PUT with If-Match; once a server refuses our extras, without them."""
        link = self.link
        put = link.client.put(
            href, without_extras(text, self.grammar) if link.reduced else text, etag
        )
        if put.ok or link.reduced or put.status not in REFUSED:
            return put
        reduced = without_extras(text, self.grammar)
        if reduced == text:
            return put
        again = link.client.put(href, reduced, etag)
        if again.ok:
            link.reduced = True
            logger.warning(
                "bridge: %s: the server refused CONFERENCE/X- properties (HTTP %s); "
                "links go into LOCATION and DESCRIPTION only",
                link.name,
                put.status,
            )
        return again


class Writer:
    """The bridge's events through the session: one `CalDAVEventStore` per account."""

    def __init__(
        self,
        engine: Engine[RecordStore],
        state: BridgeState,
        lock: AbstractContextManager[object] | None = None,
        instance: str = "",
        adopt: bool = False,
        fence: Callable[[str], object] | None = None,
    ) -> None:
        self.engine = engine
        self.fence = fence  # shared workers: the lease check before every write
        self.state = state
        self.lock = lock if lock is not None else threading.RLock()
        self.instance = instance  # "" : no marks (tests of the write path alone)
        self.adopt = adopt
        self._sessions: dict[str, Session] = {}

    def session(self, link: Link) -> Session:
        session = self._sessions.get(link.name)
        if session is None or session.store.link is not link:  # type: ignore[attr-defined]
            store = CalDAVEventStore(
                link,
                self.state,
                self.lock,
                self.engine.grammar,
                self.instance,
                self.adopt,
                self.fence,
            )
            session = self._sessions[link.name] = Session(self.engine, store)
        return session

    def _another_instances(self, link: Link, key: EventKey, res: Resource) -> Resource | None:
        """Leave alone (None) or adopt an event another bridge instance manages.

        Another instance's event: marked with its id, or showing a conference of
        ours that this instance has no record of (its state folder is new). With
        `adopt` the event is marked as ours (its conference, if complete, becomes
        our record) and judged as usual; returns the version to judge.
        """
        if "X-MEETPLUGIN-" not in res.text.upper():
            return res  # no bookkeeping of anyone's: the usual case, decided without a parse
        try:
            cal = ical.parse(res.text)
        except ical.EventParseError:
            return res
        owner = ownership.mark_of(cal)
        if owner == self.instance:
            return res
        if not owner and (not ownership.shows_ours(cal) or self.engine.store.get(key)):
            return res  # nobody's yet, or ours from before marks existed
        whose = f"bridge instance {owner}" if owner else "another bridge instance (unmarked)"
        where = f"{link.name}: {res.href}"
        if not self.adopt:
            logger.info(
                "bridge: %s: %s is managed by %s; left alone (run with --adopt to take it over)",
                where,
                key.uid,
                whose,
            )
            self.state.left_alone(link.name, calendar_href(key.calendar), res.href, key.uid)
            return None
        record = ownership.adopted_record(cal, key, self.engine.grammar)
        if record is not None and self.engine.store.get(key) is None:
            self.engine.store.put(record)
        written = self.session(link).store.write(key, res.href, res.text, res.etag)
        if not written.ok:
            return None  # edited meanwhile (the next sync brings it) or refused
        logger.warning(
            "bridge: %s: %s adopted from %s%s",
            where,
            key.uid,
            whose,
            f" with its {record.provider} conference {record.conference.conference_id}"
            if record is not None and record.conference is not None
            else "",
        )
        fresh = link.client.get(res.href)
        return fresh

    # --- step 1: an event the sync reported -----------------------------------

    def judge(self, link: Link, calendar: str, res: Resource, tally: Tally) -> None:
        """Run one changed event through the session and write the result back."""
        prev = self.state.item(link.name, res.href)
        uid = uid_of(res.text)
        if prev is not None and prev.uid and prev.uid != uid:  # the href holds another event now
            tally.jobs.extend(self.engine.on_delete(self._key(link, calendar, prev.uid)))
            prev = None
        if not uid:  # a task, a journal, or unreadable: nothing for us
            self.state.seen(link.name, calendar, res.href, "", res.etag)
            return
        key = self._key(link, calendar, uid)
        if not res.etag:  # the listing gave none: If-Match needs it
            fresh = link.client.get(res.href)
            if fresh is None:
                return  # deleted meanwhile: the next sync says so
            if not fresh.etag:
                logger.warning(
                    "bridge: %s: %s: the server gives no ETag; the event is left "
                    "as it is (cannot write it safely)",
                    link.name,
                    res.href,
                )
                self.state.seen(link.name, calendar, res.href, key.uid, "")
                return
            res = fresh
        session = self.session(link)
        session.store.tally = tally  # type: ignore[attr-defined]
        if self.instance:
            mine = self._another_instances(link, key, res)
            if mine is None:
                return
            res = mine
        previous = prev.written_text if prev else None
        tally.jobs.extend(session.save(key, Stored(res.href, res.text, res.etag), previous))

    def _key(self, link: Link, calendar: str, uid: str) -> EventKey:
        return EventKey(link.owner, calendar_key(calendar), uid)

    # --- step 3: a provider's late answer ------------------------------------

    def settle(self, link: Link, job: Job, outcome: Outcome) -> list[Job]:
        """Put a create's or an update's result into the event as it is now; further jobs."""
        session = self.session(link)
        session.store.tally = Tally()  # type: ignore[attr-defined]
        return session.settle(job, outcome)
