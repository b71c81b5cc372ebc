"""`meetplugin explain CALENDAR/UID`: what the plugin decided for a stored event, writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from harness import RadicaleServer, event

CONF = "[meetplugin]\nowner_addresses = {user}@example.com\n"


def explain(server: RadicaleServer, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radicale_meetplugin.cli", "explain"]
        + ["-C", str(server.folder / "radicale.conf"), target],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )


def snapshot(folder) -> dict[str, tuple[int, float]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime)
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".Radicale.lock"
    }


def test_explain_says_what_was_decided_and_why_without_writing(tmp_path):
    server = RadicaleServer(tmp_path / "r", CONF).start()
    try:
        server.ensure_user("alice")
        mine, foreign = f"{uuid.uuid4()}@test", f"{uuid.uuid4()}@test"
        server.put("alice", f"alice/calendar/{mine}.ics", event(mine, location="jitsi"))
        carol = "ORGANIZER:mailto:carol@example.org\nATTENDEE:mailto:alice@example.com"
        server.put(
            "alice", f"alice/calendar/{foreign}.ics", event(foreign, location="jitsi", extra=carol)
        )
    finally:
        server.stop()
    before = snapshot(server.storage)

    out = explain(server, f"alice/calendar/{mine}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "record: active, provider jitsi, conference" in out.stdout
    assert "organizer: yes" in out.stdout
    assert "decision on a save now: keep (jitsi)" in out.stdout

    out = explain(server, f"alice/calendar/{foreign}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "record: none" in out.stdout
    assert "detection: asks for jitsi (via location)" in out.stdout
    assert "organizer: no: ORGANIZER carol@example.org is none of alice's addresses" in out.stdout
    assert "decision on a save now: ignore" in out.stdout

    missing = explain(server, "alice/calendar/nope@test")
    assert missing.returncode == 1 and "not stored" in missing.stdout
    bad = explain(server, "nobody/none/x@test")
    assert bad.returncode == 2 and "no such calendar" in bad.stderr
    assert "Traceback" not in out.stderr + missing.stderr + bad.stderr
    assert snapshot(server.storage) == before  # nothing written, not even the state file


def test_explain_on_a_server_with_no_state_yet_creates_none(tmp_path):
    server = RadicaleServer(tmp_path / "r", CONF, plugin=False).start()
    try:
        server.ensure_user("alice")
        uid = f"{uuid.uuid4()}@test"
        server.put("alice", f"alice/calendar/{uid}.ics", event(uid, location="jitsi"))
    finally:
        server.stop()
    conf = server.folder / "radicale.conf"
    conf.write_text(
        conf.read_text().replace(
            "type = multifilesystem",
            f"type = radicale_meetplugin\nmeetplugin_config = {server.folder / 'meetplugin.conf'}",
        )
    )
    out = explain(server, f"alice/calendar/{uid}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "does not exist yet" in out.stdout
        and "decision on a save now: create (jitsi)" in out.stdout
    )
    assert not (server.storage / ".meetplugin").exists()
