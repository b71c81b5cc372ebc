"""What an idle cron run of the bridge costs at the CalDAV server: one request per account,
credentials sent up front (Basic), counted by a proxy in front of a Radicale with logins."""

from __future__ import annotations

import pytest
from bridge_support import Dav, RewritingProxy, bridge_config
from harness import TOKEN, event, plugin_config

from bridge import config as bridge_config_module
from bridge.runner import Bridge


@pytest.fixture
def proxy(plain):
    running = RewritingProxy(plain.url).start()
    yield running
    running.stop()


def cron_run(path) -> None:
    """One `--once` run: a fresh process state (a new client), the same state folder."""
    bridge = Bridge(bridge_config_module.load(str(path)))
    try:
        bridge.run_once()
    finally:
        bridge.close()


@pytest.mark.parametrize("auth", ["auto", "basic"])
def test_an_idle_cron_run_costs_one_request(auth, proxy, tmp_path, telemost, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    dav = Dav("radicale", proxy.url, "/alice/", "alice", "alice")
    cal = dav.mkcalendar()
    assert dav.put(f"{cal}one.ics", event("one@test", location="онлайн")).status_code == 201
    path = bridge_config(tmp_path, dav, plugin_config(telemost.url), cal, auth=auth)
    cron_run(path)  # the first run: the event gets its link
    cron_run(path)  # recognises its own write
    proxy.seen.clear()
    cron_run(path)
    assert [(m, s) for m, _p, s, _c in proxy.seen] == [("PROPFIND", 207)]
    assert all(credentials for *_rest, credentials in proxy.seen)


def test_basic_up_front_from_the_first_request(proxy, tmp_path, telemost, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    dav = Dav("radicale", proxy.url, "/alice/", "alice", "alice")
    cal = dav.mkcalendar()
    path = bridge_config(tmp_path, dav, plugin_config(telemost.url), cal, auth="basic")
    proxy.seen.clear()
    cron_run(path)
    assert proxy.seen and all(s != 401 and c for _m, _p, s, c in proxy.seen)


def test_a_changed_password_is_still_a_clear_refusal(proxy, tmp_path, telemost, monkeypatch):
    """Basic remembered from an earlier run and now refused: the run reports the refusal."""
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    dav = Dav("radicale", proxy.url, "/alice/", "alice", "alice")
    cal = dav.mkcalendar()
    path = bridge_config(tmp_path, dav, plugin_config(telemost.url), cal)
    cron_run(path)
    (tmp_path / "password").write_text("wrong")
    bridge = Bridge(bridge_config_module.load(str(path)))
    try:
        proxy.seen.clear()
        report = bridge.run_once()
    finally:
        bridge.close()
    assert report.errors == 1
    assert [s for _m, _p, s, _c in proxy.seen] == [401]  # sent up front, refused, not retried
