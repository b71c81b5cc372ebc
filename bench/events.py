"""Events as Thunderbird sends them to a CalDAV server (pure: text builders only).

Thunderbird (115+) puts the VTIMEZONE of every TZID it uses into the body, stamps
CREATED, LAST-MODIFIED and DTSTAMP, counts SEQUENCE and X-MOZ-GENERATION up on
every edit, adds its default alarm, and for a meeting an ORGANIZER who is also the
first ATTENDEE plus the X-MOZ-SEND-INVITATIONS flags. The UID is a bare UUID and
the resource is ``<uid>.ics``. Without the VTIMEZONE Radicale spends ~15 ms per PUT
looking the zone up, which would hide the plugin's own cost.
"""

from __future__ import annotations

import uuid

PRODID = "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN"
TZID = "Europe/Moscow"
VTIMEZONE = (
    "BEGIN:VTIMEZONE",
    f"TZID:{TZID}",
    "X-TZINFO:Europe/Moscow[2024a]",
    "BEGIN:STANDARD",
    "TZOFFSETTO:+0300",
    "TZOFFSETFROM:+0300",
    "TZNAME:MSK",
    "DTSTART:20141026T020000",
    "END:STANDARD",
    "END:VTIMEZONE",
)
CONTENT_TYPE = "text/calendar; charset=utf-8"
# Texts without any plugin keyword: the plugin's fast path must see nothing to do.
SUMMARIES = ("Планёрка", "Ревью квартального плана", "Обед с командой", "Разбор инцидента")
PLACES = ("Переговорная 5", "Офис, 3 этаж", "Кафе «Ромашка»", "Переговорная 2")


def new_uid() -> str:
    return str(uuid.uuid4())


def day_of(i: int) -> str:
    """Events spread over the 28 days of November 2026 (one day holds 1/28 of them)."""
    return f"202611{1 + i % 28:02d}"


def vevent(
    uid: str,
    i: int = 0,
    location: str | None = None,
    sequence: int = 0,
    meeting: bool = False,
    owner: str = "alice",
) -> list[str]:
    """The VEVENT lines of event number `i` (its day, hour and texts follow from `i`)."""
    day, hour = day_of(i), 9 + i % 8
    stamp = f"20261121T{10 + sequence % 10:02d}{i % 60:02d}00Z"
    lines = [
        "BEGIN:VEVENT",
        "CREATED:20261121T095812Z",
        f"LAST-MODIFIED:{stamp}",
        f"DTSTAMP:{stamp}",
        f"UID:{uid}",
        f"SUMMARY:{SUMMARIES[i % len(SUMMARIES)]}",
    ]
    if meeting:
        lines += [
            f"ORGANIZER;RSVP=TRUE;CN={owner.title()};PARTSTAT=ACCEPTED;ROLE=CHAIR:"
            f"mailto:{owner}@example.com",
            f"ATTENDEE;RSVP=TRUE;CN={owner.title()};PARTSTAT=ACCEPTED;ROLE=CHAIR:"
            f"mailto:{owner}@example.com",
            "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT:"
            "mailto:carol@example.org",
            "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT:mailto:dave@example.org",
        ]
    lines += [
        f"DTSTART;TZID={TZID}:{day}T{hour:02d}0000",
        f"DTEND;TZID={TZID}:{day}T{hour:02d}3000",
        "TRANSP:OPAQUE",
    ]
    if meeting:
        lines += ["X-MOZ-SEND-INVITATIONS:TRUE", "X-MOZ-SEND-INVITATIONS-UNDISCLOSED:FALSE"]
    lines += [
        f"LOCATION:{location if location is not None else PLACES[i % len(PLACES)]}",
        "DESCRIPTION:Повестка: итоги недели\\, планы на следующую.",
        f"SEQUENCE:{sequence}",
        f"X-MOZ-GENERATION:{sequence + 1}",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER;VALUE=DURATION:-PT15M",
        "DESCRIPTION:Default Mozilla Description",
        "END:VALARM",
        "END:VEVENT",
    ]
    return lines


def calendar(vevents: list[list[str]]) -> str:
    lines = ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "VERSION:2.0", *VTIMEZONE]
    for lines_of_one in vevents:
        lines += lines_of_one
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def event(uid: str, i: int = 0, **kwargs) -> str:
    """One event as Thunderbird PUTs it: a personal one, or a meeting (`meeting=True`)."""
    return calendar([vevent(uid, i, **kwargs)])
