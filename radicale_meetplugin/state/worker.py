"""The background worker: runs the rows of leased queues in thread pools, now and when due.

Each queue is a lane with its own handler, pool size and lease. `submit` runs
ids at once (a save that waits for its jobs); the loop thread submits whatever
is due, and rows whose holder died, of every lane, and sleeps until the next
one is due or `wake` is called. A handler gets the claimed item and its `Held`
lease: it marks the step that cannot be undone (`start`), then `finish`es the
row or `retry`s it later. A handler that raises leaves the row leased; the
lease runs out and the row comes back.

Who holds a lease is named "host:pid:random"; a holder on this host whose
process is gone has no lease any more. Nothing here knows what a row means.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from radicale_meetplugin.state.queue import LeasedQueue

logger = logging.getLogger("radicale.meetplugin")

T = TypeVar("T")


def new_owner() -> str:
    """A worker's name in leases: host, process, and a random part (one per worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_alive(holder: str) -> bool:
    """Is the worker named `holder` still running? Only knowable on this host."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: trust its lease
    if int(pid) == os.getpid():
        return True  # this process (perhaps an older worker in it): let it finish
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def backoff(
    tries: int,
    initial: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next try: exponential, with jitter, never before Retry-After."""
    delay = min(cap, initial * (2**tries)) * (0.5 + rng() / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)  # the other side asked for this pause: give it
    return delay


@dataclass
class Lane(Generic[T]):
    """One queue the worker serves."""

    name: str
    queue: LeasedQueue[T]
    handler: Callable[[T, Held], Any]
    lease: float
    pool: concurrent.futures.Executor
    running: dict[int, concurrent.futures.Future] = field(default_factory=dict)


class Held:
    """The lease of one claimed row: what its handler may do with it."""

    def __init__(self, worker: Worker, lane: Lane, item_id: int) -> None:
        self.worker = worker
        self.lane = lane
        self.id = item_id

    @property
    def owner(self) -> str:
        return self.worker.owner

    def start(self) -> bool:
        """Mark the step whose outcome a successor could not know; False: the lease is lost."""
        return self.lane.queue.start(self.id, self.worker.owner)

    def retry(self, delay: float, error: str) -> None:
        """Try again in `delay` seconds (the loop wakes up to plan for it)."""
        self.lane.queue.retry(self.id, self.worker.owner, time.time() + delay, error)
        self.worker.wake()

    def finish(self, state: str = "done", error: str = "") -> None:
        self.lane.queue.finish(self.id, state, error)


class Worker:
    IDLE_QUIET, IDLE_GAP = 2.0, 10.0  # when_idle's defaults, in seconds

    def __init__(
        self,
        *,
        owner: str | None = None,
        alive: Callable[[str], bool] = process_alive,
        name: str = "meetplugin-outbox",
    ) -> None:
        self.owner = owner or new_owner()
        self.alive = alive
        self.name = name
        self._lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle: Callable[[], object] | None = None
        self._idle_quiet, self._idle_gap = self.IDLE_QUIET, self.IDLE_GAP
        self._work_last = -float("inf")  # time.monotonic() when work last ended
        self._idle_last = -float("inf")  # time.monotonic() of the idle callback's last call

    def add(
        self,
        name: str,
        queue: LeasedQueue[T],
        handler: Callable[[T, Held], Any],
        *,
        workers: int,
        lease: float,
        pool: concurrent.futures.Executor | None = None,
    ) -> None:
        """Serve `queue`: each claimed row goes to `handler(item, held)` in a pool of `workers`."""
        if pool is None:
            pool = concurrent.futures.ThreadPoolExecutor(max(1, workers), f"meetplugin-{name}")
        self._lanes[name] = Lane(name, queue, handler, lease, pool)

    def lane(self, name: str) -> Lane:
        return self._lanes[name]

    # --- running rows ------------------------------------------------------------

    def submit(self, name: str, ids: Iterable[int]) -> list[concurrent.futures.Future]:
        """Run each id not already running; the futures, old and new (their results: the
        handler's return, None when the row was not claimed or the handler failed).

        The done-callbacks are added after `self._lock` is released: a future
        that is already done runs its callback at once, in this thread, and the
        callback takes the lock (taking it here would deadlock the caller).
        """
        lane = self._lanes[name]
        futures, started = [], []
        with self._lock:
            for i in ids:
                future = lane.running.get(i)
                if future is None:
                    if self._stop.is_set():
                        continue  # stopped: the row waits for the next process
                    try:
                        future = lane.pool.submit(self._run, lane, i)
                    except RuntimeError:  # the pool was shut down meanwhile
                        continue
                    lane.running[i] = future
                    started.append((i, future))
                futures.append(future)
        for i, future in started:
            future.add_done_callback(functools.partial(self._forget, lane, i))
        return futures

    def _forget(self, lane: Lane, i: int, future: concurrent.futures.Future) -> None:
        with self._lock:
            if lane.running.get(i) is future:  # not a newer run of the same id
                del lane.running[i]
        self.worked()

    # --- after a burst of work ----------------------------------------------------

    def when_idle(
        self, callback: Callable[[], object], quiet: float = IDLE_QUIET, gap: float = IDLE_GAP
    ) -> None:
        """Call `callback` in the loop thread once nothing has run for `quiet` seconds after
        some work, at most once every `gap` seconds (a burst within the gap gets its call
        when the gap is over)."""
        self._idle, self._idle_quiet, self._idle_gap = callback, quiet, gap

    @property
    def idle_callback(self) -> Callable[[], object] | None:
        return self._idle

    def worked(self) -> None:
        """Some work just ended (a run, or the shell's, e.g. an import): the idle callback is due."""
        if self._idle is None:
            return
        with self._lock:
            self._work_last = time.monotonic()
            busy = self._busy()
        if not busy:
            self._wake.set()  # the loop times the call

    def _busy(self) -> bool:
        """Does any lane run something? (with `self._lock` held)"""
        return any(lane.running for lane in self._lanes.values())

    def _after_work(self) -> float:
        """Run the idle callback if it is due; seconds until the loop should look again."""
        if self._idle is None:
            return 30.0
        with self._lock:
            if self._work_last <= self._idle_last or self._busy():
                return 30.0  # no work since the last call, or the run that ends wakes the loop
            now = time.monotonic()
            left = max(self._work_last + self._idle_quiet, self._idle_last + self._idle_gap) - now
            if left > 0:
                return left
            self._idle_last = now
        try:
            self._idle()
        except Exception:
            logger.exception("meetplugin: after the outbox's work")
        return 30.0

    def running(self, name: str) -> list[concurrent.futures.Future]:
        lane = self._lanes.get(name)
        if lane is None:
            return []
        with self._lock:
            return list(lane.running.values())

    def _run(self, lane: Lane, item_id: int) -> Any:
        try:
            item = lane.queue.claim(item_id, self.owner, lane.lease, self.alive)
            if item is None:
                return None  # done already, or a live worker elsewhere has it
            return lane.handler(item, Held(self, lane, item_id))
        except Exception:  # keep the worker alive; the lease runs out and the row returns
            logger.exception("meetplugin: %s %s failed inside the plugin", lane.name, item_id)
            return None

    def submit_due(self, name: str, now: float | None = None) -> list[concurrent.futures.Future]:
        """Run the lane's due rows and those whose holder is gone."""
        queue = self._lanes[name].queue
        now = time.time() if now is None else now
        orphaned = [i for i, holder in queue.held_by_others(self.owner) if not self.alive(holder)]
        return self.submit(name, [*queue.due(now, owner=self.owner), *orphaned])

    def sweep(self) -> float | None:
        """One pass of the loop over every lane; when the next row is due (None: none is)."""
        next_at: float | None = None
        for name, lane in list(self._lanes.items()):
            self.submit_due(name)
            at = lane.queue.next_at()
            if at is not None:
                next_at = at if next_at is None else min(next_at, at)
        return next_at

    # --- the background loop -------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._thread is not None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop and the pools: queued runs are dropped, running ones get `timeout`."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
        with self._lock:
            running = [f for lane in self._lanes.values() for f in lane.running.values()]
        for lane in self._lanes.values():
            lane.pool.shutdown(wait=False, cancel_futures=True)
        concurrent.futures.wait(running, timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                next_at = self.sweep()
                now = time.time()
                wait = 30.0 if next_at is None else min(30.0, max(0.05, next_at - now))
                wait = min(wait, max(0.05, self._after_work()))
            except Exception:
                logger.exception("meetplugin: outbox loop")
                wait = 5.0
            self._wake.wait(wait)
            self._wake.clear()
