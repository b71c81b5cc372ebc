"""One invitation letter (iMIP, RFC 6047) for one recipient: pure, no I/O.

`calendar` makes the iTIP object (RFC 5546): METHOD:REQUEST or CANCEL, the
event's UID, the SEQUENCE decided by `mail_plan`, ORGANIZER and ATTENDEEs, the
link in LOCATION, DESCRIPTION and CONFERENCE as the stored event has it, the
time zones it uses. `message` wraps it into the letter people know from the
seeds' systems:

    multipart/mixed
      multipart/alternative
        text/plain                        greeting, date and time, the service, people, the link
        text/html                         the same, with a "Присоединиться к встрече" button
        text/calendar; method=REQUEST     what calendar clients act on
      application/ics; name=event.ics     an attachment any calendar can import

Headers are written by the stdlib `email` package (SMTP policy: encoded words,
CRLF); every piece of event text that reaches a header is first reduced to one
line by `address.one_line`, and addresses are plain `local@domain` from
`address.normalize`. Nothing typed into an event can add a header or a recipient.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
from dataclasses import dataclass
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TypeVar, cast

import icalendar

from radicale_meetplugin.core import address, i18n, ical, rewrite
from radicale_meetplugin.mail.plan import METHODS

PRODID = "-//radicale-meetplugin//iMIP//EN"
SMTP_POLICY = email_policy.SMTP.clone(max_line_length=78)
_SCHEDULING_PARAMS = ("SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")
_BOOKKEEPING_PREFIX = "X-MEETPLUGIN-"
MAX_LISTED = 50  # participants named in the text; the rest are counted (all are in the .ics)


# Where a client keeps its user's own alarm state in the event (Thunderbird: dismissed,
# snoozed): never the organizer's in someone else's copy or letter.
_ALARM_STATE = ("X-MOZ-LASTACK", "X-MOZ-SNOOZE-TIME")


def is_alarm_state(name: str) -> bool:
    return name.upper().startswith(_ALARM_STATE)


@dataclass(frozen=True)
class Person:
    address: str
    name: str = ""

    def shown(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address

    def header(self) -> Address:
        local, _, domain = self.address.partition("@")
        return Address(display_name=self.name, username=local, domain=domain)


def person(prop) -> Person | None:
    """The person behind an ORGANIZER or ATTENDEE property; None if no letter can reach them."""
    if prop is None:
        return None
    addr = address.normalize(str(prop))
    if addr is None:
        return None
    name = address.one_line(str(getattr(prop, "params", {}).get("CN", "")), 100)
    return Person(addr, name)


def participants(cal: icalendar.Calendar, organizer: str) -> list[Person]:
    """Everyone invited (valid addresses, the organizer left out), in the event's order."""
    seen: dict[str, Person] = {}
    for comp in ical.vevents(cal):
        for prop in ical.values_of(comp, "ATTENDEE"):
            who = person(prop)
            if who and who.address != organizer and who.address not in seen:
                seen[who.address] = who
    return list(seen.values())


# --- the iTIP object --------------------------------------------------------------


def calendar(
    cal: icalendar.Calendar,
    kind: str,
    sequence: int,
    organizer: Person,
    recipient: str,
    now: dt.datetime,
    rsvp: bool = False,
) -> icalendar.Calendar:
    """The iTIP calendar of one letter (RFC 5546 §3.2.2 REQUEST, §3.2.5 CANCEL).

    `rsvp`: a REQUEST asks every attendee without an RSVP of their own for an answer
    (RSVP=TRUE; the server takes the answers back when it schedules).
    """
    method = METHODS[kind]
    out = icalendar.Calendar()
    out.add("PRODID", PRODID)
    out.add("VERSION", "2.0")
    out.add("CALSCALE", "GREGORIAN")
    out.add("METHOD", method)
    events = ical.vevents(cal)
    if method == "CANCEL":
        main = ical.master(cal)
        events = [main] if main is not None else events
    itip_events = [
        _itip_event(c, kind, sequence, organizer, recipient, now, rsvp and method == "REQUEST")
        for c in events
    ]
    # Time zones first, then the events: readers that resolve a TZID as they meet it
    # (some mail clients do) need the zone before the event that uses it.
    for comp in cal.subcomponents:
        if comp.name == "VTIMEZONE":
            out.add_component(_copy(comp))
    for comp in itip_events:
        out.add_component(comp)
    if hasattr(out, "get_missing_tzids"):  # Outlook needs a VTIMEZONE for every TZID
        added = [
            icalendar.Timezone.from_ical(zone_text)
            for zone_text in map(_vtimezone, sorted(out.get_missing_tzids()))
            if zone_text
        ]
        if added:
            kept = [c for c in out.subcomponents if c.name == "VTIMEZONE"]
            out.subcomponents = [*kept, *added, *itip_events]
    return out


@functools.lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> bytes:
    """A VTIMEZONE from the zone database (slow to make: made once per zone)."""
    try:
        return icalendar.Timezone.from_tzid(tzid).to_ical()
    except Exception:  # a TZID no database knows: the clients will have to cope
        return b""


_Comp = TypeVar("_Comp", bound=icalendar.cal.Component)


def _copy(comp: _Comp) -> _Comp:
    """A copy by a round trip through the text: the same class comes back."""
    return cast(_Comp, type(comp).from_ical(comp.to_ical()))


def _itip_event(
    comp: icalendar.Event,
    kind: str,
    sequence: int,
    organizer: Person,
    recipient: str,
    now: dt.datetime,
    rsvp: bool = False,
) -> icalendar.Event:
    ev = _copy(comp)
    ev.subcomponents = [c for c in ev.subcomponents if c.name != "VALARM"]  # alarms stay home
    for name in list(ev):  # and so does the state of the organizer's alarms
        if is_alarm_state(name):
            ev.pop(name)
    for name in list(ev):
        if name.upper().startswith(_BOOKKEEPING_PREFIX):
            ev.pop(name)
            continue
        for value in ical.values_of(
            ev, name
        ):  # our marks on a property (a pasted link's CONFERENCE) stay home
            params = getattr(value, "params", None) or {}
            for param in [p for p in params if p.upper().startswith(_BOOKKEEPING_PREFIX)]:
                params.pop(param)
    for name, value in (("SEQUENCE", sequence), ("DTSTAMP", now.astimezone(dt.UTC))):
        ev.pop(name, None)
        ev.add(name, value)
    if "ORGANIZER" not in ev:
        params = {"CN": organizer.name} if organizer.name else {}
        ev.add("ORGANIZER", icalendar.vCalAddress(f"mailto:{organizer.address}"), parameters=params)
    attendees = ical.values_of(ev, "ATTENDEE")
    for prop in attendees:
        for param in _SCHEDULING_PARAMS:
            prop.params.pop(param, None)
        if rsvp and "RSVP" not in prop.params and address.normalize(str(prop)) != organizer.address:
            prop.params["RSVP"] = "TRUE"
    if kind == "uninvite":  # only the removed attendee, and no STATUS (RFC 5546 §3.2.5)
        mine = [a for a in attendees if address.normalize(str(a)) == recipient]
        ev.pop("ATTENDEE", None)
        for prop in mine or [icalendar.vCalAddress(f"mailto:{recipient}")]:
            ev.add("ATTENDEE", prop)
        ev.pop("STATUS", None)
    elif kind == "cancel":
        ev.pop("STATUS", None)
        ev.add("STATUS", "CANCELLED")
    return ev


# --- the letter --------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    sender: Person  # From (and the SMTP envelope sender)
    recipient: Person  # To
    reply_to: Person | None = None
    message_id: str = ""


def message(
    cal: icalendar.Calendar,
    kind: str,
    sequence: int,
    envelope: Envelope,
    organizer: Person,
    join_url: str,
    lang: str,
    now: dt.datetime,
    rsvp: bool = False,
) -> EmailMessage:
    itip = calendar(cal, kind, sequence, organizer, envelope.recipient.address, now, rsvp)
    ics = itip.to_ical()
    comp = ical.master(cal) or next(iter(ical.vevents(cal)), icalendar.Event())
    summary = address.one_line(ical.text_of(comp, "SUMMARY"), 150) or i18n.mail_text(
        lang, "untitled"
    )
    facts = _facts(cal, comp, kind, organizer, envelope.recipient, join_url, lang, summary)

    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = address.one_line(i18n.mail_text(lang, f"subject_{kind}", summary=summary), 200)
    msg["From"] = envelope.sender.header()
    msg["To"] = envelope.recipient.header()
    if envelope.reply_to is not None:
        msg["Reply-To"] = envelope.reply_to.header()
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    if envelope.message_id:
        msg["Message-ID"] = envelope.message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg.set_content(_plain(facts), charset="utf-8")
    msg.add_alternative(_html(facts, lang), subtype="html", charset="utf-8")
    msg.add_alternative(
        ics.decode("utf-8"),
        subtype="calendar",
        charset="utf-8",
        cte="base64",
        params={"method": METHODS[kind]},
    )
    msg.add_attachment(
        ics,
        maintype="application",
        subtype="ics",
        filename="event.ics",
        params={"name": "event.ics"},
    )
    return msg


@dataclass(frozen=True)
class _Facts:
    kind: str
    greeting: str
    intro: str
    rows: tuple[tuple[str, str], ...]  # (label, value): when, repeats, organizer
    people_label: str
    people: tuple[str, ...]
    join_label: str
    join_url: str
    description_label: str
    description: str
    footer: str


def _facts(
    cal,
    comp,
    kind: str,
    organizer: Person,
    recipient: Person,
    join_url: str,
    lang: str,
    summary: str,
) -> _Facts:
    def t(text_name: str, **values: str) -> str:
        return i18n.mail_text(lang, text_name, **values)

    greeting = t("greeting", name=recipient.name) if recipient.name else t("greeting_anonymous")
    rows = [(t("when"), when(comp, lang))]
    rule = comp.get("RRULE")
    if rule is not None and not isinstance(rule, list):
        freq = str((rule.get("FREQ") or ["OTHER"])[0]).upper()
        rows.append(
            (t("repeats"), t(freq if freq in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY") else "OTHER"))
        )
    rows.append((t("organizer"), organizer.shown()))
    # The service by name, as the seeds' letters show it ("… сервиса видеоконференции Videomost").
    service = address.one_line(rewrite.service_label(cal, join_url), 80)
    if service:
        rows.append((t("service"), service))
    everyone = participants(cal, organizer.address)
    people = tuple(p.shown() for p in everyone[:MAX_LISTED])
    if len(everyone) > MAX_LISTED:
        people += (t("more", count=str(len(everyone) - MAX_LISTED)),)
    cancelling = METHODS[kind] == "CANCEL"
    user_text, _ours = rewrite.split_description(
        ical.text_of(comp, "DESCRIPTION"), (join_url,) if join_url else ()
    )
    return _Facts(
        kind=kind,
        greeting=greeting,
        intro=t(f"intro_{kind}", organizer=organizer.name or organizer.address, summary=summary),
        rows=tuple(rows),
        people_label=t("participants"),
        people=people,
        join_label=t("join"),
        join_url="" if cancelling else join_url,
        description_label=t("description"),
        description=user_text.strip(),
        footer=t("footer_cancel" if cancelling else "footer"),
    )


def _plain(f: _Facts) -> str:
    lines = [f.greeting, "", f.intro, ""]
    lines += [f"{label}: {value}" for label, value in f.rows]
    if f.people:
        lines.append(f"{f.people_label}:")
        lines += [f"  • {p}" for p in f.people]
    if f.join_url:
        lines += ["", f"{f.join_label}: {f.join_url}"]
    if f.description:
        lines += ["", f"{f.description_label}:", f.description]
    lines += ["", "-- ", f.footer]
    return "\n".join(lines) + "\n"


def _html(f: _Facts, lang: str) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;color:#555;vertical-align:top">{e(label)}</td>'
        f'<td style="padding:2px 0">{e(value)}</td></tr>'
        for label, value in f.rows
    )
    if f.people:
        people = "<br>".join(e(p) for p in f.people)
        rows += (
            f'<tr><td style="padding:2px 12px 2px 0;color:#555;vertical-align:top">'
            f'{e(f.people_label)}</td><td style="padding:2px 0">{people}</td></tr>'
        )
    button = ""
    if f.join_url:
        url = e(f.join_url, quote=True)
        button = (
            f'<p style="margin:24px 0"><a href="{url}" style="display:inline-block;'
            f"padding:12px 24px;background:#1a73e8;color:#ffffff;text-decoration:none;"
            f'border-radius:6px;font-weight:bold">{e(f.join_label)}</a></p>'
            f'<p style="color:#555;font-size:13px">{e(f.join_label)}: '
            f'<a href="{url}">{e(f.join_url)}</a></p>'
        )
    description = ""
    if f.description:
        text = e(f.description).replace("\n", "<br>")
        description = (
            f'<p style="color:#555;margin-bottom:4px">{e(f.description_label)}:</p>'
            f'<p style="margin-top:0">{text}</p>'
        )
    return (
        f'<!DOCTYPE html>\n<html lang="{i18n.language(lang)}"><head><meta charset="utf-8">'
        f'</head>\n<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;'
        f'color:#222">\n<p>{e(f.greeting)}</p>\n<p>{e(f.intro)}</p>\n'
        f'<table style="border-collapse:collapse">{rows}</table>\n{button}\n{description}\n'
        f'<p style="color:#888;font-size:12px;margin-top:24px">{e(f.footer)}</p>\n'
        f"</body></html>\n"
    )


# --- date and time, in the event's own zone ------------------------------------------


def when(comp: icalendar.cal.Component, lang: str) -> str:
    """E.g. "среда, 25 ноября 2026, 10:00–11:00 (Europe/Moscow, UTC+03:00)"."""
    start = getattr(comp.get("DTSTART"), "dt", None)
    end = ical.end_of(comp)
    if not isinstance(start, dt.date):
        return "—"
    if not isinstance(start, dt.datetime):  # all day
        last = start
        if isinstance(end, dt.date) and not isinstance(end, dt.datetime) and end > start:
            last = end - dt.timedelta(days=1)  # DTEND of an all-day event is exclusive
        days = (
            _date(start, lang) if last == start else f"{_date(start, lang)} – {_date(last, lang)}"
        )
        return f"{days} ({i18n.mail_text(lang, 'all_day')})"
    if isinstance(end, dt.datetime) and end.tzinfo is not None and start.tzinfo is not None:
        end = end.astimezone(start.tzinfo)
    elif not isinstance(end, dt.datetime) or (end.tzinfo is None) != (start.tzinfo is None):
        end = None
    if end is None or end == start:
        span = f"{_date(start, lang)}, {start:%H:%M}"
    elif end.date() == start.date():
        span = f"{_date(start, lang)}, {start:%H:%M}–{end:%H:%M}"
    else:
        span = f"{_date(start, lang)}, {start:%H:%M} – {_date(end, lang)}, {end:%H:%M}"
    return f"{span} ({zone(comp, start, lang)})"


def zone(comp: icalendar.cal.Component, start: dt.datetime, lang: str) -> str:
    """The zone named as the event names it, with its offset at the start."""
    tzid = address.one_line(str(getattr(comp.get("DTSTART"), "params", {}).get("TZID", "")), 60)
    if start.tzinfo is None:
        return tzid or i18n.mail_text(lang, "floating")
    offset = start.utcoffset()
    if offset is None:
        return tzid or i18n.mail_text(lang, "floating")
    if not offset and tzid.upper() in ("", "UTC", "Z", "ETC/UTC", "GMT"):
        return "UTC"
    total = int(offset.total_seconds()) // 60
    sign = "+" if total >= 0 else "-"
    shown = f"UTC{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
    name = tzid or getattr(start.tzinfo, "key", "") or start.tzname() or ""
    return f"{name}, {shown}" if name else shown


def _date(day: dt.date, lang: str) -> str:
    lang = i18n.language(lang)
    weekday = i18n.WEEKDAYS[lang][day.weekday()]
    month = i18n.MONTHS[lang][day.month - 1]
    return f"{weekday}, {day.day} {month} {day.year}"
