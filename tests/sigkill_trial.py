"""One SIGKILL trial: concurrent marked edits, a Radicale process killed at a random moment.

Used by tests/e2e/test_sigkill.py (a few trials in `make test`) and by
bench/sigkill.py (the full run). A trial starts Radicale with the plugin (two
processes on one storage when asked), lets several threads create, move,
retype, cancel and delete marked events while the provider is ok, slow,
blocked or failing, SIGKILLs one process at a random moment (when the
provider is blocked: while it holds a call), restarts it, lets everything
drain and counts what went wrong:

- hung: requests that got no answer within `BOUND` seconds, or a process that
  does not answer a PROPFIND after the drain;
- lost: events whose stored content is not what the last acknowledged (2xx)
  request left (a request cut by the kill makes its event unknown until the
  next acknowledged one);
- orphans: rooms at the provider that no record references; each must be
  listed as a suspect by `meetplugin reconcile` (`unlisted` counts the rest);
- broken, pending: events showing a room the provider does not hold, events
  still waiting for their link after the drain.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import icalendar
import requests
from emulators.telemost import TelemostEmulator
from harness import TOKEN, USERS, RadicaleServer, event, plugin_config

CAL = "alice/calendar"
BOUND = 30.0  # seconds any request may take before it counts as hung
MODES = ("ok", "slow", "blocked", "500")


@dataclass
class Figures:
    trial: int
    mode: str
    processes: int
    requests: int = 0
    acknowledged: int = 0
    cut: int = 0  # requests cut by the kill (no answer, connection closed)
    refused: int = 0  # 503: asked to retry
    hung: int = 0
    lost: list[str] = field(default_factory=list)
    rooms: int = 0
    orphans: int = 0
    suspects: int = 0
    unlisted: int = 0
    broken: int = 0
    pending: int = 0
    killed_during_call: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.hung or self.lost or self.unlisted or self.broken or self.pending)


class Editor:
    """One client thread: owns a few events and remembers what each acknowledged request left."""

    def __init__(self, servers: list[RadicaleServer], uids: list[str], seed: int) -> None:
        self.servers = servers
        self.uids = uids
        self.rng = random.Random(seed)
        self.expected: dict[str, tuple[str, str, bool] | None] = {}  # summary, start, cancelled
        self.unknown: set[str] = set()
        self.figures = {"requests": 0, "acknowledged": 0, "cut": 0, "refused": 0, "hung": 0}
        self.session = requests.Session()
        self.session.auth = ("alice", USERS["alice"])

    def _send(self, method: str, url: str, **kw) -> requests.Response | None:
        self.figures["requests"] += 1
        try:
            r = self.session.request(method, url, timeout=BOUND, **kw)
        except requests.Timeout:
            self.figures["hung"] += 1
            return None
        except requests.ConnectionError:
            self.figures["cut"] += 1
            time.sleep(0.05)  # the process is down: do not spin until it is back
            return None
        if r.status_code == 503:
            self.figures["refused"] += 1
        return r

    def step(self) -> None:
        uid = self.rng.choice(self.uids)
        server = self.rng.choice([s for s in self.servers if s.port] or self.servers)
        url = f"{server.url}/{CAL}/{uid}.ics"
        summary = f"s{self.rng.randrange(10**9)}"
        op = self.rng.choice(("create", "move", "retype", "cancel", "delete", "move"))
        if op == "delete":
            r = self._send("DELETE", url)
            if r is None:
                self.unknown.add(uid)
            elif r.status_code in (200, 204, 404):
                self._ack(uid, None)
            return
        got = None if op == "create" else self._send("GET", url)
        if got is not None and got.status_code == 200:
            cal = icalendar.Calendar.from_ical(got.text)
            ev = cal.walk("VEVENT")[0]
            ev["SUMMARY"] = icalendar.vText(summary)
            if op == "move":
                hour = self.rng.randrange(8, 18)
                ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=hour)
                ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=hour + 1)
            elif op == "retype":
                word = (
                    "jitsi"
                    if str(ev.get("X-MEETPLUGIN-PROVIDER", "")) == "telemost"
                    else "telemost"
                )
                ev["LOCATION"] = icalendar.vText(word)
                for name in ("X-MEETPLUGIN-PROVIDER", "X-MEETPLUGIN-CONFERENCE-ID", "CONFERENCE"):
                    ev.pop(name, None)
            elif op == "cancel":
                ev["STATUS"] = icalendar.vText("CANCELLED")
            body = cal.to_ical()
        else:
            if got is None and op != "create":
                return  # the GET was cut: nothing sent
            hour = self.rng.randrange(8, 18)
            body = event(
                uid,
                location="telemost",
                summary=summary,
                start=f"20261125T{hour:02d}0000",
                end=f"20261125T{hour + 1:02d}0000",
            ).encode()
        r = self._send("PUT", url, data=body, headers={"Content-Type": "text/calendar"})
        if r is None:
            self.unknown.add(uid)
            return
        if r.status_code in (201, 204):
            ev = icalendar.Calendar.from_ical(body).walk("VEVENT")[0]
            self._ack(uid, (summary, start_of(ev), str(ev.get("STATUS", "")) == "CANCELLED"))

    def _ack(self, uid: str, state: tuple[str, str, bool] | None) -> None:
        self.figures["acknowledged"] += 1
        self.expected[uid] = state
        self.unknown.discard(uid)

    def lost(self, events: dict[str, icalendar.Event]) -> list[str]:
        lost = []
        for uid, want in self.expected.items():
            if uid in self.unknown:
                continue
            if want is None:
                if uid in events:
                    lost.append(f"{uid}: came back after its acknowledged delete")
                continue
            ev = events.get(uid)
            if ev is None:
                lost.append(f"{uid}: gone, though its last edit was acknowledged")
                continue
            have = (str(ev["SUMMARY"]), start_of(ev), str(ev.get("STATUS", "")) == "CANCELLED")
            if have != want:
                lost.append(f"{uid}: stored {have}, acknowledged {want}")
        return lost


def start_of(ev: icalendar.Event) -> str:
    return ev["DTSTART"].dt.strftime("%Y%m%dT%H%M")


def config(telemost: TelemostEmulator) -> str:
    return plugin_config(
        telemost.url,
        provider_timeout="1",
        call_timeout="2",
        retry_initial="0.2",
        retry_max_delay="0.5",
    )


def start(folder: Path, telemost: TelemostEmulator, storage: Path | None = None) -> RadicaleServer:
    return RadicaleServer(
        folder, config(telemost), env={"TELEMOST_TOKEN": TOKEN}, storage=storage
    ).start()


def state(storage: Path) -> sqlite3.Connection:
    return sqlite3.connect(storage / ".meetplugin" / "records.sqlite", timeout=30)


def drain(storage: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = state(storage)
        try:
            if db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0:
                return True
        finally:
            db.close()
        time.sleep(0.05)
    return False


def reconcile(server: RadicaleServer) -> tuple[int, str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "radicale_meetplugin.cli",
            "reconcile",
            "-C",
            str(server.folder / "radicale.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TELEMOST_TOKEN": TOKEN},
    )
    return done.returncode, done.stdout + done.stderr


def answers(server: RadicaleServer) -> bool:
    try:
        r = server.session("bob").request(
            "PROPFIND", f"{server.url}/bob/", headers={"Depth": "0"}, timeout=5
        )
    except requests.RequestException:
        return False
    return r.status_code == 207


def run_trial(folder: Path, trial: int, mode: str, processes: int, seed: int) -> Figures:
    """One trial in `folder`; the figures say what went wrong (see the module's doc)."""
    began = time.monotonic()
    rng = random.Random(seed)
    figures = Figures(trial, mode, processes)
    telemost = TelemostEmulator(token=TOKEN).start()
    servers = [start(folder / "a", telemost)]
    if processes > 1:
        servers.append(start(folder / "b", telemost, storage=servers[0].storage))
    servers[0].ensure_user("alice")
    servers[0].ensure_user("bob")
    storage = servers[0].storage
    hold = None
    try:
        if mode == "slow":
            telemost.delay = 0.5
        elif mode == "blocked":
            hold = telemost.hold_next("POST")
        elif mode == "500":
            for method in ("POST", "DELETE"):
                telemost.fail_next(method, 500, {"error": "InternalError"}, times=3)
        uids = [f"{uuid.uuid4()}@kill{trial}" for _ in range(12)]
        editors = [Editor(servers, uids[i::4], seed * 10 + i) for i in range(4)]
        stop, restarted = threading.Event(), threading.Event()

        def work(editor: Editor) -> None:
            after = 0  # steps since the restart: a few edits meet the restarted process
            while not stop.is_set() and after < 6:
                editor.step()
                after += restarted.is_set()

        threads = [threading.Thread(target=work, args=(e,)) for e in editors]
        for t in threads:
            t.start()
        # The random moment: while a call is held, or after a random number of calls.
        if hold is not None:
            hold.entered.wait(timeout=20)
        else:
            target = rng.randrange(3, 25)
            deadline = time.monotonic() + 20
            while len(telemost.calls) < target and time.monotonic() < deadline:
                time.sleep(0.01)
        victim = rng.choice(servers)
        figures.killed_during_call = telemost.in_flight > 0
        victim.kill()
        if hold is not None:
            hold.release.set()  # the held create now completes: nobody hears its answer
        victim.start()
        telemost.delay = 0.0
        telemost.faults.clear()
        restarted.set()
        for t in threads:
            t.join(timeout=10 * BOUND)
            figures.hung += t.is_alive()
        stop.set()
        for editor in editors:
            for name, count in editor.figures.items():
                setattr(figures, name, getattr(figures, name) + count)
        if not drain(storage, timeout=90):
            figures.pending += 1  # jobs left in the outbox count as stuck
        figures.hung += sum(not answers(s) for s in servers)
        r = servers[0].session("alice").get(f"{servers[0].url}/{CAL}/", timeout=BOUND)
        cal = icalendar.Calendar.from_ical(r.text)
        events = {str(e["UID"]): e for e in cal.walk("VEVENT") if "RECURRENCE-ID" not in e}
        for editor in editors:
            figures.lost.extend(editor.lost(events))
        at_provider = set(telemost.conferences)
        shown = {
            str(e["X-MEETPLUGIN-CONFERENCE-ID"])
            for e in events.values()
            if str(e.get("X-MEETPLUGIN-PROVIDER", "")) == "telemost"
        }
        db = state(storage)
        try:
            recorded = {r[0] for r in db.execute("SELECT conference_id FROM conferences") if r[0]}
        finally:
            db.close()
        figures.rooms = len(at_provider)
        figures.orphans = len(at_provider - recorded - shown)
        figures.broken = len(shown - at_provider)
        figures.pending += sum(
            str(e.get("X-MEETPLUGIN-STATUS", "")) == "pending" for e in events.values()
        )
        code, out = reconcile(servers[0])
        figures.suspects = sum(line.startswith("suspect") for line in out.splitlines())
        if figures.orphans and code != 1:
            figures.unlisted = figures.orphans
        else:
            figures.unlisted = max(0, figures.orphans - figures.suspects)
    finally:
        if hold is not None:
            hold.release.set()
        for server in servers:
            server.stop()
        telemost.stop()
    figures.seconds = time.monotonic() - began
    return figures
