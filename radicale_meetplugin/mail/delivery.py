"""Handing queued letters to the SMTP server: the outbox's handler for the letters' queue.

Each letter is built (`Mailing.render`) just before it is sent, outside any
lock. While the SMTP server answers 4xx or cannot be reached it is retried
with the outbox's backoff; a 5xx, a letter that cannot be built, or one queued
longer than `retry_for` ago is given up. One that may have been taken (its
sender stopped during DATA, or the connection broke after it) is never sent
again (see mailer.py).

A `LOCAL` row (scheduling: an attendee who is a user of this server) is not a
letter: the attendee's copy of the event is written into their calendar through
the shell (`Calendars.deliver`, under the store's lock). That write can be done
again without harm, so an interrupted one is simply done again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from radicale_meetplugin.mail import itip
from radicale_meetplugin.mail.mailer import LeaseLost, Mailer, MailError
from radicale_meetplugin.mail.mailing import DeliveryError, Mailing
from radicale_meetplugin.state.letters import FAILED, SENT, UNKNOWN, Mail
from radicale_meetplugin.state.worker import Held, backoff

logger = logging.getLogger("radicale.meetplugin")


@dataclass
class Delivery:
    mailing: Mailing
    mailer: Mailer | None
    retry_initial: float
    retry_max_delay: float
    retry_for: float

    @property
    def lease(self) -> float:
        """Every SMTP step may take `timeout`: a letter's lease outlasts the slowest session."""
        return 10 * (self.mailer.timeout if self.mailer is not None else 3) + 30

    def __call__(self, mail: Mail, held: Held) -> None:
        local = mail.method == itip.LOCAL
        what = (
            f"{mail.key.calendar}/{mail.key.uid}: {mail.kind} (SEQUENCE {mail.sequence}) "
            f"into the calendar of {mail.recipient}"
            if local
            else f"{mail.key.calendar}/{mail.key.uid}: {mail.method} e-mail (SEQUENCE "
            f"{mail.sequence}) to {mail.recipient}"
        )
        if time.time() - mail.created_at > self.retry_for:  # e.g. mail was off meanwhile
            held.finish(FAILED, "expired")
            logger.warning("meetplugin: %s: queued too long ago, not sent", what)
            return
        if local:
            self._deliver(mail, held, what)
            return
        if self.mailer is None:
            held.finish(FAILED, "e-mails are off")
            logger.warning("meetplugin: %s: not sent, [mail] is off", what)
            return
        if mail.interrupted_in_data:
            held.finish(UNKNOWN, "interrupted during DATA")
            logger.warning(
                "meetplugin: %s: the sender stopped while the SMTP server "
                "received it; it may have arrived and is not sent again",
                what,
            )
            return
        try:
            sender, message = self.mailing.render(mail)
        except Exception as e:  # the same text would fail again: not retried
            held.finish(FAILED, f"cannot build the letter: {e}")
            logger.warning("meetplugin: %s: cannot build the letter: %s", what, e)
            return
        try:
            self.mailer.send(sender, mail.recipient, message, held.start)
        except LeaseLost:
            return  # another worker took the letter over: it decides
        except MailError as e:
            self._failed(mail, what, e, held)
            return
        held.finish(SENT)
        logger.info("meetplugin: %s sent", what)

    def _deliver(self, mail: Mail, held: Held, what: str) -> None:
        calendars = self.mailing.calendars
        if calendars is None:
            held.finish(FAILED, "scheduling is off")
            logger.warning("meetplugin: %s: not delivered, scheduling is off", what)
            return
        try:  # no `held.start()`: writing the same copy twice does no harm
            where = calendars.deliver(
                mail.key,
                mail.recipient,
                lambda existing: self.mailing.attendee_copy(mail, existing),
            )
        except DeliveryError as e:
            held.finish(FAILED, str(e))
            logger.warning("meetplugin: %s: not delivered: %s", what, e)
            return
        except Exception as e:  # the storage is busy or broken: again later
            delay = backoff(mail.tries, self.retry_initial, self.retry_max_delay)
            held.retry(delay, f"{type(e).__name__}: {e}")
            logger.info("meetplugin: %s failed (%s), next try in %.1f s", what, e, delay)
            return
        held.finish(SENT)
        logger.info("meetplugin: %s: delivered (%s)", what, where)

    def _failed(self, mail: Mail, what: str, error: MailError, held: Held) -> None:
        if error.unknown:
            held.finish(UNKNOWN, str(error))
            logger.warning("meetplugin: %s: %s; not sent again", what, error)
            return
        if error.temporary and time.time() - mail.created_at <= self.retry_for:
            delay = backoff(mail.tries, self.retry_initial, self.retry_max_delay)
            held.retry(delay, str(error))
            logger.info("meetplugin: %s failed (%s), next try in %.1f s", what, error, delay)
            return
        held.finish(FAILED, str(error))
        logger.warning(
            "meetplugin: %s not sent%s: %s",
            what,
            "" if not error.temporary else f" after {mail.tries + 1} tries",
            error,
        )
