"""Two bridge instances on one calendar: one writer per event, no flapping, adoption on request."""

from __future__ import annotations

import logging
import uuid

import icalendar
import pytest
from bridge_support import Dav, bridge_config
from harness import TOKEN, event, plugin_config

from bridge import config as bridge_config_module
from bridge.runner import Bridge, BridgeBusy


@pytest.fixture
def dav(xandikos) -> Dav:
    return Dav("xandikos", xandikos.url, "/alice/calendars/")


@pytest.fixture
def two(tmp_path, telemost, monkeypatch, dav):
    """Two bridge configs on the same account, each with its own state folder."""
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    monkeypatch.setenv("MEETPLUGIN_BRIDGE_LOCK_DIR", str(tmp_path))
    return [bridge_config(tmp_path / name, dav, plugin_config(telemost.url)) for name in ("a", "b")]


def run(path, adopt: bool = False) -> str:
    """One cron run of the bridge with this config; its instance id."""
    bridge = Bridge(bridge_config_module.load(str(path)), adopt=adopt)
    try:
        for _ in range(3):
            bridge.cycle()
        return bridge.instance
    finally:
        bridge.close()


def shown(dav: Dav, path: str) -> tuple[str, str]:
    text, _etag = dav.get(path)
    [ev] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return str(ev.get("LOCATION", "")), str(ev.get("X-MEETPLUGIN-BRIDGE", ""))


def test_two_bridges_run_alternately_do_not_flap(two, dav, caplog):
    cal = dav.mkcalendar()
    uid = f"{uuid.uuid4()}@test"
    path = f"{cal}{uid}.ics"
    assert dav.put(path, event(uid, location="jitsi")).status_code in (201, 204)
    a = run(two[0])
    link, mark = shown(dav, path)
    assert link.startswith("https://meet.jit.si/") and mark == a

    with caplog.at_level(logging.INFO, logger="meetplugin.bridge"):
        b = run(two[1])
    assert b != a
    assert shown(dav, path) == (link, a)  # left alone: the other instance's event
    assert any(
        uid in r.getMessage() and f"bridge instance {a}" in r.getMessage() for r in caplog.records
    )
    assert run(two[0]) == a and shown(dav, path) == (link, a)  # and A keeps it as it is

    # A bridge that lost its marks (a client dropped X- properties): still not taken.
    text, etag = dav.get(path)
    unmarked = "\r\n".join(
        line for line in text.splitlines() if not line.startswith("X-MEETPLUGIN-BRIDGE")
    )
    assert dav.put(path, unmarked + "\r\n", etag).status_code in (201, 204)
    run(two[1])
    assert shown(dav, path) == (link, "")

    # Adoption on request: B takes it over with the conference it shows; A leaves it then.
    assert run(two[1], adopt=True) == b
    assert shown(dav, path) == (link, b)
    run(two[0])
    assert shown(dav, path) == (link, b)


def test_two_bridge_processes_never_follow_one_account_at_once(two):
    first = Bridge(bridge_config_module.load(str(two[0])))
    try:
        with pytest.raises(BridgeBusy, match="account alice .* another meetplugin-bridge"):
            Bridge(bridge_config_module.load(str(two[1])))
    finally:
        first.close()
    Bridge(bridge_config_module.load(str(two[1]))).close()  # free again once it stopped
