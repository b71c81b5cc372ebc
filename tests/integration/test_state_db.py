"""The state file: connections reused across threads and released, transactions, schema versions."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from bridge import state as bridge_state
from bridge.state import BridgeState
from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Meeting,
    Record,
    RecordState,
)
from radicale_meetplugin.state.db import Database, Schema, Unavailable, open_database
from radicale_meetplugin.state.letters import Outgoing, Round, Sent, Told
from radicale_meetplugin.state.records import SCHEMA, RecordStore

CAL = "alice/calendar"


def fds(folder: object = None) -> int:
    """Open descriptors of this process (under `folder` only, when given: other tests'
    leftovers may be closed by the garbage collector at any moment)."""
    names = os.listdir("/proc/self/fd")
    if folder is None:
        return len(names)
    count = 0
    for name in names:
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith(str(folder))
        except OSError:
            pass
    return count


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def key(n: int | str) -> EventKey:
    return EventKey("alice", CAL, f"{n}@state")


def active(n: int | str) -> Record:
    conf = Conference("telemost", f"c{n}", f"https://telemost.yandex.ru/j/{n}")
    return Record(key(n), "telemost", RecordState.ACTIVE, conf, "fp")


@pytest.fixture
def place(tmp_path, state_url, request):
    """Where a store lives: `place(name)` is a file under tmp_path (sqlite) or a fresh
    database (PostgreSQL), by the engine of `state_url`."""

    def new(name: str) -> str:
        if not state_url:
            return str(tmp_path / name)
        return request.getfixturevalue("pg_cluster").database()

    return new


def in_fresh_thread(work) -> None:
    """Run `work` in a new thread that ends at once: how Radicale serves every request."""
    errors: list[BaseException] = []

    def run():
        try:
            work()
        except BaseException as e:  # handed to the test
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def elsewhere(work):
    """The result of `work()` computed on another thread (outside this thread's transaction)."""
    result = []
    in_fresh_thread(lambda: result.append(work()))
    return result[0]


# --- connections ---------------------------------------------------------------------


def test_thousands_of_request_threads_reuse_a_few_connections(tmp_path):
    """Each request thread used to open its own connection: 0.17 ms each, and memory crept."""
    before = fds(tmp_path)
    store = RecordStore(str(tmp_path / "records.sqlite"))
    try:
        # 3000 store operations, each from its own short-lived thread, 8 at a time.
        for batch in range(375):
            threads = [
                threading.Thread(
                    target=lambda n=batch * 8 + i: (
                        store.put(active(n % 50)) if n % 3 == 0 else store.get(key(n % 50))
                    )
                )
                for i in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if batch == 10:
                warm, warm_rss = fds(tmp_path), rss_mib()
        assert store.db.opened <= 8  # never more than the pool, whatever the thread count
        assert store.db.connections <= 8
        assert fds(tmp_path) <= warm + 3 * (8 - 1)  # flat after warm-up: no descriptor per thread
        assert rss_mib() - warm_rss < 1.0  # a connection per thread grew ~1 MiB per 1000
        stored = store.get(key(0))
        assert stored is not None and stored.conference == active(0).conference
    finally:
        store.close()
    assert fds(tmp_path) == before  # close releases the database, its WAL and shared memory


def test_close_releases_every_connection_of_many_stores(tmp_path):
    """50 storages on fresh folders used to leave 256 file descriptors open."""
    before = fds(tmp_path)
    for n in range(50):
        os.makedirs(tmp_path / f"s{n}")
        store = RecordStore(str(tmp_path / f"s{n}" / "records.sqlite"), pool=4)
        for i in range(4):
            in_fresh_thread(lambda i=i, store=store: store.put(active(i)))
        assert len(store.under(CAL)) == 4
        store.close()
    assert fds(tmp_path) == before


def test_a_connection_in_use_at_close_is_closed_when_it_comes_back(tmp_path):
    before = fds(tmp_path)
    store = RecordStore(str(tmp_path / "records.sqlite"))
    entered, release = threading.Event(), threading.Event()

    def hold():
        with store.transaction():
            store.put(active(1))
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(10)
    store.close()
    release.set()
    thread.join()
    assert fds(tmp_path) == before
    with pytest.raises(sqlite3.ProgrammingError):
        store.get(key(1))


def test_a_full_pool_makes_a_caller_wait_then_fail_clearly(tmp_path):
    db = Database(
        str(tmp_path / "x.sqlite"), Schema(("CREATE TABLE t (a INTEGER);",)), pool=1, timeout=0.2
    )
    entered, release = threading.Event(), threading.Event()

    def hold():
        with db.transaction():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(10)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no free connection"):
            db.query("SELECT COUNT(*) FROM t")
    finally:
        release.set()
        thread.join()
    assert db.query("SELECT COUNT(*) FROM t") == [(0,)]  # free again
    db.close()


# --- transactions ----------------------------------------------------------------------


def job_for(n: int, kind: ActionKind = ActionKind.CREATE) -> Job:
    return Job(0, kind, key(n), "telemost", meeting=Meeting(key(n), summary="s"))


def write_everything(store: RecordStore) -> None:
    """Every write method of the record store and the letters, once."""
    store.put(active(1))
    store.put(active(2))
    created = store.begin_create(key(3), "telemost", "fp", job_for(3))
    store.enqueue(job_for(4, ActionKind.DELETE))
    store.drop(key(2), job_for(2, ActionKind.DELETE))
    store.move(key(1), EventKey("alice", "alice/work", key(1).uid))
    store.add_suspect(created, "test")
    assert store.finish_attempt(key(3), created.attempt, active(3))
    other = store.begin_create(key(5), "telemost", "fp", job_for(5))
    store.abandon_attempt(key(5), other.attempt, job_for(5, ActionKind.DELETE))
    told = Told(Sent(0, frozenset({"ivan@example.com"}), "c"), "text")
    store.mail_round(
        key(3), lambda _: Round([Outgoing(0, "ivan@example.com", "REQUEST", "invite")], told, "t")
    )


def snapshot(store: RecordStore) -> tuple:
    return (
        sorted((r.key.calendar, r.key.uid, r.state.value) for r in store.all()),
        [(j.kind.value, j.key.uid) for j in store.jobs()],
        [(p, k.uid, r) for p, k, r, _ in store.suspects()],
        [m[1:6] for m in store.mails()],
        store.mail_state(key(3)),
    )


def test_every_write_works_alone(place):
    store = RecordStore(place("records.sqlite"))
    write_everything(store)
    records, jobs, suspects, mails, told = elsewhere(lambda: snapshot(store))
    assert records == [
        ("alice/calendar", "3@state", "active"),
        ("alice/work", "1@state", "active"),
    ]
    assert jobs == [
        ("create", "3@state"),
        ("delete", "4@state"),
        ("delete", "2@state"),
        ("create", "5@state"),
        ("delete", "5@state"),
    ]
    assert suspects == [("telemost", "3@state", "test")]
    assert mails == [("3@state", 0, "ivan@example.com", "REQUEST", "invite")]
    assert told is not None
    store.close()


def test_every_write_joins_an_outer_transaction_and_commits_with_it(place):
    alone = RecordStore(place("alone.sqlite"))
    write_everything(alone)
    expected = snapshot(alone)
    alone.close()

    store = RecordStore(place("records.sqlite"))
    empty = snapshot(store)
    with store.transaction():
        write_everything(store)  # no nested BEGIN: each write joins
        assert snapshot(store) == expected  # this thread sees its own writes
        assert elsewhere(lambda: snapshot(store)) == empty  # nobody else yet
    assert elsewhere(lambda: snapshot(store)) == expected  # all at once
    store.close()


def test_an_outer_failure_undoes_every_write(place):
    store = RecordStore(place("records.sqlite"))
    empty = snapshot(store)
    with pytest.raises(RuntimeError), store.transaction():
        write_everything(store)
        raise RuntimeError("the save failed")
    assert snapshot(store) == empty
    store.put(active(7))  # the store still works, on its own transaction
    assert store.get(key(7)) is not None
    store.close()


def test_an_inner_failure_undoes_only_its_own_part(place):
    store = RecordStore(place("records.sqlite"))
    with store.transaction():
        store.put(active(1))
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.put(active(2))
                raise RuntimeError("one part failed")
        store.put(active(3))
    assert sorted(r.key.uid for r in store.all()) == ["1@state", "3@state"]
    store.close()


def test_a_transaction_keeps_other_writers_out_until_it_ends(tmp_path):
    store = RecordStore(str(tmp_path / "records.sqlite"))
    entered, release, written = threading.Event(), threading.Event(), threading.Event()

    def hold():
        with store.transaction():
            store.put(active(1))
            entered.set()
            release.wait(10)

    def write():
        store.put(active(2))
        written.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    writer = threading.Thread(target=write)
    writer.start()
    assert not written.wait(0.3)  # BEGIN IMMEDIATE: the second writer waits
    release.set()
    assert written.wait(10)
    holder.join()
    writer.join()
    assert {r.key.uid for r in store.all()} == {"1@state", "2@state"}
    store.close()


def test_two_deciders_of_one_new_event_cannot_both_find_it_absent(place):
    """Engine.commit's `Expect`: a record found as expected stays so until the commit.

    Two processes deciding one new event at once (seen on PostgreSQL: two
    rooms for one event) must not both find it absent and both create it.
    """
    store = RecordStore(place("records.sqlite"))
    checked, release = threading.Event(), threading.Event()
    second: list[bool] = []

    def first():
        with store.transaction():
            assert store.holds(key(1), None)
            checked.set()
            release.wait(10)
            store.put(active(1))

    def other():
        with store.transaction():
            second.append(store.holds(key(1), None))

    a = threading.Thread(target=first)
    a.start()
    assert checked.wait(10)
    b = threading.Thread(target=other)
    b.start()
    b.join(0.3)
    assert b.is_alive()  # the second check waits for the first decision's commit
    release.set()
    a.join()
    b.join()
    assert second == [False]  # then it sees the new record: decided again
    store.close()


# --- schema versions --------------------------------------------------------------------


def test_a_fresh_file_gets_the_current_schema(place):
    store = RecordStore(place("records.sqlite"))
    assert store.db.version == 3
    store.close()


def test_a_file_of_an_older_version_is_brought_up_to_date(tmp_path):
    path = str(tmp_path / "records.sqlite")
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE conferences (owner TEXT NOT NULL, calendar TEXT NOT NULL, uid TEXT NOT NULL,
            provider TEXT NOT NULL, state TEXT NOT NULL, conference_id TEXT NOT NULL DEFAULT '',
            join_url TEXT NOT NULL DEFAULT '', extra TEXT NOT NULL DEFAULT '{}',
            fingerprint TEXT NOT NULL DEFAULT '', error_code TEXT NOT NULL DEFAULT '',
            attempt TEXT NOT NULL DEFAULT '', updated_at REAL NOT NULL,
            PRIMARY KEY (owner, calendar, uid));
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO conferences VALUES ('alice', 'alice/calendar', '1@state', 'jitsi', 'active',
            'r', 'https://meet.jit.si/r', '{}', 'fp', '', '', 0);
        """
    )
    old.close()
    store = RecordStore(path)
    assert store.db.version == 3
    assert store.get(key(1)) is not None  # kept
    store.enqueue(job_for(1, ActionKind.DELETE))  # the outbox's table is there now
    assert store.mails() == []  # and the letters'
    store.close()


def test_the_previous_version_is_brought_up_to_date_on_either_engine(place):
    """What a start-up (or `meetplugin migrate`) does to a state one version behind."""
    target = place("records.sqlite")
    previous = open_database(target, SCHEMA.upto(SCHEMA.version - 1))
    assert previous.version == SCHEMA.version - 1
    previous.run(
        "INSERT INTO conferences VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        ("alice", CAL, "1@state", "jitsi", "active", "r", "https://meet.jit.si/r", "{}", "fp", "",
         "", 0.5),
    )  # fmt: skip
    previous.close()
    store = RecordStore(target)
    assert store.db.version == SCHEMA.version
    assert store.get(key(1)) is not None  # kept
    assert store.mail_round(key(1), lambda _: Round([Outgoing(0, "i@example.com", "REQUEST",
        "invite")], Told(Sent(0, frozenset({"i@example.com"}), "c"), "t"), "t")) != []  # fmt: skip
    assert store.db.migrate() == (SCHEMA.version, SCHEMA.version)  # again: nothing to do
    store.close()


def test_a_file_of_a_newer_version_is_left_as_it_is(tmp_path):
    path = str(tmp_path / "records.sqlite")
    RecordStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    store = RecordStore(path)
    assert store.db.version == 99
    store.close()


def test_the_bridge_state_uses_the_same_database_module(tmp_path):
    path = str(tmp_path / "bridge.sqlite")
    old = sqlite3.connect(path)  # a bridge file from before versions: no meta table
    old.executescript(
        """
        CREATE TABLE homes (account TEXT PRIMARY KEY, url TEXT NOT NULL, home TEXT NOT NULL,
            principal TEXT NOT NULL DEFAULT '');
        INSERT INTO homes VALUES ('a', 'http://dav/', '/a/', '/p/a/');
        """
    )
    old.close()
    before = fds(tmp_path)
    state = BridgeState(path)
    assert isinstance(state.db, Database) and state.db.version == bridge_state.SCHEMA.version
    state.set_login_scheme("a", "http://dav/", "basic")  # step 2 ran on the old file
    assert state.login_scheme("a", "http://dav/") == "basic"
    assert state.home("a", "http://dav/") == ("/a/", "/p/a/")
    assert state.cycles() == {}
    state.cycle_done("a", 10.0)
    state.cycle_done("a", 20.0, "CalDAVError: 401")
    assert state.cycles() == {"a": (10.0, 20.0, "CalDAVError: 401")}
    for n in range(20):  # the outbox settles in its own threads
        in_fresh_thread(lambda n=n: state.seen("a", "/a/cal/", f"/a/cal/{n}.ics", f"{n}", "e"))
    assert len(state.known("a", "/a/cal/")) == 20
    assert state.db.opened <= 4
    state.close()  # every connection, not only the calling thread's
    assert fds(tmp_path) == before


def test_waiting_at_most_fails_fast_and_leaves_the_pool_as_it_was(tmp_path):
    """Code holding a lock others wait behind gets a short wait for the file; others do not."""
    path = str(tmp_path / "s.sqlite")
    db = Database(path, Schema(["CREATE TABLE t (x INTEGER);"]), timeout=30, pool=1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with db.waiting_at_most(0.2), pytest.raises(sqlite3.OperationalError, match="locked"):
            with db.transaction() as conn:
                conn.execute("INSERT INTO t VALUES (1)")
        assert time.monotonic() - started < 5
        assert db.query_one("SELECT COUNT(*) FROM t") == (0,)  # reads go on (WAL)
        with db.connection() as conn:  # the one pooled connection has its own wait back
            assert conn.execute("PRAGMA busy_timeout").fetchone() == (30000,)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with db.waiting_at_most(0.2), db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    assert db.query_one("SELECT COUNT(*) FROM t") == (1,)
    db.close()


def test_postgresql_waits_are_bounded_and_its_errors_hide_the_password(pg_cluster):
    """A row lock, a full pool, a server that is not there: Unavailable, soon, no password."""
    import psycopg
    from bridge_support import free_port
    from pg_support import PASSWORD

    url = pg_cluster.database()
    db = open_database(url, Schema(("CREATE TABLE t (x INTEGER PRIMARY KEY);",), "t"), pool=1)
    db.run("INSERT INTO t VALUES (1)")
    other = psycopg.connect(url, autocommit=True)
    other.execute("BEGIN")
    other.execute("SELECT x FROM t FOR UPDATE")
    try:
        started = time.monotonic()
        with db.waiting_at_most(0.2), pytest.raises(Unavailable, match="timeout"):
            with db.transaction() as conn:
                conn.execute("UPDATE t SET x=2 WHERE x=1")
        assert time.monotonic() - started < 3
        assert db.query_one("SHOW lock_timeout") == ("5s",)  # the pool's wait is back
    finally:
        other.execute("ROLLBACK")
        other.close()
    entered, release = threading.Event(), threading.Event()

    def hold():
        with db.transaction():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(10)
    try:
        with db.waiting_at_most(0.2), pytest.raises(Unavailable) as busy:
            db.query("SELECT COUNT(*) FROM t")
        assert PASSWORD not in str(busy.value)
    finally:
        release.set()
        thread.join()
    assert db.query("SELECT x FROM t") == [(1,)]
    db.close()
    nowhere = url.replace(f":{pg_cluster.port}/", f":{free_port()}/")
    with pytest.raises(Unavailable) as gone:
        RecordStore(nowhere)
    assert PASSWORD not in str(gone.value) and "meetplugin:***@" in str(gone.value)
    wrong = url.replace(PASSWORD, "not-it-31337")
    with pytest.raises(Unavailable) as refused:
        RecordStore(wrong)
    assert "not-it-31337" not in str(refused.value)


def test_after_a_server_restart_one_statement_fails_and_the_pool_recovers(tmp_path):
    """Idle pooled connections die with the server: the first statement after a restart is
    refused (Unavailable: a request gets 503), the pool drops the other dead ones at once."""
    from pg_support import PgCluster, SetupFailed
    from pg_support import Unavailable as NoPostgres

    try:
        cluster = PgCluster().start()
    except NoPostgres as e:
        pytest.skip(str(e))
    except SetupFailed as e:
        pytest.fail(str(e))
    try:
        store = RecordStore(cluster.database())
        barrier = threading.Barrier(4)

        def busy():
            with store.transaction():
                barrier.wait(10)  # four connections open at once: four idle ones after
                store.put(active(1))

        threads = [threading.Thread(target=busy) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.db.connections >= 4
        cluster.restart()
        with pytest.raises(Unavailable):
            store.get(key(1))
        for _ in range(8):  # every later statement works: no other dead connection is handed out
            assert store.get(key(1)) is not None
        store.close()
    finally:
        cluster.stop()
