"""Copies of one event in several of the owner's calendars share its conference."""

from __future__ import annotations

import uuid

import icalendar
from harness import event

CAL = "alice/calendar"


def stored(radicale, path: str) -> str:
    r = radicale.session("alice").get(f"{radicale.url}/{path}")
    assert r.status_code == 200
    return r.text


def link_of(text: str) -> str:
    cal = icalendar.Calendar.from_ical(text)
    [ev] = [c for c in cal.walk("VEVENT")]
    return str(ev["LOCATION"])


def test_deleting_a_copy_keeps_the_conference_the_original_shows(radicale, telemost):
    """Thunderbird's "copy to calendar" PUTs the same UID, with our properties, elsewhere."""
    s = radicale.session("alice")
    assert s.request("MKCALENDAR", f"{radicale.url}/alice/copies/").status_code == 201
    uid = f"{uuid.uuid4()}@test"
    original = f"{CAL}/{uid}.ics"
    radicale.put("alice", original, event(uid, location="telemost"))
    shown = stored(radicale, original)
    link = link_of(shown)
    assert link.startswith("https://telemost.yandex.ru/j/")

    copy = f"alice/copies/{uid}.ics"
    assert radicale.put("alice", copy, shown).status_code in (200, 201)
    assert link_of(stored(radicale, copy)) == link
    assert len(telemost.calls_of("POST")) == 1  # the copy made no second room

    assert radicale.delete("alice", copy).status_code == 200
    assert telemost.calls_of("DELETE") == []  # the original still shows it
    assert link_of(stored(radicale, original)) == link

    assert radicale.delete("alice", original).status_code == 200
    assert len(telemost.calls_of("DELETE")) == 1  # the last copy took it along
