"""The generic leased queue and the worker that serves several of them, on both engines."""

from __future__ import annotations

import concurrent.futures
import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from radicale_meetplugin import bootstrap
from radicale_meetplugin.state.db import Schema, open_database
from radicale_meetplugin.state.queue import LeasedQueue
from radicale_meetplugin.state.worker import Held, Worker, backoff

TABLES = """
CREATE TABLE chores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    what TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    busy INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'queued',
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    sending INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    done_at REAL NOT NULL DEFAULT 0
);
"""


def as_dict(_conn, row):
    return dict(row)


@pytest.fixture
def db(tmp_path, state_url):
    database = open_database(state_url or str(tmp_path / "q.sqlite"), Schema((TABLES,)))
    yield database
    database.close()


@pytest.fixture
def chores(db):
    """Rows deleted when done; marker `busy`."""
    return LeasedQueue(db, "chores", ("what",), as_dict, marker="busy")


@pytest.fixture
def notes(db):
    """Rows kept with their final state; marker `sending`."""
    return LeasedQueue(db, "notes", ("text",), as_dict, marker="sending", keep_done=True)


ALIVE, DEAD = (lambda holder: True), (lambda holder: False)


def test_a_row_is_leased_to_one_worker_until_it_is_done(chores):
    i = chores.add({"what": "sweep"})
    assert chores.due(time.time()) == [i]
    row = chores.claim(i, "h:1:a", 60, ALIVE)
    assert row is not None and row["what"] == "sweep" and row["busy"] == 0
    assert chores.claim(i, "h:2:b", 60, ALIVE) is None  # a live holder keeps it
    assert chores.due(time.time()) == []
    assert chores.held_by_others("h:2:b") == [(i, "h:1:a")]
    assert chores.held_by_others("h:1:a") == []
    chores.finish(i)
    assert chores.claim(i, "h:2:b", 60, ALIVE) is None  # gone
    assert chores.items() == [] and chores.next_at() is None


def test_a_row_is_its_makers_until_it_runs_it_or_dies(chores):
    """A process that serves the queue leases what it adds to itself: another process must
    not run a save's job before that save has stored its event."""
    chores.hold_new_rows("h:1:maker", 60)
    i = chores.add({"what": "new"})
    now = time.time()
    assert chores.due(now, owner="h:2:other") == [] and chores.due(now, owner="h:1:maker") == [i]
    assert chores.claim(i, "h:2:other", 60, ALIVE) is None
    assert chores.claim(i, "h:2:other", 60, DEAD) is not None  # its maker is gone: taken over
    chores.finish(i)
    chores.hold_new_rows("", 0)
    j = chores.add({"what": "anyone's"})
    assert chores.due(time.time() + 1, owner="h:2:other") == [j]


def test_a_claim_passes_over_a_row_another_worker_is_claiming(chores, db):
    """Two workers claiming one row at once: one gets it, the other neither waits nor gets it
    (PostgreSQL: FOR UPDATE SKIP LOCKED; sqlite: the first claim's transaction)."""
    i, j = chores.add({"what": "one"}), chores.add({"what": "two"})
    inside, release = threading.Event(), threading.Event()

    def first_worker():
        with db.transaction() as conn:  # as a claim: the row read for update, not let go yet
            conn.execute(f"SELECT id FROM chores WHERE id=?{db.for_update}", (i,)).fetchall()
            if db.dialect == "sqlite":
                conn.execute("UPDATE chores SET tries = tries WHERE id=?", (i,))
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert inside.wait(10)
    try:
        started = time.monotonic()
        with db.waiting_at_most(0.5):
            if db.dialect == "sqlite":  # the whole file is the first worker's: fail fast
                with pytest.raises(sqlite3.OperationalError):
                    chores.claim(i, "h:2:b", 60, ALIVE)
            else:  # only the row: passed over at once, and another row is free
                assert chores.claim(i, "h:2:b", 60, ALIVE) is None
                assert chores.claim(j, "h:2:b", 60, ALIVE) is not None
        assert time.monotonic() - started < 2
    finally:
        release.set()
        thread.join()
    assert chores.claim(i, "h:2:b", 60, ALIVE) is not None  # free again: taken


def test_a_dead_holder_loses_its_lease_and_its_marker_tells_the_next_one(chores):
    i = chores.add({"what": "call"})
    assert chores.claim(i, "h:1:a", 60, ALIVE) is not None
    assert chores.start(i, "h:2:b") is False  # only the holder marks
    assert chores.start(i, "h:1:a") is True
    assert chores.start(i, "h:1:a") is False  # once
    taken = chores.claim(i, "h:2:b", 60, DEAD)  # h:1 died during the call
    assert taken is not None and taken["busy"] == 1  # the outcome of its step is unknown
    chores.retry(i, "h:1:a", time.time() - 1, "late")  # the old holder cannot touch it any more
    assert chores.items()[0]["tries"] == 0


def test_an_expired_lease_is_taken_over_even_from_a_live_holder(chores):
    i = chores.add({"what": "slow"})
    assert chores.claim(i, "h:1:a", 0.01, ALIVE) is not None
    time.sleep(0.05)  # the lease itself must run out: nothing to await
    assert chores.due(time.time()) == [i]
    taken = chores.claim(i, "h:2:b", 60, ALIVE)
    assert taken is not None and taken["busy"] == 0  # it never started its step


def test_a_retry_frees_the_row_for_later_and_clears_the_marker(chores):
    i = chores.add({"what": "flaky"})
    chores.claim(i, "h:1:a", 60, ALIVE)
    chores.start(i, "h:1:a")
    later = time.time() + 100
    chores.retry(i, "h:1:a", later, "x" * 500)
    [row] = chores.items()
    assert row["tries"] == 1 and row["busy"] == 0 and len(row["last_error"]) == 200
    assert chores.due(time.time()) == [] and chores.due(later) == [i]
    assert chores.next_at() == pytest.approx(later)


def test_a_rescheduled_row_is_not_claimed_before_its_time(chores):
    """Submitting its id again (a save, reconcile) must not run it before Retry-After."""
    i = chores.add({"what": "rate limited"})
    chores.claim(i, "h:1:a", 60, ALIVE)
    chores.retry(i, "h:1:a", time.time() + 100, "429")
    assert chores.claim(i, "h:1:b", 60, ALIVE) is None
    assert chores.claim(i, "h:1:a", 60, ALIVE) is None


def test_a_queue_that_keeps_its_rows_records_their_final_state(notes, db):
    first = notes.add({"text": "hello"}, unique=True)
    assert notes.add({"text": "hello"}, unique=True) is None  # the table's UNIQUE key
    second = notes.add({"text": "again"})
    notes.claim(first, "h:1:a", 60, ALIVE)
    notes.finish(first, "sent")
    assert notes.claim(first, "h:1:a", 60, ALIVE) is None  # finished rows are not pending
    assert notes.due(time.time()) == [second]
    assert db.query("SELECT state, tries FROM notes ORDER BY id") == [("sent", 1), ("queued", 0)]
    with pytest.raises(ValueError):
        notes.add({"nope": 1})


def test_an_insert_joins_the_callers_transaction(notes, db):
    with pytest.raises(RuntimeError), db.transaction() as conn:
        notes.insert(conn, {"text": "rolled back"})
        raise RuntimeError()
    assert notes.items() == []


def test_backoff_doubles_with_jitter_and_honours_retry_after():
    assert backoff(0, 5, 3600, rng=lambda: 1.0) == 5
    assert backoff(3, 5, 3600, rng=lambda: 0.0) == 20
    assert backoff(20, 5, 3600, rng=lambda: 1.0) == 3600
    assert backoff(0, 5, 3600, retry_after=30, rng=lambda: 1.0) == 30


# --- the worker -----------------------------------------------------------------------


def meetplugin_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("meetplugin-")]


def test_one_worker_serves_two_queues_with_their_own_handlers(chores, notes):
    done: list[str] = []
    notes_done, flaky_done = threading.Event(), threading.Event()

    def chore(row, held: Held):
        assert held.start()
        if row["what"] == "flaky" and row["tries"] == 0:
            held.retry(0.0, "try again")
            return "retried"
        done.append(row["what"])
        held.finish()
        if row["what"] == "flaky":
            flaky_done.set()
        return row["what"]

    def note(row, held: Held):
        held.finish("sent")
        notes_done.set()

    worker = Worker()
    worker.add("chore", chores, chore, workers=2, lease=60)
    worker.add("note", notes, note, workers=1, lease=60)
    ids = [chores.add({"what": w}) for w in ("a", "flaky")]
    assert [f.result(5) for f in worker.submit("chore", ids)] == ["a", "retried"]
    worker.start()  # the loop picks up the retry, and rows queued later
    notes.add({"text": "n"})
    worker.wake()
    assert notes_done.wait(10)
    assert flaky_done.wait(10)
    assert sorted(done) == ["a", "flaky"]
    assert chores.items() == []
    worker.stop()


def test_a_handler_that_fails_leaves_the_row_for_later(chores, caplog):
    worker = Worker()
    worker.add("chore", chores, lambda row, held: 1 / 0, workers=1, lease=60)
    i = chores.add({"what": "x"})
    [future] = worker.submit("chore", [i])
    assert future.result(5) is None
    assert f"chore {i} failed inside the plugin" in caplog.text
    assert chores.held_by_others("someone else") == [(i, worker.owner)]  # until the lease ends
    worker.stop()


def test_the_idle_callback_runs_once_after_a_burst_and_not_before_the_gap(chores):
    """What gives freed memory back (state/heap.py) runs when the work is over, not during it."""
    calls: list[int] = []  # how many runs were going on at each call
    called = threading.Event()
    worker = Worker()
    worker.add("chore", chores, lambda row, held: held.finish(), workers=2, lease=60)

    def idle():
        calls.append(len(worker.running("chore")))
        called.set()

    worker.when_idle(idle, quiet=0.2, gap=0.0)
    worker.start()
    assert not called.wait(0.3)  # no work yet: no call
    ids = [chores.add({"what": str(n)}) for n in range(6)]
    started = time.monotonic()
    concurrent.futures.wait(worker.submit("chore", ids), timeout=5)
    assert called.wait(5)
    assert calls == [0]
    assert time.monotonic() - started >= 0.2  # after the quiet time, not at the last run's end
    called.clear()
    worker.worked()  # the shell's own work (an import) counts too
    assert called.wait(5)
    assert calls == [0, 0]
    called.clear()
    worker.when_idle(idle, quiet=0.0, gap=3600.0)  # the next burst is within the gap: no call
    concurrent.futures.wait(worker.submit("chore", [chores.add({"what": "late"})]), timeout=5)
    worker.wake()
    assert not called.wait(0.3)
    assert calls == [0, 0]
    worker.stop()


def test_release_gives_free_heap_back_on_glibc():
    """A burst that freed what it took leaves RSS up until malloc_trim gives it back."""
    from radicale_meetplugin.state import heap

    if not heap.available():
        pytest.skip("no malloc_trim in this C library")

    kept: list[bytearray] = []

    def churn():  # allocations in a thread's own arena (below the mmap threshold), then freed
        blocks = [bytearray(100_000) for _ in range(400)]
        kept.append(blocks[-1])  # in use at the arena's top: free() alone cannot shrink it

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    shrank = heap.release()
    assert shrank is not None and shrank > 10 * 2**20
    assert heap.release() < 2**20  # nothing left to give
    assert len(kept[0]) == 100_000


ARENAS = """
import ctypes, sys, threading
from radicale_meetplugin.state import heap

limited = heap.limit_arenas(2) if sys.argv[1] == "limit" else None
malloc = ctypes.CDLL(None).malloc
malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
held = threading.Barrier(9)

def hold():  # the thread's first allocation takes an arena; it keeps it while alive
    malloc(1000)
    held.wait()
    held.wait()

threads = [threading.Thread(target=hold) for _ in range(8)]
for t in threads:
    t.start()
held.wait()
maps = [line.split() for line in open("/proc/self/maps")]
spans = [tuple(int(x, 16) for x in m[0].split("-")) + (m[1],) for m in maps]
arenas = sum(  # a thread arena: its read-write part, then the rest of 64 MiB reserved
    1 for (a, b, p), (c, d, q) in zip(spans, spans[1:])
    if p == "rw-p" and q == "---p" and b == c and d - a == 64 << 20
)
held.wait()
for t in threads:
    t.join()
print(limited, arenas)
"""


def _arenas(*args: str, env: dict | None = None) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (env or {}),
    ).stdout.split()
    return out[0], int(out[1])


def test_limit_arenas_keeps_threads_from_taking_an_arena_each():
    """Eight threads that allocate at once: eight arenas by glibc's default, one with the
    limit of two (the main arena is the other), and the environment's setting wins."""
    from radicale_meetplugin.state import heap

    if not heap.available():
        pytest.skip("not glibc")
    assert _arenas("default") == ("None", 8)
    assert _arenas("limit") == ("True", 1)
    limited, arenas = _arenas("limit", env={"MALLOC_ARENA_MAX": "4"})
    assert (limited, arenas) == ("False", 3)


def test_release_memory_decides_whether_the_outbox_gives_memory_back(tmp_path):
    from radicale_meetplugin.state import heap

    conf = tmp_path / "off.conf"
    conf.write_text("[meetplugin]\nrelease_memory = false\n")
    off = bootstrap.build_outbox(
        bootstrap.build_engine(str(conf), str(tmp_path / "a")), lambda job, outcome: []
    )
    on = bootstrap.build_outbox(
        bootstrap.build_engine("", str(tmp_path / "b")), lambda job, outcome: []
    )
    assert off.worker.idle_callback is None
    if heap.available() and "MALLOC_ARENA_MAX" not in os.environ:
        assert heap.arena_limit() == 2  # malloc_arenas' default, set by the first outbox
    assert on.worker.idle_callback is (heap.release if heap.available() else None)
    for outbox in (off, on):
        outbox.stop()
        outbox.engine.store.close()


def test_rows_of_a_dead_worker_are_taken_over(chores):
    i = chores.add({"what": "orphan"})
    chores.claim(i, "elsewhere:999999999:x", 600, ALIVE)
    got = []
    worker = Worker(alive=lambda holder: holder != "elsewhere:999999999:x")
    worker.add("chore", chores, lambda row, held: got.append(row["id"]), workers=1, lease=60)
    concurrent.futures.wait(worker.submit_due("chore"), timeout=5)
    assert got == [i]
    worker.stop()


def test_stop_ends_the_loop_and_every_pool(chores, notes):
    before = set(meetplugin_threads())
    worker = Worker()
    worker.add("chore", chores, lambda row, held: held.finish(), workers=3, lease=60)
    worker.add("note", notes, lambda row, held: held.finish("sent"), workers=2, lease=60)
    worker.start()
    ids = [chores.add({"what": str(n)}) for n in range(6)]
    concurrent.futures.wait(worker.submit("chore", ids), timeout=5)
    assert set(meetplugin_threads()) - before
    worker.stop()
    for thread in set(meetplugin_threads()) - before:
        thread.join(5)
    assert set(meetplugin_threads()) - before == set()
    assert worker.submit("chore", [chores.add({"what": "late"})]) == []  # stopped: no new runs


def test_a_dropped_outbox_and_store_leave_no_thread_and_no_connection(tmp_path):
    """What a Storage holds (50 storages used to leave 51 threads and 256 descriptors)."""

    def fds() -> int:  # this test's files only: others' leftovers may close at any moment
        count = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{name}").startswith(str(tmp_path))
            except OSError:
                pass
        return count

    gc.collect()  # what earlier tests left behind must not close itself during the count
    before_threads, before_fds = set(meetplugin_threads()), fds()
    for n in range(5):
        engine = bootstrap.build_engine("", str(tmp_path / f"s{n}"))
        outbox = bootstrap.build_outbox(engine, lambda job, outcome: [])
        outbox.start()
        outbox.submit([])
        outbox.stop()
        engine.store.close()
    for thread in set(meetplugin_threads()) - before_threads:
        thread.join(5)
    assert set(meetplugin_threads()) - before_threads == set()
    assert fds() == before_fds
