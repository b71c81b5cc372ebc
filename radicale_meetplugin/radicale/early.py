"""Deciding a PUT before Radicale takes its global lock, so a big save freezes nobody.

Radicale reads and prepares a PUT's item (parse, sanitise, serialise) before
it locks the storage. The costly part of the plugin's work (planning,
rewriting, Radicale's own re-serialisation of the result) is done right after,
on that prepared item, with no lock held; the decision's effects are not
committed. Under the
lock the adapter takes this decision only if the item Radicale prepared is
the same text and the conference record is still the one the decision read;
otherwise it decides again there. Nothing is ever decided on stale facts.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import posixpath
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import radicale.item as radicale_item
from radicale import pathutils

from radicale_meetplugin.core.ical import Change
from radicale_meetplugin.core.model import ActionKind, EventKey, Job
from radicale_meetplugin.protocol.effects import BeginCreate, Decision, Expect, Settlement
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.handoff import Handoff

if TYPE_CHECKING:
    from radicale_meetplugin.protocol.outbox import Outbox
    from radicale_meetplugin.protocol.session import Session


class _Events(Protocol):
    def version(self, path: str, href: str) -> str | None: ...

    def as_radicale_item(
        self,
        path: str,
        text: str,
        like: radicale_item.Item | None = None,
        changes: Sequence[Change] | None = None,
    ) -> radicale_item.Item: ...


class RadicaleAdapter(Protocol):
    """What deciding early needs of the storage's adapter (radicale.storage)."""

    engine: Engine[Any]
    events: _Events
    session: Session
    outbox: Outbox


logger = logging.getLogger("radicale.meetplugin")

_request = threading.local()


# A body this big builds hundreds of thousands of objects that all stay alive until the
# decision is made: the cyclic collector would stop every thread to scan them again and
# again for nothing (seconds for 10 000 overrides), so it waits while the decision is made.
BIG = 256 * 1024

_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextlib.contextmanager
def _collector_paused(size: int) -> Iterator[None]:
    """No cyclic garbage collection meanwhile, if `size` is BIG (reference counting goes on)."""
    global _gc_holders, _gc_was_enabled
    if size < BIG:
        yield
        return
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


class NeedsLock(Exception):
    """The decision needs what only the locked storage can say (the stored version)."""


@dataclass
class Early:
    """A decision made before the lock, for one calendar and one prepared text."""

    calendar: str
    text: str  # the item as Radicale will prepare it
    decision: Decision
    prepared: radicale_item.Item  # Radicale's prepared item of the client's text
    events: _Events
    # A create committed before the lock (its job runs): the save stores what its
    # outcome makes of the client's item in its one write, if it came in time.
    handoff: Handoff | None = None
    settlement: Settlement | None = None  # the outcome, worked out on the decision's text
    final: radicale_item.Item | None = None  # the client's item with both in it
    seen: str | None = None  # the stored version (ETag) when the create was committed

    @functools.cached_property
    def item(self) -> radicale_item.Item | None:
        """The decision's item, ready to store (None: as sent); made when first needed.

        A create whose link comes within the save never stores this one (the
        "pending" version), so it is not made for nothing.
        """
        if not self.decision.text:
            return None
        with _collector_paused(len(self.text)):
            return self.events.as_radicale_item(
                self.calendar, self.decision.text, like=self.prepared, changes=self.decision.changes
            )


def begin(adapter: RadicaleAdapter | None, path: str, user: str = "") -> None:
    _request.target = (adapter, path, user) if adapter is not None else None
    _request.early = None
    _request.quiet = None


def end() -> None:
    held = getattr(_request, "handoff", None)
    _request.target = None
    _request.early = None
    _request.quiet = None
    _request.handoff = None
    if held is not None:  # the settle goes on by itself, if the save did not store it
        session, handoff = held
        session.handoffs.close(handoff)


def settled(handoff: Handoff, jobs: list[Job]) -> None:
    """The save stored its create's settlement (after the lock: the event is written)."""
    held = getattr(_request, "handoff", None)
    if held is not None and held[1] is handoff:
        _request.handoff = None
        held[0].handoffs.close(handoff, jobs)


def cannot_ask(calendar: str) -> bool:
    """This request's body, saved into `calendar`, was found unable to ask for anything.

    Radicale's re-serialisation of it adds no words, markers or links, so the
    locked path need not test the prepared text again (it still reads the
    record: one may exist for an event whose link was removed).
    """
    return getattr(_request, "quiet", None) == calendar


def take(calendar: str, text: str) -> Early | None:
    """This request's early decision, if it was made for this calendar and this text."""
    early: Early | None = getattr(_request, "early", None)
    _request.early = None
    if early is None or early.calendar != calendar or early.text != text:
        return None
    return early


def _prepared(item: radicale_item.Item) -> None:
    target = getattr(_request, "target", None)
    if not target:
        return
    adapter, path, user = target
    _request.target = None  # once per request
    try:
        _request.early = decide(adapter, path, item.serialize(), item, user)
    except NeedsLock:
        _request.early = None
    except Exception:  # the locked path decides and reports it
        logger.debug("meetplugin: %s: no early decision", path, exc_info=True)
        _request.early = None


def decide(
    adapter: RadicaleAdapter,
    path: str,
    content: str,
    item: radicale_item.Item | None = None,
    user: str = "",
) -> Early | None:
    """The decision for a PUT of `content` to `path`; `item`: Radicale's prepared one."""
    engine = adapter.engine
    calendar = posixpath.dirname(pathutils.strip_path(path))
    if not engine.may_ask(content):
        _request.quiet = calendar  # most saves: the locked path only reads the record
        return None
    if engine.scheduling and engine.schedules(content):
        return None  # scheduling reads other users' calendars: under the lock
    if item is None:
        item = adapter.events.as_radicale_item(calendar, content)  # as Radicale prepares it
    if item.component_name != "VEVENT":
        return None
    text = item.serialize()
    key = EventKey(calendar.split("/", 1)[0], calendar, item.uid)

    def stored() -> str | None:
        raise NeedsLock

    href = posixpath.basename(pathutils.strip_path(path))
    with _collector_paused(len(text)):
        decision = engine.decide(key, text, stored, href, user, keep=True)
    parsed, decision.calendar = decision.calendar, None  # not kept to the end of the request
    early = Early(calendar, text, decision, item, adapter.events)
    if decision.text and _creates(adapter, decision):
        _create_now(adapter, key, early, href, parsed)
    del parsed
    if early.final is None:
        early.item  # noqa: B018 - made now, before the lock (the create did not need it)
    return early


def _creates(adapter: RadicaleAdapter, decision: Decision) -> bool:
    """A new event's conference, made by a provider's API, and nothing else to commit."""
    return (
        decision.action.kind is ActionKind.CREATE
        and decision.basis is None
        and decision.reusable
        and len(decision.effects) == 1
        and isinstance(decision.effects[0], BeginCreate)
        and adapter.session.submit is not None
    )


def _create_now(
    adapter: RadicaleAdapter, key: EventKey, early: Early, href: str, parsed: Any
) -> None:
    """Commit the create, run its job and wait for it up to the budget, before the lock.

    The job is leased to this process in the transaction that queues it, so
    no other process runs it while the event is not stored yet. Should this
    process die, the lease runs out and the job's settle finds no event: the
    conference goes. `parsed`: the decision's calendar, which the settle
    works on (so the decision's text is not parsed again).
    """
    session, engine = adapter.session, adapter.engine
    handoff = session.handoffs.open(key)
    if handoff is None:
        return
    waiting = session.waiting
    if waiting is not None and not waiting.acquire(blocking=False):
        session.handoffs.close(handoff)  # enough saves wait already: the link follows
        return
    try:
        early.seen = adapter.events.version(early.calendar, href)
        with handoff.lock:
            try:
                with engine.store.transaction():
                    jobs = engine.commit([Expect(key, None), *early.decision.effects])
                    job = jobs[0]
                    engine.store.jobs_queue.claim(
                        job.id,
                        adapter.outbox.owner,
                        2 * engine.settings.main["call_timeout"] + 30,
                        adapter.outbox.alive,
                    )
            except Exception:  # a record came meanwhile, or no state: the lock decides
                logger.debug("meetplugin: %s: no create before the lock", key.uid, exc_info=True)
                session.handoffs.close(handoff)
                return
            handoff.attempt = job.attempt
        early.decision.jobs = jobs
        early.handoff = handoff
        _request.handoff = (session, handoff)
        assert session.submit is not None
        futures = session.submit([job.id])
        if not futures:  # the outbox is stopping: the job waits for the next start
            handoff.stop_waiting()
        for future in futures:
            future.add_done_callback(handoff.stop_waiting)
        outcome = handoff.wait(session.budget)
        if outcome is None:
            return
        decided = early.decision
        early.settlement = settlement = engine.prepare_settle(job, outcome, decided.text, parsed)
        if not settlement.text:
            early.final = early.item
        else:  # the client's item with the decision's and the settlement's changes
            with _collector_paused(len(early.text)):
                early.final = adapter.events.as_radicale_item(
                    early.calendar,
                    settlement.text,
                    like=early.prepared,
                    changes=_merged(decided.changes, settlement.changes),
                )
    finally:
        if waiting is not None:
            waiting.release()


def _merged(
    first: Sequence[Change] | None, then: Sequence[Change] | None
) -> tuple[Change, ...] | None:
    """Two rewrites' changes as one (None when either is not known).

    A change holds a property's whole new set of lines, so the later one of
    the same property in the same component replaces the earlier one.
    """
    if first is None or then is None:
        return None
    merged = {(c.component, c.kind, c.name.upper()): c for c in first}
    merged.update({(c.component, c.kind, c.name.upper()): c for c in then})
    return tuple(merged.values())


def install() -> None:
    """Wrap Radicale's PUT preparation (put_etag's PUT wrapper calls `begin` and `end`)."""
    from radicale.app import put

    original = put.prepare
    if getattr(original, "_meetplugin_early", False):
        return

    @functools.wraps(original)
    def prepare(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        items, tag, whole, props, failed = result
        if (
            failed is not None
            or whole
            or tag != "VCALENDAR"
            or not getattr(_request, "target", None)
        ):
            return result
        prepared = list(items)  # one item: a PUT of one event
        if len(prepared) == 1:
            _prepared(prepared[0])
        return iter(prepared), tag, whole, props, failed

    prepare._meetplugin_early = True  # type: ignore[attr-defined]
    put.prepare = prepare
