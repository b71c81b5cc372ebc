"""The pure parts of invitation e-mails: addresses, the plan of letters, the letter itself."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radicale_meetplugin.core import address, ical
from radicale_meetplugin.mail import imip
from radicale_meetplugin.mail import plan as mail_plan
from radicale_meetplugin.mail.plan import Letter, Sent, View

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
LINK = "https://meet.jit.si/MeetABCDEF"


def calendar_text(
    *lines: str,
    start="DTSTART;TZID=Europe/Moscow:20261125T100000",
    end="DTEND;TZID=Europe/Moscow:20261125T110000",
    components: str = "",
) -> str:
    body = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//t//EN",
        "BEGIN:VEVENT",
        "UID:abc@test",
        "DTSTAMP:20261121T100000Z",
        start,
        *([end] if end else []),
        "SUMMARY:Планёрка",
        f"LOCATION:{LINK}",
        "ORGANIZER;CN=Алиса Смирнова:mailto:alice@example.com",
        'ATTENDEE;CN="Иванов, Иван";PARTSTAT=NEEDS-ACTION:mailto:ivan@example.com',
        "ATTENDEE;CN=Alice;ROLE=CHAIR:mailto:alice@example.com",
        *lines,
        "END:VEVENT",
        *[c for c in components.split("\n") if c],
        "END:VCALENDAR",
    ]
    return "\r\n".join(body) + "\r\n"


def cal_of(*lines: str, **kw) -> icalendar.Calendar:
    return ical.parse(calendar_text(*lines, **kw))


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content().replace("\r\n", "\n")


ALICE = imip.Person("alice@example.com", "Алиса Смирнова")
IVAN = imip.Person("ivan@example.com", "Иванов, Иван")


def build(
    cal,
    kind="invite",
    sequence=0,
    recipient=IVAN,
    lang="ru",
    reply_to=ALICE,
    sender=imip.Person("calendar@example.com", "Алиса Смирнова"),
):
    envelope = imip.Envelope(sender, recipient, reply_to, "<id@example.com>")
    msg = imip.message(cal, kind, sequence, envelope, ALICE, LINK, lang, NOW)
    raw = msg.as_bytes()
    return raw, email.message_from_bytes(raw, policy=policy.default)


# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given_,expected",
    [
        ("mailto:ivan@example.com", "ivan@example.com"),
        ("MAILTO:Ivan.Petrov@Example.COM", "ivan.petrov@example.com"),
        ("ivan+meet@example.com", "ivan+meet@example.com"),
        ("mailto:ivan%40example.com", "ivan@example.com"),
        ("mailto:ivan@пример.рф", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("mailto:ivan@example.com\r\nBcc: spy@example.net", None),
        ("mailto:Ivan <ivan@example.com>", None),
        ("mailto:ivan@example.com,spy@example.net", None),
        ("mailto:ivan @example.com", None),
        ("mailto:иван@example.com", None),  # a non-ASCII local part needs SMTPUTF8: refused
        ("mailto:ivan@localhost", None),
        ("mailto:@example.com", None),
        ("mailto:ivan@", None),
        ("mailto:.ivan@example.com", None),
        ("mailto:iv..an@example.com", None),
        ("mailto:ivan@-example.com", None),
        ("urn:uuid:123", None),
        ("", None),
    ],
)
def test_only_plain_addresses_are_accepted(given_, expected):
    assert address.normalize(given_) == expected


def test_one_line_removes_line_breaks_controls_and_bidi_tricks():
    assert address.one_line("a\r\nBcc: x\u2028y\x00z\u202ekcatta") == "a Bcc: x y zkcatta"
    assert address.one_line("x" * 300, 10) == "xxxxxxxxx…"


@given(st.text())
def test_one_line_never_leaves_a_line_break(text):
    line = address.one_line(text)
    assert "\n" not in line and "\r" not in line and len(line) <= 200


# --- date and time ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lang,start,end,expected",
    [
        (
            "ru",
            "DTSTART;TZID=Europe/Moscow:20261125T100000",
            "DTEND;TZID=Europe/Moscow:20261125T113000",
            "среда, 25 ноября 2026, 10:00–11:30 (Europe/Moscow, UTC+03:00)",
        ),
        (
            "ru",
            "DTSTART;TZID=Asia/Yekaterinburg:20261125T100000",
            "DTEND;TZID=Asia/Yekaterinburg:20261125T110000",
            "среда, 25 ноября 2026, 10:00–11:00 (Asia/Yekaterinburg, UTC+05:00)",
        ),
        (
            "ru",
            "DTSTART:20261125T070000Z",
            "DTEND:20261125T080000Z",
            "среда, 25 ноября 2026, 07:00–08:00 (UTC)",
        ),
        (
            "ru",
            "DTSTART:20261125T100000",
            "DTEND:20261125T110000",
            "среда, 25 ноября 2026, 10:00–11:00 (местное время)",
        ),
        (
            "ru",
            "DTSTART;VALUE=DATE:20261125",
            "DTEND;VALUE=DATE:20261126",
            "среда, 25 ноября 2026 (весь день)",
        ),
        (
            "ru",
            "DTSTART;VALUE=DATE:20261125",
            "DTEND;VALUE=DATE:20261128",
            "среда, 25 ноября 2026 – пятница, 27 ноября 2026 (весь день)",
        ),
        (
            "ru",
            "DTSTART;TZID=Europe/Moscow:20261125T230000",
            "DTEND;TZID=Europe/Moscow:20261126T010000",
            "среда, 25 ноября 2026, 23:00 – четверг, 26 ноября 2026, 01:00 (Europe/Moscow, UTC+03:00)",
        ),
        # the end in another zone is shown in the start's zone
        (
            "ru",
            "DTSTART;TZID=Europe/Moscow:20261125T100000",
            "DTEND:20261125T080000Z",
            "среда, 25 ноября 2026, 10:00–11:00 (Europe/Moscow, UTC+03:00)",
        ),
        # a zone with summer time shows the offset of that day
        (
            "en",
            "DTSTART;TZID=Europe/Berlin:20270701T090000",
            "DTEND;TZID=Europe/Berlin:20270701T100000",
            "Thursday, 1 July 2027, 09:00–10:00 (Europe/Berlin, UTC+02:00)",
        ),
        (
            "en",
            "DTSTART;TZID=America/New_York:20261125T100000",
            "",
            "Wednesday, 25 November 2026, 10:00 (America/New_York, UTC-05:00)",
        ),
    ],
)
def test_time_is_written_in_the_events_zone_and_names_it(lang, start, end, expected):
    comp = ical.master(cal_of(start=start, end=end))
    assert imip.when(comp, lang) == expected


def test_duration_instead_of_dtend():
    comp = ical.master(cal_of("DURATION:PT45M", end=""))
    assert imip.when(comp, "ru") == "среда, 25 ноября 2026, 10:00–10:45 (Europe/Moscow, UTC+03:00)"


# --- the letter -------------------------------------------------------------------------


def test_the_invitation_letter():
    raw, msg = build(
        cal_of(
            "DESCRIPTION:Повестка\\n\\n=== Видеовстреча ===\\n"
            f"Встреча пройдёт по ссылке: {LINK}\\nСервис: Jitsi Meet\\n==="
        )
    )
    assert msg["Subject"] == "Приглашение на онлайн-встречу: Планёрка"
    assert str(msg["From"]) == "Алиса Смирнова <calendar@example.com>"
    assert str(msg["To"]) == '"Иванов, Иван" <ivan@example.com>'
    assert str(msg["Reply-To"]) == "Алиса Смирнова <alice@example.com>"
    assert msg["Message-ID"] == "<id@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
        "application/ics",
    ]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    raw.decode("ascii")  # 7-bit clean: any SMTP server takes it
    text = plain(msg)
    assert text.splitlines()[:8] == [
        "Здравствуйте, Иванов, Иван!",
        "",
        "Алиса Смирнова приглашает вас на онлайн-встречу «Планёрка».",
        "",
        "Дата и время: среда, 25 ноября 2026, 10:00–11:00 (Europe/Moscow, UTC+03:00)",
        "Организатор: Алиса Смирнова <alice@example.com>",
        "Сервис видеоконференции: Jitsi Meet",
        "Участники:",
    ]
    assert "  • Иванов, Иван <ivan@example.com>" in text
    assert f"Присоединиться к встрече: {LINK}" in text
    assert "Описание:\nПовестка\n" in text and "=== Видеовстреча" not in text
    html = msg.get_body(("html",)).get_content()
    assert f'<a href="{LINK}"' in html and ">Присоединиться к встрече</a>" in html
    assert "Иванов, Иван &lt;ivan@example.com&gt;" in html


@pytest.mark.parametrize(
    "lines,service",
    [
        (
            (
                "DESCRIPTION:Повестка\\n\\n=== Видеовстреча ===\\n"
                f"Встреча пройдёт по ссылке: {LINK}\\nСервис: Яндекс Телемост\\n===",
            ),
            "Яндекс Телемост",
        ),
        # A server that dropped the description block: our CONFERENCE label still names it.
        ((f"CONFERENCE;VALUE=URI;LABEL=Видеовстреча (Videomost):{LINK}",), "Videomost"),
        ((), ""),
    ],
    ids=["block", "conference-label", "unknown"],
)
def test_the_letter_names_the_service(lines, service):
    _raw, msg = build(cal_of(*lines))
    text = plain(msg)
    html = msg.get_body(("html",)).get_content()
    itip = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    description = str(
        icalendar.Calendar.from_ical(itip.get_content()).walk("VEVENT")[0].get("DESCRIPTION", "")
    )
    if not service:
        assert "Сервис видеоконференции" not in text
        return
    assert f"Сервис видеоконференции: {service}" in text.splitlines()
    assert f'Сервис видеоконференции</td><td style="padding:2px 0">{service}<' in html
    if lines[0].startswith("DESCRIPTION"):  # the event's own description, as the .ics carries it
        assert f"Сервис: {service}" in description
    _raw, english = build(cal_of(*lines), lang="en")
    assert f"Video conferencing service: {service}" in plain(english)


def test_english_letters():
    _raw, msg = build(cal_of(), lang="en", kind="update", sequence=2)
    assert msg["Subject"] == "Online meeting changed: Планёрка"
    text = plain(msg)
    assert text.startswith("Hello Иванов, Иван,\n")
    assert (
        "Date and time: Wednesday, 25 November 2026, 10:00–11:00 (Europe/Moscow, UTC+03:00)" in text
    )
    assert f"Join the meeting: {LINK}" in text


@pytest.mark.parametrize(
    "kind,subject,method",
    [
        ("invite", "Приглашение на онлайн-встречу: Планёрка", "REQUEST"),
        ("update", "Изменение онлайн-встречи: Планёрка", "REQUEST"),
        ("cancel", "Онлайн-встреча отменена: Планёрка", "CANCEL"),
        ("uninvite", "Приглашение отозвано: Планёрка", "CANCEL"),
    ],
)
def test_each_kind_of_letter(kind, subject, method):
    _raw, msg = build(cal_of(), kind=kind, sequence=3)
    assert msg["Subject"] == subject
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == method
    itip = icalendar.Calendar.from_ical(part.get_content())
    assert str(itip["METHOD"]) == method
    ev = next(iter(itip.walk("VEVENT")))
    assert int(ev["SEQUENCE"]) == 3 and str(ev["UID"]) == "abc@test"
    text = plain(msg)
    assert ("Присоединиться к встрече" in text) == (method == "REQUEST")


def test_the_sender_may_be_the_organizer_without_reply_to():
    _raw, msg = build(cal_of(), sender=ALICE, reply_to=None)
    assert str(msg["From"]) == "Алиса Смирнова <alice@example.com>" and msg["Reply-To"] is None


INJECTIONS = [
    "Планёрка\r\nBcc: spy@example.net",
    "Планёрка\nBcc: spy@example.net",
    "Планёрка\rBcc: spy@example.net",
    "=?utf-8?q?x?=\r\n\r\nbody",
    "Планёрка\u2028Bcc: spy@example.net",
    "\x00\x1b[31m\x7f",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_summary_and_names_cannot_add_headers(evil):
    cal = cal_of()
    comp = ical.master(cal)
    comp["SUMMARY"] = icalendar.vText(evil)
    recipient = imip.Person("ivan@example.com", address.one_line(evil))
    raw, msg = build(cal, recipient=recipient)
    assert msg["Bcc"] is None
    assert sorted(msg.keys()) == sorted(
        [
            "Subject",
            "From",
            "To",
            "Reply-To",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        ]
    )
    assert [a.addr_spec for a in msg["To"].addresses] == ["ivan@example.com"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc" not in head and b"\r\n\r\n" not in head


@settings(max_examples=60, deadline=None)
@given(summary=st.text(max_size=80), name=st.text(max_size=40))
def test_any_summary_or_name_gives_the_same_headers(summary, name):
    cal = cal_of()
    ical.master(cal)["SUMMARY"] = icalendar.vText(summary)
    _raw, msg = build(cal, recipient=imip.Person("ivan@example.com", address.one_line(name)))
    assert len(msg.keys()) == 9
    assert [a.addr_spec for a in msg["To"].addresses] == ["ivan@example.com"]
    assert "\n" not in msg["Subject"]


# --- the iTIP object ------------------------------------------------------------------------


def test_request_copies_the_event_without_alarms_bookkeeping_or_scheduling_params():
    cal = cal_of(
        "X-MEETPLUGIN-PROVIDER:jitsi",
        "X-MEETPLUGIN-CONFERENCE-ID:x",
        f"CONFERENCE;VALUE=URI;FEATURE=AUDIO,VIDEO:{LINK}",
        "ATTENDEE;SCHEDULE-STATUS=2.0;SCHEDULE-AGENT=SERVER:mailto:bob@example.com",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT15M",
        "END:VALARM",
        "SEQUENCE:1",
    )
    itip = imip.calendar(cal, "invite", 4, ALICE, "ivan@example.com", NOW)
    assert str(itip["METHOD"]) == "REQUEST" and str(itip["PRODID"]) == imip.PRODID
    [ev] = itip.walk("VEVENT")
    assert int(ev["SEQUENCE"]) == 4
    assert ev["DTSTAMP"].dt == NOW
    assert not ev.walk("VALARM")
    assert not [n for n in ev if n.startswith("X-MEETPLUGIN")]
    assert str(ev["CONFERENCE"]) == LINK and str(ev["LOCATION"]) == LINK
    assert all(
        "SCHEDULE-STATUS" not in a.params and "SCHEDULE-AGENT" not in a.params
        for a in ev["ATTENDEE"]
    )
    assert [str(tz["TZID"]) for tz in itip.walk("VTIMEZONE")] == ["Europe/Moscow"]


MOSCOW_ZONE = "\n".join(
    [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Moscow",
        "BEGIN:STANDARD",
        "DTSTART:19700101T000000",
        "TZOFFSETFROM:+0300",
        "TZOFFSETTO:+0300",
        "TZNAME:MSK",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]
)


@pytest.mark.parametrize("carried", [False, True], ids=["zone-from-database", "zone-in-event"])
def test_time_zones_come_before_the_events(carried):
    cal = cal_of(components=MOSCOW_ZONE if carried else "")
    _raw, msg = build(cal)
    for part in msg.walk():
        if part.get_content_type() in ("text/calendar", "application/ics"):
            payload = part.get_payload(decode=True).decode()
            names = [c.name for c in icalendar.Calendar.from_ical(payload).subcomponents]
            assert names == ["VTIMEZONE", "VEVENT"], part.get_content_type()
            assert payload.index("BEGIN:VTIMEZONE") < payload.index("BEGIN:VEVENT")


def test_request_carries_the_overrides_of_a_series():
    override = "\n".join(
        [
            "BEGIN:VEVENT",
            "UID:abc@test",
            "DTSTAMP:20261121T100000Z",
            "RECURRENCE-ID;TZID=Europe/Moscow:20261202T100000",
            "DTSTART;TZID=Europe/Moscow:20261202T120000",
            "DTEND;TZID=Europe/Moscow:20261202T130000",
            "SUMMARY:Перенесена",
            "END:VEVENT",
        ]
    )
    cal = cal_of("RRULE:FREQ=WEEKLY;COUNT=5", components=override)
    itip = imip.calendar(cal, "update", 2, ALICE, "ivan@example.com", NOW)
    assert len(itip.walk("VEVENT")) == 2
    assert {int(e["SEQUENCE"]) for e in itip.walk("VEVENT")} == {2}
    _raw, msg = build(cal)
    assert "Повторяется: еженедельно" in plain(msg)
    cancel = imip.calendar(cal, "cancel", 3, ALICE, "ivan@example.com", NOW)
    [ev] = cancel.walk("VEVENT")  # the whole series goes: the master says so
    assert str(ev["STATUS"]) == "CANCELLED" and "RECURRENCE-ID" not in ev


def test_cancel_and_uninvite():
    cal = cal_of("ATTENDEE;CN=Bob:mailto:bob@example.com", "STATUS:CONFIRMED")
    cancel = next(
        iter(imip.calendar(cal, "cancel", 1, ALICE, "bob@example.com", NOW).walk("VEVENT"))
    )
    assert str(cancel["STATUS"]) == "CANCELLED" and len(cancel["ATTENDEE"]) == 3
    uninvite = next(
        iter(imip.calendar(cal, "uninvite", 1, ALICE, "bob@example.com", NOW).walk("VEVENT"))
    )
    assert "STATUS" not in uninvite
    assert str(uninvite["ATTENDEE"]) == "mailto:bob@example.com"
    assert uninvite["ATTENDEE"].params["CN"] == "Bob"
    # an attendee no longer in the event is named alone
    gone = next(
        iter(imip.calendar(cal_of(), "uninvite", 1, ALICE, "carol@example.org", NOW).walk("VEVENT"))
    )
    assert str(gone["ATTENDEE"]) == "mailto:carol@example.org"


def test_organizer_is_added_when_the_event_has_none():
    cal = ical.parse(
        calendar_text().replace("ORGANIZER;CN=Алиса Смирнова:mailto:alice@example.com\r\n", "")
    )
    [ev] = imip.calendar(cal, "invite", 0, ALICE, "ivan@example.com", NOW).walk("VEVENT")
    assert str(ev["ORGANIZER"]) == "mailto:alice@example.com"
    assert ev["ORGANIZER"].params["CN"] == "Алиса Смирнова"


# --- which letters --------------------------------------------------------------------------


def view(
    recipients=("ivan@x.ru", "bob@x.ru"),
    content="c1",
    sequence=0,
    cancelled=False,
    organizer="alice@x.ru",
) -> View:
    return View(sequence, frozenset(recipients), organizer, content, cancelled)


def sent(recipients=("ivan@x.ru", "bob@x.ru"), content="c1", sequence=0, cancelled=False):
    return Sent(sequence, frozenset(recipients), content, cancelled)


def L(kind, seq, *who):  # noqa: N802
    return Letter(kind, seq, tuple(sorted(who)))


PLAN = {
    "create": (None, view(), [L("invite", 0, "ivan@x.ru", "bob@x.ru")], sent()),
    "create, client SEQUENCE": (
        None,
        view(sequence=2),
        [L("invite", 2, "ivan@x.ru", "bob@x.ru")],
        sent(sequence=2),
    ),
    "create, nobody invited": (None, view(()), [], sent(())),
    "create, cancelled": (None, view(cancelled=True), [], None),
    "saved again": (sent(), view(), [], sent()),
    "moved": (
        sent(),
        view(content="c2"),
        [L("update", 1, "ivan@x.ru", "bob@x.ru")],
        sent(content="c2", sequence=1),
    ),
    "moved, client raised SEQUENCE": (
        sent(sequence=1),
        view(content="c2", sequence=4),
        [L("update", 4, "ivan@x.ru", "bob@x.ru")],
        sent(content="c2", sequence=4),
    ),
    "moved, client SEQUENCE behind ours": (
        sent(sequence=3),
        view(content="c2", sequence=1),
        [L("update", 4, "ivan@x.ru", "bob@x.ru")],
        sent(content="c2", sequence=4),
    ),
    "SEQUENCE raised alone": (
        sent(),
        view(sequence=1),
        [L("update", 1, "ivan@x.ru", "bob@x.ru")],
        sent(sequence=1),
    ),
    "attendee added": (
        sent(),
        view(("ivan@x.ru", "bob@x.ru", "carol@x.ru")),
        [L("invite", 1, "carol@x.ru")],
        sent(("ivan@x.ru", "bob@x.ru", "carol@x.ru"), sequence=1),
    ),
    "attendee removed": (
        sent(),
        view(("ivan@x.ru",)),
        [L("uninvite", 1, "bob@x.ru")],
        sent(("ivan@x.ru",), sequence=1),
    ),
    "moved and attendees swapped": (
        sent(),
        view(("ivan@x.ru", "carol@x.ru"), content="c2"),
        [L("update", 1, "ivan@x.ru"), L("invite", 1, "carol@x.ru"), L("uninvite", 1, "bob@x.ru")],
        sent(("ivan@x.ru", "carol@x.ru"), content="c2", sequence=1),
    ),
    "cancelled": (
        sent(sequence=2),
        view(cancelled=True, sequence=2),
        [L("cancel", 3, "ivan@x.ru", "bob@x.ru")],
        sent(sequence=3, cancelled=True),
    ),
    "cancelled with nobody invited": (
        sent(()),
        view((), cancelled=True),
        [],
        sent((), cancelled=True),
    ),
    "cancelled again": (
        sent(sequence=3, cancelled=True),
        view(cancelled=True),
        [],
        sent(sequence=3, cancelled=True),
    ),
    "un-cancelled": (
        sent(sequence=3, cancelled=True),
        view(),
        [L("invite", 4, "ivan@x.ru", "bob@x.ru")],
        sent(sequence=4),
    ),
    "changed, nobody to tell": (sent(()), view((), content="c2"), [], sent((), content="c2")),
    "organizer's copy turned off": (
        sent(("ivan@x.ru", "alice@x.ru")),
        view(("ivan@x.ru",)),
        [],
        sent(("ivan@x.ru", "alice@x.ru")),
    ),
}


@pytest.mark.parametrize("case", PLAN)
def test_plan(case):
    before, now, letters, after = PLAN[case]
    assert mail_plan.plan(before, now) == (letters, after)


def test_plan_never_reuses_a_sequence_for_a_recipient():
    """Whatever happens, each round's letters carry a SEQUENCE above the last one sent."""
    state = None
    seen = set()
    rounds = [
        view(),
        view(content="c2"),
        view(("ivan@x.ru",), content="c2"),
        view(("ivan@x.ru", "bob@x.ru"), content="c2"),
        view(cancelled=True),
        view(),
    ]
    for now in rounds:
        letters, state = mail_plan.plan(state, now)
        for letter in letters:
            for who in letter.recipients:
                assert (letter.sequence, who) not in seen
                seen.add((letter.sequence, who))


def test_view_of_the_event():
    cal = cal_of(
        "ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:self@example.com",
        "ATTENDEE:mailto:not an address",
        "ATTENDEE:MAILTO:Bob@Example.com",
        "SEQUENCE:3",
    )
    v = mail_plan.view_of(cal, "alice@example.com", LINK, cancelled=False)
    assert v.recipients == {"ivan@example.com", "bob@example.com"}  # not the organizer
    assert v.skipped == ("mailto:not an address",) and v.sequence == 3
    assert mail_plan.view_of(
        cal, "alice@example.com", LINK, cancelled=False, send_to_organizer=True
    ).recipients == {"ivan@example.com", "bob@example.com", "alice@example.com"}


def test_content_follows_what_attendees_see_only():
    base = mail_plan.content_of(cal_of(), LINK)
    assert mail_plan.content_of(cal_of(), LINK) == base
    assert mail_plan.content_of(cal_of("DESCRIPTION:другое"), LINK) == base
    assert (
        mail_plan.content_of(
            ical.parse(calendar_text().replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")), LINK
        )
        == base
    )
    assert mail_plan.content_of(cal_of(), "https://meet.jit.si/Other") != base
    assert (
        mail_plan.content_of(cal_of(start="DTSTART;TZID=Europe/Moscow:20261125T110000"), LINK)
        != base
    )
    assert (
        mail_plan.content_of(cal_of(start="DTSTART;TZID=Asia/Omsk:20261125T100000"), LINK) != base
    )
    assert mail_plan.content_of(cal_of("EXDATE;TZID=Europe/Moscow:20261202T100000"), LINK) != base


@pytest.mark.parametrize(
    "lines,start,end,over",
    [
        (
            (),
            "DTSTART;TZID=Europe/Moscow:20261125T100000",
            "DTEND;TZID=Europe/Moscow:20261125T110000",
            False,
        ),
        (
            (),
            "DTSTART;TZID=Europe/Moscow:20261110T100000",
            "DTEND;TZID=Europe/Moscow:20261110T110000",
            True,
        ),
        (
            (),
            "DTSTART;TZID=Europe/Moscow:20261121T100000",
            "DTEND;TZID=Europe/Moscow:20261121T110000",
            False,
        ),  # earlier today: within the day's margin
        ((), "DTSTART;VALUE=DATE:20261101", "DTEND;VALUE=DATE:20261201", False),  # still going
        (("RRULE:FREQ=WEEKLY",), "DTSTART:20200101T100000Z", "DTEND:20200101T110000Z", False),
        (
            ("RRULE:FREQ=WEEKLY;UNTIL=20200301T000000Z",),
            "DTSTART:20200101T100000Z",
            "DTEND:20200101T110000Z",
            True,
        ),
        (
            ("RRULE:FREQ=WEEKLY;UNTIL=20270301T000000Z",),
            "DTSTART:20200101T100000Z",
            "DTEND:20200101T110000Z",
            False,
        ),
        (
            ("RRULE:FREQ=DAILY;COUNT=10",),
            "DTSTART;TZID=Europe/Moscow:20261101T100000",
            "DTEND;TZID=Europe/Moscow:20261101T110000",
            True,
        ),
        (
            ("RRULE:FREQ=DAILY;COUNT=30",),
            "DTSTART;TZID=Europe/Moscow:20261101T100000",
            "DTEND;TZID=Europe/Moscow:20261101T110000",
            False,
        ),
        (("RRULE:FREQ=SECONDLY;COUNT=5",), "DTSTART:20200101T100000Z", "", False),  # not expanded
    ],
)
def test_a_meeting_that_is_over(lines, start, end, over):
    assert mail_plan.is_over(cal_of(*lines, start=start, end=end), NOW) is over
