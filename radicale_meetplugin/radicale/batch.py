"""Group commit: write-backs that finish together share one exclusive storage lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class _Task(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as e:  # handed to the thread that asked for it
            self.error = e

    def outcome(self) -> T | None:
        if self.error is not None:
            raise self.error
        return self.result


class Batcher:
    """Runs the tasks that arrive together under ONE acquisition of `acquire()`.

    The first caller leads: it waits up to `window` seconds while other
    callers are still preparing (inside `preparing()`), takes the lock, runs
    every task queued by then in arrival order and wakes their callers. Tasks
    queued while it holds the lock form the next batch. A caller that is
    alone does not wait at all.
    """

    def __init__(
        self, acquire: Callable[[], AbstractContextManager[object]], window: float = 0.005
    ) -> None:
        self._acquire = acquire
        self.window = window
        self._cond = threading.Condition()
        self._queue: list[_Task] = []
        self._leading = False
        self._preparing = 0
        self._mine = threading.local()  # this thread is counted in _preparing
        self.batches = 0  # acquisitions taken (for tests and logs)
        self.tasks = 0

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Around the work before `run`: a leader waits a moment for it."""
        with self._cond:
            self._preparing += 1
        self._mine.counted = True
        try:
            yield
        finally:
            self._done_preparing()

    def _done_preparing(self) -> None:
        if getattr(self._mine, "counted", False):
            self._mine.counted = False
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()

    def run(self, fn: Callable[[], T]) -> T | None:
        """`fn()` under the lock, together with the tasks of other threads; its result."""
        self._done_preparing()
        task: _Task[T] = _Task(fn)
        with self._cond:
            self._queue.append(task)
            self._cond.notify_all()
            while self._leading and not task.done:
                self._cond.wait()
            if task.done:
                return task.outcome()
            self._leading = True
            deadline = time.monotonic() + self.window
            while self._preparing > 0 and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
        batch: list[_Task] = []
        try:
            with self._acquire():
                with self._cond:
                    batch, self._queue = self._queue, []
                for queued in batch:
                    queued.run()
        except BaseException as e:
            if batch:  # the tasks ran; releasing the lock failed
                raise
            with self._cond:  # the lock could not be taken: this caller hears it
                self._queue.remove(task)
            task.error, batch = e, [task]
        finally:
            with self._cond:
                for queued in batch:
                    queued.done = True
                self.batches += 1
                self.tasks += len(batch)
                self._leading = False
                self._cond.notify_all()
        return task.outcome()


__all__ = ["Batcher"]
