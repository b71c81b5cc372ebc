"""Three shared bridge workers, one SIGKILLed mid-cycle: every account goes on, none twice.

The workers are separate `meetplugin-bridge` processes with one config (``workers =
shared``) and one state, over 24 accounts: 12 Radicale users and 12 Xandikos
calendars, each server behind a proxy that notes who sent which request when (the
User-Agent names the worker). One worker is killed while the proxy holds its PUT,
the held PUT then reaches the server after its death (the worst case of a write in
flight). Checked: every marked event has exactly one conference — the link the record
holds, one Telemost room per Telemost event, one decision to create per event —, no
account was worked on by two workers at once (their logs' intervals, and the servers'
requests), and the dead worker's accounts were taken over within the lease timeout.
On both state engines: one sqlite state folder, and one PostgreSQL database.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path

import icalendar
import pytest
from bridge_support import BridgeProcess, Dav, TapProxy
from harness import TOKEN, RadicaleServer, event, plugin_config

from bridge.state import BridgeState
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.state.records import RecordStore

USERS = [f"u{i:02d}" for i in range(12)]  # Radicale accounts
CALS = [f"x{i:02d}" for i in range(12)]  # Xandikos accounts (one calendar each)
LEASE = 6.0  # the workers' lease_timeout
WORKERS = 3
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (.*)$")


@pytest.fixture(scope="module")
def many_radicale(tmp_path_factory):
    """A plain Radicale (no plugin: the bridge is the plugin here) with 12 users."""
    folder = tmp_path_factory.mktemp("many-radicale")
    server = RadicaleServer(folder, plugin=False)
    (folder / "users").write_text("".join(f"{u}:pw-{u}\n" for u in USERS))
    server.start()
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll a condition on the servers or logs (each check is a cheap read)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.2)


def at(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def lines(process: BridgeProcess) -> list[tuple[float, str, str]]:
    out = []
    for line in list(process.lines):
        m = LINE.match(line.rstrip("\n"))
        if m:
            out.append((at(m.group(1)), m.group(2), m.group(3)))
    return out


def test_three_workers_one_killed_mid_cycle(
    tmp_path: Path, many_radicale, xandikos, telemost, monkeypatch, state_url
):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    rproxy = TapProxy(many_radicale.url).start()
    xproxy = TapProxy(xandikos.url).start()
    xdav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    rdavs = {u: Dav(u, many_radicale.url, f"/{u}/", u, f"pw-{u}") for u in USERS}
    for u in USERS:  # Radicale makes a user's calendar on their first request
        r = rdavs[u].http.request("PROPFIND", f"{many_radicale.url}/{u}/", headers={"Depth": "0"})
        assert r.status_code == 207, r.status_code
    xcals = {c: xdav.mkcalendar() for c in CALS}
    # Where each account's events go: (dav, calendar path, owner, calendar key).
    places = {u: (rdavs[u], f"/{u}/calendar/", u) for u in USERS}
    places.update({c: (xdav, xcals[c], c) for c in CALS})
    marked: dict[str, tuple[str, str, str]] = {}  # uid -> (account, path, provider)
    plain: dict[str, tuple[str, str, str]] = {}  # uid -> (account, path, etag)

    def add_events(account: str, n_plain: int, providers: tuple[str, ...]) -> None:
        dav, cal, _owner = places[account]
        for provider in providers:
            uid = f"{uuid.uuid4()}@failover"
            r = dav.put(f"{cal}{uid}.ics", event(uid, location=provider))
            assert r.status_code in (201, 204), r.status_code
            marked[uid] = (account, f"{cal}{uid}.ics", provider)
        for _ in range(n_plain):
            uid = f"{uuid.uuid4()}@failover"
            r = dav.put(f"{cal}{uid}.ics", event(uid, location="Room 5"))
            assert r.status_code in (201, 204), r.status_code
            plain[uid] = (account, f"{cal}{uid}.ics", "")

    for account in places:
        add_events(account, 4, ("telemost", "jitsi"))

    # One config for all three workers, one state folder.
    folder = tmp_path / "bridge"
    folder.mkdir()
    (folder / "meetplugin.conf").write_text(plugin_config(telemost.url))
    conf = [
        "[bridge]",
        "meetplugin_config = meetplugin.conf",
        "state_dir = state",
        "interval = 1",
        "http_timeout = 10",
        "workers = shared",
        f"lease_timeout = {LEASE:g}",
        f"state_url = {state_url}",
        "",
    ]
    for u in USERS:
        (folder / f"pw-{u}").write_text(f"pw-{u}")
        (folder / f"pw-{u}").chmod(0o600)
        conf += [
            f"[account:{u}]",
            f"url = {rproxy.url}/",
            f"username = {u}",
            f"password_file = pw-{u}",
            "",
        ]
    for c in CALS:
        # Each its own URL: the lock on this host is per URL and login.
        conf += [f"[account:{c}]", f"url = {xproxy.url}{xcals[c]}", f"owner = {c}"]
        conf += [f"calendars = {xcals[c]}", ""]
    (folder / "bridge.conf").write_text("\n".join(conf))
    env = {"TELEMOST_TOKEN": TOKEN, "MEETPLUGIN_BRIDGE_LOCK_DIR": str(tmp_path)}
    workers = [BridgeProcess(folder / "bridge.conf", "--verbose", env=env) for _ in range(WORKERS)]
    try:
        names = [
            w.wait_for(r"bridge: worker (\S+); workers = shared", timeout=60).group(1)
            for w in workers
        ]
        for w in workers:  # the fair share settles: 24 / 3 each
            w.wait_for(r"holds 8 of 24 account\(s\); 3 live worker\(s\)", timeout=60)

        def linked(uid: str) -> bool:
            account, path, _provider = marked[uid]
            text, _etag = places[account][0].get(path)
            return "https://" in str(
                icalendar.Calendar.from_ical(text).walk("VEVENT")[0].get("LOCATION", "")
            )

        wait_until(lambda: all(linked(u) for u in list(marked)), 120, "the initial scan")

        # The victim's accounts, as the shared state says.
        state = BridgeState(state_url or str(folder / "state" / "bridge.sqlite"))
        victim, victim_name = workers[1], names[1]
        victim_accounts = {a for a, (w, _g, _e) in state.leases().items() if w == victim_name}
        state.close()
        assert len(victim_accounts) == 8

        # Phase 2: a new marked event in every account; the victim's first PUT is held.
        gate_r = rproxy.hold(lambda m, p, ua: m == "PUT" and victim_name in ua)
        gate_x = xproxy.hold(lambda m, p, ua: m == "PUT" and victim_name in ua)
        for i, account in enumerate(sorted(places)):
            add_events(account, 0, ("telemost" if i % 2 else "jitsi",))
        wait_until(lambda: gate_r.arrived.is_set() or gate_x.arrived.is_set(), 60, "a held PUT")
        victim.process.kill()  # SIGKILL, mid-cycle: its PUT is in flight
        victim.process.wait()
        killed_at = time.time()
        for gate in (gate_r, gate_x):
            gate.release.set()  # what was held reaches the server after the death
        held = gate_r.request or gate_x.request
        assert held is not None

        # The survivors take the victim's accounts over and finish the work.
        def taken_over() -> set[str]:
            found = set()
            for w in (workers[0], workers[2]):
                for _t, _lvl, msg in lines(w):
                    m = re.match(r"bridge: (\S+): lease taken .*from worker (\S+) ", msg)
                    if m and m.group(2) == victim_name:
                        found.add(m.group(1))
            return found

        wait_until(lambda: taken_over() >= victim_accounts, LEASE + 30, "the take-over")
        wait_until(lambda: all(linked(u) for u in list(marked)), 120, "phase 2")
        for w in (workers[0], workers[2]):
            w.process.terminate()
            assert w.wait(60) == 0, w.log[-3000:]
            assert re.search(r"released \d+ lease\(s\)", w.log), w.log[-2000:]
    finally:
        for w in workers:
            w.stop()
        rproxy.stop()
        xproxy.stop()

    logs = {names[i]: lines(w) for i, w in enumerate(workers)}
    for name, entries in logs.items():
        assert not [m for _t, _l, m in entries if "Traceback" in m], name
        assert not [m for _t, lvl, m in entries if lvl == "ERROR"], name

    # 1. Every marked event has exactly one conference: the record's.
    store = RecordStore(state_url or str(folder / "state" / "records.sqlite"), read_only=True)
    try:
        rooms = []
        for uid, (account, path, provider) in marked.items():
            dav, cal, owner = places[account]
            text, _etag = dav.get(path)
            [ev] = icalendar.Calendar.from_ical(text).walk("VEVENT")
            location = str(ev.get("LOCATION", ""))
            links = re.findall(r"https://\S+", location)
            record = store.get(EventKey(owner, cal.strip("/"), uid))
            assert record is not None and record.conference is not None, uid
            assert record.provider == provider
            assert links == [record.conference.join_url], (uid, location)
            if provider == "telemost":
                rooms.append(record.conference.conference_id)
            else:
                assert location.startswith("https://meet.jit.si/")
        assert store.suspects() == []  # no create whose outcome was unknown
    finally:
        store.db.close()
    creates = [c for c in telemost.calls_of("POST") if c.status == 201]
    assert len(creates) == len(rooms) == len(set(rooms))
    assert set(rooms) <= set(telemost.conferences)
    decisions = defaultdict(int)
    for entries in logs.values():
        for _t, _l, msg in entries:
            m = re.match(r"meetplugin: \S+/([^/\s]+): create \(", msg)
            if m:
                decisions[m.group(1)] += 1
    assert {u: decisions[u] for u in marked} == dict.fromkeys(marked, 1)
    for account, path, _e in plain.values():  # never written
        text, _etag = places[account][0].get(path)
        assert "X-MEETPLUGIN" not in text and "Room 5" in text

    # 2. No account was worked on by two workers at once: the workers' own intervals ...
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for name, entries in logs.items():
        open_: dict[str, float] = {}
        for t, _l, msg in entries:
            m = re.match(r"bridge: (\S+): (begin|end)( settle)?\b", msg)
            if not m:
                continue
            account, what = m.group(1), m.group(2)
            if what == "begin":
                assert account not in open_, (name, account)
                open_[account] = t
            elif account in open_:
                spans[account].append((open_.pop(account), t, name))
        for account, began in open_.items():
            assert name == victim_name, (name, account)  # only the dead one left work open
            spans[account].append((began, killed_at, name))
    assert set(spans) == set(places)
    for account, rows in spans.items():
        rows.sort()
        for (b1, e1, w1), (b2, e2, w2) in zip(rows, rows[1:], strict=False):
            if w1 != w2:
                assert b2 >= e1, (account, (b1, e1, w1), (b2, e2, w2))

    # ... and the servers' view: requests of two workers for one account never in flight
    # together (the held PUT counts from its arrival to its answer, after the death).
    def account_of(path: str, login: str) -> str:
        if login:
            return login
        for c, cal in xcals.items():
            if path.startswith(cal):
                return c
        return ""

    requests_by: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for proxy in (rproxy, xproxy):
        for began, ended, _method, path, _status, agent, login in proxy.log:
            m = re.search(r"worker/(\S+)", agent)
            account = account_of(path, login)
            if m and account:
                requests_by[account].append((began, ended, m.group(1)))
    assert set(requests_by) == set(places)
    for account, rows in requests_by.items():
        rows.sort()
        latest: dict[str, float] = {}
        for began, ended, worker in rows:
            for other, other_end in latest.items():
                if other != worker:
                    assert began >= other_end, (account, worker, other)
            latest[worker] = max(latest.get(worker, 0.0), ended)

    # 3. The victim was mid-cycle and its accounts went to the others within the timeout
    # (its lease ran out at most LEASE after its death; a survivor's heartbeat comes
    # every LEASE / 3; 3 s for this shared machine).
    victim_spans = [s for rows in spans.values() for s in rows if s[2] == victim_name]
    assert any(e == killed_at for _b, e, _w in victim_spans)
    for account in victim_accounts:
        after = [b for b, _e, w in spans[account] if w != victim_name and b > killed_at]
        assert after, account
        taken = [
            t
            for name in (names[0], names[2])
            for t, _l, msg in logs[name]
            if re.match(
                rf"bridge: {account}: lease taken .*from worker {re.escape(victim_name)}", msg
            )
        ]
        assert taken and taken[0] - killed_at <= LEASE + LEASE / 3 + 3, (account, taken)
