"""Radicale's own text of an event with a rewrite's changed properties put in place.

A rewritten event must be stored as Radicale serialises it (vobject), so a
client sending it back changes no byte. Parsing and serialising the whole
rewritten text again costs seconds for an event with thousands of overrides,
while the rewrite changed a few properties of each. So the lines of those
properties are rendered by vobject (all of a component's at once, once per
distinct set: the overrides share them) and put where vobject's serialiser places them, in the text
Radicale prepared from the client's; every other line stays as it was.
Anything unexpected answers None, and the caller serialises the whole text.
"""

from __future__ import annotations

from collections.abc import Sequence

import radicale.item as radicale_item

from radicale_meetplugin.core.ical import Change

# vobject's VEVENT serialiser writes these first, in this order, then every other
# property and subcomponent sorted by name (vobject.icalendar.VEvent.sortFirst).
_FIRST = ("uid", "recurrence-id", "dtstart", "duration", "dtend")

# What the time range and identity of an item come from, and structure: a change to
# any of these takes the whole way (Radicale's checks and index must see it).
_NOT_HERE = frozenset(
    {
        "BEGIN",
        "END",
        "UID",
        "DTSTART",
        "DTEND",
        "DURATION",
        "DUE",
        "COMPLETED",
        "CREATED",
        "RRULE",
        "RDATE",
        "EXDATE",
        "EXRULE",
        "RECURRENCE-ID",
        "TZID",
        "STATUS",
    }
)

_Entry = tuple[str, list[str]]  # (lower-case name, its physical lines)


def splice(text: str, changes: Sequence[Change]) -> str | None:
    """`text` (Radicale's serialisation) with `changes` applied; None: not this way."""
    if not changes or not text.endswith("\r\n") or "\r\nVERSION:2.0\r\n" not in text:
        return None
    if any(c.kind != "VEVENT" or c.name.upper() in _NOT_HERE for c in changes):
        return None
    lines = text.split("\r\n")
    spans = _spans(lines)
    if spans is None:
        return None
    by_component: dict[int, dict[str, tuple[str, ...]]] = {}
    for change in changes:
        by_component.setdefault(change.component, {})[change.name.lower()] = change.lines
    rendered: dict[tuple, dict[str, list[list[str]]] | None] = {}
    out: list[str] = []
    done = 0
    for index in sorted(by_component):
        if index not in spans:
            return None
        begin, end = spans[index]
        if lines[begin] != "BEGIN:VEVENT" or begin < done:
            return None
        entries = _entries(lines[begin + 1 : end])
        if entries is None:
            return None
        wanted = by_component[index]
        memo = tuple(sorted(wanted.items()))  # the overrides share their changes
        if memo not in rendered:
            rendered[memo] = _render(wanted)
        values = rendered[memo]
        if values is None:
            return None
        entries = [e for e in entries if e[0] not in wanted]
        entries += [(name, v) for name in wanted for v in values[name]]
        first = [e for e in entries if e[0] in _FIRST]
        rest = sorted((e for e in entries if e[0] not in _FIRST), key=lambda e: e[0])
        out.extend(lines[done : begin + 1])
        for _name, physical in first + rest:
            out.extend(physical)
        done = end
    out.extend(lines[done:])
    return "\r\n".join(out)


def _spans(lines: list[str]) -> dict[int, tuple[int, int]] | None:
    """Each component's (BEGIN line, END line), by its position in a depth-first walk."""
    spans: dict[int, tuple[int, int]] = {}
    stack: list[tuple[int, int]] = []
    count = 0
    for i, line in enumerate(lines):
        if line.startswith("BEGIN:"):
            stack.append((count, i))
            count += 1
        elif line.startswith("END:"):
            if not stack:
                return None
            index, begin = stack.pop()
            spans[index] = (begin, i)
    return spans if not stack else None


def _entries(lines: list[str]) -> list[_Entry] | None:
    """A component's children in serialised order; None if that order is not vobject's."""
    entries: list[_Entry] = []
    depth = 0
    for line in lines:
        if depth:
            entries[-1][1].append(line)
            if line.startswith("BEGIN:"):
                depth += 1
            elif line.startswith("END:"):
                depth -= 1
            continue
        if line[:1] in (" ", "\t"):
            if not entries:
                return None
            entries[-1][1].append(line)
            continue
        if line.startswith("BEGIN:"):
            entries.append((line[6:].lower(), [line]))
            depth = 1
            continue
        cut = min((i for i in (line.find(":"), line.find(";")) if i >= 0), default=-1)
        if cut <= 0 or "." in line[:cut]:  # no name, or a group prefix: not handled here
            return None
        entries.append((line[:cut].lower(), [line]))
    if depth:
        return None
    names = [e[0] for e in entries]
    head = [n for n in names if n in _FIRST]
    tail = [n for n in names if n not in _FIRST]
    if names[: len(head)] != head or head != sorted(head, key=_FIRST.index):
        return None
    return entries if tail == sorted(tail) else None


def _render(wanted: dict[str, tuple[str, ...]]) -> dict[str, list[list[str]]] | None:
    """The physical lines vobject writes for each property line, by property name.

    All of a component's changed properties in one small VEVENT, parsed and
    serialised once: vobject writes each property on its own, whatever else
    the component holds (the names that could matter are in `_NOT_HERE`).
    """
    present = {name: lines for name, lines in wanted.items() if lines}
    if not present:
        return {name: [] for name in wanted}
    snippet = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//meetplugin//splice//EN\r\n"
        "BEGIN:VEVENT\r\nUID:splice\r\n"
        + "".join(f"{line}\r\n" for lines in present.values() for line in lines)
        + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    try:
        components = radicale_item.read_components(snippet)
        serialized = components[0].serialize()
    except Exception:
        return None
    body = serialized.split("\r\n")
    spans = _spans(body)
    if spans is None or 1 not in spans:
        return None
    begin, end = spans[1]
    entries = _entries(body[begin + 1 : end])
    if entries is None:
        return None
    values: dict[str, list[list[str]]] = {name: [] for name in wanted}
    for key, physical in entries:
        if key in values:  # not UID, nor the DTSTAMP vobject adds
            values[key].append(physical)
    if any(len(values[name]) != len(lines) for name, lines in wanted.items()):
        return None
    return values


__all__ = ["splice"]
