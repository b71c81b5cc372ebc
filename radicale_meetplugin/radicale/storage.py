"""The Radicale adapter: `[storage] type = radicale_meetplugin`.

Wraps Radicale's `multifilesystem` storage. Decisions happen where Radicale
holds its (global) storage lock; provider calls happen after the lock is
released, and their results are written back under a fresh lock before the
PUT response leaves, so the client's next read already has the link.

Radicale makes several Storage objects per process (and its own test suite one
per test): they share one adapter (engine, state connections, outbox thread),
which is closed when the last of them is dropped. ``radicale --verify-storage``
gets a passive storage: no state, no outbox, no provider, no write of ours.

Under the lock the state file is waited for only briefly (`LOCKED_STATE_WAIT`):
when another program holds it longer, the request is refused with 503 and
Retry-After (radicale/unavailable.py) rather than stored without its
bookkeeping, and nobody else waits behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import radicale.item as radicale_item
from radicale import config as radicale_config
from radicale import pathutils, types
from radicale.storage import multifilesystem
from radicale.storage.multifilesystem.lock import StoragePartLock

from radicale_meetplugin.bootstrap import build_engine, build_outbox
from radicale_meetplugin.core.ical import Change
from radicale_meetplugin.core.model import EventKey, Job, RecordState
from radicale_meetplugin.protocol.effects import Stale
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.session import (
    Session,
    StateUnavailable,
    Stored,
    Write,
    expecting,
)
from radicale_meetplugin.radicale import early, put_etag, scheduling, unavailable
from radicale_meetplugin.radicale.batch import Batcher
from radicale_meetplugin.radicale.items import prepared_item
from radicale_meetplugin.radicale.splice import splice
from radicale_meetplugin.state.records import RecordStore

logger = logging.getLogger("radicale.meetplugin")

# Seconds a request holding Radicale's lock waits for the state file (another
# process's write): everyone else waits behind that request meanwhile.
LOCKED_STATE_WAIT = 1.0

_base_upload = multifilesystem.Collection.upload
_base_delete = multifilesystem.Collection.delete

if TYPE_CHECKING:  # loaded only with [scheduling] enabled
    from radicale_meetplugin.radicale.attendees import RadicaleCalendars


class Collection(multifilesystem.Collection):
    _storage: Storage

    def upload(
        self, href: str, item: radicale_item.Item
    ) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        if self._storage.passive or scheduling.box_kind(self):  # a box holds no meetings
            return _base_upload(self, href, item)
        return self._storage.meet.upload(self, href, item)

    def delete(self, href: str | None = None) -> None:
        if not self._storage.passive and not scheduling.box_kind(self):
            self._storage.meet.before_delete(self, href)
        _base_delete(self, href)


# The lines an item's identity and time range are worked out from (Radicale's
# find_time_range and get_uid), with their folded continuations.
_TIMING_LINE = re.compile(
    r"^(?:BEGIN|END|UID|DTSTART|DTEND|DURATION|DUE|COMPLETED|CREATED|RRULE|RDATE|EXDATE|"
    r"EXRULE|RECURRENCE-ID|TZID|TZOFFSETFROM|TZOFFSETTO)[;:][^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
    re.MULTILINE | re.IGNORECASE,
)


_FOLD = re.compile(r"\r?\n[ \t]")


def _timing(text: str) -> list[str]:
    """Those lines, unfolded; a recurrence rule's parts in one order (the rewrite's
    iCalendar library writes them in another than the client, the same rule)."""
    lines = []
    for line in _TIMING_LINE.findall(text):
        line = _FOLD.sub("", line)
        if line[:6].upper() in ("RRULE:", "RRULE;", "EXRULE"):
            head, _, rule = line.partition(":")
            line = head + ":" + ";".join(sorted(rule.upper().split(";")))
        lines.append(line)
    return lines


_shared: dict[tuple, RadicaleAdapter] = {}
_shared_lock = threading.Lock()

# Radicale's own checks (radicale/__main__.py): they load the storage and only read.
_VERIFY_OPTIONS = ("--verify-storage", "--verify-item", "--verify-sharing")


def verify_mode(argv: list[str] | None = None) -> bool:
    """Radicale runs one of its `--verify-*` checks, not a server.

    Radicale's command line parses `sys.argv` with argparse, which also takes
    a unique prefix of an option (`--verify-st`): the same is matched here.
    """
    if argv is None:
        main = getattr(sys.modules.get("__main__"), "__spec__", None)
        if "radicale.__main__" not in sys.modules and getattr(main, "name", "") != (
            "radicale.__main__"
        ):
            return False  # Radicale embedded (WSGI, tests): never its command line
        argv = sys.argv[1:]
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if len(name) > len("--verify-") and any(o.startswith(name) for o in _VERIFY_OPTIONS):
            return True
    return False


def _release(key: tuple, adapter: RadicaleAdapter) -> None:
    """One Storage using `adapter` is gone; the last one closes it."""
    with _shared_lock:
        adapter.users -= 1
        if adapter.users > 0:
            return
        if _shared.get(key) is adapter:
            del _shared[key]
    adapter.close()


def _radicale_groups_file(configuration: radicale_config.Configuration) -> str:
    """Radicale's own group file ([group] type = htgroup), "" when groups come otherwise."""
    try:
        if configuration.get("group", "type") == "htgroup":
            return str(configuration.get("group", "htgroup_filename"))
    except KeyError:  # a Radicale without user groups
        pass
    return ""


class Storage(multifilesystem.Storage):
    _collection_class = Collection
    _run_outbox = True  # the background retry loop (admin tools run jobs themselves)
    meet: RadicaleAdapter

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration)
        self.passive = verify_mode()
        if self.passive:  # Radicale only checks its storage: it stays as it is
            logger.info("meetplugin: Radicale verifies its storage: the plugin stays passive")
            return
        try:
            path = configuration.get("storage", "meetplugin_config")
        except KeyError:
            path = ""
        # Radicale makes more than one Storage per process (the app, sharing): they
        # share one engine and one outbox, so jobs are not raced for in-process.
        key = (
            os.path.abspath(path or ""),
            os.path.abspath(self._filesystem_folder),
            self._run_outbox,
        )
        with _shared_lock:
            adapter = _shared.get(key)
            if adapter is None:
                engine = build_engine(
                    path or "",
                    os.path.join(self._filesystem_folder, ".meetplugin"),
                    radicale_groups_file=_radicale_groups_file(configuration),
                )
                adapter = _shared[key] = RadicaleAdapter(
                    self, engine, start_outbox=self._run_outbox
                )
                if engine.settings.scheduling["enabled"]:
                    logger.info(
                        "meetplugin: CalDAV scheduling on: calendar-auto-schedule advertised, "
                        "inbox and outbox at /<user>/%s/ and /<user>/%s/",
                        scheduling.INBOX,
                        scheduling.OUTBOX,
                    )
            else:
                adapter.attach(self)
            adapter.users += 1
        self.meet = adapter
        weakref.finalize(self, _release, key, adapter)  # no reference to self in there
        put_etag.install()
        unavailable.install()
        if adapter.engine.settings.scheduling["enabled"]:
            scheduling.install()  # RFC 6638's surface: advertisement, principal, boxes

    def verify(self) -> bool:
        if not self.passive:  # called without Radicale's command line: stop our part first
            self.passive = True
            self.meet.outbox.stop()
        return super().verify()

    @types.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args, **kwargs) -> Iterator[None]:
        if self.passive:
            with super().acquire_lock(mode, user, *args, **kwargs):
                yield
            return
        if mode == "w":
            self.meet.writer(user)  # the authenticated user: a shared calendar's organizer
        try:
            with super().acquire_lock(mode, user, *args, **kwargs):
                if mode == "w":
                    with self.meet.engine.store.db.waiting_at_most(LOCKED_STATE_WAIT):
                        yield
                else:
                    yield
        finally:
            if mode == "w":
                self.meet.after_write()

    def move(self, item: radicale_item.Item, to_collection, to_href: str) -> None:
        if not self.passive:
            self.meet.before_move(item, to_collection)
        super().move(item, to_collection, to_href)

    def create_collection(
        self, href: str, items: Iterable[radicale_item.Item] | None = None, props=None
    ):
        if self.passive:
            return super().create_collection(href, items, props)
        return self.meet.create_collection(href, items, props, super().create_collection)


class RadicaleEventStore:
    """The `EventStore` port over Radicale's storage: its global lock, its serialisation.

    A write happens under Radicale's exclusive lock, so it never conflicts.
    A settle is optimistic: read and rewritten with no lock, then checked and
    written under the exclusive lock, which settles finishing together share.
    """

    rejudge_after_settle = False
    optimistic = True

    def __init__(self, storage: Storage) -> None:
        # Every Storage of the process that shares this adapter; any live one will do
        # (they are over the same folder). Weak: a dropped Storage must be collectable.
        self.storages: weakref.WeakSet[Storage] = weakref.WeakSet([storage])
        self.max_rrule_occurrence = storage.configuration.get(
            "server", "max_vevent_rrule_occurrence"
        )
        self.batch = Batcher(self.lock)

    @property
    def storage(self) -> Storage:
        for storage in list(self.storages):
            return storage
        raise RuntimeError("meetplugin: every storage of this adapter is gone")

    @contextlib.contextmanager
    def lock(self) -> Iterator[object]:
        with StoragePartLock.acquire_lock(self.storage, "w", "", request="MEETPLUGIN") as held:
            with self.storage.meet.engine.store.db.waiting_at_most(LOCKED_STATE_WAIT):
                yield held

    def version(self, path: str, href: str) -> str | None:
        """The ETag of the item at `href` in the calendar at `path` now (None: none)."""
        col = self._collection(path)
        if col is None or not pathutils.is_safe_filesystem_path_component(href):
            return None
        item = col._get(href, verify_href=False)
        return item.etag if item is not None else None

    def locate(self, job: Job) -> str:
        col, href = self._find(job.key, job.href)
        return f"{col.path}/{href}" if col is not None and href else ""

    def read(self, key: EventKey, ref: str) -> Stored | None:
        col, href = self._split(ref)
        item = col._get(href, verify_href=False) if col is not None else None
        return Stored(ref, item.serialize(), item.etag) if item is not None else None

    def unreadable(self, key: EventKey, ref: str, error: Exception) -> Stored | None:
        raise error  # local storage: the outbox retries the job once its lease runs out

    def write(self, key: EventKey, ref: str, text: str, version: str) -> Write:
        col, href = self._split(ref)
        if col is None:
            return Write(ok=False)
        item, _old = _base_upload(col, href, self.as_radicale_item(col.path, text))
        return Write(ok=True, version=item.etag)

    def previous(self, key: EventKey, ref: str) -> str | None:
        stored = self.read(key, ref)
        return stored.text if stored is not None else None

    def unchanged(self, key: EventKey, stored: Stored) -> None:
        pass  # Radicale stores what it was sent: nothing to remember

    def gave_up(self, key: EventKey, stored: Stored) -> None:
        pass  # writes under the exclusive lock do not conflict

    def settling(self) -> contextlib.AbstractContextManager[object]:
        return self.batch.preparing()

    def commit_settled(
        self,
        key: EventKey,
        ref: str,
        version: str | None,
        text: str | None,
        commit: Callable[[Callable[[], object] | None], list[Job]],
    ) -> list[Job] | None:
        """Check the version and commit under the exclusive lock, shared with other settles.

        The read before took no lock: Radicale replaces an item's file
        atomically, so it saw one whole version, and its ETag is checked here.
        The item is parsed and serialised before the lock is taken.
        """
        col, href = self._split(ref) if ref else (None, "")

        def under_lock() -> list[Job] | None:
            if version is not None:
                now = col._get(href, verify_href=False) if col is not None else None
                if now is None or now.etag != version:
                    return None  # edited or deleted meanwhile: settle again
            elif self._find(key, href)[1]:
                # Not there when read, there now: the save that queued the job was still
                # storing it (a job can run before its save's write). Not a deleted event.
                return None
            return commit(write)

        write = None
        if col is not None and text is not None:
            item = self.as_radicale_item(col.path, text)
            write = lambda: _base_upload(col, href, item)  # noqa: E731

        return self.batch.run(under_lock)

    def as_radicale_item(
        self,
        path: str,
        text: str,
        like: radicale_item.Item | None = None,
        changes: Sequence[Change] | None = None,
    ) -> radicale_item.Item:
        """The item exactly as Radicale would store `text` (see `prepared_item`).

        `like`: the prepared item `text` was rewritten from; when the rewrite
        left every line its time range and identity come from as they were,
        those are taken from it instead of being worked out again (an RRULE
        with thousands of overrides takes a second), and the item holds its
        text only: a big parsed tree kept to the end of the request costs
        memory and collector time, and nothing reads it again. `changes`: what
        the rewrite of `like` into `text` changed; then `like`'s text is edited
        in place (radicale/splice.py) instead of `text` being parsed again.
        """
        spliced = splice(like.serialize(), changes) if like is not None and changes else None
        if like is not None and spliced is not None:
            return self._like(path, spliced, like)
        item = prepared_item(path, text, self.max_rrule_occurrence, prepare=False)
        serialized = item.serialize()
        if like is not None and _timing(serialized) == _timing(like.serialize()):
            return self._like(path, serialized, like)
        item.prepare()
        return item

    @staticmethod
    def _like(path: str, text: str, like: radicale_item.Item) -> radicale_item.Item:
        """An item of `text`, whose identity and time range are `like`'s."""
        return radicale_item.Item(
            collection_path=path,
            text=text,
            etag=radicale_item.get_etag(text),
            uid=like.uid,
            name=like.name,
            component_name=like.component_name,
            time_range=like.time_range,
        )

    def _collection(self, path: str) -> multifilesystem.Collection | None:
        col = next(iter(self.storage.discover(pathutils.unstrip_path(path, True))), None)
        return col if isinstance(col, multifilesystem.Collection) else None

    def _split(self, ref: str) -> tuple[multifilesystem.Collection | None, str]:
        path, _, href = ref.rpartition("/")
        return self._collection(path), href

    def _find(self, key: EventKey, hint: str) -> tuple[multifilesystem.Collection | None, str]:
        """The calendar and href of the event now (an import let Radicale pick the href)."""
        col = self._collection(key.calendar)
        if col is None:
            return None, ""
        # An import lets Radicale pick the href: usually "<uid>.ics", so try that first.
        for href in (hint, f"{key.uid}.ics"):
            if href and pathutils.is_safe_filesystem_path_component(href):
                found = col._get(href, verify_href=False)
                if found is not None and found.uid == key.uid:
                    return col, href
        for item in col.get_all():
            if item.uid == key.uid and item.href:
                return col, item.href
        return col, ""


class RadicaleAdapter:
    """Connects Radicale's storage calls to the session and the outbox.

    Per-request state (the jobs a save queued) is thread-local: Radicale
    serves each request in its own thread.
    """

    def __init__(
        self, storage: Storage, engine: Engine[RecordStore], start_outbox: bool = True
    ) -> None:
        self.users = 0  # Storage objects using it (under `_shared_lock`)
        self.engine = engine
        self.events = RadicaleEventStore(storage)
        waiting = engine.settings.main["max_waiting_saves"]
        if waiting is None:  # auto
            connections = storage.configuration.get("server", "max_connections")
            waiting = max(1, connections // 2) if connections > 0 else 8
        # Waiting holds one of Radicale's connection slots: only a few saves may do it at
        # once. A semaphore of 0 is never acquired: no save waits.
        self.session = Session(
            engine,
            self.events,
            budget=engine.settings.main["provider_timeout"],
            waiting=threading.BoundedSemaphore(waiting),
        )
        self.session.refuse_unavailable = True  # a 503 the client retries, never a lost record
        self.calendars: RadicaleCalendars | None = None
        if engine.settings.scheduling["enabled"]:  # RFC 6638: before the outbox is built
            from radicale_meetplugin.radicale.attendees import RadicaleCalendars

            self.calendars = RadicaleCalendars(
                lambda: self.events.storage,
                engine.settings,
                engine.store,
                self.events.lock,
                self.events.max_rrule_occurrence,
            )
            engine.attach_calendars(self.calendars)
        self.outbox = build_outbox(engine, self.session.settle)
        self.session.submit = self.outbox.submit
        self._request = threading.local()
        self.closed = False
        if start_outbox:
            self.outbox.start()

    @property
    def storage(self) -> Storage:
        return self.events.storage

    def attach(self, storage: Storage) -> None:
        self.events.storages.add(storage)

    def close(self) -> None:
        """Stop the outbox and release the state's connections (the last Storage is gone)."""
        if self.closed:
            return
        self.closed = True
        self.outbox.stop()
        self.engine.store.close()

    # --- under Radicale's lock ---------------------------------------------

    def writer(self, user: str | None) -> None:
        """Who writes in this request (Radicale's authenticated user; "" when unknown)."""
        self._request.user = user or ""

    def _later(self, jobs: list[Job]) -> None:
        if jobs:
            pending = getattr(self._request, "jobs", None)
            if pending is None:
                pending = self._request.jobs = []
            pending.extend(jobs)

    def _decide(
        self,
        path: str,
        tag: str,
        item: radicale_item.Item,
        stored: Callable[[], str | None] = lambda: None,
        href: str = "",
        current: Callable[[], radicale_item.Item | None] = lambda: None,
    ) -> radicale_item.Item:
        """Run the session on one item of the calendar at `path`; returns the item to store."""
        if tag != "VCALENDAR" or item.component_name != "VEVENT":
            return item
        key = EventKey(path.split("/", 1)[0], path, item.uid)
        text = item.serialize()
        ready = early.take(path, text)
        if ready is not None and ready.handoff is not None:  # created before the lock
            now = current()
            if now is not None and now.etag != ready.seen:
                # Saved meanwhile by a request sent after this one (this one waited for
                # the provider before the lock): that version stays, as if this save had
                # been stored first; the create's settle puts the link into it.
                logger.info("meetplugin: %s/%s: saved meanwhile, kept", key.calendar, key.uid)
                put_etag.mark_rewritten()
                return now
            final = self._created_early(key, ready)
            if final is not None:
                put_etag.mark_rewritten()
                return final
            record = self.engine.store.get(key)
            if (
                ready.item is not None
                and record is not None
                and record.state is RecordState.CREATING
                and record.attempt == ready.handoff.attempt
            ):  # still waiting for that job: stored with the pending block, the link follows
                put_etag.mark_rewritten()
                return ready.item
            ready = None  # decided again on the facts as they are now
        decision = None
        if (
            ready is not None
            and ready.decision.reusable
            and (self.engine.store.get(key) == ready.decision.basis)
        ):  # decided before the lock, on facts that still hold: only commit here
            try:
                decision = self.session.commit(key, lambda: expecting(key, ready.decision))
                rewritten = ready.item
            except Stale:  # another save committed first (before its lock)
                decision = None
        if decision is None:
            asks = not early.cannot_ask(path)  # the body was tested before the lock
            decision = self.session.decide(
                key, text, stored, href, getattr(self._request, "user", ""), asks=asks
            )
            rewritten = None
        self._later(decision.jobs)
        if decision.text is None:
            if self.calendars is not None and "ORGANIZER" in text:
                self.calendars.answered(key.owner, text)  # an attendee's own copy: their answer
            return item
        put_etag.mark_rewritten()
        return rewritten or self.events.as_radicale_item(
            path, decision.text, like=item, changes=decision.changes
        )

    def _created_early(self, key: EventKey, ready: early.Early) -> radicale_item.Item | None:
        """The event with its create's outcome in it, if that came in time and still holds.

        The record change is committed here (compare-and-set on the attempt);
        the settle waiting for this save returns once the event is written.
        """
        if ready.settlement is None or ready.final is None or ready.handoff is None:
            return None
        try:
            jobs = self.engine.finish_settle(ready.settlement)
        except Stale:
            return None
        except sqlite3.OperationalError as e:
            raise StateUnavailable(str(e)) from e
        self._request.settling = (ready.handoff, jobs)
        return ready.final

    def upload(
        self, col: Collection, href: str, item: radicale_item.Item
    ) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        def current() -> radicale_item.Item | None:
            return col._get(href, verify_href=False)

        def stored() -> str | None:
            old = current()
            return old.serialize() if old is not None else None

        self._request.settling = None
        result = _base_upload(
            col, href, self._decide(col.path, col.tag, item, stored, href, current)
        )
        self._request.settled, self._request.settling = self._request.settling, None
        return result

    def before_delete(self, col: Collection, href: str | None) -> None:
        try:
            if href is None:
                self._later(self.engine.on_delete_calendar(col.path))
                return
            if col.tag != "VCALENDAR":
                return
            item = col._get(href, verify_href=False)
            if item is not None:
                self._later(self.engine.on_delete(EventKey(col.owner, col.path, item.uid)))
        except sqlite3.OperationalError as e:  # never delete an event whose room stays unrecorded
            logger.warning(
                "meetplugin: %s/%s: delete refused for now, the state file is unavailable: %s",
                col.path,
                href,
                e,
            )
            raise StateUnavailable(str(e)) from e
        except Exception:
            logger.exception("meetplugin: %s/%s: delete bookkeeping failed", col.path, href)

    def before_move(self, item: radicale_item.Item, to_collection) -> None:
        source = item.collection
        if (
            source is None
            or getattr(source, "tag", "") != "VCALENDAR"
            or scheduling.box_kind(source)
        ):
            return
        try:
            self._later(
                self.engine.on_move(
                    EventKey(source.owner, source.path, item.uid),
                    EventKey(to_collection.owner, to_collection.path, item.uid),
                )
            )
        except sqlite3.OperationalError as e:
            logger.warning(
                "meetplugin: move of %s refused for now, the state file is unavailable: %s",
                item.uid,
                e,
            )
            raise StateUnavailable(str(e)) from e
        except Exception:
            logger.exception("meetplugin: move bookkeeping of %s failed", item.uid)

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None,
        props,
        create: Callable,
    ):
        """A whole calendar PUT (import): the same rules for every event in it."""
        if items is None or not props or props.get("tag") != "VCALENDAR":
            return create(href, items, props)
        path = pathutils.strip_path(href)
        self._request.no_wait = True  # nobody re-reads an import at once: links follow
        items = list(items)
        prepared: list[radicale_item.Item] = []
        try:
            for item in items:
                prepared.append(self._decide(path, "VCALENDAR", item))
            uids = {item.uid for item in items}
            for record in self.engine.store.under(path):
                if record.key.calendar == path and record.key.uid not in uids:
                    self._later(self.engine.on_delete(record.key))
        except (sqlite3.OperationalError, StateUnavailable) as e:
            # Refused: the client sends it again. What was committed for the first events
            # stays queued (its jobs run from the queue) and is found again on the retry.
            logger.warning(
                "meetplugin: %s: import refused for now, the state file is unavailable: %s",
                path,
                e,
            )
            self._request.jobs = []
            raise StateUnavailable(str(e)) from e
        except Exception:  # never lose an import to a bug of ours
            logger.exception("meetplugin: %s: import stored as sent after an internal error", path)
            prepared = prepared + items[len(prepared) :]
        return create(href, prepared, props)

    # --- after the lock is released ----------------------------------------

    def after_write(self) -> None:
        """Run the jobs this request queued; wait for them up to the budget."""
        settled = getattr(self._request, "settled", None)
        self._request.settled = self._request.settling = None
        if settled is not None:  # stored with its create's outcome: that settle is done
            early.settled(*settled)
        jobs: list[Job] = getattr(self._request, "jobs", None) or []
        no_wait = getattr(self._request, "no_wait", False)
        self._request.jobs, self._request.no_wait, self._request.user = [], False, ""
        self.session.run(jobs, wait=not no_wait)
        if no_wait:  # an import: its heap is free once the response is sent
            self.outbox.worker.worked()
