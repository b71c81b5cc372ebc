"""What every provider emulator shares: a real HTTP server on 127.0.0.1 that
records calls, injects faults and holds calls open until a test releases them.

A subclass answers requests in ``route``; faults and holds are matched by
HTTP method and by ``target`` (which part of the API a path belongs to, e.g.
"api" or "token"), so breaking the API never breaks the token endpoint.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    method: str
    path: str
    authorization: str
    body: Any
    target: str = "api"
    query: dict = field(default_factory=dict)
    status: int = 0  # -1: no answer was given (a hang)
    at: float = 0.0  # time.monotonic() when the call arrived
    headers: dict = field(default_factory=dict)  # the request's headers, names lower-case


@dataclass
class Fault:
    method: str
    status: int
    body: object = None
    headers: dict = field(default_factory=dict)
    times: int = 1
    raw: bytes | None = None  # a non-JSON body
    hang: bool = False  # answer nothing until the client gives up (a timeout)
    act: bool = False  # do the work, then answer nothing (the answer is "lost")
    reset: bool = False  # with act: reset the connection (RST) instead of hanging
    garble: bool = False  # with act: answer the status with a body nobody can read
    target: str = "api"


@dataclass
class Hold:
    method: str
    target: str = "api"
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout tests) is expected, not an error."""


class Reply(Exception):
    """Raised by `route` helpers to answer at once."""

    def __init__(self, status: int, body: object = None, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class Emulator:
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.delay = 0.0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self._lock = threading.RLock()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- the subclass's part -------------------------------------------------

    def target_of(self, path: str) -> str:
        return "api"

    def route(self, method: str, path: str, call: Call, body: Any) -> tuple[int, object]:
        raise NotImplementedError

    # --- life ----------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in self.holds:
            hold.release.set()
        self.server.shutdown()
        self.server.server_close()

    def down(self) -> None:
        """Stop listening: connections are refused until `up`."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def up(self) -> None:
        port = self.server.server_address[1]
        self.server = _QuietServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.faults.clear()

    # --- test controls -----------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int,
        body: object = None,
        times: int = 1,
        headers: dict | None = None,
        raw: bytes | None = None,
        target: str = "api",
    ) -> None:
        with self._lock:
            self.faults.append(
                Fault(method, status, body, headers or {}, times, raw, target=target)
            )

    def hang_next(self, method: str, times: int = 1, target: str = "api") -> None:
        """The next calls get no answer; nothing is done; the client must time out."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, hang=True, target=target))

    def lose_answer_next(self, method: str, times: int = 1, target: str = "api") -> None:
        """The next calls are carried out, but their answer never arrives."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, hang=True, act=True, target=target))

    def reset_next(self, method: str, times: int = 1, target: str = "api") -> None:
        """The next calls are carried out, then the connection is reset (a proxy's RST)."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, act=True, reset=True, target=target))

    def garble_next(self, method: str, times: int = 1, target: str = "api") -> None:
        """The next calls are carried out and answered with a garbage body."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, act=True, garble=True, target=target))

    def hold_next(self, method: str, target: str = "api") -> Hold:
        hold = Hold(method, target)
        with self._lock:
            self.holds.append(hold)
        return hold

    def calls_of(self, method: str, target: str = "api") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.target == target]

    # --- the server ----------------------------------------------------------

    def _take(self, items: list, method: str, target: str):
        with self._lock:
            for item in items:
                if item.method == method and item.target == target:
                    if isinstance(item, Fault):
                        item.times -= 1
                        if item.times <= 0:
                            items.remove(item)
                    else:
                        items.remove(item)
                    return item
        return None

    def _handler(self):
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the body waits
            # for the client's delayed ACK (~40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(
                self,
                call: Call,
                status: int,
                body: object = None,
                headers: dict | None = None,
                raw: bytes | None = None,
            ) -> None:
                call.status = status
                data = (
                    raw
                    if raw is not None
                    else (
                        json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
                    )
                )
                self.send_response(status)
                if data and raw is None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _hang(self, call: Call) -> None:
                self.connection.settimeout(60)
                try:
                    self.rfile.read(1)  # returns when the client closes the connection
                except OSError:
                    pass
                call.status = -1
                self.close_connection = True

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                kind = self.headers.get("Content-Type", "")
                body: Any
                if kind.startswith("application/x-www-form-urlencoded"):
                    body = dict(urllib.parse.parse_qsl(raw.decode()))
                else:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = None
                split = urllib.parse.urlsplit(self.path)
                call = Call(
                    method,
                    split.path,
                    self.headers.get("Authorization", ""),
                    body,
                    emu.target_of(split.path),
                    dict(urllib.parse.parse_qsl(split.query)),
                    at=time.monotonic(),
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                with emu._lock:
                    emu.calls.append(call)
                    emu.in_flight += 1
                    emu.peak_in_flight = max(emu.peak_in_flight, emu.in_flight)
                try:
                    self._serve(method, call, body)
                finally:
                    with emu._lock:
                        emu.in_flight -= 1

            def _serve(self, method: str, call: Call, body: Any) -> None:
                if emu.delay:
                    threading.Event().wait(emu.delay)  # the provider is slow
                hold = emu._take(emu.holds, method, call.target)
                if hold is not None:
                    hold.entered.set()
                    hold.release.wait(timeout=60)
                fault = emu._take(emu.faults, method, call.target)
                if fault is not None and not fault.act:
                    if fault.hang:
                        return self._hang(call)
                    return self._reply(call, fault.status, fault.body, fault.headers, fault.raw)
                try:
                    status, answer = emu.route(method, call.path, call, body)
                    headers: dict = {}
                except Reply as r:
                    status, answer, headers = r.status, r.body, r.headers
                if fault is not None and fault.garble:
                    return self._reply(call, status, None, headers, b"\x00garbage<html")
                if fault is not None and fault.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    call.status = -1
                    self.close_connection = True
                    return None
                if fault is not None:  # done, but the answer is lost
                    return self._hang(call)
                return self._reply(call, status, answer, headers)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler
