"""Several bridge workers on one state: account leases, heartbeats, fair share (not pure).

With ``workers = shared`` every worker (a process, on this host or another
one sharing a PostgreSQL state) follows only the accounts it leases. A lease
names the worker ("host:pid:random") and runs until ``expires_at``; each take
increments its ``generation``, the fencing number: before every write to the
CalDAV server, and before settling a provider's result, the worker checks that
it still holds that generation with a margin left (`check`). A lease that ran
out, or went to another worker, stops the work on that account (`LeaseLost`).

A heartbeat thread, every third of the lease timeout (at most 5 s), marks the worker alive,
renews its leases and balances: with L live workers and A accounts each
worker aims at ceil(A / L) accounts — it gives back what it has above that
(never an account it is working on or has provider calls under way for) and
takes free or run-out leases up to it. So a new worker gets accounts without
a restart of the others, and a dead worker's accounts go to the others once
its leases run out. A clean stop releases every lease at once.

Times come from this host's clock and are passed to the database: workers on
several hosts need synchronised clocks (NTP); a skew eats into the margin.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.state import BridgeState
from radicale_meetplugin.state.worker import new_owner

logger = logging.getLogger("meetplugin.bridge")

PERIOD = 5.0  # the longest time between two heartbeats: a new worker gets its share this soon
INSTANCE = "instance"  # the `shared` row holding the workers' common instance id


class LeaseLost(RuntimeError):
    """This worker no longer holds the account's lease: stop work on it."""

    def __init__(self, account: str, generation: int) -> None:
        super().__init__(f"{account}: lease (generation {generation}) lost")
        self.account = account
        self.generation = generation


@dataclass(frozen=True)
class Held:
    generation: int
    taken_at: float


class Leases:
    """This worker's leases on the configured accounts of one bridge config."""

    def __init__(
        self,
        state: BridgeState,
        accounts: Iterable[str],
        timeout: float,
        *,
        worker: str | None = None,
        clock: Callable[[], float] = time.time,
        lock_local: Callable[[str], bool] | None = None,
        unlock_local: Callable[[str], None] | None = None,
    ) -> None:
        """`lock_local(account)`: also lock the account on this host (False: cannot now);
        `unlock_local(account)`: let that lock go."""
        self.state = state
        self.accounts = tuple(dict.fromkeys(accounts))
        self.timeout = timeout
        self.margin = timeout / 4  # a write starts only with this much of the lease left
        self.period = min(timeout / 3, PERIOD)  # heartbeat, renewal and balance
        self.worker = worker or new_owner()
        self.clock = clock
        self._lock_local = lock_local or (lambda account: True)
        self._unlock_local = unlock_local or (lambda account: None)
        self._held: dict[str, Held] = {}
        self._busy: dict[str, int] = {}  # accounts being worked on (cycle, settle)
        self.keep: Callable[[str], bool] = lambda account: False  # e.g. provider calls under way
        self.taken: Callable[[], None] = lambda: None  # called after accounts were taken
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = 0
        self._reported: tuple[int, int] | None = None

    # --- what the runner asks -------------------------------------------------------

    def held(self) -> dict[str, int]:
        with self._mutex:
            return {a: h.generation for a, h in self._held.items()}

    def holds(self, account: str) -> bool:
        with self._mutex:
            return account in self._held

    def generation(self, account: str) -> int:
        with self._mutex:
            held = self._held.get(account)
            return held.generation if held else 0

    def check(self, account: str) -> int:
        """The generation held, confirmed in the state with a margin left; else LeaseLost."""
        with self._mutex:
            held = self._held.get(account)
        generation = held.generation if held else 0
        if held is not None:
            try:
                if self.state.holds_lease(
                    account, self.worker, generation, self.clock() + self.margin
                ):
                    return generation
            except Exception as e:  # the state is away: nothing is written without the lease
                logger.warning("bridge: %s: cannot check the lease: %s", account, e)
            self._lost(account, generation)
        raise LeaseLost(account, generation)

    def begin(self, account: str) -> int:
        """Start work on `account` (it is not given back meanwhile); its generation, 0 if
        not held."""
        with self._mutex:
            if account not in self._held:
                return 0
            self._busy[account] = self._busy.get(account, 0) + 1
        try:
            return self.check(account)
        except LeaseLost:
            self.end(account)
            return 0

    def end(self, account: str) -> None:
        with self._mutex:
            left = self._busy.get(account, 0) - 1
            if left > 0:
                self._busy[account] = left
            else:
                self._busy.pop(account, None)

    # --- the heartbeat -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._thread is not None

    def register(self) -> None:
        """Say this worker is alive (the others leave it its share from now on)."""
        self.state.beat(self.worker, self.clock())

    def start(self, delay: float = 0.0) -> None:
        """Take a first share (now, or after `delay` seconds, so that workers started
        together see each other first), then keep beating in a thread."""
        if self._thread is not None:
            return
        self.register()
        if delay <= 0:
            self.tick()
        self._thread = threading.Thread(
            target=self._loop, args=(delay,), name="meetplugin-leases", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and give every lease back (a clean exit)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout)
        with self._mutex:
            held = dict(self._held)
            self._held.clear()
        for account, h in held.items():
            try:
                self.state.release_lease(account, self.worker, h.generation)
            except Exception as e:
                logger.warning("bridge: %s: cannot release the lease: %s", account, e)
            self._unlock_local(account)
        if held:
            logger.info(
                "bridge: worker %s released %d lease(s): %s",
                self.worker,
                len(held),
                ", ".join(sorted(held)),
            )
        try:
            now = self.clock()
            self.state.drop_worker(self.worker, now - 10 * self.timeout)
        except Exception as e:
            logger.warning("bridge: cannot unregister worker %s: %s", self.worker, e)

    def _loop(self, delay: float) -> None:
        while not self._stop.wait(delay if delay > 0 else self.period):
            delay = 0
            try:
                self.tick()
            except Exception as e:  # the state is away: the leases run out, work stops
                logger.warning("bridge: worker %s: heartbeat failed: %s", self.worker, e)

    def tick(self) -> None:
        """Beat, renew, balance: one heartbeat."""
        now = self.clock()
        self.state.beat(self.worker, now)
        renewed = self.state.renew_leases(self.worker, now, now + self.timeout)
        with self._mutex:
            lost = [
                (a, h.generation) for a, h in self._held.items() if renewed.get(a) != h.generation
            ]
        for account, generation in lost:
            self._lost(account, generation)
        self.balance(now)

    def balance(self, now: float) -> None:
        """Give back what is above the fair share, take free accounts up to it."""
        live = self.state.live_workers(now - self.timeout)
        if self.worker not in live:
            live.append(self.worker)
        self._live = len(live)
        share = math.ceil(len(self.accounts) / len(live)) if self.accounts else 0
        with self._mutex:
            mine = [a for a in self.accounts if a in self._held]
            spare = [a for a in reversed(mine) if a not in self._busy and not self.keep(a)]
        for account in spare[: max(0, len(mine) - share)]:
            self._give_back(account)
        with self._mutex:
            missing = share - len(self._held)
        if missing > 0:
            leases = self.state.leases()
            free = [
                a
                for a in self.accounts
                if a not in self._held
                and (a not in leases or not leases[a][0] or leases[a][2] <= now)
            ]
            free.sort(key=lambda a: hashlib.sha256(f"{self.worker}\n{a}".encode()).digest())
            took = 0
            for account in free:
                if missing <= 0:
                    break
                if self._take(account, now):
                    missing -= 1
                    took += 1
            if took:
                self.taken()
        self._report()

    def _take(self, account: str, now: float) -> bool:
        if not self._lock_local(account):
            return False  # a process on this host still holds it (a hung worker, a single bridge)
        try:
            generation, before, expired = self.state.take_lease(
                account, self.worker, now, now + self.timeout
            )
        except BaseException:
            self._unlock_local(account)
            raise
        if not generation:
            self._unlock_local(account)
            return False
        with self._mutex:
            self._held[account] = Held(generation, now)
        if before and before != self.worker:
            logger.info(
                "bridge: %s: lease taken (generation %d), taken over from worker %s "
                "whose lease ran out %.1f s ago",
                account,
                generation,
                before,
                now - expired,
            )
        else:
            logger.info("bridge: %s: lease taken (generation %d)", account, generation)
        return True

    def _give_back(self, account: str) -> None:
        with self._mutex:  # `begin` marks an account busy under the same mutex
            if account in self._busy or self.keep(account):
                return
            held = self._held.pop(account, None)
        if held is None:
            return
        self.state.release_lease(account, self.worker, held.generation)
        self._unlock_local(account)
        logger.info(
            "bridge: %s: lease released (generation %d) for another worker",
            account,
            held.generation,
        )

    def _lost(self, account: str, generation: int) -> None:
        with self._mutex:
            held = self._held.get(account)
            if held is None or held.generation != generation:
                return
            del self._held[account]
        try:  # still ours in the state, with too little time left: let another take it
            self.state.release_lease(account, self.worker, generation)
        except Exception:
            pass  # it runs out by itself
        self._unlock_local(account)
        logger.warning(
            "bridge: %s: lease lost (generation %d: it ran out or another worker took it); "
            "stopped work on this account",
            account,
            generation,
        )

    def _report(self) -> None:
        with self._mutex:
            now = (len(self._held), self._live)
        if now != self._reported:
            self._reported = now
            logger.info(
                "bridge: worker %s holds %d of %d account(s); %d live worker(s)",
                self.worker,
                now[0],
                len(self.accounts),
                now[1],
            )
