"""A create whose outcome nobody knows is listed by `meetplugin reconcile`, whatever hid it.

Telemost picks the conference ids, so a create that may have reached it and
got no usable answer may have left a room nobody uses: it must be recorded as
a suspect. Against a real Radicale and the Telemost emulator.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid

import pytest
from harness import TOKEN, RadicaleServer, event, plugin_config
from test_e2e_core import read, vevent

CAL = "alice/calendar"


@pytest.fixture
def server(tmp_path, telemost):
    radicale = RadicaleServer(
        tmp_path / "radicale",
        plugin_config(
            telemost.url,
            provider_timeout="1",
            call_timeout="5",
            retry_initial="0.1",
            retry_max_delay="0.5",
        ),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    radicale.ensure_user("alice")
    yield radicale
    radicale.stop()
    assert TOKEN not in radicale.log
    assert "Traceback" not in radicale.log


def suspects(server: RadicaleServer, uid: str) -> list[str]:
    db = sqlite3.connect(server.storage / ".meetplugin" / "records.sqlite")
    try:
        return [r[0] for r in db.execute("SELECT reason FROM suspects WHERE uid=?", (uid,))]
    finally:
        db.close()


def reconcile(server: RadicaleServer) -> str:
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
    return done.stdout + done.stderr


def test_an_answer_lost_after_the_room_was_made_is_a_suspect(server, telemost):
    """A proxy that closes the connection after Telemost made the room (issue: 0 suspects)."""
    before = set(telemost.conferences)
    uid = f"{uuid.uuid4()}@lost"
    path = f"{CAL}/{uid}.ics"
    mark = server.mark()
    telemost.lose_answer_next("POST")
    assert server.put("alice", path, event(uid, location="telemost")).status_code == 201
    server.wait_for_log(f"{uid}: telemost create done", start=mark)
    made = set(telemost.conferences) - before
    assert len(made) == 2  # the lost answer's room, and the retry's
    shown = str(vevent(read(server, path)[0])["LOCATION"])
    [orphan] = [c for c in made if telemost.conferences[c]["join_url"] != shown]
    assert suspects(server, uid) == ["no answer"]
    server.stop()
    assert f"suspect          {CAL}/{uid}" in reconcile(server)  # the orphan is listed
    assert orphan in telemost.conferences


def test_a_refused_connection_is_not_a_suspect(server, telemost):
    """Nothing reached Telemost: nothing to list."""
    uid = f"{uuid.uuid4()}@refused"
    mark = server.mark()
    telemost.down()
    try:
        assert server.put("alice", f"{CAL}/{uid}.ics", event(uid, location="telemost")).ok
        server.wait_for_log(f"{uid}: telemost create failed", start=mark)
    finally:
        telemost.up()
    server.wait_for_log(f"{uid}: telemost create done", start=mark)
    assert suspects(server, uid) == []


def test_an_obsolete_create_interrupted_by_a_crash_is_a_suspect(server, telemost):
    """Create held at Telemost, event deleted, SIGKILL, restart, release (issue: 0 suspects)."""
    uid = f"{uuid.uuid4()}@crash"
    path = f"{CAL}/{uid}.ics"
    hold = telemost.hold_next("POST")
    try:
        assert server.put("alice", path, event(uid, location="telemost")).status_code == 201
        assert hold.entered.wait(10)  # the call reached Telemost and waits there
        assert server.delete("alice", path).status_code == 200
        server.kill()
        server.start()  # the new process finds the dead worker's job
        server.wait_for_log(f"{uid}: resuming a create job interrupted mid-call")
        assert suspects(server, uid) == ["interrupted"]
    finally:
        hold.release.set()  # Telemost makes the room now; nobody will ever attach it
    server.stop()
    assert f"suspect          {CAL}/{uid}" in reconcile(server)
    assert len(telemost.calls_of("POST")) == 1  # the obsolete attempt was not run again
