"""When a meeting happens, in the terms scheduling APIs use (pure, no I/O).

`Meeting.start`/`end` are ISO texts made by `ical.meeting_of`: an aware
datetime for TZID and UTC times ("2026-11-25T10:00:00+03:00"), a naive one for
floating times, a date for all-day events. Floating times and all-day dates
are read in the admin's default zone (the API needs an instant).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import zoneinfo
from dataclasses import dataclass

from radicale_meetplugin.core.model import EventKey, Meeting

MIN_DURATION = 60  # seconds: a zero-length event still gets a usable slot
DEFAULT_DURATION = 3600  # seconds: a DTSTART without DTEND or DURATION
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def timezone(value: str) -> zoneinfo.ZoneInfo:
    """Config converter: an IANA zone name such as Europe/Moscow."""
    value = value.strip()
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a time zone name (e.g. Europe/Moscow, UTC)") from None


@dataclass(frozen=True)
class Slot:
    start: int  # unix seconds (UTC)
    duration: int  # seconds
    offset: int  # minutes east of UTC at the start (Moscow: 180)
    all_day: bool = False
    floating: bool = False


def _parse(text: str):
    if not text:
        return None
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _instant(value, zone: dt.tzinfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=zone)
    return None


def slot_of(meeting: Meeting, zone: dt.tzinfo) -> Slot | None:
    """The one-time slot of a single event; None when it has no start."""
    raw_start = _parse(meeting.start)
    start = _instant(raw_start, zone)
    if start is None:
        return None
    all_day = not isinstance(raw_start, dt.datetime)
    floating = isinstance(raw_start, dt.datetime) and raw_start.tzinfo is None
    raw_end = _parse(meeting.end)
    end = _instant(raw_end, zone) if isinstance(raw_end, dt.datetime) == (not all_day) else None
    if end is not None:
        duration = int((end - start).total_seconds())
    else:
        duration = 86400 if all_day else DEFAULT_DURATION
    offset = start.utcoffset() or dt.timedelta(0)
    return Slot(
        start=int(start.timestamp()),
        duration=max(MIN_DURATION, duration),
        offset=int(offset.total_seconds() // 60),
        all_day=all_day,
        floating=floating,
    )


def topic(summary: str, fallback: str, limit: int = 240) -> str:
    """A one-line title within the API's length limit; `fallback` if empty."""
    text = " ".join(_CONTROL.sub(" ", summary).split())
    return (text or fallback)[:limit]


def addresses(meeting: Meeting, limit: int = 500) -> list[str]:
    """Attendees' e-mail addresses, lower-case, without the organizer, sorted, unique."""
    organizer = _address(meeting.organizer)
    out: set[str] = set()
    for value in meeting.attendees:
        address = _address(value)
        if address and address != organizer and "@" in address:
            out.add(address)
    return sorted(out)[:limit]


def _address(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    value = value.strip().lower()
    return value if value and not _CONTROL.search(value) and " " not in value else ""


def event_digest(secret: bytes, key: EventKey, length: int = 32) -> str:
    """Hex HMAC of the event key: stable per event, unguessable without the secret."""
    return hmac.new(secret, key.as_text().encode(), hashlib.sha256).hexdigest()[:length]
