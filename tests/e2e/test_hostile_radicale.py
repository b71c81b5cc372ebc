"""Hostile and huge input through a real Radicale: no crash, no 500, nothing lost."""

from __future__ import annotations

import uuid

import icalendar
import pytest
from harness import TOKEN, escape, event

CAL = "alice/calendar"


@pytest.mark.parametrize(
    "location",
    [
        "telemost\\nX-INJECTED:1",  # an escaped newline inside the value
        "telemost\\r\\nEND:VEVENT",
        "jitsi\u0000\u001b[31m",
        "Переговорная\u202e 5; jitsi",
    ],
)
def test_injection_through_the_keyword_stays_text(radicale, location):
    uid = f"{uuid.uuid4()}@inj"
    r = radicale.put("alice", f"{CAL}/{uid}.ics", event(uid, location=location))
    assert r.status_code in (201, 400)
    if r.status_code == 201:
        got = radicale.get("alice", f"{CAL}/{uid}.ics")
        cal = icalendar.Calendar.from_ical(got.text)
        assert len(cal.walk("VEVENT")) == 1
        assert "X-INJECTED" not in [p for c in cal.walk("VEVENT") for p in c]


def test_non_utf8_body_is_handled_as_radicale_does(radicale):
    """Radicale decodes a non-UTF-8 body as ISO-8859-1; the plugin still works on it."""
    uid = f"{uuid.uuid4()}@bin"
    body = event(uid, location="jitsi").encode().replace(b"SUMMARY:", b"SUMMARY:\xff\xfe\xfa")
    r = radicale.session("alice").put(
        f"{radicale.url}/{CAL}/{uid}.ics", data=body, headers={"Content-Type": "text/calendar"}
    )
    assert r.status_code == 201
    ev = icalendar.Calendar.from_ical(radicale.get("alice", f"{CAL}/{uid}.ics").text).walk(
        "VEVENT"
    )[0]
    assert str(ev["LOCATION"]).startswith("https://meet.jit.si/")
    assert str(ev["SUMMARY"]).startswith("ÿþú")


def test_huge_event_through_radicale(radicale, telemost):
    uid = f"{uuid.uuid4()}@huge"
    attendees = "\n".join(f"ATTENDEE:mailto:user{i}@example.com" for i in range(3000))
    r = radicale.put(
        "alice",
        f"{CAL}/{uid}.ics",
        event(uid, location="telemost", description=escape("Текст " * 50000), extra=attendees),
    )
    assert r.status_code == 201
    ev = icalendar.Calendar.from_ical(radicale.get("alice", f"{CAL}/{uid}.ics").text).walk(
        "VEVENT"
    )[0]
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert str(ev["DESCRIPTION"]).startswith("Текст Текст")
    assert len(ev["ATTENDEE"]) == 3000
    assert TOKEN not in radicale.log
