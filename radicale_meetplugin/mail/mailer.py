"""Sending one letter over SMTP (smtplib): STARTTLS, TLS or plain, with a login.

Errors come back as `MailError`, sorted for the outbox:

- the server could not be reached or talked to (refused connection, timeout,
  TLS failure, a 4xx or 5xx greeting, STARTTLS or AUTH missing or refused):
  temporary. These are about the server or its settings, not about the letter,
  so letters wait (with backoff, up to `retry_for`) for the admin to fix them;
- a 4xx answer to MAIL FROM, RCPT TO or DATA: temporary, tried again;
- a 5xx answer to MAIL FROM, RCPT TO or DATA: permanent, never tried again;
- the connection broke or timed out after the message was handed over with
  DATA, without an answer: `unknown` — the server may have taken it, so it is
  not sent again (at most once).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from radicale_meetplugin.config import Secret
from radicale_meetplugin.core.address import one_line

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class MailError(Exception):
    def __init__(
        self, reason: str, *, temporary: bool, unknown: bool = False, code: int | None = None
    ) -> None:
        super().__init__(reason)
        self.temporary = temporary
        self.unknown = unknown
        self.code = code


class LeaseLost(Exception):
    """Another worker owns the letter now: this one must not send it."""


@dataclass
class Mailer:
    host: str
    port: int = 0
    security: str = "starttls"
    username: str = ""
    password: Secret = Secret("")
    timeout: float = 30.0
    ca_file: str = ""
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        self.port = self.port or DEFAULT_PORTS[self.security]

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        before_data: Callable[[], bool] = lambda: True,
    ) -> None:
        """Hand one message for one recipient to the server; raises MailError or LeaseLost."""
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout,
                    context=self._context(),
                )
            else:
                smtp = smtplib.SMTP(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
                )
        except smtplib.SMTPConnectError as e:
            raise MailError(
                f"the server refused the session: {_answer(e)}", temporary=True, code=e.smtp_code
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise MailError(
                f"cannot connect to {self.host}:{self.port}: {_oserror(e)}", temporary=True
            ) from None
        try:
            self._hello(smtp)
            self._envelope(smtp, sender, recipient)
            if not before_data():
                raise LeaseLost()
            self._data(smtp, message)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _hello(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password.value)
        except smtplib.SMTPNotSupportedError as e:
            raise MailError(f"the server does not offer {_what(e)}", temporary=True) from None
        except smtplib.SMTPResponseException as e:
            step = "login" if isinstance(e, smtplib.SMTPAuthenticationError) else "greeting"
            raise MailError(
                f"{step} refused: {_answer(e)}", temporary=True, code=e.smtp_code
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise MailError(f"session failed: {_oserror(e)}", temporary=True) from None

    @staticmethod
    def _envelope(smtp: smtplib.SMTP, sender: str, recipient: str) -> None:
        try:
            code, answer = smtp.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, answer, sender)
            code, answer = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})
        except smtplib.SMTPRecipientsRefused as e:
            code, answer = next(iter(e.recipients.values()))
            raise MailError(
                f"recipient refused: {code} {_text(answer)}", temporary=400 <= code < 500, code=code
            ) from None
        except smtplib.SMTPResponseException as e:
            raise MailError(
                f"sender refused: {_answer(e)}",
                temporary=400 <= e.smtp_code < 500,
                code=e.smtp_code,
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise MailError(f"session failed: {_oserror(e)}", temporary=True) from None

    @staticmethod
    def _data(smtp: smtplib.SMTP, message: bytes) -> None:
        try:
            code, answer = smtp.data(message)
            if code != 250:  # smtplib returns the final answer instead of raising
                raise smtplib.SMTPDataError(code, answer)
        except smtplib.SMTPResponseException as e:  # the server answered: it did not take it
            raise MailError(
                f"message refused: {_answer(e)}",
                temporary=400 <= e.smtp_code < 500,
                code=e.smtp_code,
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise MailError(
                f"no answer after the message was sent ({_oserror(e)}); "
                "the server may have taken it",
                temporary=False,
                unknown=True,
            ) from None


def _text(answer) -> str:
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", "replace")
    return one_line(str(answer), 160)


def _answer(e: smtplib.SMTPResponseException) -> str:
    return f"{e.smtp_code} {_text(e.smtp_error)}"


def _oserror(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {one_line(getattr(e, 'reason', '') or str(e), 120)}"
    return one_line(f"{type(e).__name__}: {e}", 160)


def _what(e: smtplib.SMTPNotSupportedError) -> str:
    text = str(e).lower()
    return "STARTTLS" if "starttls" in text else "AUTH" if "auth" in text else "a needed extension"
