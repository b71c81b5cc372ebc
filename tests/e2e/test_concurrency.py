"""Exactly one conference per event under concurrency, several processes and crashes.

After each workload the outbox is drained and the provider's conferences are
counted against the live events: no duplicates, no orphans (beyond attempts the
plugin itself lists as suspects), no event stuck pending, no event lost. Each test runs
on both state engines: sqlite under the storage folder, and one PostgreSQL database.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import icalendar
import pytest
import requests
from emulators.telemost import TelemostEmulator
from harness import TOKEN, RadicaleServer, event, plugin_config, state_db

CAL = "alice/calendar"


@pytest.fixture
def telemost():
    emu = TelemostEmulator(token=TOKEN).start()
    yield emu
    emu.stop()


@pytest.fixture
def url(state_url) -> str:
    """The state engine of this run ("" = sqlite); `state_db` reads it."""
    return state_url


def config(telemost, state_url: str = "") -> str:
    return plugin_config(
        telemost.url,
        state_url=state_url,
        provider_timeout="2",
        call_timeout="2",
        retry_initial="0.1",
        retry_max_delay="0.5",
    )


def start(
    folder: Path, telemost, storage: Path | None = None, state_url: str = ""
) -> RadicaleServer:
    server = RadicaleServer(
        folder, config(telemost, state_url), env={"TELEMOST_TOKEN": TOKEN}, storage=storage
    ).start()
    server.ensure_user("alice")
    return server


def drain(storage: Path, timeout: float = 60, state_url: str = "") -> None:
    """Wait until the outbox has no job left (checks a condition, not a fixed delay)."""
    deadline = time.monotonic() + timeout
    while True:
        db = state_db(storage, state_url)
        try:
            left = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        finally:
            db.close()
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} jobs still queued"
        time.sleep(0.05)


def live_events(server: RadicaleServer) -> dict[str, icalendar.Event]:
    r = server.session("alice").get(f"{server.url}/{CAL}/")
    assert r.status_code == 200
    events = icalendar.Calendar.from_ical(r.text).walk("VEVENT")
    return {str(e["UID"]): e for e in events if "RECURRENCE-ID" not in e}


def check(server: RadicaleServer, telemost, storage: Path) -> dict[str, int]:
    state_url = server.state_url
    drain(storage, state_url=state_url)
    events = live_events(server)
    shown = {
        str(e["X-MEETPLUGIN-CONFERENCE-ID"])
        for e in events.values()
        if str(e.get("X-MEETPLUGIN-PROVIDER", "")) == "telemost"
        and str(e.get("X-MEETPLUGIN-STATUS", "")) == "active"
    }
    at_provider = set(telemost.conferences)
    pending = [u for u, e in events.items() if str(e.get("X-MEETPLUGIN-STATUS", "")) == "pending"]
    db = state_db(storage, state_url)
    try:
        suspects = db.execute("SELECT COUNT(*) FROM suspects").fetchone()[0]
        recorded = {
            r[0]
            for r in db.execute(
                "SELECT conference_id FROM conferences WHERE state='active' AND provider='telemost'"
            )
        }
    finally:
        db.close()
    figures = {
        "events": len(events),
        "conferences": len(at_provider),
        "orphans": len(at_provider - shown),
        "broken links": len(shown - at_provider),
        "pending": len(pending),
        "suspects": suspects,
        "record mismatch": len(recorded ^ shown),
    }
    assert figures["broken links"] == 0, figures
    assert figures["pending"] == 0, figures
    assert figures["record mismatch"] == 0, figures
    assert figures["orphans"] <= suspects, figures  # every stray room is accounted for
    return figures


def test_concurrent_puts_of_one_new_event_make_one_conference(tmp_path, telemost, url):
    server = start(tmp_path / "a", telemost, state_url=url)
    try:
        uid = f"{uuid.uuid4()}@race"
        text = event(uid, location="telemost")
        barrier = threading.Barrier(8)
        statuses = []

        def put():
            barrier.wait()
            statuses.append(server.put("alice", f"{CAL}/{uid}.ics", text).status_code)

        threads = [threading.Thread(target=put) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(set(statuses)) <= [201, 204] and len(statuses) == 8
        figures = check(server, telemost, server.storage)
        assert len(telemost.calls_of("POST")) == 1
        assert figures["conferences"] == 1 and figures["orphans"] == 0
    finally:
        server.stop()


def test_two_processes_sharing_one_storage_make_one_conference(tmp_path, telemost, url):
    first = start(tmp_path / "a", telemost, state_url=url)
    second = start(tmp_path / "b", telemost, storage=first.storage, state_url=url)
    try:
        uids = [f"{uuid.uuid4()}@shared" for _ in range(6)]
        barrier = threading.Barrier(12)

        def put(server, uid):
            barrier.wait()
            r = server.put("alice", f"{CAL}/{uid}.ics", event(uid, location="telemost"))
            assert r.status_code in (201, 204)

        threads = [
            threading.Thread(target=put, args=(srv, uid)) for uid in uids for srv in (first, second)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        figures = check(first, telemost, first.storage)
        assert figures["conferences"] == len(uids) and figures["orphans"] == 0
        assert len(telemost.calls_of("POST")) == len(uids)
    finally:
        second.stop()
        first.stop()


def test_two_processes_job_runners_each_run_only_what_they_leased(tmp_path, telemost, url):
    """Every create fails at first, so each event's conference is made by a job runner; the
    runners of both processes poll the one queue, and each job is run by one of them once."""
    first = start(tmp_path / "a", telemost, state_url=url)
    second = start(tmp_path / "b", telemost, storage=first.storage, state_url=url)
    try:
        uids = [f"{uuid.uuid4()}@outbox" for _ in range(8)]
        telemost.fail_next("POST", 503, {"error": "busy"}, times=len(uids))
        for n, uid in enumerate(uids):
            server = (first, second)[n % 2]
            r = server.put("alice", f"{CAL}/{uid}.ics", event(uid, location="telemost"))
            assert r.status_code in (201, 204)
        figures = check(first, telemost, first.storage)
        assert figures["conferences"] == len(uids) and figures["orphans"] == 0, figures
        # the failed tries plus one successful create per event: no job ran twice
        assert len(telemost.calls_of("POST")) == 2 * len(uids)
    finally:
        second.stop()
        first.stop()


class Workload:
    """Random edits of a few events; remembers what each acknowledged request left."""

    OPS = ("create_marked", "create_marked", "create_plain", "edit", "unlink", "delete", "reupload")

    def __init__(self, server: RadicaleServer, uids: list[str], seed: int) -> None:
        self.server = server
        self.uids = uids
        self.rng = random.Random(seed)
        self.expected: dict[
            str, str | None
        ] = {}  # uid -> last acknowledged SUMMARY (None: deleted)
        self.unknown: set[str] = set()  # a request whose outcome we did not see
        self.server_errors = 0

    def step(self) -> None:
        uid = self.rng.choice(self.uids)
        op = self.rng.choice(self.OPS)
        path = f"{CAL}/{uid}.ics"
        summary = f"s{self.rng.randrange(10**6)}"
        session = self.server.session("alice")
        url = f"{self.server.url}/{path}"
        try:
            if op in ("create_marked", "create_plain"):
                text = event(
                    uid, summary=summary, location="telemost" if op == "create_marked" else "Офис"
                )
                r = session.put(url, data=text.encode(), headers={"Content-Type": "text/calendar"})
                self._ack(uid, r, summary)
            elif op == "delete":
                r = session.delete(url)
                if r.status_code in (200, 204, 404):
                    self.expected[uid] = None
                    self.unknown.discard(uid)
                self.server_errors += r.status_code >= 500
            else:
                got = session.get(url)
                if got.status_code != 200 or not got.text.strip():
                    return  # gone, or an answer cut short by the kill
                cal = icalendar.Calendar.from_ical(got.text)
                ev = [c for c in cal.walk("VEVENT")][0]
                if op == "edit":
                    ev["SUMMARY"] = icalendar.vText(summary)
                elif op == "unlink":
                    ev["LOCATION"] = icalendar.vText("Офис")
                    ev["DESCRIPTION"] = icalendar.vText("без ссылки")
                    summary = str(ev["SUMMARY"])
                else:
                    summary = str(ev["SUMMARY"])
                r = session.put(url, data=cal.to_ical(), headers={"Content-Type": "text/calendar"})
                self._ack(uid, r, summary)
        except requests.ConnectionError:
            self.unknown.add(uid)  # the server died mid-request: the outcome is unknown

    def _ack(self, uid: str, r: requests.Response, summary: str) -> None:
        self.server_errors += r.status_code >= 500
        if r.status_code in (201, 204):
            self.expected[uid] = summary
            self.unknown.discard(uid)

    def lost(self) -> list[str]:
        events = live_events(self.server)
        lost = []
        for uid, summary in self.expected.items():
            if uid in self.unknown:
                continue
            if summary is None:
                if uid in events:
                    lost.append(f"{uid} came back after its delete")
            elif uid not in events or str(events[uid]["SUMMARY"]) != summary:
                lost.append(f"{uid} lost its acknowledged version")
        return lost


def test_many_clients_random_edits_no_duplicates_no_orphans(tmp_path, telemost, url):
    server = start(tmp_path / "a", telemost, state_url=url)
    try:
        uids = [f"{uuid.uuid4()}@load" for _ in range(12)]
        workers = [Workload(server, uids, seed) for seed in range(6)]
        threads = [
            threading.Thread(target=lambda w=w: [w.step() for _ in range(25)]) for w in workers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(w.server_errors for w in workers) == 0
        figures = check(server, telemost, server.storage)
        assert figures["orphans"] == 0, figures  # no crash here, so no suspect either
        print("\nconcurrency:", figures)
    finally:
        server.stop()
    assert "Traceback" not in server.log


def test_sigkill_at_random_moments_loses_nothing(tmp_path, telemost, url):
    server = start(tmp_path / "a", telemost, state_url=url)
    rng = random.Random(1234)
    uids = [f"{uuid.uuid4()}@crash" for _ in range(10)]
    work = Workload(server, uids, seed=99)
    try:
        for _round in range(4):
            stop = threading.Event()

            def run():
                while not stop.is_set():
                    work.step()

            runner = threading.Thread(target=run)
            runner.start()
            # Let a random number of requests through, then kill without warning.
            target = len(telemost.calls) + rng.randrange(1, 8)
            deadline = time.monotonic() + 20
            while len(telemost.calls) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            server.kill()
            stop.set()
            runner.join()
            server.start()  # same storage, new process: resumes the outbox
        for _ in range(20):
            work.step()
        assert work.server_errors == 0
        assert work.lost() == []
        figures = check(server, telemost, server.storage)
        print("\ncrash:", figures)
    finally:
        server.stop()
