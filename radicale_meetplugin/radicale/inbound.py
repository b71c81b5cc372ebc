"""`meetplugin imip-inbox`: attendees' iMIP REPLY letters into the organizers' copies.

Reads one RFC 5322 message on stdin (an MTA pipe: a Postfix alias or
`mailbox_command`, procmail, a sieve `pipe`) or every unread message of a
Maildir. Each REPLY is checked twice: on its own (`itip.read_reply`: one UID,
one attendee, who is the letter's From address), then against the event
(`RadicaleCalendars.apply_answer`: a UID this server scheduled, the organizer's
copy there, the person one of its attendees, a SEQUENCE not older than what
they were sent). Only their PARTSTAT changes. Anything else is ignored and
logged at warning with the reason; nothing of the letter beyond addresses,
UID and the reason is logged.

It writes with Radicale's storage API under Radicale's own lock file, waiting
at most `--wait` seconds for it: a busy storage (or state file) makes it exit
75 (EX_TEMPFAIL), so the MTA keeps the letter and tries again. Exit 0: taken,
or ignored on purpose.
"""

from __future__ import annotations

import contextlib
import email
import fcntl
import logging
import mailbox
import os
import sqlite3
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses

import icalendar

from radicale_meetplugin.core import address, ical
from radicale_meetplugin.mail import itip

logger = logging.getLogger("radicale.meetplugin")

EX_OK, EX_TEMPFAIL = 0, 75
MAX_MESSAGE = 10 * 1024 * 1024  # bytes read from stdin: an invitation reply is small


class Busy(Exception):
    """The storage or the state file is in use longer than we wait: try again later."""


@contextlib.contextmanager
def storage_lock(folder: str, wait: float) -> Iterator[None]:
    """Radicale's exclusive storage lock (its lock file), waiting at most `wait` seconds."""
    with open(os.path.join(folder, ".Radicale.lock"), "w+") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy("Radicale's storage is locked") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def replies_in(message: EmailMessage) -> list[icalendar.Calendar]:
    """The iTIP REPLY objects a letter carries (its text/calendar parts, .ics attachments)."""
    found: list[icalendar.Calendar] = []
    seen: set[bytes] = set()
    for part in message.walk():
        kind = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if kind not in ("text/calendar", "application/ics") and not name.endswith(".ics"):
            continue
        try:
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes) or payload in seen:
                continue
            seen.add(payload)
            cal = ical.parse(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        except (ical.EventParseError, LookupError):
            continue
        if str(cal.get("METHOD", "")).upper() == "REPLY":
            found.append(cal)
    return found


def _header(message: EmailMessage, name: str) -> str:
    """A header's text on one line, "" when absent or unreadable."""
    try:
        return address.one_line(str(message.get(name, "")), 120)
    except Exception:  # a malformed header the stdlib's parser cannot read
        return ""


def sender_of(message: EmailMessage) -> str:
    """The one From address, normalized; "" when there is not exactly one usable."""
    values = message.get_all("From") or []
    people = getaddresses([str(v) for v in values])
    if len(people) != 1:
        return ""
    return address.normalize(people[0][1]) or ""


class Inbound:
    def __init__(self, calendars, folder: str, wait: float) -> None:
        self.calendars = calendars  # RadicaleCalendars over a plain multifilesystem storage
        self.folder = folder
        self.wait = wait

    def take(self, raw: bytes) -> None:
        """Process one letter; raises `Busy` when it must be tried again later."""
        if len(raw) > MAX_MESSAGE:
            logger.warning("meetplugin: imip-inbox: a letter is too big: ignored")
            return
        try:  # the stdlib's header parsers raise on some malformed headers
            message = email.message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            ref = _header(message, "Message-ID") or "a letter"
            replies = replies_in(message)
            sender = sender_of(message) if replies else ""
        except Exception as e:
            logger.warning(
                "meetplugin: imip-inbox: a letter that cannot be read: ignored (%s)",
                type(e).__name__,
            )
            return
        if not replies:
            logger.info("meetplugin: imip-inbox: %s: no iMIP REPLY in it, ignored", ref)
            return
        for cal in replies:
            try:
                answer = itip.read_reply(cal, sender)
                with storage_lock(self.folder, self.wait):
                    where = self.calendars.apply_answer(
                        answer.uid,
                        answer.attendee,
                        answer.answers,
                        answer.sequence,
                        self._organizer_user(answer),
                    )
            except (itip.Rejected, ical.EventParseError) as e:
                logger.warning(
                    "meetplugin: imip-inbox: %s from %s: ignored: %s", ref, sender or "?", e
                )
                continue
            except sqlite3.OperationalError as e:
                raise Busy(f"the state file is busy: {e}") from e
            logger.info(
                "meetplugin: imip-inbox: %s: %s answered %s%s",
                where or answer.uid,
                answer.attendee,
                "/".join(sorted(set(answer.answers.values()))),
                "" if where else " (already so)",
            )

    def _organizer_user(self, answer: itip.Reply) -> str | None:
        """The user here the reply is addressed to by its ORGANIZER (None: it names none).

        Another user's meeting with the same UID never takes it.
        """
        if not answer.organizer:
            return None
        user = self.calendars.user_of(answer.organizer)
        if user is None:
            raise itip.Rejected(f"the ORGANIZER {answer.organizer} is no user here")
        return str(user)

    def maildir(self, path: str) -> None:
        """Every unread letter of the Maildir, each marked read once processed."""
        box = mailbox.Maildir(path, create=False)
        for key in sorted(box.keys()):
            msg = box.get_message(key)
            if "S" in msg.get_flags():
                continue
            with box.get_file(key) as letter:  # no more than a letter may be (take says so)
                raw = letter.read(MAX_MESSAGE + 1)
            self.take(raw)  # Busy: the rest stays unread for the next run
            msg.set_subdir("cur")
            msg.add_flag("S")
            box[key] = msg
