"""Which invitation letters an event change calls for (pure).

`Sent` is what the attendees were last told (kept in sqlite per event, state/letters.py);
`View` is the event as it is now. `plan` compares them:

- nothing told yet: a REQUEST ("invite") to every recipient;
- the time, title, place, recurrence or link changed, or the client raised
  SEQUENCE: a REQUEST ("update") to everyone still invited;
- an attendee added: a REQUEST ("invite") to just them;
- an attendee removed: a CANCEL ("uninvite") to just them;
- the event cancelled or deleted: a CANCEL ("cancel") to everyone invited.

The first invitation carries the event's own SEQUENCE; every later round of
letters carries max(last sent + 1, the event's SEQUENCE), so attendees' clients
always see a newer version, whether or not the client raised SEQUENCE itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import icalendar

from radicale_meetplugin.core import address, ical
from radicale_meetplugin.state.letters import Sent  # what was told, as the state file keeps it

METHODS = {"invite": "REQUEST", "update": "REQUEST", "cancel": "CANCEL", "uninvite": "CANCEL"}
# What an attendee's calendar shows: a change here is worth an update letter.
_CONTENT = (
    "RECURRENCE-ID",
    "DTSTART",
    "DTEND",
    "DURATION",
    "RRULE",
    "RDATE",
    "EXDATE",
    "SUMMARY",
    "LOCATION",
    "STATUS",
)


@dataclass(frozen=True)
class View:
    """The event as it is now, as far as letters are concerned."""

    sequence: int
    recipients: frozenset[str]
    organizer: str
    content: str
    cancelled: bool = False
    skipped: tuple[str, ...] = ()  # attendee addresses no letter can go to


@dataclass(frozen=True)
class Letter:
    kind: str  # invite, update, cancel, uninvite
    sequence: int
    recipients: tuple[str, ...]

    @property
    def method(self) -> str:
        return METHODS[self.kind]


def plan(sent: Sent | None, now: View) -> tuple[list[Letter], Sent | None]:
    """The letters to send and what the recipients will have been told."""
    if sent is None or sent.cancelled:
        if now.cancelled:
            return [], sent
        seq = now.sequence if sent is None else max(sent.sequence + 1, now.sequence)
        letters = [Letter("invite", seq, tuple(sorted(now.recipients)))] if now.recipients else []
        return letters, Sent(
            seq if letters or sent is None else sent.sequence, now.recipients, now.content
        )
    if now.cancelled:
        if not sent.recipients:
            return [], replace(sent, cancelled=True)
        seq = max(sent.sequence + 1, now.sequence)
        return (
            [Letter("cancel", seq, tuple(sorted(sent.recipients)))],
            replace(sent, sequence=seq, cancelled=True),
        )
    kept = now.recipients & sent.recipients
    added = now.recipients - sent.recipients
    # The organizer's own copy stops when send_to_organizer is turned off; no cancel for that.
    # Nor for a person reached another way now (e-mail, or their calendar here).
    reached = {person_of(r) for r in now.recipients}
    removed = {
        r for r in sent.recipients - now.recipients - {now.organizer} if person_of(r) not in reached
    }
    changed = now.content != sent.content or now.sequence > sent.sequence
    seq = max(sent.sequence + 1, now.sequence)
    letters = []
    if changed and kept:
        letters.append(Letter("update", seq, tuple(sorted(kept))))
    if added:
        letters.append(Letter("invite", seq, tuple(sorted(added))))
    if removed:
        letters.append(Letter("uninvite", seq, tuple(sorted(removed))))
    recipients = now.recipients | (sent.recipients & {now.organizer})
    return letters, Sent(seq if letters else sent.sequence, recipients, now.content)


# A recipient reached in their calendar on this server rather than by e-mail (scheduling).
LOCAL_PREFIX = "local:"


def person_of(recipient: str) -> str:
    """The address behind a recipient, whichever way they are reached."""
    return recipient.removeprefix(LOCAL_PREFIX)


# --- reading the event ------------------------------------------------------------


def view_of(
    cal: icalendar.Calendar,
    organizer: str,
    join_url: str,
    *,
    cancelled: bool,
    send_to_organizer: bool = False,
    route: Callable[[str], tuple[str, ...]] | None = None,
) -> View:
    """`route(address)`: how each attendee is reached (the address itself: e-mail;
    `LOCAL_PREFIX` + address: their calendar here); default: by e-mail."""
    recipients: set[str] = set()
    skipped: list[str] = []
    for comp in ical.vevents(cal):
        for prop in ical.values_of(comp, "ATTENDEE"):
            params = getattr(prop, "params", {})
            if str(params.get("SCHEDULE-AGENT", "SERVER")).upper() in ("CLIENT", "NONE"):
                continue  # the client (or nobody) schedules this one
            addr = address.normalize(str(prop))
            if addr is None:
                skipped.append(address.one_line(str(prop), 80))
            elif addr != organizer:
                recipients.update(route(addr) if route is not None else (addr,))
    if send_to_organizer and organizer:
        recipients.add(organizer)
    return View(
        sequence_of(cal),
        frozenset(recipients),
        organizer,
        content_of(cal, join_url),
        cancelled,
        tuple(sorted(set(skipped))),
    )


def sequence_of(cal: icalendar.Calendar) -> int:
    comp = ical.master(cal) or next(iter(ical.vevents(cal)), None)
    try:
        return max(0, int(str(comp.get("SEQUENCE", 0)))) if comp is not None else 0
    except ValueError:
        return 0


def content_of(cal: icalendar.Calendar, join_url: str) -> str:
    """A digest of what attendees see: time, recurrence, title, place, link."""
    parts = [join_url]
    for comp in sorted(ical.vevents(cal), key=lambda c: _text(c.get("RECURRENCE-ID"))):
        for name in _CONTENT:
            for prop in ical.values_of(comp, name):
                parts.append(f"{name}={_text(prop)}")
        parts.append("--")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _text(prop) -> str:
    if prop is None:
        return ""
    tzid = str(getattr(prop, "params", {}).get("TZID", ""))
    try:
        return f"{tzid}|{prop.to_ical().decode()}"
    except Exception:  # a value icalendar cannot write back: compare its text
        return f"{tzid}|{prop}"


def is_over(cal: icalendar.Calendar, now: dt.datetime) -> bool:
    """The meeting lies wholly in the past (a day's margin for floating and all-day times).

    Letters about a past meeting help nobody: tidying up an old calendar must not
    send cancellations to everyone who was ever invited.
    """
    limit = now.astimezone(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=1)
    latest: dt.datetime | None = None
    for comp in ical.vevents(cal):
        start = getattr(comp.get("DTSTART"), "dt", None)
        if not isinstance(start, dt.date):
            return False
        end = ical.end_of(comp)
        end = end if isinstance(end, dt.date) and type(end) is type(start) else start
        if "RRULE" in comp and "RECURRENCE-ID" not in comp:
            last = _last_occurrence(comp, start, limit)
            if last is None:
                return False
            try:
                end = last + (end - start)
            except TypeError:  # UNTIL a date for a series of times, or the other way round
                end = last
        finish = _naive_utc(end)
        latest = finish if latest is None or finish > latest else latest
    return latest is not None and latest < limit


def _naive_utc(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)
    return dt.datetime(value.year, value.month, value.day) + dt.timedelta(days=1)


def _last_occurrence(comp, start: dt.date, limit: dt.datetime) -> dt.date | None:
    """The series' last start if it ends before `limit`; None if it goes on (or is unclear)."""
    rule = comp["RRULE"]
    if isinstance(rule, list):
        return None
    until = (rule.get("UNTIL") or [None])[0]
    if until is not None:
        return until
    count = (rule.get("COUNT") or [None])[0]
    freq = str((rule.get("FREQ") or [""])[0]).upper()
    if count is None or freq not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        return None  # endless, or too fine-grained to expand cheaply: not over
    from dateutil import rrule as dateutil_rrule  # icalendar's own dependency

    first = (
        start if isinstance(start, dt.datetime) else dt.datetime(start.year, start.month, start.day)
    )
    try:
        series = dateutil_rrule.rrulestr(rule.to_ical().decode(), dtstart=first)
        probe = limit if first.tzinfo is None else limit.replace(tzinfo=dt.UTC)
        if series.after(probe) is not None:
            return None
        return series.before(probe, inc=True)
    except (ValueError, TypeError, OverflowError):
        return None
