"""Server-side scheduling objects (RFC 6638, RFC 5546): statuses, attendee copies, replies (pure).

- `mark_statuses`: SCHEDULE-STATUS on each ATTENDEE of the organizer's copy, from
  what the server does for that person (1.2 delivered to a calendar here, 1.1 sent
  by e-mail, 3.7 not a usable address, 5.x not delivered). Attendees marked
  SCHEDULE-AGENT=CLIENT or NONE are left exactly as they are.
- `attendee_copy`: the event as it goes into a local attendee's calendar: the
  organizer's text (link included) without METHOD, bookkeeping or scheduling
  parameters, with the attendee's own PARTSTAT and alarms kept.
- `partstats` / `apply_partstats`: what an attendee answered, per occurrence, and
  that answer put on their ATTENDEE of the organizer's copy, changing nothing else.
- `read_reply`: an iMIP REPLY checked on its own: one UID, one attendee per
  component, and that attendee is the letter's sender.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import icalendar

from radicale_meetplugin.core import address, ical
from radicale_meetplugin.mail import imip

DELIVERED, SENT, INVALID, NO_CALENDAR, NOT_DELIVERED = "1.2", "1.1", "3.7", "5.3", "5.1"
PARTSTATS = frozenset({"ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION", "DELEGATED"})
LOCAL = "LOCAL"  # the `method` of a delivery into a local attendee's calendar (state/letters)


def scheduled_by_client(prop) -> bool:
    """SCHEDULE-AGENT=CLIENT or NONE: the server neither sends nor delivers (RFC 6638 7.1)."""
    params = getattr(prop, "params", {})
    return str(params.get("SCHEDULE-AGENT", "SERVER")).upper() in ("CLIENT", "NONE")


def mark_statuses(cal: icalendar.Calendar, organizer: str, status_of) -> bool:
    """Set SCHEDULE-STATUS on every server-scheduled ATTENDEE; True when something changed.

    `status_of(address or None)` gives the status ("" leaves the attendee as it is).
    """
    changed = False
    for comp in ical.vevents(cal):
        for prop in ical.values_of(comp, "ATTENDEE"):
            if scheduled_by_client(prop):
                continue
            addr = address.normalize(str(prop))
            if addr is not None and addr == organizer:
                continue
            status = status_of(addr)
            if status and str(prop.params.get("SCHEDULE-STATUS", "")) != status:
                prop.params["SCHEDULE-STATUS"] = status
                changed = True
    return changed


def _occurrence(comp: icalendar.cal.Component) -> str:
    rid = comp.get("RECURRENCE-ID")
    if rid is None:
        return ""
    try:
        return str(rid.to_ical().decode())
    except Exception:
        return str(rid)


def _attendee(comp: icalendar.cal.Component, addr: str):
    for prop in ical.values_of(comp, "ATTENDEE"):
        if address.normalize(str(prop)) == addr:
            return prop
    return None


def attendee_copy(
    cal: icalendar.Calendar,
    kind: str,
    sequence: int,
    organizer: imip.Person,
    recipient: str,
    existing: icalendar.Calendar | None,
    now: dt.datetime,
) -> icalendar.Calendar:
    """The local attendee's copy after a REQUEST (`invite`, `update`) or a cancellation."""
    cancelling = kind in ("cancel", "uninvite")
    out = imip.calendar(
        cal, "cancel" if cancelling else kind, sequence, organizer, recipient, now, rsvp=True
    )
    out.pop("METHOD", None)  # a stored calendar object carries no METHOD (RFC 4791 4.1)
    if cancelling and existing is not None:  # the attendee keeps what they had, cancelled
        out = _cancelled(existing, sequence, now)
    before = {_occurrence(c): c for c in ical.vevents(existing)} if existing is not None else {}
    for comp in ical.vevents(out):
        old = before.get(_occurrence(comp)) or before.get("")
        if old is None:
            continue
        mine, theirs = _attendee(old, recipient), _attendee(comp, recipient)
        if mine is not None and theirs is not None and "PARTSTAT" in mine.params:
            theirs.params["PARTSTAT"] = str(mine.params["PARTSTAT"])
        if not cancelling:  # their own alarms, and their own state of them
            comp.subcomponents = [
                *[c for c in comp.subcomponents if c.name != "VALARM"],
                *[c for c in old.subcomponents if c.name == "VALARM"],
            ]
            for name in old:
                if imip.is_alarm_state(name):
                    comp[name] = old[name]
    return out


def _cancelled(existing: icalendar.Calendar, sequence: int, now: dt.datetime) -> icalendar.Calendar:
    out = icalendar.Calendar.from_ical(existing.to_ical())
    for comp in ical.vevents(out):
        for name, value in (
            ("STATUS", "CANCELLED"),
            ("SEQUENCE", sequence),
            ("DTSTAMP", now.astimezone(dt.UTC)),
        ):
            comp.pop(name, None)
            comp.add(name, value)
    return out


def partstats(cal: icalendar.Calendar, addr: str) -> dict[str, str]:
    """occurrence ("" for the series) -> the PARTSTAT `addr` gives in `cal`."""
    found: dict[str, str] = {}
    for comp in ical.vevents(cal):
        prop = _attendee(comp, addr)
        if prop is None:
            continue
        value = str(prop.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        if value in PARTSTATS:
            found[_occurrence(comp)] = value
    return found


def apply_partstats(cal: icalendar.Calendar, addr: str, answers: dict[str, str]) -> bool:
    """Put `answers` on `addr`'s ATTENDEE in the organizer's copy; only PARTSTAT changes.

    An answer for an occurrence the organizer's copy has no override for is
    left out (the series' answer is not touched by it).
    """
    changed = False
    for comp in ical.vevents(cal):
        answer = answers.get(_occurrence(comp))
        prop = _attendee(comp, addr)
        if answer is None or prop is None:
            continue
        if str(prop.params.get("PARTSTAT", "")).upper() != answer:
            prop.params["PARTSTAT"] = answer
            changed = True
    return changed


def is_attendee(cal: icalendar.Calendar, addr: str) -> bool:
    return any(_attendee(comp, addr) is not None for comp in ical.vevents(cal))


def sequence_of(cal: icalendar.Calendar) -> int:
    best = 0
    for comp in ical.vevents(cal):
        try:
            best = max(best, int(str(comp.get("SEQUENCE", 0))))
        except ValueError:
            continue
    return best


class Rejected(ValueError):
    """The reply is not one that may change anything (the reason, for the log)."""


@dataclass(frozen=True)
class Reply:
    uid: str
    attendee: str
    sequence: int
    answers: dict[str, str]
    organizer: str = ""  # the ORGANIZER the reply is for ("" when it names none)


def read_reply(cal: icalendar.Calendar, sender: str) -> Reply:
    """An iMIP REPLY's facts, checked against itself and its letter's sender; or `Rejected`."""
    if str(cal.get("METHOD", "")).upper() != "REPLY":
        raise Rejected("not a METHOD:REPLY")
    events = ical.vevents(cal)
    if not events:
        raise Rejected("no VEVENT")
    uids = {str(comp.get("UID", "")) for comp in events}
    if len(uids) != 1 or not next(iter(uids)):
        raise Rejected("not exactly one UID")
    who: set[str] = set()
    for comp in events:
        people = ical.values_of(comp, "ATTENDEE")
        if len(people) != 1:
            raise Rejected("a REPLY names exactly one ATTENDEE per component")
        addr = address.normalize(str(people[0]))
        if addr is None:
            raise Rejected("the ATTENDEE is not a usable address")
        who.add(addr)
    if len(who) != 1:
        raise Rejected("more than one attendee")
    attendee = next(iter(who))
    if attendee != address.normalize(sender):
        raise Rejected("the ATTENDEE is not the letter's sender")
    answers = partstats(cal, attendee)
    if not answers:
        raise Rejected("no PARTSTAT")
    return Reply(next(iter(uids)), attendee, sequence_of(cal), answers, ical.organizer_address(cal))
