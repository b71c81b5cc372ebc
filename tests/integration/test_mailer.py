"""The SMTP sender against a real server on loopback: STARTTLS, TLS, login, errors."""

from __future__ import annotations

import ssl

import pytest
from aiosmtpd.smtp import AuthResult
from smtp_inbox import Inbox

from radicale_meetplugin import config
from radicale_meetplugin.mail.mailer import LeaseLost, Mailer, MailError

MESSAGE = b"From: calendar@example.com\r\nTo: ivan@example.com\r\nSubject: test\r\n\r\nhello\r\n"
PASSWORD = "s3cr3t-smtp-password"


def server_context(certificate) -> ssl.SSLContext:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login, auth_data.password) == (b"calendar", PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def starttls_inbox(certificate):
    inbox = Inbox(
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_exclude_mechanism=["LOGIN"],
    ).start()  # PLAIN only: one try
    yield inbox
    inbox.stop()


def test_starttls_and_login(starttls_inbox, certificate):
    mailer = Mailer(
        "127.0.0.1",
        starttls_inbox.port,
        "starttls",
        "calendar",
        config.Secret(PASSWORD),
        timeout=5,
        ca_file=str(certificate[0]),
    )
    mailer.send("calendar@example.com", "ivan@example.com", MESSAGE)
    [letter] = starttls_inbox.letters
    assert letter.rcpt_tos == ["ivan@example.com"] and letter.mail_from == "calendar@example.com"


def test_implicit_tls(certificate):
    inbox = Inbox(ssl_context=server_context(certificate)).start()
    try:
        Mailer("127.0.0.1", inbox.port, "tls", timeout=5, ca_file=str(certificate[0])).send(
            "calendar@example.com", "ivan@example.com", MESSAGE
        )
        assert len(inbox.letters) == 1
    finally:
        inbox.stop()


@pytest.mark.parametrize("case", ["wrong password", "untrusted certificate", "no STARTTLS"])
def test_server_and_setup_problems_are_temporary(starttls_inbox, certificate, case):
    if case == "no STARTTLS":
        plain = Inbox().start()
        mailer = Mailer("127.0.0.1", plain.port, "starttls", timeout=5)
    else:
        plain = None
        mailer = Mailer(
            "127.0.0.1",
            starttls_inbox.port,
            "starttls",
            "calendar",
            config.Secret("wrong" if case == "wrong password" else PASSWORD),
            timeout=5,
            ca_file=str(certificate[0]) if case == "wrong password" else "",
        )
    try:
        with pytest.raises(MailError) as e:
            mailer.send("calendar@example.com", "ivan@example.com", MESSAGE)
    finally:
        if plain:
            plain.stop()
    assert e.value.temporary and not e.value.unknown
    words = {
        "wrong password": "login refused: 535",
        "untrusted certificate": "TLS",
        "no STARTTLS": "does not offer STARTTLS",
    }[case]
    assert words in str(e.value)
    assert PASSWORD not in str(e.value) and "wrong" not in str(e.value)
    assert not starttls_inbox.letters


def test_refused_connection_is_temporary():
    inbox = Inbox().start()
    port = inbox.port
    inbox.stop()
    with pytest.raises(MailError) as e:
        Mailer("127.0.0.1", port, "none", timeout=2).send("a@example.com", "b@example.com", MESSAGE)
    assert e.value.temporary and "connection refused" in str(e.value)


@pytest.mark.parametrize(
    "step,answer,temporary",
    [
        ("RCPT", "450 4.2.1 Mailbox busy", True),
        ("RCPT", "550 5.1.1 No such user", False),
        ("DATA", "451 4.3.0 Try later", True),
        ("DATA", "552 5.3.4 Message too big", False),
    ],
)
def test_answers_to_the_letter_decide(step, answer, temporary):
    inbox = Inbox().start()
    inbox.fail_next(step, answer)
    try:
        with pytest.raises(MailError) as e:
            Mailer("127.0.0.1", inbox.port, "none", timeout=2).send(
                "a@example.com", "b@example.com", MESSAGE
            )
    finally:
        inbox.stop()
    assert e.value.temporary is temporary and not e.value.unknown
    assert e.value.code == int(answer[:3])


def test_no_answer_after_data_is_unknown():
    inbox = Inbox().start()
    inbox.hold_next_data()
    try:
        with pytest.raises(MailError) as e:
            Mailer("127.0.0.1", inbox.port, "none", timeout=1).send(
                "a@example.com", "b@example.com", MESSAGE
            )
    finally:
        inbox.stop()
    assert e.value.unknown and not e.value.temporary


def test_a_lost_lease_stops_before_data():
    inbox = Inbox().start()
    try:
        with pytest.raises(LeaseLost):
            Mailer("127.0.0.1", inbox.port, "none", timeout=2).send(
                "a@example.com", "b@example.com", MESSAGE, before_data=lambda: False
            )
        assert inbox.letters == [] and inbox.attempts[("DATA", "b@example.com")] == 0
    finally:
        inbox.stop()
