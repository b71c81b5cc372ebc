"""The outbox's own lock: a job or letter that is done before its callback is added."""

from __future__ import annotations

import concurrent.futures
import threading
import types

from radicale_meetplugin.protocol.outbox import Outbox


class InlineExecutor(concurrent.futures.Executor):
    """Runs the work at once, so every future it returns is already done."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def outbox() -> Outbox:
    box = Outbox(
        types.SimpleNamespace(store=None),
        lambda job, outcome: [],
        workers=1,
        lease=60,
        retry_initial=1,
        retry_max_delay=10,
        retry_for=60,
    )
    box._pool = InlineExecutor()  # type: ignore[assignment]
    box._mail_pool = InlineExecutor()  # type: ignore[assignment]
    box._run = lambda job_id: None  # type: ignore[method-assign]
    box._send = lambda mail_id: None  # type: ignore[method-assign]
    return box


def returns(call) -> bool:
    """Does `call()` return within 5 s? (A deadlocked call never does.)"""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=5)
    return not thread.is_alive()


def test_a_job_done_before_submit_returns_does_not_deadlock():
    box = outbox()
    assert returns(lambda: box.submit([1, 2]))
    assert box._running == {}  # forgotten once done
    assert returns(lambda: box.submit([1]))  # and can run again


def test_a_letter_sent_before_submit_returns_does_not_deadlock():
    box = outbox()
    assert returns(lambda: box.submit_mails([7]))
    assert box._sending == {}
    assert box.sending() == []


def test_a_finished_run_does_not_forget_a_newer_run_of_the_same_job():
    box = outbox()
    box._pool = concurrent.futures.ThreadPoolExecutor(1)
    release = threading.Event()
    box._run = lambda job_id: release.wait(5)  # type: ignore[method-assign]
    old: concurrent.futures.Future = concurrent.futures.Future()
    old.set_result(None)
    [new] = box.submit([3])
    box._forget(box._running, 3, old)  # a stale callback of an earlier run
    assert box._running.get(3) is new
    release.set()
    new.result(timeout=5)
