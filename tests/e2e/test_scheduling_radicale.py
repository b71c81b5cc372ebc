"""Server-side scheduling (RFC 6638) end to end: a real Radicale, a real SMTP server.

alice (the organizer) invites bob, a user of the same Radicale, and carol, who
is not. With `[scheduling] enabled`, carol gets the letters, bob the invitation
in his calendar, alice's copy SCHEDULE-STATUS and the answers. Deliveries into
bob's calendar are made by the outbox after the save: they are awaited in the
log; letters are awaited at the SMTP server.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import icalendar
import pytest
from harness import event, plugin_config
from smtp_inbox import Inbox

CAL = "alice/calendar"
BOBCAL = "bob/calendar"
START, END = "20300315T100000", "20300315T110000"
ORGANIZER = "ORGANIZER;CN=Alice:mailto:alice@example.com"
CHAIR = "ATTENDEE;CN=Alice;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:alice@example.com"
BOB = "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com"
CAROL = "ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org"  # no RSVP: we add it


@pytest.fixture(scope="module")
def radicale_config(telemost, inbox: Inbox) -> str:
    mail = {
        "enabled": "true",
        "host": "127.0.0.1",
        "port": str(inbox.port),
        "security": "none",
        "sender": "calendar@example.com",
        "timeout": "2",
    }
    return (
        plugin_config(telemost.url, retry_initial="0.1", retry_max_delay="0.3")
        + "[mail]\n"
        + "".join(f"{k} = {v}\n" for k, v in mail.items())
        + "[scheduling]\nenabled = true\n"
    )


def meeting(uid: str, *people: str, location: str = "jitsi", extra: str = "", **kw) -> str:
    return event(
        uid,
        location=location,
        start=kw.pop("start", START),
        end=kw.pop("end", END),
        description="Обсудим планы",
        extra="\n".join([ORGANIZER, *people, *([extra] if extra else [])]),
        **kw,
    )


def new_uid() -> str:
    return f"{uuid.uuid4()}@sched"


def queued(radicale, uid: str) -> list[tuple]:
    """(sequence, recipient, method, kind, state) of every letter and delivery of the event."""
    db = sqlite3.connect(radicale.storage / ".meetplugin" / "records.sqlite")
    try:
        return db.execute(
            "SELECT sequence, recipient, method, kind, state FROM mails WHERE uid=? ORDER BY id",
            (uid,),
        ).fetchall()
    finally:
        db.close()


def stored(radicale, path: str, user: str = "alice") -> icalendar.Event:
    r = radicale.get(user, path)
    assert r.status_code == 200, (path, r.status_code)
    return next(iter(icalendar.Calendar.from_ical(r.text).walk("VEVENT")))


def attendees(ev) -> dict[str, object]:
    people = ev.get("ATTENDEE")
    people = people if isinstance(people, list) else [people]
    return {str(a).removeprefix("mailto:"): a for a in people}


def delivered(radicale, uid: str, kind: str, mark: int) -> None:
    radicale.wait_for_log(
        rf"{re.escape(uid)}: {kind} \(SEQUENCE \d+\) into the calendar of bob@example\.com: "
        "delivered",
        start=mark,
    )


def invite(radicale, inbox, uid: str, *people: str) -> str:
    mark = radicale.mark()
    path = f"{CAL}/{uid}.ics"
    assert radicale.put("alice", path, meeting(uid, *people)).status_code == 201
    if BOB in people:
        delivered(radicale, uid, "invite", mark)
    return path


# --- invitations ---------------------------------------------------------------------------


def test_one_letter_to_carol_none_to_bob_and_bob_has_it_in_his_calendar(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, CHAIR, BOB, CAROL)
    alice = stored(radicale, path)
    link = str(alice["LOCATION"])
    assert link.startswith("https://meet.jit.si/")
    [letter] = inbox.wait_letters(uid, 1)
    assert letter.rcpt_tos == ["carol@example.org"]
    assert letter.method == "REQUEST" and letter.sequence == 0
    assert f"Присоединиться к встрече: {link}" in letter.text()
    assert "Сервис видеоконференции: Jitsi Meet" in letter.text()
    assert any(p.get_filename() == "event.ics" for p in letter.message.walk())
    ev = letter.event()
    assert str(ev["LOCATION"]) == link
    assert str(attendees(ev)["carol@example.org"].params["RSVP"]) == "TRUE"
    assert "SCHEDULE-STATUS" not in letter.calendar().to_ical().decode()
    # bob: no e-mail, the invitation in his calendar, with the link, as an attendee copy
    assert sorted((q[1], q[2]) for q in queued(radicale, uid)) == [
        ("bob@example.com", "LOCAL"),
        ("carol@example.org", "REQUEST"),
    ]
    bob = stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")
    assert str(bob["LOCATION"]) == link and str(bob["CONFERENCE"]) == link
    assert str(bob["ORGANIZER"]) == "mailto:alice@example.com"
    assert not [name for name in bob if name.startswith("X-MEETPLUGIN")]
    assert "METHOD" not in radicale.get("bob", f"{BOBCAL}/{uid}.ics").text
    # SCHEDULE-STATUS on alice's attendees: bob delivered here, carol sent by mail
    people = attendees(alice)
    assert str(people["bob@example.com"].params["SCHEDULE-STATUS"]) == "1.2"
    assert str(people["carol@example.org"].params["SCHEDULE-STATUS"]) == "1.1"
    assert "SCHEDULE-STATUS" not in people["alice@example.com"].params
    assert len(inbox.of(uid)) == 1


TODOS_ONLY = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
<C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set>
</D:prop></D:set></C:mkcalendar>"""


def test_the_default_calendar_is_the_first_that_takes_events(radicale, inbox):
    r = radicale.session("bob").request(
        "MKCALENDAR", f"{radicale.url}/bob/a-tasks/", data=TODOS_ONLY.encode()
    )
    assert r.status_code == 201, r.text
    uid = new_uid()
    invite(radicale, inbox, uid, BOB)
    assert radicale.get("bob", f"bob/a-tasks/{uid}.ics").status_code == 404
    assert radicale.get("bob", f"{BOBCAL}/{uid}.ics").status_code == 200


def test_the_plugin_leaves_bobs_copy_alone_when_he_saves_it(radicale, inbox):
    uid = new_uid()
    invite(radicale, inbox, uid, BOB)
    text = radicale.get("bob", f"{BOBCAL}/{uid}.ics").text
    r = radicale.put("bob", f"{BOBCAL}/{uid}.ics", text)
    assert r.status_code == 204 and r.headers.get("ETag")  # stored as sent: not rewritten
    assert radicale.get("bob", f"{BOBCAL}/{uid}.ics").text == text
    assert "left alone" in radicale.log and f"bob/calendar/{uid}: ignore" in radicale.log


def test_move_sends_one_update_each_and_cancel_one_cancel_each(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    inbox.wait_letters(uid, 1)
    # move
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    ev = next(iter(cal.walk("VEVENT")))
    ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=15)
    ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=16)
    mark = radicale.mark()
    assert radicale.put("alice", path, cal.to_ical().decode()).status_code == 204
    delivered(radicale, uid, "update", mark)
    [_first, update] = inbox.wait_letters(uid, 2)
    assert update.rcpt_tos == ["carol@example.org"] and update.method == "REQUEST"
    assert update.sequence == 1
    bob = stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")
    assert int(bob["SEQUENCE"]) == 1 and bob["DTSTART"].dt.hour == 15
    # cancel
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    next(iter(cal.walk("VEVENT")))["STATUS"] = "CANCELLED"
    mark = radicale.mark()
    assert radicale.put("alice", path, cal.to_ical().decode()).status_code == 204
    delivered(radicale, uid, "cancel", mark)
    [cancel] = inbox.wait_letters(uid, 3)[2:]
    assert cancel.rcpt_tos == ["carol@example.org"] and cancel.method == "CANCEL"
    assert cancel.sequence == 2
    bob = stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")
    assert str(bob["STATUS"]) == "CANCELLED" and int(bob["SEQUENCE"]) == 2
    assert sorted((q[0], q[1], q[2]) for q in queued(radicale, uid)) == [
        (0, "bob@example.com", "LOCAL"),
        (0, "carol@example.org", "REQUEST"),
        (1, "bob@example.com", "LOCAL"),
        (1, "carol@example.org", "REQUEST"),
        (2, "bob@example.com", "LOCAL"),
        (2, "carol@example.org", "CANCEL"),
    ]
    assert len(inbox.of(uid)) == 3


def test_removing_bob_cancels_his_copy_and_tells_carol_nothing(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    inbox.wait_letters(uid, 1)
    cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    ev = next(iter(cal.walk("VEVENT")))
    ev["ATTENDEE"] = [a for a in ev["ATTENDEE"] if "bob@" not in str(a)]
    mark = radicale.mark()
    assert radicale.put("alice", path, cal.to_ical().decode()).status_code == 204
    delivered(radicale, uid, "uninvite", mark)
    bob = stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")
    assert str(bob["STATUS"]) == "CANCELLED" and int(bob["SEQUENCE"]) == 1
    assert sorted(q[:4] for q in queued(radicale, uid)) == [
        (0, "bob@example.com", "LOCAL", "invite"),
        (0, "carol@example.org", "REQUEST", "invite"),
        (1, "bob@example.com", "LOCAL", "uninvite"),
    ]


def test_deleting_the_event_cancels_bobs_copy(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB)
    mark = radicale.mark()
    assert radicale.delete("alice", path).status_code == 200
    delivered(radicale, uid, "cancel", mark)
    assert str(stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")["STATUS"]) == "CANCELLED"


def test_schedule_agent_client_gets_no_letter_and_no_delivery(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    people = [
        CAROL.replace("ATTENDEE;", "ATTENDEE;SCHEDULE-AGENT=CLIENT;"),
        BOB.replace("ATTENDEE;", "ATTENDEE;SCHEDULE-AGENT=CLIENT;"),
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:dave@example.org",
    ]
    assert radicale.put("alice", path, meeting(uid, *people)).status_code == 201
    [letter] = inbox.wait_letters(uid, 1)
    assert letter.rcpt_tos == ["dave@example.org"]
    assert [q[1] for q in queued(radicale, uid)] == ["dave@example.org"]
    assert radicale.get("bob", f"{BOBCAL}/{uid}.ics").status_code == 404
    people = attendees(stored(radicale, path))
    assert "SCHEDULE-STATUS" not in people["carol@example.org"].params  # left as the client sent
    assert "SCHEDULE-STATUS" not in people["bob@example.com"].params
    assert str(people["dave@example.org"].params["SCHEDULE-STATUS"]) == "1.1"


def test_a_meeting_without_a_conference_is_scheduled_too(radicale, inbox):
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    mark = radicale.mark()
    r = radicale.put("alice", path, meeting(uid, BOB, CAROL, location="Room 5"))
    assert r.status_code == 201 and not r.headers.get("ETag")  # SCHEDULE-STATUS written
    delivered(radicale, uid, "invite", mark)
    [letter] = inbox.wait_letters(uid, 1)
    assert letter.rcpt_tos == ["carol@example.org"] and "Присоединиться" not in letter.text()
    assert str(stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")["LOCATION"]) == "Room 5"


def test_a_slow_link_is_awaited_then_each_person_is_told_once(radicale, inbox, telemost):
    telemost.fail_next("POST", 503, {"error": "Unavailable", "description": "d", "message": "m"})
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    mark = radicale.mark()
    assert radicale.put("alice", path, meeting(uid, BOB, CAROL, location="телемост")).ok
    radicale.wait_for_log(f"{re.escape(uid)}: telemost conference attached", start=mark)
    delivered(radicale, uid, "invite", mark)
    conf_id = str(stored(radicale, path)["X-MEETPLUGIN-CONFERENCE-ID"])
    link = telemost.conferences[conf_id]["join_url"]
    [letter] = inbox.wait_letters(uid, 1)
    assert str(letter.event()["LOCATION"]) == link
    assert str(stored(radicale, f"{BOBCAL}/{uid}.ics", "bob")["LOCATION"]) == link
    assert sorted(q[1:3] for q in queued(radicale, uid)) == [
        ("bob@example.com", "LOCAL"),
        ("carol@example.org", "REQUEST"),
    ]
    people = attendees(stored(radicale, path))  # written with the pending note, kept
    assert str(people["carol@example.org"].params["SCHEDULE-STATUS"]) == "1.1"


def test_saving_the_organizers_copy_again_changes_nothing(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    inbox.wait_letters(uid, 1)
    shown = radicale.get("alice", path)
    r = radicale.put("alice", path, shown.text, **{"If-Match": shown.headers["ETag"]})
    assert r.status_code == 204 and r.headers.get("ETag") == shown.headers["ETag"]
    assert len(queued(radicale, uid)) == 2


# --- answers -----------------------------------------------------------------------------


def test_bob_accepts_in_his_calendar_and_alice_sees_it(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    before = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    bobpath = f"{BOBCAL}/{uid}.ics"
    text = radicale.get("bob", bobpath).text
    accepted = text.replace(
        "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com",
        "PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:bob@example.com",
    )
    assert accepted != text
    assert radicale.put("bob", bobpath, accepted).status_code == 204  # a raw CalDAV PUT
    after = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    assert str(
        attendees(next(iter(after.walk("VEVENT"))))["bob@example.com"].params["PARTSTAT"]
    ) == ("ACCEPTED")
    # nothing else of alice's copy changed
    for comp in before.walk("VEVENT"):
        attendees(comp)["bob@example.com"].params["PARTSTAT"] = "ACCEPTED"
    assert after.to_ical() == before.to_ical()
    assert len(inbox.of(uid)) <= 1 and len(queued(radicale, uid)) == 2  # no new round


def test_a_stranger_cannot_answer_for_bob(radicale, inbox):
    """alice saves an event naming herself as an attendee of bob's meeting: no write to bob."""
    uid = new_uid()
    mark = radicale.mark()
    r = radicale.put(
        "bob",
        f"{BOBCAL}/{uid}.ics",
        event(
            uid,
            location="Room",
            start=START,
            end=END,
            extra="ORGANIZER:mailto:bob@example.com\n"
            "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org",
        ),
    )
    assert r.status_code == 201
    radicale.wait_for_log(rf"{re.escape(uid)}: \d+ invitation e-mail", start=mark)
    forged = event(
        uid,
        location="Room",
        start=START,
        end=END,
        extra="ORGANIZER:mailto:bob@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org",
    )
    assert radicale.put("alice", f"{CAL}/{uid}.ics", forged).status_code == 201
    people = attendees(stored(radicale, f"{BOBCAL}/{uid}.ics", "bob"))
    assert str(people["carol@example.org"].params["PARTSTAT"]) == "NEEDS-ACTION"


# --- iMIP replies by e-mail -----------------------------------------------------------------


def reply(uid: str, who: str, sender: str, partstat: str = "ACCEPTED", sequence: int = 0) -> bytes:
    cal = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Mail client//EN",
            "METHOD:REPLY",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"SEQUENCE:{sequence}",
            "DTSTAMP:20300301T100000Z",
            f"DTSTART:{START}Z",
            "ORGANIZER:mailto:alice@example.com",
            f"ATTENDEE;PARTSTAT={partstat}:mailto:{who}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    msg = EmailMessage()
    msg["From"] = f"Someone <{sender}>"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "Accepted: Планёрка"
    msg["Message-ID"] = make_msgid()
    msg.set_content("Accepted")
    msg.add_alternative(cal, subtype="calendar", params={"method": "REPLY"})
    return bytes(msg)


def imip_inbox(radicale, message: bytes | None = None, *args: str) -> subprocess.CompletedProcess:
    """`meetplugin imip-inbox` as an MTA runs it; its stderr decoded."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "radicale_meetplugin.cli",
            "imip-inbox",
            "-C",
            str(radicale.folder / "radicale.conf"),
            *args,
        ],
        input=message or b"",
        capture_output=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )
    done.stderr = done.stderr.decode("utf-8", "replace")
    return done


def carol_status(radicale, path: str, user: str = "alice") -> str:
    return str(attendees(stored(radicale, path, user))["carol@example.org"].params["PARTSTAT"])


def test_carols_reply_by_mail_is_taken(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    inbox.wait_letters(uid, 1)
    before = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    done = imip_inbox(radicale, reply(uid, "carol@example.org", "carol@example.org"))
    assert done.returncode == 0, done.stderr
    assert carol_status(radicale, path) == "ACCEPTED"
    assert "carol@example.org answered ACCEPTED" in done.stderr
    after = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    for comp in before.walk("VEVENT"):  # nothing but carol's PARTSTAT changed
        attendees(comp)["carol@example.org"].params["PARTSTAT"] = "ACCEPTED"
    assert after.to_ical() == before.to_ical()
    assert len(inbox.of(uid)) == 1  # a reply sends nothing


@pytest.mark.parametrize(
    "case",
    ["wrong uid", "wrong sender", "someone else's status", "older sequence", "not an attendee"],
)
def test_forged_replies_change_nothing_and_are_logged(radicale, inbox, case):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    inbox.wait_letters(uid, 1)
    sequence = 0
    if case == "older sequence":  # moved: carol was sent SEQUENCE 1; a reply to 0 is stale
        cal = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
        ev = next(iter(cal.walk("VEVENT")))
        ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=15)
        ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=16)
        radicale.put("alice", path, cal.to_ical().decode())
        inbox.wait_letters(uid, 2)
    before = radicale.get("alice", path).text
    message = {
        "wrong uid": reply("unknown-" + uid, "carol@example.org", "carol@example.org"),
        "wrong sender": reply(uid, "carol@example.org", "mallory@example.net"),
        "someone else's status": reply(uid, "bob@example.com", "carol@example.org"),
        "older sequence": reply(uid, "carol@example.org", "carol@example.org", sequence=sequence),
        "not an attendee": reply(uid, "mallory@example.net", "mallory@example.net"),
    }[case]
    done = imip_inbox(radicale, message)
    assert done.returncode == 0, done.stderr  # taken by the MTA, ignored on purpose
    assert radicale.get("alice", path).text == before
    reason = {
        "wrong uid": "the UID is not a meeting scheduled here",
        "wrong sender": "the ATTENDEE is not the letter's sender",
        "someone else's status": "the ATTENDEE is not the letter's sender",
        "older sequence": "SEQUENCE 0 is older than 1",
        "not an attendee": "mallory@example.net is not an attendee of it",
    }[case]
    assert "WARNING" in done.stderr and reason in done.stderr, done.stderr


def test_a_maildir_is_read_once(radicale, inbox, tmp_path):
    import mailbox

    uid = new_uid()
    path = invite(radicale, inbox, uid, CAROL)
    inbox.wait_letters(uid, 1)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(reply(uid, "carol@example.org", "carol@example.org", partstat="TENTATIVE"))
    box.add(b"From: x@example.org\r\nSubject: hello\r\n\r\nnot a reply\r\n")
    done = imip_inbox(radicale, None, "--maildir", str(tmp_path / "Maildir"))
    assert done.returncode == 0, done.stderr
    assert carol_status(radicale, path) == "TENTATIVE"
    box = mailbox.Maildir(tmp_path / "Maildir", create=False)
    assert all("S" in box.get_message(k).get_flags() for k in box.keys())
    again = imip_inbox(radicale, None, "--maildir", str(tmp_path / "Maildir"))
    assert again.returncode == 0 and "TENTATIVE" not in again.stderr


def test_a_busy_storage_asks_the_mta_to_try_again(radicale, inbox):
    import fcntl

    uid = new_uid()
    path = invite(radicale, inbox, uid, CAROL)
    inbox.wait_letters(uid, 1)
    with open(radicale.storage / ".Radicale.lock", "w+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        done = imip_inbox(
            radicale, reply(uid, "carol@example.org", "carol@example.org"), "--wait", "0.5"
        )
    assert done.returncode == 75, done.stderr
    assert carol_status(radicale, path) == "NEEDS-ACTION"


# --- review: what an attendee or a letter may change, and odd letters -----------------------


def test_bobs_copy_changes_only_his_own_partstat_on_alices(radicale, inbox):
    """bob edits his copy: carol's answer, the time and the title too; only his answer counts."""
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    before = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    bobpath = f"{BOBCAL}/{uid}.ics"
    cal = icalendar.Calendar.from_ical(radicale.get("bob", bobpath).text)
    ev = next(iter(cal.walk("VEVENT")))
    people = attendees(ev)
    people["bob@example.com"].params["PARTSTAT"] = "DECLINED"
    people["carol@example.org"].params["PARTSTAT"] = "ACCEPTED"
    ev["SUMMARY"] = "Changed by bob"
    ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=6)
    ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=7)
    sent = cal.to_ical().decode()
    r = radicale.put("bob", bobpath, sent)
    assert r.status_code == 204 and r.headers.get("ETag")  # his copy stored as he sent it
    mine = icalendar.Calendar.from_ical(radicale.get("bob", bobpath).text)
    assert mine.to_ical() == icalendar.Calendar.from_ical(sent).to_ical()
    after = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    for comp in before.walk("VEVENT"):
        attendees(comp)["bob@example.com"].params["PARTSTAT"] = "DECLINED"
    assert after.to_ical() == before.to_ical()


def test_bob_cannot_answer_for_carol_with_a_copy_of_his_own(radicale, inbox):
    """bob PUTs alice's UID into his calendar naming only carol, accepted: nothing changes."""
    uid = new_uid()
    path = invite(radicale, inbox, uid, CAROL)
    before = radicale.get("alice", path).text
    forged = meeting(uid, CAROL.replace("NEEDS-ACTION", "ACCEPTED"), location="Room")
    assert radicale.put("bob", f"{BOBCAL}/{uid}.ics", forged).status_code == 201
    assert radicale.get("alice", path).text == before


def test_an_answer_to_a_meeting_without_organizer_is_taken(radicale, inbox):
    """alice's client wrote no ORGANIZER (she is the owner): bob's copy names her; he accepts."""
    uid = new_uid()
    path = f"{CAL}/{uid}.ics"
    mark = radicale.mark()
    text = event(uid, location="Room", start=START, end=END, extra=BOB)
    assert radicale.put("alice", path, text).status_code == 201
    delivered(radicale, uid, "invite", mark)
    bobpath = f"{BOBCAL}/{uid}.ics"
    mine = radicale.get("bob", bobpath).text
    assert "mailto:alice@example.com" in mine
    accepted = mine.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
    assert accepted != mine
    assert radicale.put("bob", bobpath, accepted).status_code == 204
    bob = attendees(stored(radicale, path))["bob@example.com"]
    assert str(bob.params["PARTSTAT"]) == "ACCEPTED"


def test_a_reply_changes_only_the_partstat_not_the_time_or_title(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, CAROL)
    inbox.wait_letters(uid, 1)
    before = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    message = reply(uid, "carol@example.org", "carol@example.org").replace(
        f"DTSTART:{START}Z".encode(),
        b"DTSTART:20300316T050000Z\r\nSUMMARY:Hijacked\r\nLOCATION:https://evil.example/x",
    )
    assert b"Hijacked" in message
    done = imip_inbox(radicale, message)
    assert done.returncode == 0, done.stderr
    after = icalendar.Calendar.from_ical(radicale.get("alice", path).text)
    for comp in before.walk("VEVENT"):
        attendees(comp)["carol@example.org"].params["PARTSTAT"] = "ACCEPTED"
    assert after.to_ical() == before.to_ical()


def test_a_reply_naming_two_attendees_changes_nothing(radicale, inbox):
    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    inbox.wait_letters(uid, 1)
    before = radicale.get("alice", path).text
    message = reply(uid, "carol@example.org", "carol@example.org").replace(
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org",
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org\r\n"
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
    )
    done = imip_inbox(radicale, message)
    assert done.returncode == 0, done.stderr
    assert radicale.get("alice", path).text == before
    assert "WARNING" in done.stderr and "exactly one ATTENDEE" in done.stderr


def test_with_the_caldav_library_bob_finds_his_invitation_and_accepts(radicale, inbox):
    """As a python `caldav` user: the copy is in bob's default calendar, not his inbox."""
    import caldav
    from harness import USERS

    uid = new_uid()
    path = invite(radicale, inbox, uid, BOB, CAROL)
    client = caldav.DAVClient(url=f"{radicale.url}/", username="bob", password=USERS["bob"])
    principal = client.principal()
    assert principal.calendar_user_address_set()[0] == "mailto:bob@example.com"
    [default] = [c for c in principal.calendars() if str(c.url).rstrip("/").endswith(BOBCAL)]
    copy = default.event_by_uid(uid)
    assert "meet.jit.si" in str(copy.icalendar_component["LOCATION"])
    copy.change_attendee_status(partstat="ACCEPTED")  # found by his address set
    copy.save()
    bob = attendees(stored(radicale, path))["bob@example.com"]
    assert str(bob.params["PARTSTAT"]) == "ACCEPTED"


def test_a_reply_goes_to_its_organizers_meeting_not_to_one_with_the_same_uid(radicale, inbox):
    """alice copies the UID of bob's meeting into one of hers: carol's reply to bob is bob's."""
    uid = new_uid()
    bobs = f"{BOBCAL}/{uid}.ics"
    organized_by_bob = meeting(uid, CAROL).replace(ORGANIZER, "ORGANIZER:mailto:bob@example.com")
    assert radicale.put("bob", bobs, organized_by_bob).status_code == 201
    inbox.wait_letters(uid, 1)
    alices = f"{CAL}/{uid}.ics"  # "alice" sorts before "bob"
    assert radicale.put("alice", alices, meeting(uid, CAROL, location="Room")).status_code == 201
    inbox.wait_letters(uid, 2)
    before = radicale.get("alice", alices).text
    message = reply(uid, "carol@example.org", "carol@example.org").replace(
        b"ORGANIZER:mailto:alice@example.com", b"ORGANIZER:mailto:bob@example.com"
    )
    done = imip_inbox(radicale, message)
    assert done.returncode == 0, done.stderr
    assert radicale.get("alice", alices).text == before
    assert carol_status(radicale, bobs, "bob") == "ACCEPTED"


ODD_LETTERS = {
    "an unclosed Message-ID": b"Message-ID: <\r\nFrom: carol@example.org\r\n",
    "an unclosed domain literal": b"From: carol@[\r\n",
    "an 8-bit From": b"From: \xff\xfe <carol@example.org>\r\nSubject: \xc3\x28\r\n",
}


@pytest.mark.parametrize("case", sorted(ODD_LETTERS))
def test_a_letter_with_odd_headers_is_ignored_with_a_clear_message(radicale, inbox, case):
    raw = ODD_LETTERS[case] + b"Content-Type: text/plain\r\n\r\nhello\r\n"
    done = imip_inbox(radicale, raw)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_an_odd_letter_in_a_maildir_does_not_hold_back_the_others(radicale, inbox, tmp_path):
    import mailbox

    uid = new_uid()
    path = invite(radicale, inbox, uid, CAROL)
    inbox.wait_letters(uid, 1)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(b"Message-ID: <\r\nFrom: x@example.org\r\n\r\nodd\r\n")  # sorted first or not
    box.add(reply(uid, "carol@example.org", "carol@example.org", partstat="DECLINED"))
    done = imip_inbox(radicale, None, "--maildir", str(tmp_path / "Maildir"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert carol_status(radicale, path) == "DECLINED"
    box = mailbox.Maildir(tmp_path / "Maildir", create=False)
    assert all("S" in box.get_message(k).get_flags() for k in box.keys())


def test_a_huge_letter_is_ignored_unparsed(radicale, inbox, tmp_path):
    import mailbox

    from radicale_meetplugin.radicale import inbound

    big = b"From: carol@example.org\r\n\r\n" + b"x" * (inbound.MAX_MESSAGE + 10)
    done = imip_inbox(radicale, big)
    assert done.returncode == 0 and "too big" in done.stderr, done.stderr
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(big)
    done = imip_inbox(radicale, None, "--maildir", str(tmp_path / "Maildir"))
    assert done.returncode == 0 and "too big" in done.stderr, done.stderr
