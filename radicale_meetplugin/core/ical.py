"""Small helpers over `icalendar` for reading and editing one stored event (pure)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import icalendar

from radicale_meetplugin.core.model import EventKey, Meeting


class EventParseError(ValueError):
    pass


def parse(text: str) -> icalendar.Calendar:
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as e:  # icalendar raises several types on bad input
        raise EventParseError(str(e)[:200]) from e
    if not isinstance(cal, icalendar.Calendar):
        raise EventParseError("not a VCALENDAR")
    return cal


# A fold: a line break followed by one space or tab (RFC 5545 3.1), as icalendar's parser has it.
_FOLD = re.compile(r"(\r?\n)+[ \t]")


def unfolded(text: str) -> str:
    """Raw iCalendar text with its folds joined, lines kept: a cheap text to search in."""
    return _FOLD.sub("", text) if "\n " in text or "\n\t" in text else text


def unfold(text: str) -> list[str]:
    """The content lines of raw iCalendar text, folds joined by icalendar's own parser."""
    return [str(line) for line in icalendar.parser.Contentlines.from_ical(text) if line]  # type: ignore[no-untyped-call]


def to_text(cal: icalendar.Calendar) -> str:
    text: str = cal.to_ical().decode("utf-8")
    return text


class Snapshot:
    """What `to_text(cal)` is made of, kept by reference: tells whether an edit changed it.

    Serialising a big event twice (before and after a rewrite) only to compare
    costs seconds; this keeps each component's property values and
    subcomponents as they were, and serialises only the properties whose
    value was replaced or whose parameters changed (SCHEDULE-STATUS is set on
    an ATTENDEE in place). A value's own text changed in place would not be
    seen, so none is.
    """

    def __init__(self, cal: icalendar.cal.Component) -> None:
        self._parts: list[tuple[icalendar.cal.Component, dict[str, Any], list[Any]]] = []
        self._params: list[dict[str, Any]] = []
        stack = [cal]
        while stack:  # iterative: a deeply nested input must not overflow the stack
            comp = stack.pop()
            props = {k: _held(v) for k, v in comp.items()}
            self._parts.append((comp, props, list(comp.subcomponents)))
            self._params.append({k: _params_of(v) for k, v in props.items()})
            stack.extend(reversed(comp.subcomponents))

    def changed(self) -> bool:
        """Would `to_text` of the calendar give other text than when it was taken?"""
        return self.changes() != []

    def changes(self) -> list[Change] | None:
        """The properties whose lines changed since, in walk order; None when components
        were added, removed or reordered (then only the whole text says what changed)."""
        out: list[Change] = []
        for index, (comp, props, subs) in enumerate(self._parts):
            if len(subs) != len(comp.subcomponents) or any(
                a is not b for a, b in zip(subs, comp.subcomponents, strict=True)
            ):
                return None
            params = self._params[index]
            for name in sorted({*props.keys(), *comp.keys()}):
                old = props.get(name)
                new = _held(comp[name]) if name in comp else None
                same = old is not None and new is not None and _same_values(new, old)
                if same and _params_of(new) == params.get(name):
                    continue
                lines = _lines(comp, name, new) if new is not None else []
                if old is None or same or lines != _lines(comp, name, old):
                    out.append(Change(index, str(comp.name), name, tuple(lines)))
        return out


@dataclass(frozen=True)
class Change:
    """One property of one component, rewritten: its content lines now (none: removed)."""

    component: int  # the component's position in a depth-first walk (the calendar is 0)
    kind: str  # the component's name (VEVENT)
    name: str  # the property's name
    lines: tuple[str, ...]  # as `to_text` writes them, unfolded


def _held(value: Any) -> Any:
    """A property's value as kept: a list by a copy of it (`add` appends in place)."""
    return tuple(value) if isinstance(value, list) else value


def _params_of(value: Any) -> tuple[Any, ...]:
    """A property's parameters as they are now, by value (they can be changed in place)."""
    values = value if isinstance(value, tuple) else (value,)
    return tuple(
        tuple(sorted((k, str(p)) for k, p in v.params.items()))
        if getattr(v, "params", None)
        else ()
        for v in values
    )


def _same_values(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    return a is b


def _lines(comp: icalendar.cal.Component, name: str, value: Any) -> list[str]:
    """The content lines of one property as `to_ical` writes them."""
    values = value if isinstance(value, tuple) else [value]
    return [str(comp.content_line(name, v, sorted=True)) for v in values]


def vevents(cal: icalendar.Calendar) -> list[icalendar.Event]:
    return [c for c in cal.subcomponents if isinstance(c, icalendar.Event)]


def master(cal: icalendar.Calendar) -> icalendar.Event | None:
    for comp in vevents(cal):
        if "RECURRENCE-ID" not in comp:
            return comp
    return None


def text_of(comp: icalendar.cal.Component, name: str) -> str:
    value = comp.get(name)
    if value is None:
        return ""
    if isinstance(value, list):  # a property given twice: read the first
        value = value[0] if value else ""
    return str(value)


def set_text(comp: icalendar.cal.Component, name: str, value: str) -> None:
    params = None
    old = comp.get(name)
    if old is not None and not isinstance(old, list):
        params = getattr(old, "params", None)
    comp.pop(name, None)
    if value:
        new = icalendar.vText(value)
        if params:
            new.params.update(params)
        comp.add(name, new, encode=False)


def values_of(comp: icalendar.cal.Component, name: str) -> list[Any]:
    value = comp.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def categories(comp: icalendar.cal.Component) -> list[str]:
    out: list[str] = []
    for prop in values_of(comp, "CATEGORIES"):
        cats = getattr(prop, "cats", None)
        if cats is None:
            out.extend(s.strip() for s in str(prop).split(",") if s.strip())
        else:
            out.extend(str(c) for c in cats)
    return out


def set_categories(comp: icalendar.cal.Component, cats: Iterable[str]) -> None:
    comp.pop("CATEGORIES", None)
    cats = list(cats)
    if cats:
        comp.add("CATEGORIES", cats)


def is_cancelled(cal: icalendar.Calendar) -> bool:
    """The series (not just one occurrence) is cancelled."""
    main = master(cal)
    if main is not None:
        return text_of(main, "STATUS").upper() == "CANCELLED"
    events = vevents(cal)
    return bool(events) and all(text_of(c, "STATUS").upper() == "CANCELLED" for c in events)


def _when(comp: icalendar.cal.Component, name: str) -> Any:
    """What icalendar parsed: a date, datetime, time, timedelta or period; None if absent."""
    prop = comp.get(name)
    return getattr(prop, "dt", None) if prop is not None else None


def _end(comp: icalendar.cal.Component) -> Any:
    end = _when(comp, "DTEND")
    if end is None:
        start = _when(comp, "DTSTART")
        duration = _when(comp, "DURATION")
        if start is not None and isinstance(duration, dt.timedelta):
            end = start + duration
    return end


def end_of(comp: icalendar.cal.Component) -> object:
    """DTEND, or DTSTART + DURATION; None if neither says."""
    return _end(comp)


def _comparable(value: dt.date) -> dt.datetime:
    """Dates and datetimes on one naive UTC-ish scale (floating times taken as UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)
    return dt.datetime(value.year, value.month, value.day)


def ends_before_start(cal: icalendar.Calendar) -> bool:
    for comp in vevents(cal):
        start, end = _when(comp, "DTSTART"), _end(comp)
        if not isinstance(start, dt.date) or not isinstance(end, dt.date):
            continue
        if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
            continue  # mixed date/datetime: leave it to the client
        if _comparable(end) < _comparable(start):
            return True
    return False


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def meeting_of(cal: icalendar.Calendar, key: EventKey) -> Meeting:
    comp = master(cal) or (vevents(cal) or [icalendar.Event()])[0]
    start_prop = comp.get("DTSTART")
    tzid = ""
    if start_prop is not None and hasattr(start_prop, "params"):
        tzid = str(start_prop.params.get("TZID", ""))
    attendees = tuple(sorted(str(a) for a in values_of(comp, "ATTENDEE")))
    rrule = comp.get("RRULE")
    recurring = rrule is None and (
        "RDATE" in comp or any("RECURRENCE-ID" in c for c in vevents(cal))
    )
    return Meeting(
        key=key,
        summary=text_of(comp, "SUMMARY"),
        start=_iso(_when(comp, "DTSTART")),
        end=_iso(_end(comp)),
        tzid=tzid,
        rrule=rrule.to_ical().decode() if rrule is not None else "",
        organizer=str(comp.get("ORGANIZER", "")),
        attendees=attendees,
        recurring=recurring,
    )


def organizer_address(cal: icalendar.Calendar) -> str:
    """The ORGANIZER's address, lower-case, without `mailto:`; "" if none."""
    for comp in vevents(cal):
        value = comp.get("ORGANIZER")
        if value is not None:
            address = str(value).strip()
            if address.lower().startswith("mailto:"):
                address = address[7:]
            return address.strip().lower()
    return ""
