"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every letter, for the mail tests.

Faults are queued per SMTP step: `fail_next("RCPT", "451 4.3.0 try later")` answers
the next RCPT TO with that line; `hold_next_data()` takes the message but gives no
answer until released (the sender times out: "did it arrive?"); `down()`/`up()`
close and reopen the port (connection refused meanwhile). Tests await letters with
`wait_for`, which wakes on each one: no sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import email
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

import icalendar
from aiosmtpd.controller import Controller


@dataclass
class Letter:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    def calendar(self) -> icalendar.Calendar:
        part = next(p for p in self.message.walk() if p.get_content_type() == "text/calendar")
        return icalendar.Calendar.from_ical(part.get_content())

    def event(self) -> icalendar.Event:
        return next(iter(self.calendar().walk("VEVENT")))

    @property
    def uid(self) -> str:
        return str(self.event()["UID"])

    @property
    def method(self) -> str:
        return str(self.calendar()["METHOD"])

    @property
    def sequence(self) -> int:
        return int(self.event()["SEQUENCE"])

    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content().replace("\r\n", "\n")

    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = self.inbox._attempt("RCPT", address)
        if fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = self.inbox._attempt("DATA", ",".join(envelope.rcpt_tos))
        if fault == "hold":
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.inbox.release.wait)
            return "250 OK (too late)"
        if fault:
            return fault
        self.inbox._keep(envelope)
        return "250 OK"


class Inbox:
    def __init__(self, **smtp_options) -> None:
        self.letters: list[Letter] = []
        self.attempts: collections.Counter = collections.Counter()  # (step, recipient) -> n
        self.faults: dict[str, list[str]] = collections.defaultdict(list)
        self.release = threading.Event()
        self.port = 0
        self.options = smtp_options
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    # --- the server -----------------------------------------------------------------

    def start(self) -> Inbox:
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **self.options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def down(self) -> None:
        """Close the port: connections are refused until `up()`."""
        self.stop()
        self.release = threading.Event()

    def up(self) -> None:
        self.start()

    # --- faults ---------------------------------------------------------------------

    def fail_next(self, step: str, answer: str, times: int = 1) -> None:
        with self._changed:
            self.faults[step].extend([answer] * times)

    def hold_next_data(self) -> None:
        self.fail_next("DATA", "hold")

    def _attempt(self, step: str, who: str) -> str:
        with self._changed:
            self.attempts[(step, who)] += 1
            self._changed.notify_all()
            return self.faults[step].pop(0) if self.faults[step] else ""

    # --- what arrived ---------------------------------------------------------------

    def _keep(self, envelope) -> None:
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        message = email.message_from_bytes(raw, policy=policy.default)
        with self._changed:
            self.letters.append(Letter(envelope.mail_from, list(envelope.rcpt_tos), raw, message))
            self._changed.notify_all()

    def of(self, uid: str) -> list[Letter]:
        with self._changed:
            letters = list(self.letters)
        return [letter for letter in letters if letter.uid == uid]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        """Wait until `condition()` holds; it is checked after each SMTP step."""
        done = threading.Event()
        timer = threading.Timer(timeout, lambda: (done.set(), self._poke()))
        timer.start()
        try:
            with self._changed:
                while not condition():
                    if done.is_set():
                        raise AssertionError(f"the SMTP server did not see it in {timeout} s")
                    self._changed.wait()
        finally:
            timer.cancel()

    def wait_letters(self, uid: str, count: int, timeout: float = 30) -> list[Letter]:
        self.wait_for(lambda: len(self._unlocked_of(uid)) >= count, timeout)
        return self.of(uid)

    def _unlocked_of(self, uid: str) -> list[Letter]:
        return [letter for letter in self.letters if letter.uid == uid]

    def _poke(self) -> None:
        with self._changed:
            self._changed.notify_all()
