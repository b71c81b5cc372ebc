"""Telemost webinars (seed 003) through a real Radicale: two links, a rename, a 402."""

from __future__ import annotations

import uuid

import icalendar
from harness import event

CAL = "alice/calendar"


def thunderbird_put(uid: str, location: str, summary: str = "Вебинар по охране труда") -> str:
    """An event as Thunderbird sends it: VTIMEZONE, X-MOZ properties, attendees with CN."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
            "VERSION:2.0",
            "BEGIN:VTIMEZONE",
            "TZID:Europe/Moscow",
            "BEGIN:STANDARD",
            "TZOFFSETFROM:+0300",
            "TZOFFSETTO:+0300",
            "TZNAME:MSK",
            "DTSTART:19700101T000000",
            "END:STANDARD",
            "END:VTIMEZONE",
            "BEGIN:VEVENT",
            "CREATED:20261120T090000Z",
            "LAST-MODIFIED:20261120T090000Z",
            "DTSTAMP:20261120T090000Z",
            f"UID:{uid}",
            f"SUMMARY:{summary}",
            "ORGANIZER;CN=Alice:mailto:alice@example.com",
            "ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.com",
            "ATTENDEE;CN=Слушатель;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE:",
            " mailto:student@customer.org",
            "DTSTART;TZID=Europe/Moscow:20261203T150000",
            "DTEND;TZID=Europe/Moscow:20261203T163000",
            f"LOCATION:{location}",
            "DESCRIPTION:Программа вебинара в приложении.",
            "TRANSP:OPAQUE",
            "X-MOZ-SEND-INVITATIONS:TRUE",
            "X-MOZ-SEND-INVITATIONS-UNDISCLOSED:FALSE",
            "SEQUENCE:0",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def stored(radicale, path):
    text = radicale.get("alice", path).text
    return text, icalendar.Calendar.from_ical(text).walk("VEVENT")[0]


def conferences(ev) -> dict[str, tuple[str, str]]:
    """CONFERENCE values -> (FEATURE, LABEL)."""
    values = ev.get("CONFERENCE")
    values = values if isinstance(values, list) else [values]
    return {
        str(v): (
            ",".join(v.params["FEATURE"])
            if isinstance(v.params["FEATURE"], list)
            else v.params["FEATURE"],
            v.params["LABEL"],
        )
        for v in values
    }


def test_a_webinar_shows_the_hosts_link_and_the_viewers_link(radicale, telemost):
    uid = f"{uuid.uuid4()}@webinar"
    path = f"{CAL}/{uid}.ics"
    assert radicale.put("alice", path, thunderbird_put(uid, "телемост:трансляция")).ok
    (post,) = telemost.calls_of("POST")
    assert post.body["live_stream"] == {
        "access_level": "PUBLIC",
        "title": "Вебинар по охране труда",
    }
    text, ev = stored(radicale, path)
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    join = telemost.conferences[conf_id]["join_url"]
    watch = telemost.conferences[conf_id]["live_stream"]["watch_url"]
    assert join != watch
    assert str(ev["LOCATION"]) == join
    description = str(ev["DESCRIPTION"])
    assert description.startswith("Программа вебинара в приложении.")
    assert f"Ведущие подключаются по ссылке: {join}" in description
    assert f"Трансляция для зрителей: {watch}" in description
    assert conferences(ev) == {
        join: ("AUDIO,VIDEO,MODERATOR", "Вебинар, вход для ведущих (Яндекс Телемост)"),
        watch: ("VIDEO", "Трансляция для зрителей (Яндекс Телемост)"),
    }
    assert str(ev["X-MEETPLUGIN-OPTIONS"]) == "stream=yes"
    # Idempotent: the server's own version sent back changes nothing and calls nobody.
    r = radicale.put("alice", path, text)
    assert r.ok
    assert stored(radicale, path)[0] == text
    assert len(telemost.calls) == 1


def test_a_rename_updates_the_stream_title_and_nothing_else(radicale, telemost):
    uid = f"{uuid.uuid4()}@webinar"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, thunderbird_put(uid, "telemost:stream"))
    text, ev = stored(radicale, path)
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    mark = radicale.mark()
    radicale.put("alice", path, text.replace("Вебинар по охране труда", "Вебинар: итоги года"))
    radicale.wait_for_log(f"{uid}: telemost update done", start=mark)
    (patch,) = telemost.calls_of("PATCH")
    assert patch.path.endswith(f"/conferences/{conf_id}")
    assert patch.body == {"live_stream": {"title": "Вебинар: итоги года"}}
    assert telemost.conferences[conf_id]["live_stream"]["title"] == "Вебинар: итоги года"
    # A move changes no title: no call.
    text = radicale.get("alice", path).text
    radicale.put("alice", path, text.replace("T150000", "T170000").replace("T163000", "T183000"))
    assert len(telemost.calls_of("PATCH")) == 1 and len(telemost.calls_of("POST")) == 1
    # Cancelling takes both links away and deletes the room.
    text = radicale.get("alice", path).text
    radicale.put("alice", path, text.replace("SEQUENCE:0", "SEQUENCE:1\r\nSTATUS:CANCELLED"))
    (delete,) = telemost.calls_of("DELETE")
    assert delete.path.endswith(f"/conferences/{conf_id}")
    text, ev = stored(radicale, path)
    assert "/live/" not in text and "/j/" not in text and "CONFERENCE" not in text


def test_a_program_asks_for_a_webinar_with_the_options_property(radicale, telemost):
    uid = f"{uuid.uuid4()}@webinar"
    path = f"{CAL}/{uid}.ics"
    radicale.put(
        "alice",
        path,
        event(uid, summary="", extra="X-TELEMOST-REQUIRED:TRUE\nX-MEETPLUGIN-OPTIONS:stream=yes"),
    )
    (post,) = telemost.calls_of("POST")
    assert post.body["live_stream"] == {"access_level": "PUBLIC", "title": "Вебинар"}
    _, ev = stored(radicale, path)
    assert "Трансляция для зрителей: https://" in str(ev["DESCRIPTION"])


def test_no_live_streams_on_the_plan_is_explained(radicale, telemost):
    telemost.live_streams = False
    rooms = len(telemost.conferences)
    uid = f"{uuid.uuid4()}@webinar"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, event(uid, location="телемост:вебинар"))
    (post,) = telemost.calls_of("POST")
    assert post.status == 402 and len(telemost.conferences) == rooms
    _, ev = stored(radicale, path)
    assert "нужен платный тариф" in str(ev["DESCRIPTION"])
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "error"
