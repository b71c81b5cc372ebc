"""The pure parts of server-side scheduling: who is local, statuses, copies, answers, replies."""

from __future__ import annotations

import datetime as dt
import email

import icalendar
import pytest

from radicale_meetplugin import config, providers
from radicale_meetplugin.core import address
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.mail import imip, itip
from radicale_meetplugin.mail import plan as mail_plan
from radicale_meetplugin.mail.mailing import Mailing
from radicale_meetplugin.mail.plan import Sent, View

NOW = dt.datetime(2030, 3, 1, 10, tzinfo=dt.UTC)
ALICE = imip.Person("alice@example.com", "Alice")


def load(tmp_path, text: str) -> config.Settings:
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    return config.load(str(path), providers.schemas())


def calendar(*lines: str, extra: str = "") -> icalendar.Calendar:
    text = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//t//EN",
            *([extra] if extra else []),
            "BEGIN:VEVENT",
            "UID:u1",
            "DTSTAMP:20300301T100000Z",
            "DTSTART:20300315T100000Z",
            "DTEND:20300315T110000Z",
            "SUMMARY:Plan",
            "ORGANIZER:mailto:alice@example.com",
            *lines,
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    return icalendar.Calendar.from_ical(text)


def people(cal: icalendar.Calendar) -> dict[str, object]:
    comp = next(iter(cal.walk("VEVENT")))
    found = comp.get("ATTENDEE")
    found = found if isinstance(found, list) else [found]
    return {str(a).removeprefix("mailto:"): a for a in found}


# --- who is a user here -------------------------------------------------------------


def test_login_candidates_reverse_explicit_addresses_logins_and_templates():
    explicit = {"bob": ("Robert@Corp.example",), "eve": ("eve@x.example",)}
    templates = ("{user}@example.com", "{user}.staff@example.org")
    assert address.login_candidates("robert@corp.example", explicit, templates) == [
        "bob",
        "robert@corp.example",
    ]
    assert address.login_candidates("dave@example.com", explicit, templates) == [
        "dave",
        "dave@example.com",
    ]
    assert "dave" in address.login_candidates("dave.staff@example.org", {}, templates)
    assert address.login_candidates("@example.com", {}, templates) == []
    assert address.login_candidates("a/b@example.com", {}, templates) == ["a/b@example.com"]


def test_logins_of_keeps_only_logins_whose_addresses_hold_it(tmp_path):
    settings = load(
        tmp_path,
        "[meetplugin]\nowner_addresses = {user}@example.com\n"
        "[owner_addresses]\nbob = robert@corp.example\n",
    )
    # explicit first; a login that is the address itself would be one too (if it exists)
    assert settings.logins_of("mailto:Robert@corp.example") == ("bob", "robert@corp.example")
    assert settings.logins_of("bob@example.com") == ("bob", "bob@example.com")
    assert settings.logins_of("carol@example.org") == ("carol@example.org",)  # login = address
    assert settings.logins_of("not an address") == ()
    for addr in ("robert@corp.example", "bob@example.com"):
        assert all(addr in settings.address_list(u) for u in settings.logins_of(addr))


# --- SCHEDULE-STATUS ------------------------------------------------------------------


def test_statuses_leave_client_scheduled_attendees_and_the_organizer_alone():
    cal = calendar(
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com",
        "ATTENDEE:mailto:bob@example.com",
        "ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:carol@example.org",
        "ATTENDEE:mailto:dave@example.org",
        "ATTENDEE:invalid",
    )
    status = {"bob@example.com": "1.2", "dave@example.org": "1.1", None: "3.7"}
    assert itip.mark_statuses(cal, "alice@example.com", status.get)
    who = people(cal)
    assert "SCHEDULE-STATUS" not in who["alice@example.com"].params
    assert who["bob@example.com"].params["SCHEDULE-STATUS"] == "1.2"
    assert "SCHEDULE-STATUS" not in who["carol@example.org"].params
    assert who["dave@example.org"].params["SCHEDULE-STATUS"] == "1.1"
    assert who["invalid"].params["SCHEDULE-STATUS"] == "3.7"
    assert not itip.mark_statuses(cal, "alice@example.com", status.get)  # idempotent


class FakeCalendars:
    """Users bob (with a calendar) and nora (without one)."""

    users = {"bob@example.com": "bob", "nora@example.com": "nora", "alice@example.com": "alice"}

    def user_of(self, addr):
        return self.users.get(addr)

    def has_calendar(self, user):
        return user != "nora"

    def deliver(self, key, addr, build):  # pragma: no cover - not called here
        raise AssertionError


@pytest.mark.parametrize("mail_on", [True, False])
def test_mailing_statuses_say_how_each_person_is_reached(tmp_path, mail_on):
    text = "[mail]\nenabled = true\nhost = smtp.example.com\nsender = c@example.com\n"
    settings = load(tmp_path, text if mail_on else "")
    mailing = Mailing(settings, store=None)
    mailing.calendars = FakeCalendars()
    cal = calendar(
        "ATTENDEE:mailto:bob@example.com",
        "ATTENDEE:mailto:nora@example.com",
        "ATTENDEE:mailto:carol@example.org",
    )
    key = EventKey("alice", "alice/calendar", "u1")
    assert mailing.mark_statuses(key, cal)
    who = people(cal)
    assert who["bob@example.com"].params["SCHEDULE-STATUS"] == "1.2"
    assert who["nora@example.com"].params["SCHEDULE-STATUS"] == "5.3"
    assert who["carol@example.org"].params["SCHEDULE-STATUS"] == ("1.1" if mail_on else "5.1")
    routes = {a: mailing._routes("alice", a) for a in who}
    assert routes["bob@example.com"] == ("local:bob@example.com",)
    assert routes["nora@example.com"] == ()
    assert routes["carol@example.org"] == (("carol@example.org",) if mail_on else ())


def test_scheduling_off_letters_and_statuses_are_as_before(tmp_path):
    """[mail] on, [scheduling] off: no SCHEDULE-STATUS, everyone mailed, no RSVP added."""
    from radicale_meetplugin.state.letters import Mail

    text = "[mail]\nenabled = true\nhost = smtp.example.com\nsender = c@example.com\n"
    mailing = Mailing(load(tmp_path, text), store=None)
    assert mailing.calendars is None
    cal = calendar("ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com")
    before = cal.to_ical()
    key = EventKey("alice", "alice/calendar", "u1")
    assert not mailing.mark_statuses(key, cal) and cal.to_ical() == before
    assert mailing._routes("alice", "bob@example.com") == ("bob@example.com",)
    mail = Mail(1, key, 0, "bob@example.com", "REQUEST", "invite", 1, before.decode(), "", 0, 0.0)
    _sender, letter = mailing.render(mail)
    parts = [
        part.get_payload(decode=True)
        for part in email.message_from_bytes(letter).walk()
        if not part.is_multipart()
    ]
    ics = b"".join(p for p in parts if b"BEGIN:VEVENT" in p)
    assert b"mailto:bob@example.com" in ics  # the calendar parts were read
    assert b"RSVP" not in ics and b"SCHEDULE-" not in ics


# --- the attendee's copy --------------------------------------------------------------


def test_attendee_copy_has_no_method_nor_bookkeeping_and_keeps_their_answer_and_alarm():
    cal = calendar(
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2:mailto:bob@example.com",
        "LOCATION:https://meet.jit.si/x",
        "X-MEETPLUGIN-PROVIDER:jitsi",
    )
    mine = calendar(
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT5M",
        "DESCRIPTION:soon",
        "END:VALARM",
    )
    copy = itip.attendee_copy(cal, "update", 3, ALICE, "bob@example.com", mine, NOW)
    text = copy.to_ical().decode()
    assert "METHOD" not in text and "X-MEETPLUGIN" not in text and "SCHEDULE-STATUS" not in text
    ev = next(iter(copy.walk("VEVENT")))
    assert int(ev["SEQUENCE"]) == 3 and str(ev["LOCATION"]) == "https://meet.jit.si/x"
    assert people(copy)["bob@example.com"].params["PARTSTAT"] == "ACCEPTED"
    assert [c.name for c in ev.subcomponents] == ["VALARM"]


def test_no_bookkeeping_parameter_reaches_a_copy_or_a_letter():
    """A pasted link's CONFERENCE carries our X-MEETPLUGIN-PASTED parameter at home only."""
    cal = calendar(
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "LOCATION:https://meet.jit.si/x",
        "CONFERENCE;VALUE=URI;FEATURE=AUDIO,VIDEO;LABEL=Jitsi;X-MEETPLUGIN-PASTED=TRUE:"
        "https://meet.jit.si/x",
    )
    copy = itip.attendee_copy(cal, "invite", 0, ALICE, "bob@example.com", None, NOW)
    letter = imip.calendar(cal, "invite", 0, ALICE, "bob@example.com", NOW, rsvp=True)
    for out in (copy, letter):
        text = out.to_ical().decode()
        assert "X-MEETPLUGIN" not in text, text
        assert "CONFERENCE;" in text and "LABEL=Jitsi" in text  # the link itself stays


def test_the_organizers_alarm_state_stays_home_and_the_attendee_keeps_theirs():
    """Thunderbird keeps when an alarm was dismissed or snoozed in the event itself."""
    cal = calendar(
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "X-MOZ-LASTACK:20300315T095000Z",
        "X-MOZ-SNOOZE-TIME:20300315T100500Z",
    )
    mine = calendar(
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
        "X-MOZ-LASTACK:20300301T080000Z",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT5M",
        "DESCRIPTION:soon",
        "END:VALARM",
    )
    letter = imip.calendar(cal, "update", 1, ALICE, "bob@example.com", NOW).to_ical().decode()
    assert "X-MOZ-LASTACK" not in letter and "X-MOZ-SNOOZE" not in letter
    copy = itip.attendee_copy(cal, "update", 1, ALICE, "bob@example.com", mine, NOW)
    ev = next(iter(copy.walk("VEVENT")))
    assert ev["X-MOZ-LASTACK"].to_ical() == b"20300301T080000Z"  # bob's own
    assert "X-MOZ-SNOOZE-TIME" not in ev


def test_a_cancellation_marks_the_copy_the_attendee_has():
    mine = calendar("ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com", "LOCATION:Room")
    now = calendar("LOCATION:Elsewhere")
    copy = itip.attendee_copy(now, "uninvite", 4, ALICE, "bob@example.com", mine, NOW)
    ev = next(iter(copy.walk("VEVENT")))
    assert str(ev["STATUS"]) == "CANCELLED" and int(ev["SEQUENCE"]) == 4
    assert str(ev["LOCATION"]) == "Room"  # what they had, cancelled


# --- answers ----------------------------------------------------------------------------


def test_answers_change_only_that_attendees_partstat_per_occurrence():
    organizer = calendar(
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2:mailto:bob@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org",
    )
    before = organizer.to_ical()
    answer = calendar("ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com")
    answers = itip.partstats(answer, "bob@example.com")
    assert answers == {"": "ACCEPTED"}
    assert itip.apply_partstats(organizer, "bob@example.com", answers)
    assert not itip.apply_partstats(organizer, "bob@example.com", answers)
    assert organizer.to_ical() == before.replace(
        b"PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2", b"PARTSTAT=ACCEPTED;SCHEDULE-STATUS=1.2"
    )
    # an answer for an occurrence the organizer has no override for changes nothing
    assert not itip.apply_partstats(
        organizer, "carol@example.org", {"20300322T100000Z": "DECLINED"}
    )


def reply_calendar(*attendees: str, uid2: str = "") -> icalendar.Calendar:
    events = [
        "\r\n".join(
            [
                "BEGIN:VEVENT",
                f"UID:{uid}",
                "DTSTAMP:20300301T100000Z",
                "SEQUENCE:2",
                *attendees,
                "END:VEVENT",
            ]
        )
        for uid in ("u1", *([uid2] if uid2 else []))
    ]
    text = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "METHOD:REPLY", *events]
        + ["END:VCALENDAR", ""]
    )
    return icalendar.Calendar.from_ical(text)


def test_a_reply_is_read_when_its_attendee_is_its_sender():
    cal = reply_calendar("ATTENDEE;PARTSTAT=DECLINED:mailto:Carol@Example.org")
    got = itip.read_reply(cal, "carol@example.org")
    assert (got.uid, got.attendee, got.sequence, got.answers) == (
        "u1",
        "carol@example.org",
        2,
        {"": "DECLINED"},
    )


@pytest.mark.parametrize(
    "cal, sender, reason",
    [
        (
            reply_calendar("ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org"),
            "m@x.org",
            "sender",
        ),
        (reply_calendar("ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org"), "", "sender"),
        (
            reply_calendar(
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org",
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
            ),
            "carol@example.org",
            "exactly one ATTENDEE",
        ),
        (
            reply_calendar("ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org", uid2="u2"),
            "carol@example.org",
            "one UID",
        ),
        (
            reply_calendar("ATTENDEE;PARTSTAT=MAYBE:mailto:carol@example.org"),
            "carol@example.org",
            "PARTSTAT",
        ),
        (calendar("ATTENDEE:mailto:carol@example.org"), "carol@example.org", "METHOD:REPLY"),
    ],
)
def test_a_reply_that_does_not_add_up_is_rejected(cal, sender, reason):
    with pytest.raises(itip.Rejected, match=reason):
        itip.read_reply(cal, sender)


# --- the plan, when a person is reached another way ---------------------------------------


def test_switching_a_person_to_their_calendar_here_sends_no_cancel():
    sent = Sent(0, frozenset({"bob@example.com", "carol@example.org"}), "c")
    now = View(0, frozenset({"local:bob@example.com", "carol@example.org"}), "alice@x.org", "c")
    letters, told = mail_plan.plan(sent, now)
    assert [(x.kind, x.recipients) for x in letters] == [("invite", ("local:bob@example.com",))]
    assert told is not None and told.recipients == now.recipients


@pytest.mark.parametrize(
    "options, bob, bob_status",
    [
        ("email_local = true\n", ("local:bob@example.com", "bob@example.com"), "1.2"),
        ("local_delivery = false\n", ("bob@example.com",), "1.1"),
    ],
)
def test_local_people_by_e_mail_too_or_only(tmp_path, options, bob, bob_status):
    mail = "[mail]\nenabled = true\nhost = smtp.example.com\nsender = c@example.com\n"
    settings = load(tmp_path, mail + "[scheduling]\nenabled = true\n" + options)
    mailing = Mailing(settings, store=None)
    mailing.calendars = FakeCalendars()
    assert mailing._routes("alice", "bob@example.com") == bob
    assert mailing._routes("bob", "bob@example.com") == ("bob@example.com",)  # own address
    cal = calendar("ATTENDEE:mailto:bob@example.com")
    mailing.mark_statuses(EventKey("alice", "alice/calendar", "u1"), cal)
    assert people(cal)["bob@example.com"].params["SCHEDULE-STATUS"] == bob_status
