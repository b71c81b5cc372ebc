"""The Radicale adapter: `[storage] type = radicale_meetplugin`.

Wraps Radicale's `multifilesystem` storage. Decisions happen where Radicale
holds its (global) storage lock; provider calls happen after the lock is
released, and their results are written back under a fresh lock before the
PUT response leaves, so the client's next read already has the link.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from typing import Callable, Iterable, Iterator, Optional

import radicale.item as radicale_item
from radicale import config as radicale_config
from radicale import pathutils, types
from radicale.storage import multifilesystem
from radicale.storage.multifilesystem.lock import StoragePartLock

from . import put_etag
from .bootstrap import build_engine
from .engine import Engine, Followup, Outcome
from .model import EventKey

logger = logging.getLogger("radicale.meetplugin")

_base_upload = multifilesystem.Collection.upload
_base_delete = multifilesystem.Collection.delete


class Collection(multifilesystem.Collection):
    _storage: "Storage"

    def upload(self, href: str, item: radicale_item.Item
               ) -> tuple[radicale_item.Item, Optional[radicale_item.Item]]:
        return self._storage.meet.upload(self, href, item)

    def delete(self, href: Optional[str] = None) -> None:
        self._storage.meet.before_delete(self, href)
        _base_delete(self, href)


class Storage(multifilesystem.Storage):
    _collection_class = Collection

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration)
        try:
            path = configuration.get("storage", "meetplugin_config")
        except KeyError:
            path = ""
        engine = build_engine(path or "", os.path.join(self._filesystem_folder, ".meetplugin"))
        self.meet = RadicaleAdapter(self, engine)
        put_etag.install()

    @types.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args, **kwargs) -> Iterator[None]:
        try:
            with super().acquire_lock(mode, user, *args, **kwargs):
                yield
        finally:
            if mode == "w":
                self.meet.after_write(user)

    def move(self, item: radicale_item.Item, to_collection, to_href: str) -> None:
        self.meet.before_move(item, to_collection)
        super().move(item, to_collection, to_href)

    def create_collection(self, href: str, items: Optional[Iterable[radicale_item.Item]] = None,
                          props=None):
        return self.meet.create_collection(href, items, props, super().create_collection)


class RadicaleAdapter:
    """Connects Radicale's storage calls to the engine; per-request state is thread-local."""

    def __init__(self, storage: Storage, engine: Engine) -> None:
        self.storage = storage
        self.engine = engine
        self._request = threading.local()

    # --- under Radicale's lock ---------------------------------------------

    def _later(self, followups: list[Followup]) -> None:
        if followups:
            pending = getattr(self._request, "followups", None)
            if pending is None:
                pending = self._request.followups = []
            pending.extend(followups)

    def _decide(self, path: str, tag: str, item: radicale_item.Item,
                stored: Callable[[], Optional[str]] = lambda: None,
                where: Optional[str] = None) -> radicale_item.Item:
        """Run the engine on one item of the calendar at `path`; returns the item to store."""
        if tag != "VCALENDAR" or item.component_name != "VEVENT":
            return item
        key = EventKey(path.split("/", 1)[0], path, item.uid)
        try:
            decision = self.engine.on_put(key, item.serialize(), stored)
        except Exception:  # never lose the person's event to a bug of ours
            logger.exception("meetplugin: %s/%s: stored as sent after an internal error",
                             path, item.uid)
            return item
        for followup in decision.followups:
            followup.where = (path, where)
        self._later(decision.followups)
        if decision.rewrites:
            put_etag.mark_rewritten()
        if decision.text is None:
            return item
        new = radicale_item.Item(collection_path=path, text=decision.text)
        new.prepare()
        return new

    def upload(self, col: Collection, href: str, item: radicale_item.Item
               ) -> tuple[radicale_item.Item, Optional[radicale_item.Item]]:
        def stored() -> Optional[str]:
            old = col._get(href, verify_href=False)
            return old.serialize() if old is not None else None

        return _base_upload(col, href, self._decide(col.path, col.tag, item, stored, href))

    def before_delete(self, col: Collection, href: Optional[str]) -> None:
        try:
            if href is None:
                self._later(self.engine.on_delete_calendar(col.path))
                return
            if col.tag != "VCALENDAR":
                return
            item = col._get(href, verify_href=False)
            if item is not None:
                self._later(self.engine.on_delete(EventKey(col.owner, col.path, item.uid)))
        except Exception:
            logger.exception("meetplugin: %s/%s: delete bookkeeping failed", col.path, href)

    def before_move(self, item: radicale_item.Item, to_collection) -> None:
        source = item.collection
        if source is None or getattr(source, "tag", "") != "VCALENDAR":
            return
        try:
            self.engine.on_move(EventKey(source.owner, source.path, item.uid),
                                EventKey(to_collection.owner, to_collection.path, item.uid))
        except Exception:
            logger.exception("meetplugin: move bookkeeping of %s failed", item.uid)

    def create_collection(self, href: str, items: Optional[Iterable[radicale_item.Item]],
                          props, create: Callable):
        """A whole calendar PUT (import): the same rules for every event in it."""
        if items is None or not props or props.get("tag") != "VCALENDAR":
            return create(href, items, props)
        path = pathutils.strip_path(href)
        prepared: list[radicale_item.Item] = []
        uids: set[str] = set()
        for item in items:
            uids.add(item.uid)
            prepared.append(self._decide(path, "VCALENDAR", item))
        for record in self.engine.store.under(path):
            if record.key.calendar == path and record.key.uid not in uids:
                self._later(self.engine.on_delete(record.key))
        return create(href, prepared, props)

    # --- after the lock is released ----------------------------------------

    def after_write(self, user: str) -> None:
        followups: list[Followup] = getattr(self._request, "followups", None) or []
        self._request.followups = []
        rounds = 0
        while followups and rounds < 3:  # a settle may hand back one delete of a lost race
            rounds += 1
            outcomes = self._call_all(followups)
            followups = self._settle_all(user, followups, outcomes)

    def _call_all(self, followups: list[Followup]) -> list[Outcome]:
        if len(followups) == 1:
            return [self.engine.call(followups[0])]
        workers = min(len(followups), self.engine.settings.main["max_concurrency"])
        with concurrent.futures.ThreadPoolExecutor(workers, "meetplugin") as pool:
            return list(pool.map(self.engine.call, followups))

    def _settle_all(self, user: str, followups: list[Followup],
                    outcomes: list[Outcome]) -> list[Followup]:
        more: list[Followup] = []
        needs_write = [(f, o) for f, o in zip(followups, outcomes) if f.meeting is not None]
        if not needs_write:
            return more
        with StoragePartLock.acquire_lock(self.storage, "w", user):
            by_uid: dict[str, dict[str, str]] = {}
            for followup, outcome in needs_write:
                try:
                    more.extend(self._settle_one(followup, outcome, by_uid))
                except Exception:
                    logger.exception("meetplugin: %s/%s: writing the result back failed",
                                     followup.key.calendar, followup.key.uid)
        return more

    def _settle_one(self, followup: Followup, outcome: Outcome,
                    by_uid: dict[str, dict[str, str]]) -> list[Followup]:
        path, href = followup.where if isinstance(followup.where, tuple) else (
            followup.key.calendar, None)
        col = next(iter(self.storage.discover(pathutils.unstrip_path(path, True))), None)
        current = None
        if isinstance(col, Collection):
            if href is None:  # imported: Radicale chose the href
                if path not in by_uid:
                    by_uid[path] = {i.uid: i.href for i in col.get_all() if i.href}
                href = by_uid[path].get(followup.key.uid)
            current = col._get(href, verify_href=False) if href else None
        text, more = self.engine.settle(
            followup, outcome, current.serialize() if current is not None else None)
        if text is not None and isinstance(col, Collection) and href:
            item = radicale_item.Item(collection_path=col.path, text=text)
            item.prepare()
            _base_upload(col, href, item)
        return more
