"""`meetplugin-bridge` as its own process: --once from cron, restart and resume from
the stored tokens, the daemon and SIGTERM, logs that say what it did and never
say the password."""

from __future__ import annotations

import re
import signal
import uuid

import icalendar
import pytest
from bridge_support import BridgeProcess, Dav, XandikosServer, bridge_config, run_once
from harness import TOKEN, RadicaleServer, event, plugin_config
from pg_support import PASSWORD

ENV = {"TELEMOST_TOKEN": TOKEN}
CYCLE = re.compile(
    r"bridge: cycle: (\d+) calendars, (\d+) changed; (\d+) read, (\d+) written, "
    r"(\d+) deleted, (\d+) own write-backs seen, (\d+) conflicts, (\d+) provider "
    r"jobs; (\d+) requests"
)


def cycle_of(process: BridgeProcess) -> dict:
    lines = [m for m in map(CYCLE.search, process.lines) if m]
    assert lines, process.log[-3000:]
    names = (
        "calendars",
        "changed",
        "read",
        "written",
        "deleted",
        "ours",
        "conflicts",
        "jobs",
        "requests",
    )
    return dict(zip(names, map(int, lines[-1].groups())))


@pytest.fixture
def xandikos(tmp_path):
    """A server of the test's own, not the module's: these bridges follow every calendar
    of the home, so another test's calendars would change what they count."""
    server = XandikosServer(tmp_path / "xandikos").start()
    yield server
    server.stop()


def location(dav: Dav, path: str) -> str:
    cal = icalendar.Calendar.from_ical(dav.get(path)[0])
    return str([c for c in cal.subcomponents if c.name == "VEVENT"][0].get("LOCATION", ""))


def test_once_from_cron_resumes_from_stored_tokens_without_repeating_work(
    tmp_path, xandikos, telemost, state_url
):
    """On either engine: sqlite files in the state folder, or the [bridge]'s state_url."""
    dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    conf = bridge_config(  # all calendars
        tmp_path / "bridge", dav, plugin_config(telemost.url), state_url=state_url
    )
    cal = "/alice/calendars/calendar/"
    # Events from before the bridge ever ran: the first run processes them once.
    marked, plain = f"{cal}{uuid.uuid4()}.ics", f"{cal}{uuid.uuid4()}.ics"
    dav.put(marked, event(marked.rsplit("/", 1)[1][:-4], location="telemost"))
    dav.put(plain, event(plain.rsplit("/", 1)[1][:-4], location="Room 5"))
    plain_etag = dav.get(plain)[1]
    first = run_once(conf, ENV)
    assert cycle_of(first)["read"] == 2
    assert "calendar home /alice/calendars/" in first.log
    assert location(dav, marked).startswith("https://telemost.yandex.ru/j/")
    assert dav.get(plain)[1] == plain_etag
    assert len(telemost.calls_of("POST")) == 1
    # A new process: it sees its own write-backs once, then nothing at all.
    second = run_once(conf, ENV)
    assert cycle_of(second)["read"] == 0 and cycle_of(second)["written"] == 0
    assert "calendar home" not in second.log  # the home came from the state, no discovery
    third = run_once(conf, ENV)
    assert cycle_of(third) == dict(
        calendars=1,
        changed=0,
        read=0,
        written=0,
        deleted=0,
        ours=0,
        conflicts=0,
        jobs=0,
        requests=1,
    )
    # A change made while no bridge ran is picked up by the next run, and only it.
    late = f"{cal}{uuid.uuid4()}.ics"
    dav.put(late, event(late.rsplit("/", 1)[1][:-4], location="jitsi"))
    fourth = run_once(conf, ENV)
    assert cycle_of(fourth)["read"] == 1 and cycle_of(fourth)["written"] == 1
    assert location(dav, late).startswith("https://meet.jit.si/")
    assert len(telemost.calls_of("POST")) == 1
    for process in (first, second, third, fourth):
        assert "Traceback" not in process.log
        assert PASSWORD not in process.log
    sqlite_files = {p.name for p in (tmp_path / "bridge" / "state").glob("*.sqlite")}
    assert sqlite_files == (set() if state_url else {"records.sqlite", "bridge.sqlite"})


def test_daemon_follows_changes_and_stops_cleanly_on_sigterm(tmp_path, xandikos, telemost):
    dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    cal = dav.mkcalendar()
    conf = bridge_config(tmp_path / "bridge", dav, plugin_config(telemost.url), cal)
    daemon = BridgeProcess(conf, "--interval", "0.1", "--verbose", env=ENV)
    try:
        daemon.wait_for(r"bridge: running, a cycle every 0.1 s")
        mark = daemon.mark()
        path = f"{cal}{uuid.uuid4()}.ics"
        dav.put(path, event(path.rsplit("/", 1)[1][:-4], location="telemost"))
        daemon.wait_for(r"telemost conference attached", start=mark)
        daemon.wait_for(r"1 own write-backs seen", start=mark)
        daemon.wait_for(r"0 changed; 0 read", start=daemon.mark())  # idle again
        assert location(dav, path).startswith("https://telemost.yandex.ru/j/")
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert "SIGTERM received" in daemon.log and "bridge: stopped" in daemon.log
        assert "Traceback" not in daemon.log
        assert len(telemost.calls_of("POST")) == 1
    finally:
        daemon.stop()


def test_a_second_bridge_on_the_same_state_does_nothing(tmp_path, xandikos, telemost, monkeypatch):
    from bridge import config
    from bridge.runner import Bridge

    dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    conf = bridge_config(tmp_path / "bridge", dav, plugin_config(telemost.url))
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    running = Bridge(config.load(str(conf)))  # holds the state folder
    try:
        second = run_once(conf, ENV)
        assert "another meetplugin-bridge is running" in second.log
        assert "cycle" not in second.log
    finally:
        running.close()
    assert "cycle:" in run_once(conf, ENV).log  # free again


def test_a_refused_login_is_logged_without_the_password(tmp_path, telemost):
    server = RadicaleServer(tmp_path / "radicale", plugin=False).start()
    try:
        server.ensure_user("alice")
        dav = Dav("radicale", server.url, "/alice/", "alice", "Wr0ng-S3cret-pw")
        conf = bridge_config(
            tmp_path / "bridge", dav, plugin_config(telemost.url), "/alice/calendar/"
        )
        process = BridgeProcess(conf, "--once", env=ENV)
        assert process.wait() == 1
        assert "refused the login" in process.log
        assert "Wr0ng-S3cret-pw" not in process.log
    finally:
        server.stop()


def test_config_errors_stop_it_with_a_message(tmp_path):
    path = tmp_path / "bridge.conf"
    path.write_text("[account:a]\nurl = https://cloud.example/\nusername = a\n")
    process = BridgeProcess(path, "--once")
    assert process.wait() == 2
    assert "[account:a] has a username but no password" in process.log
