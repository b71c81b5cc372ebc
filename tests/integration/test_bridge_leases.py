"""Account leases of shared bridge workers on one state (sqlite, PostgreSQL): share, fence, die."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bridge.leases import LeaseLost, Leases
from bridge.state import BridgeState

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = [f"a{i:02d}" for i in range(10)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state(tmp_path, state_url):
    st = BridgeState(state_url or str(tmp_path / "bridge.sqlite"))
    yield st
    st.close()


def worker(state, clock, name, timeout=30.0, accounts=ACCOUNTS) -> Leases:
    return Leases(state, accounts, timeout, worker=name, clock=clock)


def test_alone_a_worker_takes_every_account_and_a_new_one_gets_half(state, caplog):
    clock = Clock()
    a = worker(state, clock, "host:1:a")
    a.tick()
    assert sorted(a.held()) == ACCOUNTS
    assert set(a.held().values()) == {1}
    b = worker(state, clock, "host:2:b")
    with caplog.at_level(logging.INFO, logger="meetplugin.bridge"):
        b.tick()  # nothing free yet: A still holds all
        assert b.held() == {}
        clock.now += 1
        a.tick()  # A sees two live workers: keeps ceil(10 / 2) = 5
        b.tick()
    assert len(a.held()) == 5 and len(b.held()) == 5
    assert not set(a.held()) & set(b.held())
    assert "lease released (generation 1) for another worker" in caplog.text
    assert "holds 5 of 10 account(s); 2 live worker(s)" in caplog.text
    # The state agrees: each account has exactly one holder.
    holders = {acc: w for acc, (w, _g, _e) in state.leases().items()}
    assert sorted(holders) == ACCOUNTS
    assert {w for w in holders.values()} == {"host:1:a", "host:2:b"}


def test_three_workers_share_ten_accounts_four_four_two(state):
    clock = Clock()
    ws = [worker(state, clock, f"host:{i}:w") for i in range(3)]
    for w in ws:
        w.state.beat(w.worker, clock.now)  # all three alive before anyone takes
    for _ in range(2):
        for w in ws:
            w.tick()
    counts = sorted(len(w.held()) for w in ws)
    assert sum(counts) == 10 and max(counts) == 4


def test_a_dead_workers_leases_run_out_and_are_taken_over_with_a_new_generation(state, caplog):
    clock = Clock()
    a = worker(state, clock, "host:1:a", timeout=30)
    a.tick()
    b = worker(state, clock, "host:2:b", timeout=30)
    clock.now += 29  # A stops beating (it died); its leases still run
    b.tick()
    assert b.held() == {}
    clock.now += 2  # now they ran out, and A counts as dead: B takes all ten
    with caplog.at_level(logging.INFO, logger="meetplugin.bridge"):
        b.tick()
    assert sorted(b.held()) == ACCOUNTS and set(b.held().values()) == {2}
    assert "taken over from worker host:1:a whose lease ran out 1.0 s ago" in caplog.text
    # Were A only paused, it may not write any more: the fence says so.
    with pytest.raises(LeaseLost):
        a.check("a00")
    assert not a.holds("a00")
    assert b.check("a00") == 2


def test_the_fence_wants_a_margin_and_renewal_keeps_it(state):
    clock = Clock()
    a = worker(state, clock, "host:1:a", timeout=30)
    a.tick()
    assert a.check("a03") == 1
    clock.now += 20  # 10 s left: less than a quarter of 30 is 7.5, so still fine
    assert a.check("a03") == 1
    a.tick()  # renewed: 30 s left again
    clock.now += 22
    assert a.check("a03") == 1
    clock.now += 1  # 7 s left: too little to start a write
    with pytest.raises(LeaseLost):
        a.check("a03")
    # It gave the lease back: another worker may take it at once, not only when it runs out.
    b = worker(state, clock, "host:2:b", timeout=30)
    b.tick()
    assert "a03" in b.held()


def test_an_account_at_work_or_with_calls_under_way_is_not_given_back(state):
    clock = Clock()
    a = worker(state, clock, "host:1:a")
    a.tick()
    keep = {"a09"}
    a.keep = lambda account: account in keep
    assert a.begin("a08") == 1
    b = worker(state, clock, "host:2:b")
    b.tick()
    a.tick()
    assert {"a08", "a09"} <= set(a.held())
    a.end("a08")
    keep.clear()
    assert a.begin("zz") == 0  # not configured, not held


def test_a_clean_stop_releases_everything_at_once(state):
    clock = Clock()
    a = worker(state, clock, "host:1:a")
    a.tick()
    a.stop()
    assert all(w == "" for w, _g, _e in state.leases().values())
    assert state.live_workers(0) == []
    b = worker(state, clock, "host:2:b")
    b.tick()  # no waiting for a timeout
    assert sorted(b.held()) == ACCOUNTS


def test_the_instance_id_is_the_first_workers(state):
    assert state.shared_value("instance", "first") == "first"
    assert state.shared_value("instance", "second") == "first"


# --- several processes on one state file --------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from bridge.leases import LeaseLost, Leases
    from bridge.state import BridgeState

    path, out, accounts, until = sys.argv[2], sys.argv[3], sys.argv[4].split(","), float(sys.argv[5])
    state = BridgeState(path)
    leases = Leases(state, accounts, 1.5)
    leases.start()
    with open(out, "a") as log:
        print(json.dumps({"worker": leases.worker, "ready": time.time()}), file=log, flush=True)
        while time.time() < until:
            did = False
            for account in accounts:
                generation = leases.begin(account)
                if not generation:
                    continue
                did = True
                began = time.time()
                try:
                    for _ in range(3):  # "writes", each behind the fence
                        leases.check(account)
                        time.sleep(0.01)  # the work itself: a stand-in for HTTP requests
                    ended = time.time()
                    print(json.dumps({"account": account, "worker": leases.worker,
                                      "generation": generation, "began": began,
                                      "ended": ended}), file=log, flush=True)
                except LeaseLost:
                    pass
                finally:
                    leases.end(account)
            if not did:
                time.sleep(0.02)
    leases.stop()
    state.close()
    """
)


def test_processes_on_one_state_never_work_on_one_account_at_once(tmp_path, state_url):
    """Three processes lease 12 accounts; one is SIGKILLed; its accounts move within the
    timeout; no two processes' work intervals on one account overlap."""
    path = state_url or str(tmp_path / "bridge.sqlite")
    BridgeState(path).close()
    accounts = [f"acc{i}" for i in range(12)]
    until = time.time() + 9
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    outs = [tmp_path / f"w{i}.jsonl" for i in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(ROOT), path, str(out), ",".join(accounts), str(until)]
        )
        for out in outs
    ]

    def records(out: Path) -> list[dict]:
        if not out.exists():
            return []
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]

    # Await work by every process (a condition, polled), then kill one mid-work.
    deadline = time.time() + 6
    while time.time() < deadline and not all(any("account" in r for r in records(o)) for o in outs):
        time.sleep(0.05)
    victim = procs[1]
    victim_accounts = {r["account"] for r in records(outs[1]) if "account" in r}
    assert victim_accounts, "the victim never worked"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = time.time()
    for p in (procs[0], procs[2]):
        assert p.wait(timeout=30) == 0
    intervals = [r for o in outs for r in records(o) if "account" in r]
    by_account: dict[str, list[dict]] = {}
    for r in intervals:
        by_account.setdefault(r["account"], []).append(r)
    assert sorted(by_account) == sorted(accounts)
    for account, rows in by_account.items():
        rows.sort(key=lambda r: r["began"])
        for x, y in zip(rows, rows[1:], strict=False):
            if x["worker"] != y["worker"]:
                assert y["began"] >= x["ended"], (account, x, y)
                assert y["generation"] > x["generation"], (account, x, y)
    victim_name = records(outs[1])[0]["worker"]
    # What the victim held at its death went to the others within the timeout (+ a beat).
    last_held = {
        r["account"] for r in intervals if r["worker"] == victim_name and r["ended"] > killed_at - 2
    }
    for account in last_held:
        later = [
            r["began"]
            for r in by_account[account]
            if r["worker"] != victim_name and r["began"] > killed_at - 2
        ]
        assert later, f"{account} was never taken over"
        assert min(later) - killed_at < 1.5 + 0.5 + 1.0, (account, min(later) - killed_at)
