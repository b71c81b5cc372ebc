"""Invitation e-mails end to end: a real Radicale, a real SMTP server on loopback.

Letters are parsed with the standard `email` package and `icalendar`. After a
save returns, every letter the save calls for is already in the state file's
queue (the Jitsi link is made inside the save; a Telemost link is awaited in
the log), so "nothing else was sent" is checked against that queue, not by
waiting for silence.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid

import icalendar
import pytest
from harness import TOKEN, RadicaleServer, event, plugin_config
from smtp_inbox import Inbox

CAL = "alice/calendar"
START, END = "20300315T100000", "20300315T110000"  # a Friday; Moscow is UTC+3 all year
ORGANIZER = "ORGANIZER;CN=Алиса Смирнова:mailto:alice@example.com"
IVAN = 'ATTENDEE;CN="Иванов, Иван";PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:ivan@example.com'
BOB = "ATTENDEE;CN=Bob Stone;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com"
CAROL = "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org"
CHAIR = "ATTENDEE;CN=Алиса Смирнова;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:alice@example.com"


def mail_config(inbox: Inbox, **mail: str) -> str:
    options = {
        "enabled": "true",
        "host": "127.0.0.1",
        "port": str(inbox.port),
        "security": "none",
        "sender": "calendar@example.com",
        "timeout": "2",
        **mail,
    }
    return "[mail]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())


@pytest.fixture(scope="module")
def radicale_config(telemost, inbox) -> str:
    return plugin_config(telemost.url, retry_initial="0.1", retry_max_delay="0.3") + mail_config(
        inbox
    )


def meeting(
    uid: str,
    *people: str,
    location: str = "онлайн",
    start: str = START,
    end: str = END,
    extra: str = "",
    **kw,
) -> str:
    return event(
        uid,
        location=location,
        start=start,
        end=end,
        description="Обсудим планы",
        extra="\n".join([ORGANIZER, *people, *([extra] if extra else [])]),
        **kw,
    )


def queued(radicale, uid: str) -> list[tuple]:
    """(sequence, recipient, method, kind, state) of every letter queued for the event."""
    db = sqlite3.connect(radicale.storage / ".meetplugin" / "records.sqlite")
    try:
        return db.execute(
            "SELECT sequence, recipient, method, kind, state FROM mails WHERE uid=? ORDER BY id",
            (uid,),
        ).fetchall()
    finally:
        db.close()


def stored(radicale, uid: str, user: str = "alice", cal: str = CAL) -> icalendar.Event:
    text = radicale.get(user, f"{cal}/{uid}.ics").text
    return next(iter(icalendar.Calendar.from_ical(text).walk("VEVENT")))


def by_recipient(letters) -> dict:
    out = {}
    for letter in letters:
        assert len(letter.rcpt_tos) == 1  # one letter per person
        assert letter.rcpt_tos[0] not in out, f"two letters for {letter.rcpt_tos[0]}"
        out[letter.rcpt_tos[0]] = letter
    return out


def new_uid() -> str:
    return f"{uuid.uuid4()}@mail"


# --- create -------------------------------------------------------------------------


def test_each_attendee_gets_one_invitation_with_the_link(radicale, inbox):
    uid = new_uid()
    r = radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid, IVAN, BOB, CHAIR))
    assert r.status_code == 201
    link = str(stored(radicale, uid)["LOCATION"])
    assert link.startswith("https://meet.jit.si/")
    letters = by_recipient(inbox.wait_letters(uid, 2))
    assert set(letters) == {"ivan@example.com", "bob@example.com"}  # not the organizer
    assert sorted(q[1] for q in queued(radicale, uid)) == sorted(letters)

    ivan = letters["ivan@example.com"]
    msg = ivan.message
    assert msg["Subject"] == "Приглашение на онлайн-встречу: Планёрка"
    assert msg["To"].addresses[0].display_name == "Иванов, Иван"
    assert msg["From"].addresses[0].addr_spec == "calendar@example.com"
    assert msg["From"].addresses[0].display_name == "Алиса Смирнова"
    assert msg["Reply-To"].addresses[0].addr_spec == "alice@example.com"
    assert ivan.mail_from == "calendar@example.com"
    assert msg.get_content_type() == "multipart/mixed"

    text = ivan.text()
    assert "Здравствуйте, Иванов, Иван!" in text
    assert "Алиса Смирнова приглашает вас на онлайн-встречу «Планёрка»." in text
    assert "пятница, 15 марта 2030, 10:00–11:00 (Europe/Moscow, UTC+03:00)" in text
    assert "Организатор: Алиса Смирнова <alice@example.com>" in text
    assert "Иванов, Иван <ivan@example.com>" in text and "Bob Stone <bob@example.com>" in text
    assert f"Присоединиться к встрече: {link}" in text
    assert "Сервис видеоконференции: Jitsi Meet" in text  # the service by name, as in the seeds
    assert "Обсудим планы" in text
    assert f'<a href="{link}"' in ivan.html() and "Присоединиться к встрече</a>" in ivan.html()
    assert ">Jitsi Meet</td>" in ivan.html()

    calendar_part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert calendar_part.get_param("method") == "REQUEST"
    attachment = next(p for p in msg.walk() if p.get_filename() == "event.ics")
    assert attachment.get_content_disposition() == "attachment"
    assert (
        icalendar.Calendar.from_ical(attachment.get_content()).to_ical()
        == ivan.calendar().to_ical()
    )

    itip = ivan.calendar()
    assert str(itip["METHOD"]) == "REQUEST"
    ev = ivan.event()
    assert str(ev["UID"]) == uid and int(ev["SEQUENCE"]) == 0
    assert str(ev["ORGANIZER"]) == "mailto:alice@example.com"
    assert {str(a) for a in ev["ATTENDEE"]} == {
        "mailto:ivan@example.com",
        "mailto:bob@example.com",
        "mailto:alice@example.com",
    }
    assert str(ev["LOCATION"]) == link and str(ev["CONFERENCE"]) == link
    assert link in str(ev["DESCRIPTION"])
    assert not [name for name in ev if name.startswith("X-MEETPLUGIN")]
    assert [tz["TZID"] for tz in itip.walk("VTIMEZONE")] == ["Europe/Moscow"]


def test_saving_again_sends_nothing(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, meeting(uid, IVAN))
    inbox.wait_letters(uid, 1)
    shown = radicale.get("alice", path)
    for _ in range(3):
        assert radicale.put("alice", path, shown.text).status_code == 204
    assert len(queued(radicale, uid)) == 1
    # a change the attendees do not see (PARTSTAT from a reply) sends nothing either
    cal = icalendar.Calendar.from_ical(shown.text)
    ev = next(iter(cal.walk("VEVENT")))
    ev["ATTENDEE"].params["PARTSTAT"] = "ACCEPTED"
    radicale.put("alice", path, cal.to_ical().decode())
    assert len(queued(radicale, uid)) == 1


def test_event_without_attendees_sends_nothing(radicale, inbox):
    uid = new_uid()
    radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid))
    assert queued(radicale, uid) == []


def test_time_is_shown_in_the_events_own_zone(radicale, inbox):
    uid = new_uid()
    radicale.put(
        "alice",
        f"{CAL}/{uid}.ics",
        meeting(
            uid, IVAN, tzid="Asia/Yekaterinburg", start="20300315T093000", end="20300315T103000"
        ),
    )
    [letter] = inbox.wait_letters(uid, 1)
    assert "пятница, 15 марта 2030, 09:30–10:30 (Asia/Yekaterinburg, UTC+05:00)" in letter.text()
    assert "Asia/Yekaterinburg" in [str(tz["TZID"]) for tz in letter.calendar().walk("VTIMEZONE")]


# --- changes ----------------------------------------------------------------------------


def test_moving_the_event_sends_an_update_with_a_higher_sequence(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, meeting(uid, IVAN, BOB))
    inbox.wait_letters(uid, 2)
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    ev = next(iter(cal.walk("VEVENT")))
    ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=15)
    ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=16)
    assert radicale.put("alice", path, cal.to_ical().decode()).status_code == 204
    letters = inbox.wait_letters(uid, 4)[2:]
    updates = by_recipient(letters)
    assert set(updates) == {"ivan@example.com", "bob@example.com"}
    for letter in updates.values():
        assert letter.method == "REQUEST" and letter.sequence == 1  # the client kept SEQUENCE 0
        assert letter.message["Subject"] == "Изменение онлайн-встречи: Планёрка"
        assert "15:00–16:00 (Europe/Moscow, UTC+03:00)" in letter.text()
    assert "SEQUENCE" not in stored(radicale, uid)  # the stored event is left as sent
    # A client that raises SEQUENCE itself (Thunderbird) is followed.
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    ev = next(iter(cal.walk("VEVENT")))
    ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=17)
    ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=18)
    ev.add("SEQUENCE", 5)
    radicale.put("alice", path, cal.to_ical().decode())
    assert {letter.sequence for letter in inbox.wait_letters(uid, 6)[4:]} == {5}
    assert len(queued(radicale, uid)) == 6


def test_an_added_attendee_alone_is_invited(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, meeting(uid, IVAN))
    inbox.wait_letters(uid, 1)
    text = radicale.get("alice", path).text.replace(
        "END:VEVENT", CAROL.replace("\n", "\r\n") + "\r\nEND:VEVENT"
    )
    radicale.put("alice", path, text)
    [first, added] = inbox.wait_letters(uid, 2)
    assert added.rcpt_tos == ["carol@example.org"]
    assert added.method == "REQUEST" and added.sequence == 1
    assert added.message["Subject"].startswith("Приглашение на онлайн-встречу")
    assert "Здравствуйте!" in added.text()
    assert len(queued(radicale, uid)) == 2  # Ivan heard nothing new


def test_a_removed_attendee_gets_a_cancel_and_the_others_nothing(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, meeting(uid, IVAN, BOB))
    inbox.wait_letters(uid, 2)
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    ev = next(iter(cal.walk("VEVENT")))
    ev["ATTENDEE"] = [a for a in ev["ATTENDEE"] if "bob@" not in str(a)]
    radicale.put("alice", path, cal.to_ical().decode())
    [removed] = inbox.wait_letters(uid, 3)[2:]
    assert removed.rcpt_tos == ["bob@example.com"]
    assert removed.method == "CANCEL" and removed.sequence == 1
    assert [str(a) for a in ical_list(removed.event(), "ATTENDEE")] == ["mailto:bob@example.com"]
    assert "STATUS" not in removed.event()  # only Bob is uninvited, the meeting stays
    assert removed.message["Subject"] == "Приглашение отозвано: Планёрка"
    assert "Присоединиться" not in removed.text()
    assert len(queued(radicale, uid)) == 3


def ical_list(ev, name):
    value = ev.get(name)
    return value if isinstance(value, list) else [value]


def test_cancelling_the_event_cancels_for_everyone(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, meeting(uid, IVAN, BOB))
    inbox.wait_letters(uid, 2)
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    next(iter(cal.walk("VEVENT")))["STATUS"] = "CANCELLED"
    radicale.put("alice", path, cal.to_ical().decode())
    cancels = by_recipient(inbox.wait_letters(uid, 4)[2:])
    assert set(cancels) == {"ivan@example.com", "bob@example.com"}
    for letter in cancels.values():
        assert letter.method == "CANCEL" and letter.sequence == 1
        assert str(letter.event()["STATUS"]) == "CANCELLED"
        assert letter.message["Subject"] == "Онлайн-встреча отменена: Планёрка"
        part = next(p for p in letter.message.walk() if p.get_content_type() == "text/calendar")
        assert part.get_param("method") == "CANCEL"
    # Deleting it afterwards tells nobody anything new.
    radicale.delete("alice", path)
    assert len(queued(radicale, uid)) == 4


def test_deleting_the_event_cancels_for_everyone(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, meeting(uid, IVAN, BOB))
    inbox.wait_letters(uid, 2)
    assert radicale.delete("alice", path).status_code == 200
    cancels = by_recipient(inbox.wait_letters(uid, 4)[2:])
    assert set(cancels) == {"ivan@example.com", "bob@example.com"}
    assert {(c.method, c.sequence) for c in cancels.values()} == {("CANCEL", 1)}
    assert "Планёрка" in cancels["bob@example.com"].text()


def test_moving_the_event_to_another_calendar_tells_nobody(radicale, inbox):
    s = radicale.session("alice")
    s.request("MKCALENDAR", f"{radicale.url}/alice/mailmoved/")
    uid = new_uid()
    radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid, IVAN))
    inbox.wait_letters(uid, 1)
    # Thunderbird moves by PUT there + DELETE here; WebDAV clients use MOVE.
    shown = radicale.get("alice", f"{CAL}/{uid}.ics").text
    radicale.put("alice", f"alice/mailmoved/{uid}.ics", shown)
    radicale.delete("alice", f"{CAL}/{uid}.ics")
    r = s.request(
        "MOVE",
        f"{radicale.url}/alice/mailmoved/{uid}.ics",
        headers={"Destination": f"{radicale.url}/{CAL}/{uid}.ics"},
    )
    assert r.status_code in (201, 204)
    assert len(queued(radicale, uid)) == 1
    radicale.delete("alice", f"{CAL}/{uid}.ics")  # the real delete does cancel
    assert [q[2] for q in queued(radicale, uid)] == ["REQUEST", "CANCEL"]


# --- who never gets letters ---------------------------------------------------------------


def test_an_attendee_copy_never_sends_letters(radicale, inbox):
    uid = new_uid()
    radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid, IVAN, "ATTENDEE:mailto:bob@example.com"))
    inbox.wait_letters(uid, 2)
    shown = radicale.get("alice", f"{CAL}/{uid}.ics").text
    # Bob's client stores his copy (with the link), edits it, then deletes it.
    assert radicale.put("bob", f"bob/calendar/{uid}.ics", shown).status_code == 201
    radicale.put("bob", f"bob/calendar/{uid}.ics", shown.replace("Обсудим", "Bob: обсудим"))
    assert radicale.delete("bob", f"bob/calendar/{uid}.ics").status_code == 200
    # ...and an invitation Bob receives with the keyword (not ours) is not one either.
    other = new_uid()
    radicale.put("bob", f"bob/calendar/{other}.ics", meeting(other, IVAN))
    assert len(queued(radicale, uid)) == 2 and queued(radicale, other) == []


def test_a_past_meeting_sends_nothing(radicale, inbox):
    uid = new_uid()
    radicale.put(
        "alice",
        f"{CAL}/{uid}.ics",
        meeting(uid, IVAN, start="20200315T100000", end="20200315T110000"),
    )
    radicale.delete("alice", f"{CAL}/{uid}.ics")
    assert queued(radicale, uid) == []


def test_summary_and_names_cannot_add_headers_or_recipients(radicale, inbox):
    uid = new_uid()
    evil = 'ATTENDEE;CN="Ivan^nBcc: spy@example.net":mailto:ivan@example.com'  # RFC 6868 ^n
    folded = "ATTENDEE:mailto:spy@example.net\r\n\tX-Injected: 1"  # unfolds into one bad value
    text = meeting(
        uid,
        evil,
        folded,
        "ATTENDEE:mailto:not an address",
        summary="Планёрка\\nBcc: spy@example.net",
    )
    assert radicale.put("alice", f"{CAL}/{uid}.ics", text).status_code == 201
    [ivan] = inbox.wait_letters(uid, 1)
    assert ivan.rcpt_tos == ["ivan@example.com"]
    assert [q[1] for q in queued(radicale, uid)] == ["ivan@example.com"]
    msg = ivan.message
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert msg["Subject"] == "Приглашение на онлайн-встречу: Планёрка Bcc: spy@example.net"
    assert [a.addr_spec for a in msg["To"].addresses] == ["ivan@example.com"]
    assert msg["To"].addresses[0].display_name == "Ivan Bcc: spy@example.net"
    assert b"\nBcc:" not in ivan.raw and b"\nX-Injected" not in ivan.raw
    radicale.wait_for_log(f"{uid}: no e-mail to .*not an address")


# --- at most once ---------------------------------------------------------------------


def test_simultaneous_saves_of_one_new_event_send_once(radicale, inbox):
    uid = new_uid()
    text = meeting(uid, IVAN, BOB)
    barrier = threading.Barrier(6)
    statuses = []

    def save():
        barrier.wait()
        statuses.append(radicale.put("alice", f"{CAL}/{uid}.ics", text).status_code)

    threads = [threading.Thread(target=save) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses)[0] == 201 and len(statuses) == 6
    by_recipient(inbox.wait_letters(uid, 2))
    assert len(queued(radicale, uid)) == 2


# --- Telemost: the link arrives after the provider answered -----------------------------


def test_telemost_invitation_carries_the_telemost_link(radicale, inbox, telemost):
    uid = new_uid()
    mark = radicale.mark()
    radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid, IVAN, location="телемост"))
    radicale.wait_for_log(f"{uid}: telemost conference attached", start=mark)
    conf_id = str(stored(radicale, uid)["X-MEETPLUGIN-CONFERENCE-ID"])
    link = telemost.conferences[conf_id]["join_url"]
    [letter] = inbox.wait_letters(uid, 1)
    assert str(letter.event()["LOCATION"]) == link
    assert f"Присоединиться к встрече: {link}" in letter.text()


def test_no_letter_while_the_link_is_not_there(radicale, inbox, telemost):
    telemost.fail_next(
        "POST", 403, {"error": "ApiRestrictedToOrganizations", "description": "d", "message": "m"}
    )
    uid = new_uid()
    mark = radicale.mark()
    radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid, IVAN, location="телемост"))
    radicale.wait_for_log(f"{uid}: telemost create done", start=mark)
    assert queued(radicale, uid) == []  # a failed conference is not announced


# --- other settings: English, From the organizer, a copy for the organizer -------------------


def test_english_letters_from_the_organizer_with_a_copy_for_them(tmp_path, telemost, inbox):
    server = RadicaleServer(
        tmp_path / "en",
        plugin_config(telemost.url, language="en")
        + mail_config(inbox, sender_policy="organizer", send_to_organizer="true", sender=""),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    try:
        server.ensure_user("alice")
        uid = new_uid()
        server.put("alice", f"{CAL}/{uid}.ics", meeting(uid, IVAN, location="online"))
        letters = by_recipient(inbox.wait_letters(uid, 2))
        assert set(letters) == {"ivan@example.com", "alice@example.com"}
        ivan = letters["ivan@example.com"]
        assert ivan.mail_from == "alice@example.com"
        assert str(ivan.message["From"]) == "Алиса Смирнова <alice@example.com>"
        assert ivan.message["Reply-To"] is None
        assert ivan.message["Subject"] == "Invitation to an online meeting: Планёрка"
        assert "Friday, 15 March 2030, 10:00–11:00 (Europe/Moscow, UTC+03:00)" in ivan.text()
        assert "Join the meeting: https://meet.jit.si/" in ivan.text()
        assert "Hello Алиса Смирнова," in letters["alice@example.com"].text()
    finally:
        server.stop()
    assert "Traceback" not in server.log
