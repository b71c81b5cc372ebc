"""A save that waits for its own create job takes the outcome, to store the link in one write.

Radicale decides a PUT before it locks its storage (radicale/early.py). When
that decision creates a conference, the save commits it there, runs the job
and waits for it up to the budget, all before the lock: when the provider
answers in time, the outbox's settle hands the outcome over here instead of
writing, and the save stores the event with the link in its one write. When
the save stops waiting (budget spent, request refused, error), the settle
goes on by itself once the save is over: the event is then stored (the link
is written in as before) or absent (the conference goes).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from radicale_meetplugin.core.model import EventKey, Job

if TYPE_CHECKING:
    from radicale_meetplugin.protocol.ports import Outcome

_OPEN, _OFFERED, _CLOSED = "open", "offered", "closed"


class Handoff:
    """One save waiting for the outcome of its create job."""

    def __init__(self, key: EventKey) -> None:
        self.key = key
        self.attempt = ""  # set once the job is committed, under `lock`
        self.lock = threading.Condition()
        self.state = _OPEN
        self.outcome: Outcome | None = None
        self._finished = False
        self._result: list[Job] | None = None

    def wait(self, timeout: float | None) -> Outcome | None:
        """The save: the job's outcome within `timeout` seconds; None: it goes on without."""
        end = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while self.state == _OPEN:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.lock.wait(left)
            if self.state == _OFFERED:
                return self.outcome
            self.state = _CLOSED
            return None

    def stop_waiting(self, *_args: object) -> None:
        """The job ended without a settle (rescheduled, run elsewhere): stop waiting for it."""
        with self.lock:
            if self.state == _OPEN:
                self.state = _CLOSED
                self.lock.notify_all()

    def offer(self, outcome: Outcome) -> list[Job] | None:
        """The settle: hand `outcome` over and wait until the save is over.

        Returns the jobs the save's settlement queued when the save stored
        it; None when the settle is still to be done by the caller.
        """
        with self.lock:
            if self.state == _OPEN:
                self.outcome, self.state = outcome, _OFFERED
                self.lock.notify_all()
            while not self._finished:
                self.lock.wait()
            return self._result

    def finish(self, settled: list[Job] | None) -> None:
        """The save is over: it stored the settlement (its jobs) or did not (None)."""
        with self.lock:
            if self._finished:
                return
            if self.state == _OPEN:
                self.state = _CLOSED
            self._result, self._finished = settled, True
            self.lock.notify_all()


class Handoffs:
    """The saves of this process waiting for their create jobs, by event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[EventKey, Handoff] = {}

    def open(self, key: EventKey) -> Handoff | None:
        """A handoff for a save of `key`; None when another save of it waits already."""
        with self._lock:
            if key in self._waiting:
                return None
            handoff = self._waiting[key] = Handoff(key)
            return handoff

    def close(self, handoff: Handoff, settled: list[Job] | None = None) -> None:
        with self._lock:
            if self._waiting.get(handoff.key) is handoff:
                del self._waiting[handoff.key]
        handoff.finish(settled)

    def offer(self, job: Job, outcome: Outcome) -> list[Job] | None:
        """For the settle of `job`: the jobs when its save stored the outcome, else None."""
        with self._lock:
            handoff = self._waiting.get(job.key)
        if handoff is None:
            return None
        with handoff.lock:  # the save sets the attempt while holding it
            if not handoff.attempt or handoff.attempt != job.attempt:
                return None
        return handoff.offer(outcome)


__all__ = ["Handoff", "Handoffs"]
