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


def retype(radicale, path: str, location: str) -> None:
    """The person replaces the link in Location by the keyword with new options."""
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    cal.walk("VEVENT")[0]["LOCATION"] = icalendar.vText(location)
    assert radicale.put("alice", path, cal.to_ical().decode()).status_code in (201, 204)


FAILED_CHANGE = "Параметры встречи не изменены: Яндекс Телемост отклонил запрос (код 403"


def test_a_failed_option_change_is_explained_in_the_event_and_the_link_stays(radicale, telemost):
    """Issue 12, item 11: Telemost refuses the PATCH; the event says so, keeps its link."""
    uid = f"{uuid.uuid4()}@opt"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, event(uid, location="телемост:все"))
    link = str(read(radicale, path)["LOCATION"])
    telemost.fail_next("PATCH", 403, {"error": "Forbidden", "description": "no"})
    mark = radicale.mark()
    retype(radicale, path, "telemost:off")
    radicale.wait_for_log(f"{uid}: telemost update done", start=mark)
    ev = read(radicale, path)
    assert str(ev["LOCATION"]) == link  # the conference and its link stay
    description = str(ev["DESCRIPTION"])
    assert f"Встреча пройдёт по ссылке: {link}" in description
    assert FAILED_CHANGE in description and "Ссылка прежняя." in description
    # Re-uploading that version is not a retry: no second call, the words stay once.
    radicale.put("alice", path, radicale.get("alice", path).text)
    assert len(telemost.calls_of("PATCH")) == 1
    assert str(read(radicale, path)["DESCRIPTION"]).count("Параметры встречи не изменены") == 1
    # The person asks again and Telemost takes it: the explanation goes.
    mark = radicale.mark()
    retype(radicale, path, "telemost:off")
    radicale.wait_for_log(f"{uid}: telemost update done", start=mark)
    ev = read(radicale, path)
    assert "Параметры встречи не изменены" not in str(ev["DESCRIPTION"])
    assert str(ev["LOCATION"]) == link
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    assert telemost.conferences[conf_id]["waiting_room_level"] == "PUBLIC"


def test_a_failed_cohosts_change_is_explained_in_the_event(radicale, telemost):
    uid = f"{uuid.uuid4()}@opt"
    path = f"{CAL}/{uid}.ics"
    people = "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:bob@example.com"
    radicale.put("alice", path, event(uid, location="телемост", extra=people))
    link = str(read(radicale, path)["LOCATION"])
    telemost.fail_next("PUT", 403, {"error": "Forbidden", "description": "no"})
    mark = radicale.mark()
    retype(radicale, path, "телемост:соорганизаторы")
    radicale.wait_for_log(f"{uid}: telemost update done", start=mark)
    ev = read(radicale, path)
    assert [c.path.endswith("/cohosts") for c in telemost.calls_of("PUT")] == [True]
    assert str(ev["LOCATION"]) == link
    assert FAILED_CHANGE in str(ev["DESCRIPTION"])
