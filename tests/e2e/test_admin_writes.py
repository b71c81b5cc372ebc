"""What admin runs write: `--verify-storage` nothing, a first start as root files Radicale can read."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from harness import TOKEN, RadicaleServer, event, plugin_config

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="checks what a run as root leaves")


def verify_storage(server: RadicaleServer) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radicale", "--config", str(server.folder / "radicale.conf")]
        + ["--verify-storage"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server.env,
    )


def files_under(folder) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".meetplugin" not in p.parts and ".Radicale.cache" not in p.parts
    }


def test_verify_storage_on_a_fresh_folder_makes_no_state(tmp_path, telemost):
    server = RadicaleServer(
        tmp_path / "r", plugin_config(telemost.url), env={"TELEMOST_TOKEN": TOKEN}
    )
    (server.storage / "collection-root").mkdir(parents=True)
    out = verify_storage(server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (server.storage / ".meetplugin").exists()  # no records.sqlite, no jitsi.secret
    assert "Traceback" not in out.stderr


def test_verify_storage_runs_no_pending_job(tmp_path, telemost):
    server = RadicaleServer(
        tmp_path / "r", plugin_config(telemost.url), env={"TELEMOST_TOKEN": TOKEN}
    )
    server.start()
    try:
        server.ensure_user("alice")
        telemost.down()
        uid = f"{uuid.uuid4()}@test"
        r = server.put("alice", f"alice/calendar/{uid}.ics", event(uid, location="telemost"))
        assert r.status_code in (200, 201)
    finally:
        server.stop()
    before = files_under(server.storage)
    telemost.up()
    out = verify_storage(server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert telemost.calls_of("POST") == []  # the pending create waits for the server
    assert files_under(server.storage) == before  # no event written
    assert "passive" in out.stderr


@root_only
def test_a_first_start_as_root_leaves_files_owned_like_the_storage_folder(tmp_path, telemost):
    server = RadicaleServer(
        tmp_path / "r", plugin_config(telemost.url), env={"TELEMOST_TOKEN": TOKEN}
    )
    server.storage.mkdir(parents=True)
    os.chown(server.storage, 4242, 4343)  # Radicale's own user
    out = subprocess.run(
        [sys.executable, "-m", "radicale_meetplugin.cli", "reconcile", "--fix"]
        + ["-C", str(server.folder / "radicale.conf")],
        capture_output=True,
        text=True,
        timeout=120,
        env=server.env,
    )
    assert out.returncode in (0, 1), out.stdout + out.stderr
    state = server.storage / ".meetplugin"
    made = [state, state / "records.sqlite", state / "jitsi.secret"]
    assert all(p.exists() for p in made)
    assert {(p.stat().st_uid, p.stat().st_gid) for p in made} == {(4242, 4343)}
