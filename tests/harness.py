"""A real Radicale process on 127.0.0.1 (or one in this process), started for a test, and small CalDAV helpers."""

from __future__ import annotations

import datetime as dt
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
from pathlib import Path

import icalendar
import requests

USERS = {"alice": "alice", "bob": "bob"}


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM, and SIGKILL if it has not ended within 20 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _PgState:
    """A PostgreSQL state read by a test as a sqlite connection is: `execute` with `?`."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._raw = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, params: tuple = ()):
        from radicale_meetplugin.state.postgres import translate

        return self._raw.execute(translate(sql), params)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _PgState:
        return self

    def __exit__(self, *exc: object) -> None:  # as sqlite's: commits (autocommit here)
        pass


def state_db(storage: Path, state_url: str = ""):
    """The plugin's state for a test to read or change: the sqlite file under `storage`
    (Radicale's collections folder), or the PostgreSQL database of `state_url`."""
    if state_url:
        return _PgState(state_url)
    import sqlite3

    return sqlite3.connect(storage / ".meetplugin" / "records.sqlite")


TOKEN = "test-token-123"  # the Telemost emulator's token
TRUECONF_CLIENT, TRUECONF_SECRET = "meetplugin", "tc-secret-456"  # the TrueConf emulator's
VIDEOMOST_TOKEN = "vm-token-789"  # the Videomost emulator's


def plugin_config(telemost_url: str, **main: str) -> str:
    """A plugin config: Jitsi default, Telemost at the emulator, fast retries for tests."""
    options = {
        "default_provider": "jitsi",
        "language": "ru",
        "owner_addresses": "{user}@example.com",
        "provider_timeout": "5",
        "call_timeout": "3",
        "retry_initial": "0.2",
        "retry_max_delay": "1",
        **main,
    }
    lines = [
        "[meetplugin]",
        *(f"{k} = {v}" for k, v in options.items()),
        "[provider:jitsi]",
        "base_url = https://meet.jit.si",
        "[provider:telemost]",
        f"api_url = {telemost_url}",
        "token_env = TELEMOST_TOKEN",
    ]
    return "\n".join(lines) + "\n"


class RadicaleServer:
    """Radicale with the plugin (or plain, `plugin=False`) in its own folder."""

    def __init__(
        self,
        folder: Path,
        plugin_config: str = "",
        plugin: bool = True,
        env: dict | None = None,
        extra_radicale: str = "",
        storage: Path | None = None,
        server_options: str = "",
        python: tuple[str, ...] = (sys.executable,),
        rights: str = "type = owner_only",
    ) -> None:
        self.python = python  # the interpreter (and its flags) that runs Radicale
        self.folder = folder
        self.storage = storage or folder / "collections"  # another server's, to share it
        # The plugin's state: "" = sqlite under the storage folder, else PostgreSQL's URL.
        found = re.search(r"^state_url *= *(\S+)", textwrap.dedent(plugin_config), re.M)
        self.state_url = found.group(1) if found else ""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "users").write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
        storage_type = (
            "type = radicale_meetplugin\nmeetplugin_config = {}\n".format(
                folder / "meetplugin.conf"
            )
            if plugin
            else "type = multifilesystem\n"
        )
        (folder / "meetplugin.conf").write_text(textwrap.dedent(plugin_config))
        (folder / "radicale.conf").write_text(
            textwrap.dedent(f"""\
            [server]
            hosts = 127.0.0.1:1
            {server_options}
            [auth]
            type = htpasswd
            htpasswd_filename = {folder / "users"}
            htpasswd_encryption = plain
            delay = 0
            [rights]
            {rights.replace(chr(10), chr(10) + " " * 12)}
            [storage]
            filesystem_folder = {self.storage}
            predefined_collections = {{"calendar": {{"tag": "VCALENDAR", "D:displayname": "Calendar"}}}}
            """)
            + storage_type
            + textwrap.dedent("""\
            [logging]
            level = info
            """)
            + extra_radicale
        )
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.log_lines: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._logged = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def start(self, timeout: float = 60) -> RadicaleServer:
        # Radicale refuses port 0, so take a free port and pass it on.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        conf = self.folder / "radicale.conf"
        conf.write_text(
            re.sub(r"hosts = 127\.0\.0\.1:\S+", f"hosts = 127.0.0.1:{self.port}", conf.read_text())
        )
        self._ready.clear()
        self.process = subprocess.Popen(
            [*self.python, "-m", "radicale", "--config", str(self.folder / "radicale.conf")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or not self.port:
            self.stop()
            raise RuntimeError("Radicale did not start:\n" + self.log[-4000:])
        return self

    def _read(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            with self._logged:
                self.log_lines.append(line)
                self._logged.notify_all()
            if "Radicale server ready" in line:
                self._ready.set()
            if "CRITICAL" in line and not self._ready.is_set():  # later: a 5xx answer
                self.port = 0
                self._ready.set()
        self.port = 0 if not self._ready.is_set() else self.port
        self._ready.set()

    def wait_for_log(self, pattern: str, timeout: float = 30, start: int = 0) -> re.Match:
        """Wait until a log line (from line `start` on) matches: awaits the event, no sleeping."""
        regex = re.compile(pattern)
        deadline = threading.Event()
        timer = threading.Timer(timeout, lambda: (deadline.set(), self._notify()))
        timer.start()
        try:
            with self._logged:
                seen = start
                while True:
                    for line in self.log_lines[seen:]:
                        match = regex.search(line)
                        if match:
                            return match
                    seen = len(self.log_lines)
                    if deadline.is_set():
                        raise AssertionError(f"no log line matching {pattern!r} in {timeout} s")
                    self._logged.wait()
        finally:
            timer.cancel()

    def _notify(self) -> None:
        with self._logged:
            self._logged.notify_all()

    def state(self):
        """The plugin's state database (sqlite or PostgreSQL), for a test to read."""
        return state_db(self.storage, self.state_url)

    def mark(self) -> int:
        """A position in the log, to wait only for what comes after it."""
        return len(self.log_lines)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._reader:
            self._reader.join(timeout=5)

    def stop(self) -> None:
        stop_process(self.process)
        if self._reader:
            self._reader.join(timeout=5)

    # --- raw HTTP ----------------------------------------------------------

    def session(self, user: str) -> requests.Session:
        s = requests.Session()
        s.auth = (user, USERS[user])
        return s

    def put(self, user: str, path: str, text: str, **headers: str) -> requests.Response:
        return self.session(user).put(
            f"{self.url}/{path}",
            data=text.encode(),
            headers={"Content-Type": "text/calendar", **headers},
        )

    def get(self, user: str, path: str) -> requests.Response:
        return self.session(user).get(f"{self.url}/{path}")

    def delete(self, user: str, path: str) -> requests.Response:
        return self.session(user).delete(f"{self.url}/{path}")

    def ensure_user(self, user: str) -> None:
        """Radicale creates a user's principal and calendar on their first request."""
        r = self.session(user).request("PROPFIND", f"{self.url}/{user}/", headers={"Depth": "0"})
        assert r.status_code == 207, r.text


def event(
    uid: str | None = None,
    location: str = "",
    summary: str = "Планёрка",
    description: str = "",
    extra: str = "",
    start: str = "20261125T100000",
    end: str = "20261125T110000",
    tzid: str = "Europe/Moscow",
    components: str = "",
) -> str:
    """A small VCALENDAR with one VEVENT (and optional extra components)."""
    uid = uid or f"{uuid.uuid4()}@test"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//meetplugin tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20261121T100000Z",
        f"DTSTART;TZID={tzid}:{start}" if tzid else f"DTSTART:{start}",
        f"DTEND;TZID={tzid}:{end}" if tzid else f"DTEND:{end}",
        f"SUMMARY:{summary}",
    ]
    if location:
        lines.append(f"LOCATION:{location}")
    if description:
        lines.append(f"DESCRIPTION:{description}")
    lines += [line for line in extra.splitlines() if line]
    lines.append("END:VEVENT")
    lines += [line for line in components.splitlines() if line]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def escape(value: str) -> str:
    """A TEXT value as iCalendar writes it: backslash, `;`, `,` and line breaks escaped."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def read(
    radicale: RadicaleServer, path: str, user: str = "alice"
) -> tuple[icalendar.Calendar, str]:
    """The stored event and its ETag."""
    r = radicale.get(user, path)
    assert r.status_code == 200, r.status_code
    return icalendar.Calendar.from_ical(r.text), r.headers.get("ETag", "")


def vevent(cal: icalendar.Calendar) -> icalendar.Event:
    return [c for c in cal.subcomponents if c.name == "VEVENT"][0]


def settled(
    radicale: RadicaleServer, path: str, user: str = "alice", timeout: float = 30
) -> icalendar.Event:
    """The stored event once it no longer waits for its provider.

    For a test's starting point: on a loaded machine a provider's answer can
    come after the save budget, and the link then arrives by a later write.
    Tests of the save budget itself read the event at once instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        ev = vevent(read(radicale, path, user)[0])
        if str(ev.get("X-MEETPLUGIN-STATUS", "")) != "pending":
            return ev
        assert time.monotonic() < deadline, f"{path} still pending after {timeout} s"
        time.sleep(0.05)


def edit(radicale: RadicaleServer, path: str, change: Callable[[icalendar.Event], object]) -> None:
    """Change the stored event as a client would, and save it with If-Match."""
    cal, etag = read(radicale, path)
    change(vevent(cal))
    r = radicale.put("alice", path, cal.to_ical().decode(), **{"If-Match": etag})
    assert r.status_code == 204


def utc(*args) -> int:
    """A UTC date and time as a Unix timestamp: utc(2026, 11, 25, 7)."""
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def in_process_radicale(folder: Path, meetplugin_conf: str):
    """Radicale with the plugin in this process (no server): alice, her calendar's folder.

    For tests that watch the storage lock or patch the plugin's code in place.
    Stop it with `stop_in_process`.
    """
    import radicale
    from radicale import config as radicale_config

    (folder / "users").write_text("alice:alice\n")
    (folder / "meetplugin.conf").write_text(meetplugin_conf)
    (folder / "radicale.conf").write_text(
        f"""[auth]
type = htpasswd
htpasswd_filename = {folder / "users"}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
type = radicale_meetplugin
meetplugin_config = {folder / "meetplugin.conf"}
filesystem_folder = {folder / "collections"}
predefined_collections = {{"calendar": {{"tag": "VCALENDAR"}}}}
"""
    )
    configuration = radicale_config.load([(str(folder / "radicale.conf"), False)])
    return radicale.Application(configuration)


def stop_in_process(app) -> None:
    app._storage.meet.outbox.stop()
    app._storage.meet.engine.store.close()


def wsgi_request(app, method: str, path: str, body: str = "") -> tuple[str, str]:
    """One request as alice to an in-process Radicale: (status line, body)."""
    import base64
    import io

    data = body.encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5232",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "text/calendar",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:alice").decode(),
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0], answer.decode()
