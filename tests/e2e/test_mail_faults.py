"""SMTP faults and restarts: letters are retried, given up on, and never sent twice.

The SMTP server is real (aiosmtpd on loopback) and answers with the faults a
mail server gives: connection refused, 4xx (try later), 5xx (never), no answer
after the message. Each test checks what the server saw: how many attempts,
how many letters kept, and that the event was saved at once regardless.
"""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from harness import TOKEN, RadicaleServer, event, plugin_config
from smtp_inbox import Inbox
from test_e2e_mail import BOB, CAL, END, IVAN, ORGANIZER, START, mail_config

IVAN_ADDR, BOB_ADDR = "ivan@example.com", "bob@example.com"


def config(telemost, inbox: Inbox) -> str:
    return plugin_config(telemost.url, retry_initial="0.2", retry_max_delay="0.5") + mail_config(
        inbox, timeout="2"
    )


@pytest.fixture(scope="module")
def radicale_config(telemost, inbox) -> str:
    return config(telemost, inbox)


def meeting(uid: str, *people: str) -> str:
    return event(uid, location="jitsi", start=START, end=END, extra="\n".join([ORGANIZER, *people]))


def rows(radicale, uid: str) -> list[tuple]:
    """(recipient, state, tries) of the event's letters."""
    db = sqlite3.connect(radicale.storage / ".meetplugin" / "records.sqlite")
    try:
        return db.execute(
            "SELECT recipient, state, tries FROM mails WHERE uid=? ORDER BY id", (uid,)
        ).fetchall()
    finally:
        db.close()


def save(radicale, *people: str) -> str:
    uid = f"{uuid.uuid4()}@faults"
    r = radicale.put("alice", f"{CAL}/{uid}.ics", meeting(uid, *people))
    assert r.status_code == 201  # stored at once, whatever the SMTP server does
    assert "https://meet.jit.si/" in radicale.get("alice", f"{CAL}/{uid}.ics").text
    return uid


def test_refused_connection_is_retried_until_the_server_is_back(radicale, inbox):
    inbox.down()
    try:
        mark = radicale.mark()
        uid = save(radicale, IVAN)
        radicale.wait_for_log(
            rf"{uid}: REQUEST e-mail .* failed \(cannot connect .*"
            r"connection refused\), next try",
            start=mark,
        )
    finally:
        inbox.up()
    [letter] = inbox.wait_letters(uid, 1)
    assert letter.rcpt_tos == [IVAN_ADDR]
    radicale.wait_for_log(rf"{uid}: REQUEST e-mail \(SEQUENCE 0\) to {IVAN_ADDR} sent", start=mark)
    [(who, state, tries)] = rows(radicale, uid)
    assert (who, state) == (IVAN_ADDR, "sent") and tries >= 2


@pytest.mark.parametrize(
    "step,answer",
    [
        ("RCPT", "451 4.3.0 Mailbox busy, try later"),
        ("DATA", "452 4.3.1 Insufficient system storage"),
    ],
)
def test_a_4xx_answer_is_retried_and_delivered_once(radicale, inbox, step, answer):
    inbox.fail_next(step, answer, times=2)
    mark = radicale.mark()
    uid = save(radicale, IVAN)
    [letter] = inbox.wait_letters(uid, 1)
    radicale.wait_for_log(rf"{uid}: .* to {IVAN_ADDR} sent", start=mark)
    assert inbox.attempts[(step, IVAN_ADDR)] == 3  # two refusals, then taken
    assert len(inbox.of(uid)) == 1
    assert rows(radicale, uid) == [(IVAN_ADDR, "sent", 3)]
    assert answer.split(",")[0] in radicale.log


@pytest.mark.parametrize(
    "step,answer",
    [
        ("RCPT", "550 5.1.1 No such user"),
        ("DATA", "554 5.6.0 Message rejected as spam"),
    ],
)
def test_a_5xx_answer_is_not_retried_and_the_others_still_get_theirs(radicale, inbox, step, answer):
    inbox.fail_next(step, answer)
    mark = radicale.mark()
    uid = save(radicale, IVAN)  # one letter: it meets the fault
    radicale.wait_for_log(
        rf"{uid}: REQUEST e-mail .* to {IVAN_ADDR} not sent: .*" + answer.split()[0], start=mark
    )
    assert inbox.attempts[(step, IVAN_ADDR)] == 1
    assert rows(radicale, uid) == [(IVAN_ADDR, "failed", 1)]
    # An attendee added later is invited as usual; Ivan is not asked again.
    other = radicale.get("alice", f"{CAL}/{uid}.ics").text.replace(
        "END:VEVENT", BOB + "\r\nEND:VEVENT"
    )
    radicale.put("alice", f"{CAL}/{uid}.ics", other)
    [letter] = inbox.wait_letters(uid, 1)
    assert letter.rcpt_tos == [BOB_ADDR]
    assert inbox.attempts[(step, IVAN_ADDR)] == 1


def test_no_answer_after_the_message_is_never_sent_again(radicale, inbox):
    inbox.hold_next_data()  # the server takes the message and never answers
    mark = radicale.mark()
    uid = save(radicale, IVAN)
    radicale.wait_for_log(
        rf"{uid}: REQUEST e-mail .* to {IVAN_ADDR}: no answer after the "
        r"message was sent .*; not sent again",
        start=mark,
    )
    inbox.release.set()
    assert rows(radicale, uid) == [(IVAN_ADDR, "unknown", 1)]
    assert inbox.attempts[("DATA", IVAN_ADDR)] == 1


# --- restarts -------------------------------------------------------------------------


def start(folder, telemost, inbox) -> RadicaleServer:
    server = RadicaleServer(folder, config(telemost, inbox), env={"TELEMOST_TOKEN": TOKEN}).start()
    server.ensure_user("alice")
    return server


def test_a_letter_queued_before_a_crash_is_sent_once_after_the_restart(tmp_path, telemost):
    inbox = Inbox().start()
    server = start(tmp_path / "r", telemost, inbox)
    try:
        inbox.down()
        mark = server.mark()
        uid = save(server, IVAN, BOB)
        server.wait_for_log(rf"{uid}: REQUEST e-mail .* failed", start=mark)
        server.kill()
        inbox.up()
        server.start()
        letters = inbox.wait_letters(uid, 2)
        assert sorted(r for letter in letters for r in letter.rcpt_tos) == [BOB_ADDR, IVAN_ADDR]
        # Nothing new on a re-upload after another restart; a delete cancels once.
        server.stop()
        server.start()
        text = server.get("alice", f"{CAL}/{uid}.ics").text
        assert server.put("alice", f"{CAL}/{uid}.ics", text).status_code == 204
        assert [state for _who, state, _tries in rows(server, uid)] == ["sent", "sent"]
        server.delete("alice", f"{CAL}/{uid}.ics")
        cancels = inbox.wait_letters(uid, 4)[2:]
        assert {letter.method for letter in cancels} == {"CANCEL"}
        assert len(rows(server, uid)) == 4
    finally:
        server.stop()
        inbox.stop()
    assert "Traceback" not in server.log


def test_a_crash_during_data_does_not_send_the_letter_again(tmp_path, telemost):
    inbox = Inbox().start()
    server = start(tmp_path / "r", telemost, inbox)
    try:
        inbox.hold_next_data()
        uid = save(server, IVAN)
        inbox.wait_for(lambda: inbox.attempts[("DATA", IVAN_ADDR)] == 1)
        server.kill()  # the SMTP server may or may not have taken it: nobody can know
        inbox.release.set()
        mark = server.mark()
        server.start()
        server.wait_for_log(
            rf"{uid}: REQUEST e-mail .* to {IVAN_ADDR}: the sender stopped "
            r"while the SMTP server received it",
            start=mark,
        )
        assert rows(server, uid) == [(IVAN_ADDR, "unknown", 1)]
        assert inbox.attempts[("DATA", IVAN_ADDR)] == 1
    finally:
        server.stop()
        inbox.stop()
