"""Group commit of write-backs: tasks that arrive together share one lock acquisition."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from radicale_meetplugin.radicale.batch import Batcher


class CountingLock:
    def __init__(self) -> None:
        self.acquired = 0
        self.held = False
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self):
        with self._lock:
            self.acquired += 1
            self.held = True
            try:
                yield
            finally:
                self.held = False


def test_a_lone_task_runs_under_the_lock_at_once():
    lock = CountingLock()
    batcher = Batcher(lock, window=5.0)
    started = time.monotonic()
    with batcher.preparing():
        assert batcher.run(lambda: lock.held) is True
    assert time.monotonic() - started < 1.0  # nobody else preparing: no waiting
    assert lock.acquired == 1


def test_tasks_finishing_together_share_one_acquisition():
    lock = CountingLock()
    batcher = Batcher(lock, window=5.0)
    workers = 4
    prepared = threading.Barrier(workers)
    results: dict[int, object] = {}

    def settle(n: int) -> None:
        with batcher.preparing():
            prepared.wait()  # all four are preparing before any of them commits
            time.sleep(0.01 * n)  # and they finish a few ms apart
            results[n] = batcher.run(lambda: (n, lock.held))

    threads = [threading.Thread(target=settle, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {n: (n, True) for n in range(workers)}  # each its own result
    assert lock.acquired == 1 and batcher.batches == 1 and batcher.tasks == workers


def test_a_failing_task_fails_only_its_own_caller():
    lock = CountingLock()
    batcher = Batcher(lock, window=5.0)
    prepared = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def bad() -> None:
        with batcher.preparing():
            prepared.wait()
            try:
                batcher.run(lambda: 1 / 0)
            except ZeroDivisionError as e:
                outcome["bad"] = e

    def good() -> None:
        with batcher.preparing():
            prepared.wait()
            outcome["good"] = batcher.run(lambda: "written")

    threads = [threading.Thread(target=bad), threading.Thread(target=good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert isinstance(outcome["bad"], ZeroDivisionError) and outcome["good"] == "written"


def test_a_lock_that_cannot_be_taken_is_reported_and_the_next_caller_leads():
    attempts: list[int] = []

    @contextmanager
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("lock file unavailable")
        yield

    batcher = Batcher(flaky, window=0.0)
    with pytest.raises(OSError):
        batcher.run(lambda: "never")
    assert batcher.run(lambda: "written") == "written"
