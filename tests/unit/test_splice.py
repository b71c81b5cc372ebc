"""A rewrite put into Radicale's own text in place: the same event as a full re-serialisation."""

from __future__ import annotations

import pytest
import radicale.item as radicale_item
from harness import event
from test_detect import GRAMMAR

from radicale_meetplugin.core import ical, links, rewrite
from radicale_meetplugin.core.model import Conference
from radicale_meetplugin.radicale.splice import splice

CONF = Conference("telemost", "42", "https://telemost.yandex.ru/j/42")


def radicale_text(text: str) -> str:
    """`text` as Radicale stores it from a PUT (parse, sanitise, serialise)."""
    components = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(
        components, is_collection=False, tag="VCALENDAR", max_vevent_rrule_occurrence=10000
    )
    return radicale_item.Item(collection_path="a/c", vobject_item=components[0]).serialize()


def series(overrides: int) -> str:
    head = event("s@x", location="jitsi", extra="RRULE:FREQ=DAILY;COUNT=50").split("END:VEVENT")
    parts = [head[0]]
    for i in range(overrides):
        day = f"202611{26 + i:02d}"
        parts.append(
            "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:s@x\r\nDTSTAMP:20261121T100000Z\r\n"
            f"RECURRENCE-ID;TZID=Europe/Moscow:{day}T100000\r\n"
            f"DTSTART;TZID=Europe/Moscow:{day}T110000\r\n"
            f"DTEND;TZID=Europe/Moscow:{day}T120000\r\nSUMMARY:Перенос {i}\r\n"
            "LOCATION:jitsi\r\n"
        )
    return "".join(parts) + "END:VEVENT" + head[1]


ALARM = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:x\r\nEND:VALARM"
LONG = "Повестка: пункт 1, пункт 2; «кавычки»\\nвторая строка " + "длинная " * 30

EVENTS = {
    "plain": event("p@x", location="телемост"),
    "description": event("d@x", location="телемост, комната 5", description=LONG),
    "alarm": event("a@x", location="телемост", extra=ALARM),
    "attendees": event(
        "m@x",
        location="телемост",
        extra="ORGANIZER;CN=Алиса:mailto:alice@example.com\r\n"
        'ATTENDEE;CN="Боб, Иванов";PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\n'
        "X-MOZ-GENERATION:3\r\nCATEGORIES:a,b",
    ),
    "floating": event("f@x", location="телемост", tzid=""),
    "series": series(3),
}


def attach(cal) -> None:
    rewrite.attach(cal, CONF, "Яндекс Телемост", "ru", GRAMMAR, True, ())


def pending(cal) -> None:
    rewrite.pending(cal, "telemost", "Ссылка появится здесь", "ru", GRAMMAR)


def explain(cal) -> None:
    rewrite.explain(cal, "Не удалось: сервис не ответил", "ru")


def pasted(cal) -> None:
    links.mark_conferences(cal, {"https://zoom.us/j/1": "Zoom"})


@pytest.mark.parametrize("edit", [attach, pending, explain, pasted])
@pytest.mark.parametrize("name", EVENTS)
def test_splice_stores_the_event_a_full_reserialisation_stores(name, edit):
    stored = radicale_text(EVENTS[name])
    cal = ical.parse(stored)
    shot = ical.Snapshot(cal)
    edit(cal)
    changes = shot.changes()
    assert changes, "the edit changed something"
    assert shot.changed()
    full = radicale_text(ical.to_text(cal))
    spliced = splice(stored, changes)
    assert spliced is not None
    # The same event, and a fixed point: sent back, Radicale stores the same bytes.
    assert ical.to_text(ical.parse(spliced)) == ical.to_text(ical.parse(full))
    assert radicale_text(spliced) == spliced
    # Byte for byte too, but for the lines the iCalendar library writes in its own order
    # (a recurrence rule's parts) and the full way therefore changes.
    differ = [
        (a, b) for a, b in zip(full.split("\r\n"), spliced.split("\r\n"), strict=True) if a != b
    ]
    assert all(a.startswith("RRULE:") and b.startswith("RRULE:") for a, b in differ), differ


def test_an_unchanged_event_shows_no_change():
    stored = radicale_text(EVENTS["attendees"])
    cal = ical.parse(stored)
    attach(cal)
    again = ical.parse(ical.to_text(cal))
    shot = ical.Snapshot(again)
    attach(again)  # the rewrite is a fixed point: it sets the same values anew
    assert shot.changes() == []
    assert not shot.changed()


def test_a_value_appended_in_place_is_a_change():
    cal = ical.parse(radicale_text(EVENTS["plain"]))
    comp = ical.vevents(cal)[0]
    comp.add("COMMENT", "one")
    comp.add("COMMENT", "two")
    shot = ical.Snapshot(cal)
    comp.add("COMMENT", "three")  # icalendar appends to the list it holds
    assert [c.name for c in shot.changes() or []] == ["COMMENT"]


def test_a_parameter_set_in_place_is_a_change_and_is_spliced():
    """SCHEDULE-STATUS is set on an ATTENDEE in place: the stored text must carry it."""
    stored = radicale_text(EVENTS["attendees"])
    cal = ical.parse(stored)
    shot = ical.Snapshot(cal)
    ical.vevents(cal)[0]["ATTENDEE"].params["SCHEDULE-STATUS"] = "1.2"  # the one attendee
    changes = shot.changes()
    assert [c.name for c in changes or []] == ["ATTENDEE"]
    spliced = splice(stored, changes or [])
    assert spliced is not None
    assert "SCHEDULE-STATUS=1.2:mailto:bob@example.com" in spliced.replace("\r\n ", "")


def test_a_time_or_structure_change_takes_the_whole_way():
    stored = radicale_text(EVENTS["plain"])
    cal = ical.parse(stored)
    shot = ical.Snapshot(cal)
    ical.vevents(cal)[0]["DTSTART"].dt = None  # never done; a change of time all the same
    ical.vevents(cal)[0].pop("DTEND")
    assert splice(stored, shot.changes() or []) is None
    cal = ical.parse(stored)
    shot = ical.Snapshot(cal)
    cal.subcomponents.pop()
    assert shot.changes() is None
