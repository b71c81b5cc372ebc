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
from typing import Any, Protocol

import radicale.item as radicale_item
from radicale import pathutils

from radicale_meetplugin.core.ical import Change
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.protocol.effects import Decision
from radicale_meetplugin.protocol.engine import Engine


class _Events(Protocol):
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
    item: radicale_item.Item | None  # the rewritten item, ready to store (None: as sent)


def begin(adapter: RadicaleAdapter | None, path: str, user: str = "") -> None:
    _request.target = (adapter, path, user) if adapter is not None else None
    _request.early = None
    _request.quiet = None


def end() -> None:
    _request.target = None
    _request.early = None
    _request.quiet = None


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
        decision = engine.decide(key, text, stored, href, user)
        rewritten = (
            adapter.events.as_radicale_item(
                calendar, decision.text, like=item, changes=decision.changes
            )
            if decision.text
            else None
        )
    return Early(calendar, text, decision, rewritten)


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
