"""Another program holds the state file: requests are refused with 503, nobody else waits.

A backup or an admin's sqlite shell may hold `records.sqlite` with
`BEGIN EXCLUSIVE` for longer than any busy timeout. A DELETE or a marked PUT
must then not be stored without its bookkeeping (the room would be left, or
the event would keep its keyword with no note): Radicale answers 503 with
Retry-After and stores nothing. Meanwhile another user's unmarked PUT, which
needs no bookkeeping, is not held up behind the refused request. The same on
PostgreSQL, where the holder locks the plugin's tables against writers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest
from harness import event, plugin_config, read, vevent

CAL = "alice/calendar"
HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""
HOLD_PG = """
import psycopg, sys
db = psycopg.connect(sys.argv[1], autocommit=True)
db.execute("BEGIN")
db.execute("LOCK TABLE conferences, jobs, suspects, mail_state, mail_rounds, mails "
           "IN EXCLUSIVE MODE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@pytest.fixture(scope="module")
def radicale_config(telemost, module_state_url) -> str:
    return plugin_config(
        telemost.url, provider_timeout="3", call_timeout="2", state_url=module_state_url
    )


class Holder:
    """Another process holding the state file's write lock until `release`."""

    def __init__(self, radicale) -> None:
        path = radicale.folder / "collections" / ".meetplugin" / "records.sqlite"
        script, target = (HOLD_PG, radicale.state_url) if radicale.state_url else (HOLD, path)
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)


def bob_meanwhile(radicale, alice_request, rounds: int = 3) -> tuple[list, list[float]]:
    """Alice's request again and again in a thread; bob's unmarked PUTs timed meanwhile."""
    answers: list = []
    stop = threading.Event()

    def alice() -> None:
        while not stop.is_set():
            answers.append(alice_request())

    thread = threading.Thread(target=alice)
    thread.start()
    took = []
    try:
        while not answers:  # alice's first request has been answered: she is at it
            time.sleep(0.02)
        for _ in range(rounds):
            uid = f"{uuid.uuid4()}@bob"
            started = time.monotonic()
            r = radicale.put("bob", f"bob/calendar/{uid}.ics", event(uid, location="Офис"))
            took.append(time.monotonic() - started)
            assert r.status_code == 201
    finally:
        stop.set()
        thread.join()
    return answers, took


def test_delete_while_the_state_file_is_held_is_refused_and_kept(radicale, telemost):
    uid = f"{uuid.uuid4()}@locked"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, event(uid, location="telemost"))
    conf_id = str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    holder = Holder(radicale)
    try:
        answers, took = bob_meanwhile(radicale, lambda: radicale.delete("alice", path))
        assert {r.status_code for r in answers} == {503}
        assert all(r.headers.get("Retry-After", "").isdigit() for r in answers)
        assert max(took) < 2.5, took  # bob never waits behind alice's refused DELETE
        assert radicale.get("alice", path).status_code == 200  # nothing removed
    finally:
        holder.release()
    mark = radicale.mark()
    assert radicale.delete("alice", path).status_code == 200  # the client's retry
    radicale.wait_for_log(f"{uid}: telemost delete done", start=mark)
    assert conf_id not in telemost.conferences


def test_marked_put_while_the_state_file_is_held_is_refused_then_linked(radicale, telemost):
    uid = f"{uuid.uuid4()}@locked"
    path = f"{CAL}/{uid}.ics"
    text = event(uid, location="telemost", description="Повестка")
    holder = Holder(radicale)
    try:
        answers, took = bob_meanwhile(radicale, lambda: radicale.put("alice", path, text))
        assert {r.status_code for r in answers} == {503}
        assert all(r.headers.get("Retry-After", "").isdigit() for r in answers)
        assert max(took) < 2.5, took
        assert radicale.get("alice", path).status_code == 404  # not stored without a record
    finally:
        holder.release()
    assert radicale.put("alice", path, text).status_code == 201
    ev = vevent(read(radicale, path)[0])
    assert str(ev["X-MEETPLUGIN-CONFERENCE-ID"]) in telemost.conferences
    assert str(ev["DESCRIPTION"]).startswith("Повестка")


def test_import_while_the_state_file_is_held_is_refused(radicale, telemost):
    """An import (a whole calendar PUT) is refused too, and stored in full on the retry."""
    uid = f"{uuid.uuid4()}@locked"
    holder = Holder(radicale)
    try:
        started = time.monotonic()
        r = radicale.put("alice", "alice/locked/", event(uid, location="telemost"))
        waited = time.monotonic() - started
    finally:
        holder.release()
    assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
    assert waited < 2.5
    assert radicale.put("alice", "alice/locked/", event(uid, location="telemost")).status_code in (
        201,
        204,
    )
    mark = radicale.mark()
    radicale.wait_for_log(f"{uid}: telemost create done", start=mark - 50)
    text = radicale.get("alice", "alice/locked/").text
    assert uid in text and "X-MEETPLUGIN-CONFERENCE-ID" in text
