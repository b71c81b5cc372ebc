"""Zoom, Teams and Talk through the CalDAV bridge against a real Xandikos (in-process cycles)."""

from __future__ import annotations

import time
import uuid

import icalendar
import pytest
from bridge_support import Dav, bridge_config
from harness import TOKEN, event, plugin_config

from bridge import config as bridge_config_module
from bridge.caldav_client import CalDAVClient
from bridge.runner import Bridge

SECRETS = {
    "TELEMOST_TOKEN": TOKEN,
    "ZOOM_CLIENT_SECRET": "zoom-secret-321",
    "TEAMS_CLIENT_SECRET": "teams-secret-654",
    "TALK_APP_PASSWORD": "talk-app-pass-1",
}
KEYWORDS = {"zoom": "zoom", "teams": "teams", "talk": "nextcloud"}
FAULTS = {  # a temporary refusal in each provider's own words
    "zoom": {"code": 503, "message": "Service unavailable."},
    "teams": {"error": {"code": "serviceNotAvailable", "message": "m", "innerError": {}}},
    "talk": {"ocs": {"meta": {"status": "failure", "statuscode": 503}, "data": []}},
}


def sections(zoom, teams, talk) -> str:
    return f"""
[provider:zoom]
account_id = acc-123
client_id = zoom-client
api_url = {zoom.api_url}
token_url = {zoom.token_url}
[provider:teams]
tenant_id = contoso-tenant
client_id = teams-app
graph_url = {teams.api_url}
token_url = {teams.token_url}
[provider:talk]
server_url = https://cloud.example.ru
api_url = {talk.api_url}
user = meetbot
"""


def items(name: str, emu) -> dict:
    return emu.rooms if name == "talk" else emu.meetings


def cycle_until(bridge: Bridge, done, seconds: float = 20) -> None:
    """Cycles (with the outbox's due retries) until `done()`: a retry waits out its backoff."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the bridge did not get there"
        bridge.run_once()


@pytest.mark.parametrize("name", ["zoom", "teams", "talk"])
def test_bridge_lifecycle_with_a_fault(request, tmp_path, monkeypatch, xandikos, telemost, name):
    zoom, teams, talk = (request.getfixturevalue(n) for n in ("zoom", "teams", "talk"))
    emu = {"zoom": zoom, "teams": teams, "talk": talk}[name]
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    cal = dav.mkcalendar()
    conf = plugin_config(telemost.url, retry_initial="0.1", retry_max_delay="0.3")
    path = bridge_config(tmp_path / "bridge", dav, conf + sections(zoom, teams, talk), cal)
    bridge = Bridge(bridge_config_module.load(str(path)), CalDAVClient)
    try:
        uid = f"{uuid.uuid4()}@bridge"
        href = f"{cal}{uid}.ics"
        organized = "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:ivan@example.com"
        before = set(items(name, emu))
        emu.fail_next("POST", 503, FAULTS[name], headers={"Retry-After": "0"})
        assert (
            dav.put(href, event(uid, location=KEYWORDS[name], extra=organized)).status_code == 201
        )

        def linked() -> bool:
            return "X-MEETPLUGIN-CONFERENCE-ID" in dav.get(href)[0]

        cycle_until(bridge, linked)
        made = set(items(name, emu)) - before
        assert len(made) == 1 and [c.status for c in emu.calls_of("POST")] == [503, 201]
        ev = icalendar.Calendar.from_ical(dav.get(href)[0]).walk("VEVENT")[0]
        conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
        assert made == {conf_id} and "X-MEETPLUGIN-PASTED" not in dav.get(href)[0]
        link = str(ev["LOCATION"])
        assert link.startswith(
            {
                "zoom": "https://zoom.us/j/",
                "teams": "https://teams.microsoft.com/l/meetup-join/",
                "talk": "https://cloud.example.ru/call/",
            }[name]
        )
        # Renamed by the person: one update call, the link unchanged.
        stored, etag = dav.get(href)
        dav.put(href, stored.replace("SUMMARY:Планёрка", "SUMMARY:Ретро", 1), etag)
        update = "PUT" if name == "talk" else "PATCH"
        cycle_until(bridge, lambda: bool(emu.calls_of(update)))
        for _ in range(3):
            bridge.cycle()
        assert len(emu.calls_of(update)) == 1
        title = {"zoom": "topic", "teams": "subject", "talk": "name"}[name]
        assert items(name, emu)[conf_id][title] == "Ретро"
        assert (
            str(icalendar.Calendar.from_ical(dav.get(href)[0]).walk("VEVENT")[0]["LOCATION"])
            == link
        )
        # Deleted by the person: the meeting goes too, once.
        dav.delete(href)
        cycle_until(bridge, lambda: conf_id not in items(name, emu))
        assert len(emu.calls_of("DELETE")) == 1
    finally:
        bridge.close()
