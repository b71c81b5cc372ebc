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

import hashlib
import logging
from dataclasses import dataclass, field

from bridge.caldav_client import CalDAVClient, Resource
from bridge.config import Account
from bridge.state import BridgeState, Item
from radicale_meetplugin.core import ical, rewrite
from radicale_meetplugin.core.detect import Grammar
from radicale_meetplugin.core.model import EventKey, Job
from radicale_meetplugin.protocol.engine import Engine, Outcome

logger = logging.getLogger("meetplugin.bridge")

MAX_CONFLICTS = 3  # 412s in a row before the event waits for the next cycle
MAX_SAME_WRITES = 2  # writing the very same text again and again: the server keeps changing it
REFUSED = frozenset({400, 403, 409, 415, 422, 500})  # "not this content" answers to a PUT
EXTRAS = (*rewrite.BOOKKEEPING, "CONFERENCE")  # plus the providers' link properties


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
    unfolded = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "")
    inside = False
    for line in unfolded.split("\n"):
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


class Writer:
    def __init__(self, engine: Engine, state: BridgeState) -> None:
        self.engine = engine
        self.state = state

    # --- step 1: an event the sync reported -----------------------------------

    def judge(self, link: Link, calendar: str, res: Resource, tally: Tally) -> None:
        """Run one changed event through the engine and write the result back."""
        prev = self.state.item(link.name, res.href)
        uid = uid_of(res.text)
        if prev is not None and prev.uid and prev.uid != uid:  # the href holds another event now
            tally.jobs.extend(self.engine.on_delete(self._key(link, calendar, prev.uid)))
            prev = None
        if not uid:  # a task, a journal, or unreadable: nothing for us
            self.state.seen(link.name, calendar, res.href, "", res.etag)
            return
        self._apply(link, calendar, self._key(link, calendar, uid), res, prev, tally)

    def _key(self, link: Link, calendar: str, uid: str) -> EventKey:
        return EventKey(link.owner, calendar_key(calendar), uid)

    def _apply(
        self,
        link: Link,
        calendar: str,
        key: EventKey,
        res: Resource,
        prev: Item | None,
        tally: Tally,
    ) -> None:
        where = f"{link.name}: {res.href}"
        stored = prev.written_text if prev else None
        for _try in range(MAX_CONFLICTS + 1):
            if not res.etag:  # the listing gave none: If-Match needs it
                fresh = link.client.get(res.href)
                if fresh is None:
                    return  # deleted meanwhile: the next sync says so
                if not fresh.etag:
                    logger.warning(
                        "bridge: %s: the server gives no ETag; the event is left "
                        "as it is (cannot write it safely)",
                        where,
                    )
                    self.state.seen(link.name, calendar, res.href, key.uid, "")
                    return
                res = fresh
            try:
                decision = self.engine.on_put(key, res.text, lambda: stored, res.href)
            except Exception:  # never lose the person's event to a bug of ours
                logger.exception("bridge: %s: left as it is after an internal error", where)
                self.state.seen(link.name, calendar, res.href, key.uid, res.etag)
                return
            tally.jobs.extend(decision.jobs)
            if decision.text is None:
                self.state.seen(link.name, calendar, res.href, key.uid, res.etag)
                return
            text_hash = digest(decision.text)
            repeats = prev.repeats + 1 if prev and prev.written_hash == text_hash else 0
            if repeats >= MAX_SAME_WRITES:
                logger.info(
                    "bridge: %s: the server keeps changing what we write; "
                    "taking its version as ours",
                    where,
                )
                self.state.seen(link.name, calendar, res.href, key.uid, res.etag)
                tally.ours += 1
                return
            put = self._put(link, res.href, decision.text, res.etag)
            if put.ok:
                etag = put.etag or link.client.etag(res.href)
                self.state.wrote(
                    link.name, calendar, res.href, key.uid, etag, text_hash, decision.text, repeats
                )
                tally.written += 1
                return
            if put.status != 412:
                logger.warning(
                    "bridge: %s: the server refused the rewritten event (HTTP %s); "
                    "it is left as it is",
                    where,
                    put.status,
                )
                self.state.seen(link.name, calendar, res.href, key.uid, res.etag)
                tally.refused += 1
                return
            tally.conflicts += 1
            logger.info("bridge: %s: edited meanwhile (412), reading it again", where)
            fresh = link.client.get(res.href)
            if fresh is None:
                return
            res = fresh
        logger.warning(
            "bridge: %s: still being edited after %d tries; next cycle tries again",
            where,
            MAX_CONFLICTS + 1,
        )
        self.state.mark_dirty(link.name, calendar, res.href, key.uid)

    def _put(self, link: Link, href: str, text: str, etag: str):
        """PUT with If-Match; once a server refuses our extras, without them."""
        put = link.client.put(
            href, without_extras(text, self.engine.grammar) if link.reduced else text, etag
        )
        if put.ok or link.reduced or put.status not in REFUSED:
            return put
        reduced = without_extras(text, self.engine.grammar)
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

    # --- step 3: a provider's late answer ------------------------------------

    def settle(self, link: Link, job: Job, outcome: Outcome) -> list[Job]:
        """Put a create's result into the event as it is now; returns further jobs."""
        calendar = calendar_href(job.key.calendar)
        href = self.state.href_of(link.name, calendar, job.key.uid) or job.href
        where = f"{link.name}: {href or job.key.uid}"
        try:
            current = link.client.get(href) if href else None
            reachable = True
        except Exception as e:  # the server is away: never lose what the provider made
            logger.warning(
                "bridge: %s: cannot read the event to add the result (%s); "
                "it is read again next cycle",
                where,
                e,
            )
            item = self.state.item(link.name, href)
            current = (
                Resource(href, "", item.written_text)
                if (item and item.written_text and item.etag == item.written_etag)
                else None
            )
            reachable = False
        text, more = self.engine.settle(job, outcome, current.text if current else None)
        if text is None:
            return more
        assert current is not None
        if not reachable or not current.etag:
            self.state.mark_dirty(link.name, calendar, href, job.key.uid)
            return more
        tally = Tally()
        try:
            put = self._put(link, href, text, current.etag)
            if put.ok:
                etag = put.etag or link.client.etag(href)
                self.state.wrote(link.name, calendar, href, job.key.uid, etag, digest(text), text)
                logger.info("bridge: %s: written with the %s result", where, job.provider)
                # judge the version we wrote once: it may carry an edit made meanwhile
                self._apply(
                    link,
                    calendar,
                    job.key,
                    Resource(href, etag, text),
                    self.state.item(link.name, href),
                    tally,
                )
            elif put.status == 412:
                logger.info("bridge: %s: edited meanwhile (412), reading it again", where)
                fresh = link.client.get(href)
                if fresh is not None:
                    self._apply(
                        link, calendar, job.key, fresh, self.state.item(link.name, href), tally
                    )
            else:
                logger.warning(
                    "bridge: %s: the server refused the event with its link (HTTP %s)",
                    where,
                    put.status,
                )
        except Exception as e:
            logger.warning(
                "bridge: %s: cannot write the result (%s); next cycle tries again", where, e
            )
            self.state.mark_dirty(link.name, calendar, href, job.key.uid)
        return [*more, *tally.jobs]
