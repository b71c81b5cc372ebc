"""`migrate-state` on real files and a real PostgreSQL: every table, once, and nothing else."""

from __future__ import annotations

import sqlite3

import pytest

from bridge.state import BridgeState
from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Record,
    RecordState,
)
from radicale_meetplugin.state.letters import Outgoing, Round, Sent, Told
from radicale_meetplugin.state.records import RecordStore
from radicale_meetplugin.state.transfer import TransferError, migrate_state

CAL = "alice/calendar"


def key(n: int) -> EventKey:
    return EventKey("alice", CAL, f"{n}@transfer")


def fill(store: RecordStore) -> None:
    """Records, a pending job, a suspect, letters and what they told."""
    conf = Conference("telemost", "c1", "https://telemost.yandex.ru/j/1", {"a": 1})
    store.put(Record(key(1), "telemost", RecordState.ACTIVE, conf, "fp"))
    job = store.begin_create(
        key(2), "telemost", "fp", Job(0, ActionKind.CREATE, key(2), "telemost")
    )
    store.add_suspect(job, "no answer")
    told = Told(Sent(3, frozenset({"ivan@example.com"}), "digest"), "BEGIN:VCALENDAR")
    store.mail_round(
        key(1), lambda _: Round([Outgoing(3, "ivan@example.com", "REQUEST", "invite")], told, "t")
    )


def contents(store: RecordStore) -> tuple:
    return (
        sorted((r.key.uid, r.state.value, repr(r.conference), r.attempt) for r in store.all()),
        [(j.id, j.kind, j.key, j.attempt) for j in store.jobs()],
        store.suspects(),
        store.mails(),
        store.mail_state(key(1)),
    )


def test_records_move_over_once_and_the_ids_go_on(tmp_path, pg_cluster):
    path = str(tmp_path / "records.sqlite")
    source = RecordStore(path)
    fill(source)
    expected = contents(source)
    source.close()
    url = pg_cluster.database()

    checked = migrate_state(f"sqlite:{path}", url, check=True)
    assert checked.created and checked.copied == sum(len(t.rows) for t in checked.tables)
    moved = migrate_state(f"sqlite:{path}", url)
    assert {t.name: t.copied for t in moved.tables}["jobs"] == 1
    again = migrate_state(f"sqlite:{path}", url)
    assert again.copied == 0 and not again.created
    assert "nothing to copy" in again.lines(check=False)[-1]

    target = RecordStore(url)
    assert contents(target) == expected
    next_job = target.enqueue(Job(0, ActionKind.DELETE, key(9), "telemost"))
    assert next_job.id > max(j.id for j in target.jobs() if j.id != next_job.id)
    target.close()


def test_a_row_that_differs_in_the_target_stops_the_copy(tmp_path, pg_cluster):
    path = str(tmp_path / "records.sqlite")
    source = RecordStore(path)
    fill(source)
    source.close()
    url = pg_cluster.database()
    target = RecordStore(url)
    target.put(Record(key(1), "jitsi", RecordState.ACTIVE, None, "other"))
    with pytest.raises(TransferError, match="other content"):
        migrate_state(f"sqlite:{path}", url)
    assert len(list(target.all())) == 1 and target.jobs() == []  # nothing was written
    target.close()


def test_a_file_in_use_is_refused(tmp_path, pg_cluster):
    path = str(tmp_path / "records.sqlite")
    RecordStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)  # as a server: WAL, shared memory
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("SELECT COUNT(*) FROM conferences").fetchone()
    # the lock is per process: a child process holds it, as a running server would
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", f"import sqlite3,sys; c=sqlite3.connect({path!r}); "
         "c.execute('SELECT 1 FROM conferences').fetchall(); print('open', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    holder.close()
    try:
        assert child.stdout.readline().strip() == "open"
        with pytest.raises(TransferError, match="in use"):
            migrate_state(path, pg_cluster.database())
    finally:
        child.communicate("", timeout=30)
    assert migrate_state(path, pg_cluster.database()).copied == 0  # empty, and free now


def test_the_bridge_state_moves_over_and_the_bridge_reads_it(tmp_path, pg_cluster):
    path = str(tmp_path / "bridge.sqlite")
    state = BridgeState(path)
    state.set_home("a", "http://dav/", "/a/", "/p/a/")
    state.wrote("a", "/a/cal/", "/a/cal/1.ics", "1", "e1", "h", "TEXT")
    state.cycle_done("a", 10.0)
    state.close()
    url = pg_cluster.database()
    moved = migrate_state(path, url)
    assert moved.kind == "bridge" and moved.copied == 3
    shared = BridgeState(url)
    assert shared.home("a", "http://dav/") == ("/a/", "/p/a/")
    assert shared.item("a", "/a/cal/1.ics").written_text == "TEXT"
    assert shared.cycles() == {"a": (10.0, 0.0, "")}
    shared.close()
