"""Keywords as people write them, through a real Radicale: the request is taken with its
place kept, and a LOCATION that names a service without asking for it is explained in the log."""

from __future__ import annotations

import uuid

import icalendar
import pytest
from harness import event


def stored(radicale, path: str) -> icalendar.Event:
    return icalendar.Calendar.from_ical(radicale.get("alice", path).text).walk("VEVENT")[0]


@pytest.mark.parametrize(
    "location,kept",
    [("«Я.Телемост»", ""), ("Переговорная 5 телемост!", "Переговорная 5; ")],
    ids=["button-name", "place-then-service"],
)
def test_a_service_named_as_people_write_it_gets_its_conference(radicale, telemost, location, kept):
    uid = f"{uuid.uuid4()}@kw"
    path = f"alice/calendar/{uid}.ics"
    assert radicale.put("alice", path, event(uid, location=location)).status_code == 201
    ev = stored(radicale, path)
    join_url = telemost.conferences[str(ev["X-MEETPLUGIN-CONFERENCE-ID"])]["join_url"]
    assert str(ev["LOCATION"]) == f"{kept}{join_url}"
    assert len(telemost.calls_of("POST")) == 1


def test_a_named_service_that_is_not_asked_for_is_explained_in_the_log(radicale, telemost):
    uid = f"{uuid.uuid4()}@kw"
    path = f"alice/calendar/{uid}.ics"
    mark = radicale.mark()
    text = event(uid, location="Обсудим телемост с командой")
    r = radicale.put("alice", path, text)
    assert r.status_code == 201 and "ETag" in r.headers  # stored as sent
    radicale.wait_for_log(rf"{uid}: no conference: ", start=mark)
    [line] = [x for x in radicale.log_lines[mark:] if f"{uid}: no conference" in x]
    assert "«телемост» stands inside the text of LOCATION" in line
    assert "[INFO]" in line, line
    assert telemost.calls == []
