"""Handing queued letters to the SMTP server: the outbox's handler for the letters' queue.

Each letter is built (`Mailing.render`) just before it is sent, outside any
lock. While the SMTP server answers 4xx or cannot be reached it is retried
with the outbox's backoff; a 5xx, a letter that cannot be built, or one queued
longer than `retry_for` ago is given up. One that may have been taken (its
sender stopped during DATA, or the connection broke after it) is never sent
again (see mailer.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from radicale_meetplugin.mail.mailer import LeaseLost, Mailer, MailError
from radicale_meetplugin.mail.mailing import Mailing
from radicale_meetplugin.state.letters import FAILED, SENT, UNKNOWN, Mail
from radicale_meetplugin.state.worker import Held, backoff

logger = logging.getLogger("radicale.meetplugin")


@dataclass
class Delivery:
    mailing: Mailing
    mailer: Mailer
    retry_initial: float
    retry_max_delay: float
    retry_for: float

    @property
    def lease(self) -> float:
        """Every SMTP step may take `timeout`: a letter's lease outlasts the slowest session."""
        return 10 * self.mailer.timeout + 30

    def __call__(self, mail: Mail, held: Held) -> None:
        what = (
            f"{mail.key.calendar}/{mail.key.uid}: {mail.method} e-mail (SEQUENCE "
            f"{mail.sequence}) to {mail.recipient}"
        )
        if time.time() - mail.created_at > self.retry_for:  # e.g. mail was off meanwhile
            held.finish(FAILED, "expired")
            logger.warning("meetplugin: %s: queued too long ago, not sent", what)
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
