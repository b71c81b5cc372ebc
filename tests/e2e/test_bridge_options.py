"""A failed option change through the bridge (Xandikos, the Telemost emulator): the event
says so, keeps its link, and the bridge's re-judging of its own write calls nobody again."""

from __future__ import annotations

import uuid

import icalendar
from bridge_support import Dav, bridge_config
from harness import TOKEN, event, plugin_config

from bridge import config as bridge_config_module
from bridge.runner import Bridge


def test_a_failed_option_change_is_explained_once(xandikos, telemost, tmp_path, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    cal = dav.mkcalendar()
    uid = f"{uuid.uuid4()}@opt"
    path = f"{cal}{uid}.ics"
    assert dav.put(path, event(uid, location="телемост:все")).status_code == 201
    config = bridge_config(tmp_path, dav, plugin_config(telemost.url), cal)
    bridge = Bridge(bridge_config_module.load(str(config)))
    try:
        bridge.cycle()
        text, etag = dav.get(path)
        link = str(icalendar.Calendar.from_ical(text).walk("VEVENT")[0]["LOCATION"])
        parsed = icalendar.Calendar.from_ical(text)
        parsed.walk("VEVENT")[0]["LOCATION"] = icalendar.vText("telemost:off")
        telemost.fail_next("PATCH", 403, {"error": "Forbidden", "description": "no"})
        assert dav.put(path, parsed.to_ical().decode(), etag).status_code in (201, 204)
        for _ in range(4):
            bridge.cycle()
        idle = bridge.cycle()
    finally:
        bridge.close()
    ev = icalendar.Calendar.from_ical(dav.get(path)[0]).walk("VEVENT")[0]
    assert str(ev["LOCATION"]) == link
    assert "Параметры встречи не изменены" in str(ev["DESCRIPTION"])
    assert len(telemost.calls_of("PATCH")) == 1  # no retry loop on the bridge's own write
    assert (idle.read, idle.written, idle.jobs) == (0, 0, 0)
