"""A Telemost API emulator: a real HTTP server on 127.0.0.1 following PROVIDERS.md.

- ``Authorization: OAuth <token>`` is checked (401 otherwise);
- ``POST /conferences`` -> 201 ``{id, join_url, waiting_room_level}``;
  403 ``ApiRestrictedToOrganizations`` for a personal account;
- a body with ``live_stream {access_level, title, description}`` makes a webinar:
  the answer's ``live_stream`` carries the viewers' ``watch_url``; 402
  ``PaymentRequiredToUseLiveStreams`` when the account has no streams
  (``live_streams = False``); ``PATCH`` with ``live_stream`` changes (or adds) it;
- ``GET``/``PATCH``/``DELETE /conferences/{id}``; 404 ``ConferenceNotFound``;
- every call is recorded, faults can be injected (an error status, no answer,
  an answer lost after the call was done), and a call can be held open until
  the test releases it (``hold``), so tests await events, never sleep.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/v1/telemost-api"
LEVELS = ("PUBLIC", "ORGANIZATION", "ADMINS")
STREAM_LEVELS = ("PUBLIC", "ORGANIZATION")


@dataclass
class Call:
    method: str
    path: str
    authorization: str
    body: dict | None
    status: int = 0
    at: float = 0.0  # time.monotonic() when the call arrived


@dataclass
class Fault:
    method: str
    status: int
    body: object = None
    headers: dict = field(default_factory=dict)
    times: int = 1
    raw: bytes | None = None  # a non-JSON body
    hang: bool = False  # answer nothing until the client gives up (a timeout)
    lose: bool = False  # do the call, then close the connection without an answer
    act_hang: bool = False  # do the call, then answer nothing until the client gives up
    reset: bool = False  # do the call, then reset the connection (RST) without an answer
    garble: bool = False  # do the call, then answer its status with a body nobody can read


@dataclass
class Hold:
    method: str
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout tests) is expected, not an error."""


def error_body(code: str, description: str, message: str) -> dict:
    return {"error": code, "description": description, "message": message}


class TelemostEmulator:
    def __init__(self, token: str = "test-token-123", host: str = "telemost.yandex.ru") -> None:
        self.token = token
        self.tokens = {token}  # every token the emulated accounts accept
        self.join_host = host
        self.personal_account = False
        self.live_streams = True  # the account's plan includes live streams
        self.delay = 0.0  # seconds every call takes (a slow provider)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.conferences: dict[str, dict] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self._ids = itertools.count(10_000_000_001)
        self._lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"

    def start(self) -> TelemostEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in self.holds:
            hold.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- test controls -----------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int,
        body: object = None,
        times: int = 1,
        headers: dict | None = None,
        raw: bytes | None = None,
    ) -> None:
        with self._lock:
            self.faults.append(Fault(method, status, body, headers or {}, times, raw))

    def hang_next(self, method: str, times: int = 1) -> None:
        """The next calls get no answer; nothing is done; the client must time out."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, hang=True))

    def lose_answer_next(self, method: str, times: int = 1) -> None:
        """The next calls are done, then the connection closes with no answer (a proxy reset)."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, lose=True))

    def create_anyway_next(self, method: str, times: int = 1) -> None:
        """The next calls are done, then no answer until the client times out."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, act_hang=True))

    def reset_next(self, method: str, times: int = 1) -> None:
        """The next calls are done, then the connection is reset (a proxy's RST)."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, reset=True))

    def garble_next(self, method: str, times: int = 1) -> None:
        """The next calls are done and answered with their status and a garbage body."""
        with self._lock:
            self.faults.append(Fault(method, 0, times=times, garble=True))

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

    def hold_next(self, method: str) -> Hold:
        hold = Hold(method)
        with self._lock:
            self.holds.append(hold)
        return hold

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # --- the server ----------------------------------------------------------

    def _take(self, items: list, method: str):
        with self._lock:
            for item in items:
                if item.method == method:
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
            lose_answer = False
            after: Fault | None = None  # what happens to the answer of a call that is done
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
                if self.lose_answer:  # done, but the answer never leaves
                    self.close_connection = True
                    return
                after = self.after
                if after is not None and after.act_hang:
                    self.connection.settimeout(60)
                    try:
                        self.rfile.read(1)  # until the client gives up and closes
                    except OSError:
                        pass
                    call.status = -1
                    self.close_connection = True
                    return
                if after is not None and after.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    call.status = -1
                    self.close_connection = True
                    return
                if after is not None and after.garble:
                    raw, body = b"\x00garbage<html", None
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

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                call = Call(
                    method,
                    self.path,
                    self.headers.get("Authorization", ""),
                    body,
                    at=time.monotonic(),
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

            def _serve(self, method: str, call: Call, body) -> None:
                self.after, self.lose_answer = None, False  # a kept-alive connection: fresh
                if emu.delay:
                    threading.Event().wait(emu.delay)  # the provider is slow
                hold = emu._take(emu.holds, method)
                if hold is not None:
                    hold.entered.set()
                    hold.release.wait(timeout=60)
                if call.authorization not in {f"OAuth {t}" for t in emu.tokens}:
                    return self._reply(
                        call, 401, error_body("UnauthorizedError", "Unauthorized", "Не авторизован")
                    )
                fault = emu._take(emu.faults, method)
                if fault is not None and fault.hang:
                    self.connection.settimeout(60)
                    try:
                        self.rfile.read(1)  # returns when the client closes the connection
                    except OSError:
                        pass
                    call.status = -1
                    self.close_connection = True
                    return None
                self.lose_answer = fault is not None and fault.lose
                acts = fault is not None and (fault.act_hang or fault.reset or fault.garble)
                self.after = fault if acts else None
                if fault is not None and not fault.lose and not acts:
                    return self._reply(call, fault.status, fault.body, fault.headers, fault.raw)
                if not self.path.startswith(PREFIX + "/conferences"):
                    return self._reply(call, 404, error_body("NotFound", "Not found", "Не найдено"))
                rest = self.path[len(PREFIX + "/conferences") :].strip("/")
                if method == "POST" and not rest:
                    return self._create(call, body or {})
                if rest.endswith("/cohosts") and method == "PUT":
                    conf = emu.conferences.get(rest[: -len("/cohosts")])
                    if conf is None:
                        return self._reply(
                            call,
                            404,
                            error_body(
                                "ConferenceNotFound", "Conference not found", "Встреча не найдена"
                            ),
                        )
                    conf["cohosts"] = list((body or {}).get("cohosts", []))
                    return self._reply(call, 200, {"cohosts": conf["cohosts"]})
                conf = emu.conferences.get(rest)
                if conf is None:
                    return self._reply(
                        call,
                        404,
                        error_body(
                            "ConferenceNotFound", "Conference not found", "Встреча не найдена"
                        ),
                    )
                if method == "GET":
                    return self._reply(call, 200, conf)
                if method == "PATCH":
                    body = body or {}
                    if "live_stream" in body:
                        stream = self._stream(call, conf["id"], body["live_stream"], conf)
                        if stream is None:
                            return None
                        conf["live_stream"] = stream
                    conf.update({k: v for k, v in body.items() if k in conf and k != "live_stream"})
                    return self._reply(call, 200, conf)
                if method == "DELETE":
                    with emu._lock:
                        emu.conferences.pop(rest, None)
                    return self._reply(call, 204)
                return self._reply(call, 405, error_body("MethodNotAllowed", "", ""))

            def _create(self, call: Call, body: dict) -> None:
                if emu.personal_account:
                    return self._reply(
                        call,
                        403,
                        error_body(
                            "ApiRestrictedToOrganizations",
                            "API is available only for organizations",
                            "API доступно только для организаций",
                        ),
                    )
                level = body.get("waiting_room_level", "PUBLIC")
                if level not in LEVELS:
                    return self._reply(
                        call,
                        400,
                        error_body(
                            "ValidationError", "Bad waiting_room_level", "Неверное значение"
                        ),
                    )
                conf_id = str(next(emu._ids))
                stream = None
                if "live_stream" in body:
                    stream = self._stream(call, conf_id, body["live_stream"], None)
                    if stream is None:
                        return None
                conf = {
                    "id": conf_id,
                    "join_url": f"https://{emu.join_host}/j/{conf_id}",
                    "waiting_room_level": level,
                    "cohosts": list(body.get("cohosts", [])),
                }
                if stream is not None:
                    conf["live_stream"] = stream
                with emu._lock:
                    emu.conferences[conf_id] = conf
                return self._reply(call, 201, conf)

            def _stream(self, call: Call, conf_id: str, asked, conf: dict | None) -> dict | None:
                """The conference's live stream after `asked`; None when refused (answered)."""
                if not emu.live_streams:
                    self._reply(
                        call,
                        402,
                        error_body(
                            "PaymentRequiredToUseLiveStreams",
                            "Payment is required to use live streams",
                            "Для трансляций нужен платный тариф",
                        ),
                    )
                    return None
                old = dict((conf or {}).get("live_stream") or {})
                if not isinstance(asked, dict) or (
                    "access_level" in asked and asked["access_level"] not in STREAM_LEVELS
                ):
                    self._reply(
                        call,
                        400,
                        error_body("ValidationError", "Bad live_stream", "Неверная трансляция"),
                    )
                    return None
                stream = {
                    "access_level": old.get("access_level", "PUBLIC"),
                    "title": old.get("title", ""),
                    "description": old.get("description", ""),
                    **{
                        k: v
                        for k, v in asked.items()
                        if k in ("access_level", "title", "description")
                    },
                    "watch_url": old.get("watch_url") or f"https://{emu.join_host}/live/{conf_id}",
                }
                return stream

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_PUT(self) -> None:  # PUT /conferences/{id}/cohosts
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler
