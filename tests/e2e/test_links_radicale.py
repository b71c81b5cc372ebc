"""A pasted meeting link through a real Radicale: a CONFERENCE property and nothing else."""

from __future__ import annotations

import uuid

import icalendar
from harness import event


def test_pasted_link_in_radicale_gets_conference_and_nothing_else(radicale, telemost):
    uid = f"{uuid.uuid4()}@pasted"
    path = f"alice/calendar/{uid}.ics"
    url = "https://us02web.zoom.us/j/81234567890?pwd=abc"
    r = radicale.put(
        "alice", path, event(uid, location="Переговорная 5", description=f"Подключение: {url}")
    )
    assert r.status_code == 201 and "ETag" not in r.headers
    ev = icalendar.Calendar.from_ical(radicale.get("alice", path).text).walk("VEVENT")[0]
    assert str(ev["CONFERENCE"]) == url and ev["CONFERENCE"].params["LABEL"] == "Zoom"
    assert str(ev["LOCATION"]) == "Переговорная 5"
    assert "X-MEETPLUGIN-PROVIDER" not in ev and telemost.calls == []
    again = radicale.put("alice", path, radicale.get("alice", path).text)
    assert "ETag" in again.headers  # a fixed point
    assert radicale.delete("alice", path).status_code == 200
    assert telemost.calls == []  # nothing of ours to delete
