"""The outbox worker's own lock: a job or letter that is done before its callback is added."""

from __future__ import annotations

import concurrent.futures
import threading
import types

from radicale_meetplugin.protocol.outbox import JOBS, LETTERS, Outbox
from radicale_meetplugin.state.worker import Worker


class InlineExecutor(concurrent.futures.Executor):
    """Runs the work at once, so every future it returns is already done."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


class NoQueue:
    """A queue whose rows are never there: the worker claims nothing."""

    def claim(self, item_id, owner, lease, alive):
        return None


def outbox() -> Outbox:
    """An outbox with jobs and letters whose pools run everything inline."""
    worker = Worker()
    real_add = worker.add

    def add(name, queue, handler, *, workers, lease, pool=None):
        real_add(name, NoQueue(), handler, workers=workers, lease=lease, pool=InlineExecutor())

    worker.add = add  # type: ignore[method-assign]
    engine = types.SimpleNamespace(
        store=types.SimpleNamespace(jobs_queue=None, letters_queue=None),
        mailing=object(),
    )
    mailer = types.SimpleNamespace(timeout=1)
    return Outbox(
        engine,  # type: ignore[arg-type]
        lambda job, outcome: [],
        workers=1,
        lease=60,
        retry_initial=1,
        retry_max_delay=10,
        retry_for=60,
        mailer=mailer,  # type: ignore[arg-type]
        worker=worker,
    )


def returns(call) -> bool:
    """Does `call()` return within 5 s? (A deadlocked call never does.)"""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=5)
    return not thread.is_alive()


def test_a_job_done_before_submit_returns_does_not_deadlock():
    box = outbox()
    assert returns(lambda: box.submit([1, 2]))
    assert box.worker.lane(JOBS).running == {}  # forgotten once done
    assert returns(lambda: box.submit([1]))  # and can run again


def test_a_letter_sent_before_submit_returns_does_not_deadlock():
    box = outbox()
    assert returns(lambda: box.submit_mails([7]))
    assert box.worker.lane(LETTERS).running == {}
    assert box.sending() == []


def test_a_finished_run_does_not_forget_a_newer_run_of_the_same_job():
    worker = Worker()
    release = threading.Event()

    class Waiting(NoQueue):
        def claim(self, item_id, owner, lease, alive):
            release.wait(5)
            return None

    worker.add("job", Waiting(), lambda item, held: None, workers=1, lease=60)  # type: ignore[arg-type]
    lane = worker.lane("job")
    old: concurrent.futures.Future = concurrent.futures.Future()
    old.set_result(None)
    [new] = worker.submit("job", [3])
    worker._forget(lane, 3, old)  # a stale callback of an earlier run
    assert lane.running.get(3) is new
    release.set()
    new.result(timeout=5)
    worker.stop()
