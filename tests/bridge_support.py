"""Helpers for the bridge's tests: a real Xandikos, a person's CalDAV client, a
proxy that plays a server rewriting what it is sent, the bridge in-process or
as a process. Nothing here sleeps for a fixed time: readiness and log lines
are awaited."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from harness import stop_process

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until the port accepts connections (the server's log line comes before that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)  # polling a readiness condition, not a fixed wait
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


class XandikosServer:
    """Xandikos (from PyPI) on loopback; no authentication; principal /alice/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> XandikosServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = open(self.folder / "xandikos.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xandikos",
                "serve",
                "--defaults",
                "-d",
                str(self.folder / "data"),
                "-l",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--current-user-principal",
                "/alice/",
                "--no-detect-systemd",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "XDG_DATA_HOME": str(self.folder / "xdg")},
        )
        log.close()
        wait_listening(self.port, self.process)
        return self

    def stop(self) -> None:
        stop_process(self.process)


class Dav:
    """A person's CalDAV client on one server (raw HTTP, as Thunderbird would do)."""

    def __init__(self, name: str, url: str, home: str, user: str = "", password: str = "") -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.home = home  # where new calendars go, e.g. /alice/ or /alice/calendars/
        self.user = user
        self.password = password
        self.http = requests.Session()
        if user:
            self.http.auth = (user, password)

    def mkcalendar(self) -> str:
        path = f"{self.home}c{uuid.uuid4().hex[:10]}/"
        r = self.http.request("MKCALENDAR", self.url + path)
        assert r.status_code == 201, (r.status_code, r.text)
        return path

    def put(self, path: str, text: str, etag: str = "") -> requests.Response:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if etag:
            headers["If-Match"] = etag
        return self.http.put(self.url + path, data=text.encode("utf-8"), headers=headers)

    def get(self, path: str) -> tuple[str, str]:
        r = self.http.get(self.url + path)
        assert r.status_code == 200, (path, r.status_code)
        return r.content.decode("utf-8"), r.headers.get("ETag", "")

    def exists(self, path: str) -> bool:
        return self.http.get(self.url + path).status_code == 200

    def delete(self, path: str) -> None:
        r = self.http.delete(self.url + path)
        assert r.status_code in (200, 204), r.status_code


def bridge_config(
    folder: Path,
    dav: Dav,
    plugin_conf: str,
    calendars: str = "",
    state_url: str = "",
    **account: str,
) -> Path:
    """Write the bridge's config (and the plugin's) into `folder`; returns its path.

    `state_url`: the [bridge] section's PostgreSQL state ("" = sqlite in `state`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meetplugin.conf").write_text(plugin_conf)
    lines = [
        "[bridge]",
        "meetplugin_config = meetplugin.conf",
        "state_dir = state",
        "interval = 0.2",
        "http_timeout = 10",
        f"state_url = {state_url}",
        "",
        "[account:alice]",
        f"url = {dav.url}/",
        "owner = alice",
    ]
    if dav.user:
        (folder / "password").write_text(dav.password)
        (folder / "password").chmod(0o600)
        lines += [f"username = {dav.user}", "password_file = password"]
    if calendars:
        lines.append(f"calendars = {calendars}")
    lines += [f"{k} = {v}" for k, v in account.items()]
    path = folder / "bridge.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def unfold(text: str) -> str:
    return re.sub(r"\r?\n[ \t]", "", text)


class RewritingProxy:
    """A CalDAV server that rewrites what it is sent: a proxy in front of a real one.

    `drop`: property names removed from every PUT body (as servers that keep
    no X- properties do). `refuse`: a PUT whose body holds one of these names
    is answered 403 (as a server rejecting CONFERENCE would). `broken`:
    (method, path) pairs answered 500.
    """

    def __init__(
        self, upstream: str, drop: tuple[str, ...] = (), refuse: tuple[str, ...] = ()
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.broken: set[tuple[str, str]] = set()  # (method, path) answered 500
        self.drop = tuple(d.upper() for d in drop)
        self.refuse = tuple(r.upper() for r in refuse)
        self.puts: list[tuple[int, str]] = []  # (status, body as forwarded)
        self.seen: list[tuple[str, str, int, bool]] = []  # (method, path, status, had credentials)
        self.refused = 0
        self._http = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if (self.command, self.path) in proxy.broken:
                    return self._send(500, {}, b"broken")
                if self.command == "PUT":
                    text = unfold(body.decode("utf-8"))
                    names = {
                        line.split(":", 1)[0].split(";", 1)[0].upper() for line in text.splitlines()
                    }
                    if any(n in names for n in proxy.refuse):
                        proxy.refused += 1
                        return self._send(403, {}, b"refused: unsupported property")
                    kept = [
                        line
                        for line in text.splitlines()
                        if not line.split(":", 1)[0]
                        .split(";", 1)[0]
                        .upper()
                        .startswith(proxy.drop or ("\0",))
                    ]
                    body = ("\r\n".join(kept) + "\r\n").encode("utf-8")
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                r = proxy.session().request(
                    self.command, proxy.upstream + self.path, data=body or None, headers=headers
                )
                if self.command == "PUT":
                    proxy.puts.append((r.status_code, body.decode("utf-8")))
                proxy.seen.append(
                    (self.command, self.path, r.status_code, "Authorization" in self.headers)
                )
                out = {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower() in ("etag", "content-type", "www-authenticate", "dav")
                }
                self._send(r.status_code, out, r.content)

            def _send(self, status: int, headers: dict, data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = _any
            do_MKCALENDAR = do_PROPPATCH = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def session(self) -> requests.Session:
        s = getattr(self._http, "s", None)
        if s is None:
            s = self._http.s = requests.Session()
        return s

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> RewritingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BridgeProcess:
    """`python -m bridge` as its own process, its log lines awaited."""

    def __init__(self, config: Path, *args: str, env: dict | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                **(env or {}),
            },
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_for(self, pattern: str, start: int = 0, timeout: float = 30) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = start
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matching {pattern!r}:\n{self.log[-3000:]}")
                self._cond.wait(left)

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_once(config: Path, env: dict | None = None, timeout: float = 60) -> BridgeProcess:
    process = BridgeProcess(config, "--once", env=env)
    code = process.wait(timeout)
    assert code == 0, process.log[-3000:]
    return process


EditHook = Callable[[str, int], None]


def editing_client_factory(hook: EditHook):
    """A CalDAVClient whose PUTs first call `hook(href, n)` (n counts the bridge's PUTs):
    a person's edit made exactly between the bridge's read and its write."""
    from bridge.caldav_client import CalDAVClient

    class EditingClient(CalDAVClient):
        puts = 0

        def put(self, href: str, text: str, etag: str):
            EditingClient.puts += 1
            hook(href, EditingClient.puts)
            return super().put(href, text, etag)

    return EditingClient


def dedent(text: str) -> str:
    return textwrap.dedent(text)


class TapProxy:
    """A CalDAV server seen through a proxy that notes every request and can hold one.

    `log` gets (began, ended, method, path, status, user agent, login) per request,
    times from `time.time()`. `hold(match)` arms a gate: the first request for which
    `match(method, path, user_agent)` is true waits (its `arrived` event is set) until
    `release` is set, and is then sent on to the server as it was.
    """

    class Gate:
        def __init__(self, match: Callable[[str, str, str], bool]) -> None:
            self.match = match
            self.arrived = threading.Event()
            self.release = threading.Event()
            self.request: tuple[str, str, str] | None = None

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.log: list[tuple[float, float, str, str, int, str, str]] = []
        self._gates: list[TapProxy.Gate] = []
        self._lock = threading.Lock()
        self._http = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                began = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                agent = self.headers.get("User-Agent", "")
                gate = proxy._gate_for(self.command, self.path, agent)
                if gate is not None:
                    gate.request = (self.command, self.path, agent)
                    gate.arrived.set()
                    gate.release.wait(120)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                r = proxy.session().request(
                    self.command, proxy.upstream + self.path, data=body or None, headers=headers
                )
                login = ""
                auth = self.headers.get("Authorization", "")
                if auth.lower().startswith("basic "):
                    login = base64.b64decode(auth[6:]).decode("utf-8", "replace").split(":")[0]
                with proxy._lock:
                    proxy.log.append(
                        (began, time.time(), self.command, self.path, r.status_code, agent, login)
                    )
                out = {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower() in ("etag", "content-type", "www-authenticate", "dav")
                }
                try:
                    self.send_response(r.status_code)
                    for k, v in out.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(r.content)))
                    self.end_headers()
                    self.wfile.write(r.content)
                except OSError:
                    pass  # the client is gone (killed while its request was held)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = _any
            do_MKCALENDAR = do_PROPPATCH = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _gate_for(self, method: str, path: str, agent: str) -> TapProxy.Gate | None:
        with self._lock:
            for gate in self._gates:
                if gate.match(method, path, agent):
                    self._gates.remove(gate)
                    return gate
        return None

    def hold(self, match: Callable[[str, str, str], bool]) -> TapProxy.Gate:
        gate = TapProxy.Gate(match)
        with self._lock:
            self._gates.append(gate)
        return gate

    def session(self) -> requests.Session:
        s = getattr(self._http, "s", None)
        if s is None:
            s = self._http.s = requests.Session()
        return s

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> TapProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
