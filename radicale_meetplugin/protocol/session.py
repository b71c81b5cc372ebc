"""The decide -> call -> settle protocol over an `EventStore` port, once for both shells.

**decide** (under the store's lock): the engine gathers facts by reading only,
plans, rewrites the event and commits the effects in one transaction. **call**
(no lock): the outbox runs the provider jobs, and a save waits for them up to
the budget. **settle**: the event is read as it is *now*, the
outcome goes into it, and it is written only if its version still matches.
A store with a global lock (Radicale) settles optimistically: read and rewrite
with no lock, then under the lock check the version, commit the record and
write; on a change, all again. A CalDAV server is settled under the bridge's
lock and its If-Match; on a conflict the event is read again and decided again.

The shells differ only in their `EventStore`: Radicale's storage (its global
lock; a write under it cannot conflict) or a CalDAV server (If-Match/412).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from radicale_meetplugin.core.model import ActionKind, EventKey, Job
from radicale_meetplugin.protocol.effects import Decision, Expect, Stale
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.handoff import Handoffs
from radicale_meetplugin.protocol.ports import Outcome

logger = logging.getLogger("radicale.meetplugin")

MAX_CONFLICTS = 3  # version conflicts in a row before the event waits for a later pass


class StateUnavailable(Exception):
    """The state file could not be written in time: the request must be refused, not lost."""


@dataclass(frozen=True)
class Stored:
    """One event as the store holds it: where, its text, and the version to write against."""

    ref: str  # the event's href in its calendar
    text: str
    version: str = ""  # ETag; "" when the store could not give one (no safe write)


@dataclass(frozen=True)
class Write:
    """The answer of `EventStore.write`."""

    ok: bool
    conflict: bool = False  # the version changed meanwhile: read again, decide again
    version: str = ""  # the new version, when known


class EventStore(Protocol):
    """Where events live: Radicale's storage or a CalDAV server."""

    # After settle wrote a result, decide on the written version once more (a
    # store whose writes can race with people's edits wants that).
    rejudge_after_settle: bool
    # Settle optimistically (`commit_settled`): the read and the rewrite need no lock.
    optimistic: bool

    def lock(self) -> AbstractContextManager[object]:
        """Held while deciding and settling: one decision per event at a time."""
        ...

    def locate(self, job: Job) -> str:
        """The ref of the job's event now ("" when it is gone)."""
        ...

    def read(self, key: EventKey, ref: str) -> Stored | None:
        """The event at `ref` as it is now; None when gone. May raise when unreachable."""
        ...

    def unreadable(self, key: EventKey, ref: str, error: Exception) -> Stored | None:
        """`read` failed while settling: a copy to settle into (no version: the write
        is deferred), or None; or raise `error` again."""
        ...

    def write(self, key: EventKey, ref: str, text: str, version: str) -> Write:
        """Store `text` at `ref` if the event still has `version`."""
        ...

    def previous(self, key: EventKey, ref: str) -> str | None:
        """The text stored at `ref` before (to tell a re-upload of a refused event)."""
        ...

    def unchanged(self, key: EventKey, stored: Stored) -> None:
        """This version needs no write (the store may remember it as handled)."""
        ...

    def gave_up(self, key: EventKey, stored: Stored) -> None:
        """Still conflicting after MAX_CONFLICTS tries: try again on a later pass."""
        ...

    def settling(self) -> AbstractContextManager[object]:
        """Around one optimistic settle: the store may wait a moment for it to batch writes."""
        ...

    def commit_settled(
        self,
        key: EventKey,
        ref: str,
        version: str | None,
        text: str | None,
        commit: Callable[[Callable[[], object] | None], list[Job]],
    ) -> list[Job] | None:
        """Under the lock: if the event at `ref` still has `version` (None: it was gone),
        `commit(write)` with `write` storing `text` (None: no write); its jobs. With version
        None the event must still be absent (a job may run before its save stored it).
        None when the version changed. Only stores with `optimistic` have it."""
        ...


def expecting(key: EventKey, decision: Decision) -> Decision:
    """The decision, committed only while the record is still the one it read."""
    if decision.effects:
        decision.effects = [Expect(key, decision.basis), *decision.effects]
    return decision


class Session:
    """The protocol for one event store, with the engine and outbox it shares."""

    def __init__(
        self,
        engine: Engine,
        store: EventStore,
        submit: Callable[[Iterable[int]], list[concurrent.futures.Future]] | None = None,
        budget: float | None = None,
        waiting: threading.BoundedSemaphore | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.submit = submit  # the outbox's: set once the outbox exists
        self.budget = budget  # seconds a save waits for its provider calls (None: until done)
        self.waiting = waiting  # how many saves may wait at once (each holds a connection)
        # When the state file is unavailable: refuse the save (raise StateUnavailable, the
        # shell answers 503) instead of storing it as sent with its bookkeeping lost.
        self.refuse_unavailable = False
        # Saves waiting for their own create job to store its link in their one write.
        self.handoffs = Handoffs()

    # --- decide ------------------------------------------------------------------

    def decide(
        self,
        key: EventKey,
        text: str,
        stored_text: Callable[[], str | None] = lambda: None,
        href: str = "",
        writer: str = "",
        asks: bool = True,
    ) -> Decision:
        """The engine's decision for a saved version, committed; never raises.

        A bug of ours never costs the person's event: it is then stored as
        sent. An unavailable state file does too, unless `refuse_unavailable`:
        then `StateUnavailable` is raised and nothing is stored. `writer`: the
        authenticated user, if known. `asks` False: the shell already found the
        text unable to ask for anything (see `Engine.decide`).
        """
        for _try in range(MAX_CONFLICTS):
            try:  # committed only on the record it was decided on (a save decided
                # before a lock, radicale/early.py, may commit meanwhile)
                return self.commit(
                    key,
                    lambda: expecting(
                        key, self.engine.decide(key, text, stored_text, href, writer, asks)
                    ),
                )
            except Stale:
                logger.info(
                    "meetplugin: %s/%s: its record changed, deciding again", key.calendar, key.uid
                )
        return self.commit(
            key, lambda: self.engine.decide(key, text, stored_text, href, writer, asks)
        )

    def commit(self, key: EventKey, decide: Callable[[], Decision]) -> Decision:
        """`decide()`'s decision with its effects committed; on failure, store as sent."""
        try:
            decision = decide()
            decision.jobs = self.engine.commit(decision.effects)
            return decision
        except Stale:  # an `Expect` of the decision found the record changed: decide again
            raise
        except sqlite3.OperationalError as e:  # the state file is busy or unwritable
            if self.refuse_unavailable:
                logger.warning(
                    "meetplugin: %s/%s: refused for now, the state file is unavailable: %s",
                    key.calendar,
                    key.uid,
                    e,
                )
                raise StateUnavailable(str(e)) from e
            logger.warning(
                "meetplugin: %s/%s: stored as sent, the state file is unavailable: %s",
                key.calendar,
                key.uid,
                e,
            )
        except Exception:
            logger.exception(
                "meetplugin: %s/%s: stored as sent after an internal error", key.calendar, key.uid
            )
        return Decision()

    def save(self, key: EventKey, stored: Stored, previous: str | None = None) -> list[Job]:
        """Decide on a version read from the store and write the result back, version-checked.

        On a conflict the event is read again and decided again (the records
        make sure no second conference is made and nothing typed is lost).
        Returns the jobs queued. The caller holds the store's lock.
        """
        jobs: list[Job] = []
        if previous is None:
            previous = self.store.previous(key, stored.ref)
        for _try in range(MAX_CONFLICTS + 1):
            decision = self.decide(key, stored.text, lambda: previous, stored.ref)
            jobs.extend(decision.jobs)
            if decision.text is None:
                self.store.unchanged(key, stored)
                return jobs
            written = self.store.write(key, stored.ref, decision.text, stored.version)
            if not written.conflict:
                return jobs
            logger.info("meetplugin: %s: edited meanwhile, reading it again", stored.ref)
            fresh = self.store.read(key, stored.ref)
            if fresh is None:
                return jobs
            stored = fresh
        logger.warning(
            "meetplugin: %s: still being edited after %d tries; tried again later",
            stored.ref,
            MAX_CONFLICTS + 1,
        )
        self.store.gave_up(key, stored)
        return jobs

    # --- call --------------------------------------------------------------------

    def run(self, jobs: list[Job], wait: bool = True) -> list[concurrent.futures.Future]:
        """Hand the jobs to the outbox; with `wait`, wait for them up to the budget."""
        if not jobs or self.submit is None:
            return []
        futures = self.submit(j.id for j in jobs)
        if not wait:
            return futures
        if self.budget is None:
            concurrent.futures.wait(futures)
        elif self.waiting is None:
            concurrent.futures.wait(futures, timeout=self.budget)
        elif self.waiting.acquire(blocking=False):  # else: answer now, the link follows
            try:
                concurrent.futures.wait(futures, timeout=self.budget)
            finally:
                self.waiting.release()
        return futures

    # --- settle ------------------------------------------------------------------

    def settle(self, job: Job, outcome: Outcome) -> list[Job]:
        """Write a job's final outcome into the event as it is now (the outbox calls this)."""
        if job.kind is ActionKind.DELETE:
            return self.engine.settle(job, outcome, None)[1]
        if job.kind is ActionKind.CREATE:
            settled = self.handoffs.offer(job, outcome)  # its save stored it: nothing to write
            if settled is not None:
                return settled
        if self.store.optimistic and job.kind in (ActionKind.CREATE, ActionKind.REPLACE):
            for _try in range(MAX_CONFLICTS):
                with self.store.settling():
                    more = self._settle_optimistic(job, outcome)
                if more is not None:
                    return more
                logger.info(
                    "meetplugin: %s/%s: edited meanwhile, settling again",
                    job.key.calendar,
                    job.key.uid,
                )
        # An update's outcome (a note when it failed), or the last try of a create: under the
        # lock throughout, so it never starves.
        return self._settle_locked(job, outcome)

    def _settle_optimistic(self, job: Job, outcome: Outcome) -> list[Job] | None:
        """Work the outcome out with no lock; commit it only on the version it was made for.

        Reading, parsing, rewriting and serialising happen while others may
        write. `commit_settled` then takes the store's lock and checks that
        the event still has the version read; there the record is committed
        (its compare-and-set on the attempt, checked against the record read
        while working it out) and then the event written. Both after the
        version check and under one hold of the lock: the compare-and-set runs
        once, for the version actually written, and no save comes between
        them. None: the event or the record changed meanwhile, nothing done.
        """
        ref = self.store.locate(job)
        try:
            current = self.store.read(job.key, ref) if ref else None
        except Exception as e:  # never lose what the provider made
            current = self.store.unreadable(job.key, ref, e)
        settlement = self.engine.prepare_settle(job, outcome, current.text if current else None)
        text = settlement.text if current is not None else None
        try:
            more = self.store.commit_settled(
                job.key,
                ref,
                current.version if current is not None else None,
                text,
                lambda write: self.engine.finish_settle(settlement, write),
            )
        except Stale:
            return None
        if more is not None and text is not None:
            logger.info(
                "meetplugin: %s/%s: written with the %s result",
                job.key.calendar,
                job.key.uid,
                job.provider,
            )
        return more

    def _settle_locked(self, job: Job, outcome: Outcome) -> list[Job]:
        """Settle under the store's lock from reading to writing (a CalDAV server's way)."""
        with self.store.lock():
            ref = self.store.locate(job)
            try:
                current = self.store.read(job.key, ref) if ref else None
            except Exception as e:  # never lose what the provider made
                current = self.store.unreadable(job.key, ref, e)
            text, more = self.engine.settle(job, outcome, current.text if current else None)
            if text is None or current is None:
                return more
            written = self.store.write(job.key, ref, text, current.version)
            if written.ok:
                logger.info(
                    "meetplugin: %s/%s: written with the %s result",
                    job.key.calendar,
                    job.key.uid,
                    job.provider,
                )
                if self.store.rejudge_after_settle:  # it may carry an edit made meanwhile
                    more.extend(self.save(job.key, Stored(ref, text, written.version), text))
            elif written.conflict:
                fresh = self.store.read(job.key, ref)
                if fresh is not None:
                    more.extend(self.save(job.key, fresh))
            return more


__all__ = ["EventStore", "MAX_CONFLICTS", "Session", "StateUnavailable", "Stored", "Write"]
