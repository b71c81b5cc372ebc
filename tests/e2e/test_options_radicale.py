"""Provider options per event through a real Radicale: chosen, changed, explained."""

from __future__ import annotations

import uuid

import icalendar
from harness import event

CAL = "alice/calendar"


def read(radicale, path):
    return icalendar.Calendar.from_ical(radicale.get("alice", path).text).walk("VEVENT")[0]


def test_waiting_room_chosen_in_location_and_changed_later(radicale, telemost):
    uid = f"{uuid.uuid4()}@opt"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, event(uid, location="телемост:все"))
    (post,) = telemost.calls_of("POST")
    assert post.body["waiting_room_level"] == "ADMINS"
    ev = read(radicale, path)
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert str(ev["X-MEETPLUGIN-OPTIONS"]) == "waiting_room=ADMINS"
    # Re-uploads and moves keep the choice and make no call.
    text = radicale.get("alice", path).text
    radicale.put("alice", path, text)
    radicale.put("alice", path, text.replace("T100000", "T150000").replace("T110000", "T160000"))
    assert telemost.calls_of("PATCH") == [] and len(telemost.calls_of("POST")) == 1
    # The person types a new choice in place of the link: the same room, waiting room off.
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    cal.walk("VEVENT")[0]["LOCATION"] = icalendar.vText("telemost:off")
    mark = radicale.mark()
    radicale.put("alice", path, cal.to_ical().decode())
    radicale.wait_for_log(f"{uid}: telemost update done", start=mark)
    (patch,) = telemost.calls_of("PATCH")
    assert patch.body == {"waiting_room_level": "PUBLIC"}
    conf_id = str(read(radicale, path)["X-MEETPLUGIN-CONFERENCE-ID"])
    assert telemost.conferences[conf_id]["waiting_room_level"] == "PUBLIC"
    assert len(telemost.calls_of("POST")) == 1
    assert str(read(radicale, path)["X-MEETPLUGIN-OPTIONS"]) == "waiting_room=PUBLIC"


def test_cohosts_are_the_organisations_attendees(radicale, telemost):
    uid = f"{uuid.uuid4()}@opt"
    people = "\n".join(
        [
            "ORGANIZER:mailto:alice@example.com",
            "ATTENDEE:mailto:alice@example.com",
            "ATTENDEE:mailto:bob@example.com",
            "ATTENDEE;CN=Клиент:mailto:client@customer.org",
            "ATTENDEE:mailto:Carol@Example.com",
        ]
    )
    radicale.put(
        "alice", f"{CAL}/{uid}.ics", event(uid, location="телемост:соорганизаторы", extra=people)
    )
    (post,) = telemost.calls_of("POST")
    assert post.body["cohosts"] == [{"email": "bob@example.com"}, {"email": "carol@example.com"}]
    assert post.body["waiting_room_level"] == "ORGANIZATION"


def test_an_unknown_option_is_explained(radicale, telemost):
    uid = f"{uuid.uuid4()}@opt"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, event(uid, location="telemost:громко"))
    assert telemost.calls_of("POST") == []
    assert "параметр «громко» не подходит для сервиса Яндекс Телемост" in str(
        read(radicale, path)["DESCRIPTION"]
    )
