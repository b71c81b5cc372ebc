"""The providers' HTTP (urllib3): env proxies, CA certificates, no redirects, no requests loaded."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from harness import TOKEN

from radicale_meetplugin.config import Secret
from radicale_meetplugin.core.model import EventKey, Meeting
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.providers.http import ApiClient
from radicale_meetplugin.providers.telemost import Telemost

MEETING = Meeting(EventKey("alice", "alice/calendar", "u@t"), summary="Планёрка")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "request_method")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "host"}


class ForwardProxy:
    """A loopback HTTP forward proxy: takes absolute-form requests, forwards them, records them."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, str, str | None]] = []  # method, URL, Proxy-Authorization
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if not self.path.startswith("http://"):  # origin-form: not sent as to a proxy
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                proxy.forwarded.append(
                    (self.command, self.path, self.headers.get("Proxy-Authorization"))
                )
                target = urllib.parse.urlsplit(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                try:
                    where = target.path + (f"?{target.query}" if target.query else "")
                    upstream.request(self.command, where, body, headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP | {"content-length", "transfer-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]


@pytest.fixture
def proxy():
    forward = ForwardProxy()
    forward.thread.start()
    yield forward
    forward.server.shutdown()
    forward.server.server_close()


@pytest.fixture
def environment(monkeypatch):
    """No proxy or CA variable of the machine leaks in; the test sets its own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def adapter(telemost) -> Telemost:
    return Telemost(telemost.url, Secret(TOKEN, "test"), "ORGANIZATION", timeout=5)


def test_a_provider_call_goes_through_the_proxy_the_environment_names(telemost, proxy, environment):
    environment.setenv("HTTP_PROXY", f"http://meet:s%40cret@127.0.0.1:{proxy.port}")
    posts = len(telemost.calls_of("POST"))
    conf = adapter(telemost).create(MEETING)
    assert conf.conference_id in telemost.conferences
    assert len(telemost.calls_of("POST")) == posts + 1
    login = base64.b64encode(b"meet:s@cret").decode()
    assert proxy.forwarded == [("POST", f"{telemost.url}/conferences", f"Basic {login}")]


def test_a_host_in_no_proxy_is_reached_directly(telemost, proxy, environment):
    environment.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    environment.setenv("NO_PROXY", "example.org, 127.0.0.1")
    conf = adapter(telemost).create(MEETING)
    assert conf.conference_id in telemost.conferences
    assert proxy.forwarded == []


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_is_not_followed_and_is_an_error(telemost, environment, status):
    posts, gets = len(telemost.calls_of("POST")), len(telemost.calls_of("GET"))
    elsewhere = f"{telemost.url}/conferences/elsewhere"
    telemost.fail_next("POST", status, headers={"Location": elsewhere})
    with pytest.raises(ProviderError) as e:
        adapter(telemost).create(MEETING)
    assert (e.value.code, e.value.status, e.value.temporary) == ("rejected", status, False)
    assert len(telemost.calls_of("POST")) == posts + 1  # not sent again to the Location
    assert len(telemost.calls_of("GET")) == gets


class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def https(certificate):
    """An HTTPS server on loopback whose certificate no trust store holds."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_ca_an_admin_names_is_trusted(https, certificate, environment, variable):
    environment.setenv(variable, str(certificate[0]))
    answer = ApiClient(https, {}, 5, "trueconf").call("GET", "/ping", ok=(200,))
    assert answer.json() == {"ok": True}


def test_a_certificate_outside_the_trust_store_is_refused(https, environment, caplog):
    caplog.set_level(logging.INFO, logger="radicale.meetplugin")
    with pytest.raises(ProviderError) as e:
        ApiClient(https, {}, 5, "trueconf").call("GET", "/ping?secret=x", ok=(200,))
    assert (e.value.code, e.value.temporary, e.value.status) == ("unavailable", True, 0)
    assert "SSLError" in caplog.text and "secret" not in caplog.text


PROBE = """
import json, sys
import radicale.app
from radicale_meetplugin import Storage  # the plugin as Radicale loads it
from radicale_meetplugin.config import Secret
from radicale_meetplugin.core.model import EventKey, Meeting
from radicale_meetplugin.providers.telemost import Telemost

provider = Telemost(sys.argv[1], Secret(sys.argv[2], "test"), "ORGANIZATION", timeout=5)
provider.create(Meeting(EventKey("alice", "alice/calendar", "u@t"), summary="x"))
print(json.dumps({m: m in sys.modules for m in sys.argv[3:]}))
"""


def test_a_provider_call_loads_urllib3_but_not_requests(telemost):
    modules = ["requests", "charset_normalizer", "urllib3"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, telemost.url, TOKEN, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {"requests": False, "charset_normalizer": False, "urllib3": True}
