"""`meetplugin reconcile`: finds what does not add up, dry run by default, fixes on --fix."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid

import icalendar
from harness import TOKEN, RadicaleServer, event, plugin_config

CAL = "alice/calendar"


def run(server: RadicaleServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "radicale_meetplugin.cli",
            "reconcile",
            "-C",
            str(server.folder / "radicale.conf"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TELEMOST_TOKEN": TOKEN},
    )


def test_reconcile_finds_and_fixes(tmp_path, telemost):
    server = RadicaleServer(
        tmp_path / "a", plugin_config(telemost.url), env={"TELEMOST_TOKEN": TOKEN}
    ).start()
    server.ensure_user("alice")
    orphan_uid, missing_uid, kept_uid = (f"{uuid.uuid4()}@rec" for _ in range(3))
    server.put("alice", f"{CAL}/{orphan_uid}.ics", event(orphan_uid, location="telemost"))
    server.put("alice", f"{CAL}/{kept_uid}.ics", event(kept_uid, location="telemost"))
    orphan_conf = icalendar.Calendar.from_ical(
        server.get("alice", f"{CAL}/{orphan_uid}.ics").text
    ).walk("VEVENT")[0]["X-MEETPLUGIN-CONFERENCE-ID"]
    server.stop()

    # What a plugin-less Radicale (or a restored backup) can leave behind:
    plain = RadicaleServer(tmp_path / "plain", plugin=False, storage=server.storage).start()
    assert plain.delete("alice", f"{CAL}/{orphan_uid}.ics").status_code == 200
    assert (
        plain.put(
            "alice", f"{CAL}/{missing_uid}.ics", event(missing_uid, location="телемост")
        ).status_code
        == 201
    )
    plain.stop()
    db = sqlite3.connect(server.storage / ".meetplugin" / "records.sqlite")
    with db:
        db.execute(
            "INSERT INTO suspects (provider, owner, calendar, uid, attempt, reason, at) "
            "VALUES ('telemost', 'alice', ?, 'x@rec', 'a', 'no answer', 0)",
            (CAL,),
        )
    db.close()

    calls_before = len(telemost.calls)
    dry = run(server)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert f"orphan           {CAL}/{orphan_uid}: telemost conference {orphan_conf}" in dry.stdout
    assert f"missing-link     {CAL}/{missing_uid}: asks for a conference" in dry.stdout
    assert "suspect          alice/calendar/x@rec" in dry.stdout
    assert "cannot-list" in dry.stdout
    assert kept_uid not in dry.stdout
    assert len(telemost.calls) == calls_before  # a dry run calls no provider
    assert TOKEN not in dry.stdout + dry.stderr

    fixed = run(server, "--fix", "--forget-suspects")
    assert "forgot 1 suspect attempts" in fixed.stdout, fixed.stdout + fixed.stderr
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert str(orphan_conf) not in telemost.conferences
    again = run(server)
    assert again.returncode == 0 and "everything adds up" in again.stdout, again.stdout

    server.start()
    try:
        ev = icalendar.Calendar.from_ical(
            server.get("alice", f"{CAL}/{missing_uid}.ics").text
        ).walk("VEVENT")[0]
        assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    finally:
        server.stop()
