"""A real Thunderbird invites people on our Radicale: who sends the invitations (not pure).

Thunderbird (Debian's package, headless, driven over Marionette) saves an event with
`jitsi` in Location and two attendees through its own transaction path, the one its event
dialog uses, so its own iTIP logic decides whether it e-mails the attendees. Its outgoing
mail and ours go to the same aiosmtpd on loopback, where the letters are told apart by
who sent them and how they are built: Thunderbird's come from the organizer's own address,
one letter for all attendees with an `invite.ics` attachment and Mozilla's PRODID; ours
from the plugin's sender, one per attendee, `Auto-Submitted`, with `event.ics`.

- Scheduling off (plain Radicale, as today): Thunderbird sends its own REQUEST and we send
  ours: two letters per attendee. Thunderbird mails the event as it reads it back after its
  save: with a link made inside the save (Jitsi) its letter has the link but none of our text;
  with a link that comes later (Telemost failing once) it has the keyword.
- Scheduling on (`[scheduling] enabled`): Radicale advertises `calendar-auto-schedule`,
  Thunderbird leaves the invitations to the server, and each attendee gets exactly one
  letter, ours, with the link (bob, a user of this Radicale, also finds the invitation in his
  calendar); moving the event sends one update each, deleting one CANCEL each.
"""

from __future__ import annotations

import re

import pytest
from harness import TOKEN, RadicaleServer, plugin_config
from smtp_inbox import Inbox, Letter
from thunderbird_support import Thunderbird, Unavailable

# The first test's set-up may install Debian's package (minutes on a fresh machine); the
# module itself takes about 20 s.
pytestmark = [pytest.mark.thunderbird, pytest.mark.timeout(900)]

ALICE = "alice@example.com"
SENDER = "calendar@example.com"
BOB, CAROL = "bob@example.com", "carol@example.org"
REALM = "Radicale - Password Required"  # Radicale's default [auth] realm
START, END = "20300315T070000Z", "20300315T080000Z"  # 10:00-11:00 in Moscow
MOVED_START, MOVED_END = "20300316T090000Z", "20300316T100000Z"


def mail_config(inbox: Inbox) -> str:
    return (
        "[mail]\nenabled = true\nhost = 127.0.0.1\n"
        f"port = {inbox.port}\nsecurity = none\nsender = {SENDER}\ntimeout = 2\n"
    )


# Scheduling off: the module's `radicale` is `make run`'s set-up (Jitsi by default) with mail.
@pytest.fixture(scope="module")
def radicale_config(telemost, inbox) -> str:
    return plugin_config(telemost.url) + mail_config(inbox)


@pytest.fixture(scope="module")
def scheduling_radicale(tmp_path_factory, telemost, inbox):
    """The same Radicale with `[scheduling] enabled`; bob, a user here, gets the invitation in
    his calendar and (`email_local`) by e-mail too, so that every attendee's one letter can be
    counted at the SMTP server."""
    config = (
        plugin_config(telemost.url)
        + mail_config(inbox)
        + "[scheduling]\nenabled = true\nemail_local = true\n"
    )
    server = RadicaleServer(
        tmp_path_factory.mktemp("scheduling"), config, env={"TELEMOST_TOKEN": TOKEN}
    ).start()
    server.ensure_user("alice")
    server.ensure_user("bob")
    yield server
    server.stop()
    assert "internal error" not in server.log and "Traceback" not in server.log, server.log[-3000:]
    assert TOKEN not in server.log, "a secret was logged"


@pytest.fixture(scope="module")
def thunderbird(tmp_path_factory, inbox):
    """One headless Thunderbird for the module, alice's identity sending to the inbox."""
    folder = tmp_path_factory.mktemp("thunderbird")
    try:
        client = Thunderbird(folder, inbox.port, email=ALICE, name="Alice").start()
    except Unavailable as e:
        pytest.skip(f"no Thunderbird: {e}")
    yield client
    client.stop()
    assert client.exit_code == 0, f"Thunderbird did not quit cleanly: {client.exit_code}"
    errors = [
        line
        for line in client.log.splitlines()
        if line.startswith("JavaScript error") and ("calendar" in line or "/Cal" in line)
    ]
    assert not errors, errors


def add_calendar(
    thunderbird: Thunderbird, radicale: RadicaleServer, offline_cache: bool = True
) -> dict:
    return thunderbird.add_caldav_calendar(
        f"{radicale.url}/alice/calendar/", "alice", "alice", REALM, offline_cache=offline_cache
    )


# --- telling the letters apart ----------------------------------------------------------


def from_thunderbird(letter: Letter) -> bool:
    """Thunderbird's own iTIP letter: sent as the organizer, `invite.ics`, Mozilla's PRODID."""
    names = {part.get_filename() for part in letter.message.walk()}
    return (
        letter.mail_from == ALICE
        and "invite.ics" in names
        and "Mozilla.org" in str(letter.calendar().get("PRODID"))
    )


def ours(letter: Letter) -> bool:
    names = {part.get_filename() for part in letter.message.walk()}
    return (
        letter.mail_from == SENDER
        and letter.message["Auto-Submitted"] == "auto-generated"
        and "event.ics" in names
    )


def split(inbox: Inbox, uid: str) -> tuple[list[Letter], list[Letter]]:
    """(ours, Thunderbird's) letters about the event; anything else fails the test."""
    letters = inbox.of(uid)
    mine = [letter for letter in letters if ours(letter)]
    theirs = [letter for letter in letters if from_thunderbird(letter)]
    assert len(mine) + len(theirs) == len(letters), [letter.mail_from for letter in letters]
    return mine, theirs


def one_each(letters: list[Letter], method: str) -> dict[str, Letter]:
    """Exactly one letter of `method` for each attendee (not the organizer)."""
    chosen = [letter for letter in letters if letter.method == method]
    recipients = sorted(r for letter in chosen for r in letter.rcpt_tos)
    assert recipients == sorted([BOB, CAROL]), (method, recipients)
    return {letter.rcpt_tos[0]: letter for letter in chosen}


def stored_location(radicale: RadicaleServer, uid: str) -> str:
    r = radicale.get("alice", f"alice/calendar/{uid}.ics")
    assert r.status_code == 200, r.status_code
    location = next(line for line in r.text.splitlines() if line.startswith("LOCATION:"))
    return location.removeprefix("LOCATION:")


def delivered_to_bob(radicale: RadicaleServer, uid: str, kind: str, mark: int) -> None:
    """Await the server's delivery into local bob's calendar (its outbox does it)."""
    radicale.wait_for_log(
        rf"{re.escape(uid)}: {kind} \(SEQUENCE \d+\) into the calendar of {re.escape(BOB)}: "
        "delivered",
        start=mark,
    )


def assert_our_invitation(letter: Letter, link: str, method: str = "REQUEST") -> None:
    assert letter.method == method
    assert str(letter.event()["LOCATION"]) == link
    assert link in letter.text()
    assert letter.message["Reply-To"].addresses[0].addr_spec == ALICE


# --- the tests --------------------------------------------------------------------------


def test_scheduling_off_thunderbird_sends_its_own_letter_and_we_ours(thunderbird, radicale, inbox):
    calendar = add_calendar(thunderbird, radicale)
    assert calendar["autoschedule"] is False  # plain Radicale: no calendar-auto-schedule

    uid = thunderbird.create_event(calendar["id"], "Планёрка", "jitsi", START, END, [BOB, CAROL])
    link = stored_location(radicale, uid)
    assert link.startswith("https://meet.jit.si/")

    inbox.wait_for(lambda: [len(side) for side in split(inbox, uid)] == [2, 1], timeout=60)
    mine, theirs = split(inbox, uid)
    for letter in one_each(mine, "REQUEST").values():
        assert_our_invitation(letter, link)
    # Thunderbird's: one letter to both attendees, from the organizer's own account
    (letter,) = theirs
    assert letter.method == "REQUEST"
    assert sorted(letter.rcpt_tos) == [BOB, CAROL]
    assert letter.message["From"].addresses[0].addr_spec == ALICE
    assert letter.message["Auto-Submitted"] is None
    assert "event.ics" not in {part.get_filename() for part in letter.message.walk()}
    # Thunderbird reads the event back after its PUT (our answer has no ETag when the plugin
    # rewrote it), so with a link made inside the save its iCalendar part carries the link;
    # its text does not: no join line, no service
    assert str(letter.event()["LOCATION"]) == link
    assert link not in letter.text() and "Jitsi" not in letter.text()
    # so each attendee holds two invitations to the same meeting
    for person in (BOB, CAROL):
        assert len([x for x in inbox.of(uid) if person in x.rcpt_tos]) == 2


def test_scheduling_off_a_late_link_thunderbirds_letter_has_the_keyword(
    thunderbird, radicale, inbox, telemost
):
    """Telemost fails once: the save is answered before the link exists, so the event
    Thunderbird reads back and mails still says `телемост`; ours waits for the link."""
    calendar = add_calendar(thunderbird, radicale)
    telemost.fail_next("POST", 503, {"error": "Unavailable", "description": "d", "message": "m"})
    mark = radicale.mark()
    uid = thunderbird.create_event(calendar["id"], "Созвон", "телемост", START, END, [BOB, CAROL])
    inbox.wait_for(lambda: len(split(inbox, uid)[1]) == 1, timeout=60)
    (theirs,) = split(inbox, uid)[1]
    assert str(theirs.event()["LOCATION"]) == "телемост"
    radicale.wait_for_log(f"{re.escape(uid)}: telemost conference attached", start=mark)
    link = stored_location(radicale, uid)
    assert link != "телемост"
    inbox.wait_for(lambda: len(split(inbox, uid)[0]) >= 2, timeout=60)
    for letter in one_each(split(inbox, uid)[0], "REQUEST").values():
        assert_our_invitation(letter, link)


# with the offline cache (the new-calendar wizard's default) and without it
@pytest.mark.parametrize("offline_cache", [True, False], ids=["cached", "uncached"])
def test_scheduling_on_each_attendee_gets_one_letter_ours(
    thunderbird, scheduling_radicale, inbox, offline_cache
):
    radicale = scheduling_radicale
    since = len(thunderbird.log)
    calendar = add_calendar(thunderbird, radicale, offline_cache)
    assert calendar["autoschedule"] is True, "Thunderbird did not see calendar-auto-schedule"

    # create: one invitation each, ours, with the link and the event
    mark = radicale.mark()
    uid = thunderbird.create_event(calendar["id"], "Планёрка", "jitsi", START, END, [BOB, CAROL])
    link = stored_location(radicale, uid)
    assert link.startswith("https://meet.jit.si/")
    inbox.wait_for(lambda: len(split(inbox, uid)[0]) >= 2, timeout=60)
    invitations = one_each(split(inbox, uid)[0], "REQUEST")
    for letter in invitations.values():
        assert_our_invitation(letter, link)
    # bob is a user here: the invitation is in his calendar too, with the link
    delivered_to_bob(radicale, uid, "invite", mark)
    assert link in radicale.get("bob", f"bob/calendar/{uid}.ics").text

    # move: one update each (a higher SEQUENCE, the new time)
    sequence = thunderbird.move_event(calendar["id"], uid, MOVED_START, MOVED_END)
    assert sequence >= 1
    inbox.wait_for(lambda: len(split(inbox, uid)[0]) >= 4, timeout=60)
    updates = [letter for letter in split(inbox, uid)[0] if letter.sequence >= 1]
    for letter in one_each(updates, "REQUEST").values():
        assert_our_invitation(letter, link)
        start = letter.event().decoded("DTSTART")
        assert start.strftime("%Y%m%dT%H%M%SZ") == MOVED_START

    # delete: one CANCEL each, and bob's copy cancelled
    mark = radicale.mark()
    thunderbird.delete_event(calendar["id"], uid)
    inbox.wait_for(lambda: len(split(inbox, uid)[0]) >= 6, timeout=60)
    one_each(split(inbox, uid)[0], "CANCEL")
    delivered_to_bob(radicale, uid, "cancel", mark)
    assert "STATUS:CANCELLED" in radicale.get("bob", f"bob/calendar/{uid}.ics").text

    # and Thunderbird sent nothing itself at any of the three steps: it left them to the
    # server (its iTIP e-mail transport was never asked; by now its letter of the first
    # step would long have arrived)
    mine, theirs = split(inbox, uid)
    assert theirs == []
    assert len(mine) == 6
    assert "sendItems: Preparing to send an invitation email" not in thunderbird.log[since:]
