"""The bridge's CalDAV client logs in the way the server asks (Basic or Digest), or with Basic
up front when told, finds the calendar home, and refuses answers with a DTD; a loopback server
checks every header."""

from __future__ import annotations

import base64
import hashlib
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bridge.caldav_client import CalDAVClient, CalDAVError

PASSWORD = "пароль-ё 1"  # not Latin-1: sent as UTF-8
USERS = {"basic": "алиса", "digest": "alice"}  # Digest has no way to carry a non-ASCII name
REALM, NONCE = "caldav", "f00dfeed"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _multistatus(href: str, prop: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>{prop}</d:prop>"
        "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"
    ).encode()


class Server:
    """PROPFIND only: the principal at /dav/, the home at /home/; one auth scheme."""

    def __init__(self, scheme: str, password: str = PASSWORD, dtd: bool = False) -> None:
        self.scheme = scheme
        self.dtd = dtd
        self.user = USERS[scheme]
        self.password = password
        self.seen: list[tuple[str, str]] = []  # (path, Authorization header or "")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_PROPFIND(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                given = self.headers.get("Authorization", "")
                server.seen.append((self.path, given))
                if not server.accepts(given, self.path):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", server.challenge())
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                principal = "/principals/" + urllib.parse.quote(server.user) + "/"
                if self.path == "/dav/":
                    body = _multistatus(
                        "/dav/",
                        f"<d:current-user-principal><d:href>{principal}</d:href>"
                        "</d:current-user-principal>",
                    )
                else:
                    body = _multistatus(
                        principal,
                        "<c:calendar-home-set><d:href>http://127.0.0.1/home/"
                        f"{urllib.parse.quote(server.user)}/</d:href></c:calendar-home-set>",
                    )
                if server.dtd:  # an entity that would grow the answer a thousandfold
                    entity = "<!ENTITY a '" + "x" * 1000 + "'>"
                    body = body.replace(b"?>", f"?><!DOCTYPE d:multistatus [{entity}]>".encode(), 1)
                    body = body.replace(b"/dav/</d:href>", b"&a;</d:href>")
                self.send_response(207)
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dav/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def challenge(self) -> str:
        if self.scheme == "basic":
            return f'Basic realm="{REALM}", charset="UTF-8"'
        return f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth", algorithm=MD5'

    def accepts(self, given: str, path: str) -> bool:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return given == f"Basic {token}"
        if not given.startswith("Digest "):
            return False
        fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(given[7:]))
        ha1 = _md5(f"{self.user}:{REALM}:{self.password}")
        ha2 = _md5(f"PROPFIND:{fields.get('uri')}")
        expected = _md5(
            f"{ha1}:{NONCE}:{fields.get('nc')}:{fields.get('cnonce')}:{fields.get('qop')}:{ha2}"
        )
        return fields.get("username") == self.user and fields.get("response") == expected

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["basic", "digest"])
def server(request):
    running = Server(request.param)
    yield running
    running.stop()


def test_logs_in_as_asked_only_after_a_challenge_and_finds_the_home(server):
    client = CalDAVClient(server.url, server.user, PASSWORD, timeout=10)
    try:
        assert client.discover_home() == f"/home/{server.user}/"
        assert client.principal_href == f"/principals/{server.user}/"
    finally:
        client.close()
    assert server.seen[0] == ("/dav/", "")  # no credentials before the server asks
    scheme = "Basic" if server.scheme == "basic" else "Digest"
    assert {given.split()[0] for _path, given in server.seen if given} == {scheme}
    path, given = server.seen[-1]
    assert path == "/principals/" + urllib.parse.quote(server.user) + "/"
    assert given.startswith(scheme)


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_a_wrong_password_is_a_refused_login_without_the_password(scheme):
    server = Server(scheme, password="the right one")
    client = CalDAVClient(server.url, server.user, PASSWORD, timeout=10)
    try:
        with pytest.raises(CalDAVError) as refused:
            client.discover_home()
    finally:
        client.close()
        server.stop()
    assert refused.value.status == 401
    assert "refused the login" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_digest_with_a_non_ascii_name_is_a_clear_refusal():
    server = Server("digest")
    client = CalDAVClient(server.url, "алиса", PASSWORD, timeout=10)
    try:
        with pytest.raises(CalDAVError, match="use a Latin user name"):
            client.discover_home()
    finally:
        client.close()
        server.stop()


def test_an_answer_with_a_dtd_is_not_read():
    server = Server("basic", dtd=True)
    client = CalDAVClient(server.url, server.user, PASSWORD, timeout=10)
    try:
        with pytest.raises(CalDAVError, match="no calendar-home-set"):
            client.discover_home()
    finally:
        client.close()
        server.stop()


def test_no_username_means_no_login():
    server = Server("basic")
    client = CalDAVClient(server.url, timeout=10)
    try:
        with pytest.raises(CalDAVError, match="refused the login"):
            client.discover_home()
    finally:
        client.close()
        server.stop()
    assert [given for _path, given in server.seen] == [""]


def test_basic_sent_up_front_needs_no_challenge():
    server = Server("basic")
    client = CalDAVClient(server.url, server.user, PASSWORD, timeout=10)
    client.send_basic_first()
    try:
        client.discover_home()
    finally:
        client.close()
        server.stop()
    assert len(server.seen) == 2 and all(given.startswith("Basic ") for _p, given in server.seen)
    assert client.scheme == "basic"


def test_basic_up_front_to_a_digest_server_switches_to_digest():
    server = Server("digest")
    client = CalDAVClient(server.url, server.user, PASSWORD, timeout=10)
    client.send_basic_first()
    try:
        assert client.discover_home() == f"/home/{server.user}/"
    finally:
        client.close()
        server.stop()
    assert server.seen[0][1].startswith("Basic ") and server.seen[-1][1].startswith("Digest ")
    assert client.scheme == "digest"


def test_digest_only_refuses_a_basic_server():
    server = Server("basic")
    client = CalDAVClient(server.url, server.user, PASSWORD, timeout=10)
    client.digest_only = True
    try:
        with pytest.raises(CalDAVError, match="no Digest login"):
            client.discover_home()
    finally:
        client.close()
        server.stop()
    assert [given for _path, given in server.seen] == [""]
