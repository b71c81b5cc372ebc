"""PostgreSQL as the state: moving a Radicale's sqlite state over, migrations, the password.

A real Radicale runs on sqlite, gets a pending job and a record, and its state is
copied with `meetplugin migrate-state` (refused while the server runs, idempotent
after); the server then runs on the database and finishes the job. `meetplugin
migrate` brings a state one schema version behind up to date on both engines. The
URL's password never shows in the log, in `status`/`check` output or in errors;
libpq's PGPASSWORD and PGPASSFILE are honoured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from bridge_support import ROOT
from harness import TOKEN, RadicaleServer, event, plugin_config, state_db
from pg_support import PASSWORD

from radicale_meetplugin.state.db import open_database
from radicale_meetplugin.state.records import SCHEMA

ENV = {"TELEMOST_TOKEN": TOKEN}
CAL = "alice/calendar"


def meetplugin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radicale_meetplugin.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            **ENV,
            **(env or {}),
        },
    )


def count(url: str, storage, sql: str) -> int:
    db = state_db(storage, url)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)  # polling a condition, not a fixed wait


def test_a_radicale_state_moves_to_postgresql_without_loss(tmp_path, telemost, pg_cluster):
    url = pg_cluster.database()
    server = RadicaleServer(
        tmp_path / "sqlite", plugin_config(telemost.url, retry_initial="60"), env=ENV
    ).start()
    server.ensure_user("alice")
    state = server.storage / ".meetplugin" / "records.sqlite"
    try:
        done, pending = f"{uuid.uuid4()}@done", f"{uuid.uuid4()}@pending"
        assert server.put("alice", f"{CAL}/{done}.ics", event(done, location="telemost")).ok
        telemost.fail_next("POST", 503, {"error": "busy"}, times=50)
        mark = server.mark()
        assert server.put("alice", f"{CAL}/{pending}.ics", event(pending, location="telemost")).ok
        server.wait_for_log(r"telemost create failed .*next try", start=mark)
        busy = meetplugin("migrate-state", "--from", f"sqlite:{state}", "--to", url)
        assert busy.returncode == 2 and "in use" in busy.stderr, busy
        assert len(busy.stderr.splitlines()) == 1 and PASSWORD not in busy.stderr
    finally:
        server.stop()
    with telemost._lock:  # the provider is back, and counts afresh
        telemost.faults.clear()
        telemost.calls.clear()
    assert count("", server.storage, "SELECT COUNT(*) FROM jobs") == 1

    check = meetplugin("migrate-state", "--from", f"sqlite:{state}", "--to", url, "--check")
    assert check.returncode == 1 and "conferences: would copy 2" in check.stdout, check
    assert "jobs: would copy 1" in check.stdout and PASSWORD not in check.stdout
    assert open_database(url, SCHEMA.upto(0), migrate=False).tables() == []  # wrote nothing
    moved = meetplugin("migrate-state", "--from", f"sqlite:{state}", "--to", url)
    assert moved.returncode == 0, moved.stderr
    assert "conferences: copied 2, already there 0" in moved.stdout
    assert "jobs: copied 1, already there 0" in moved.stdout
    assert "postgresql://meetplugin:***@" in moved.stdout and PASSWORD not in moved.stdout
    again = meetplugin("migrate-state", "--from", f"sqlite:{state}", "--to", url)
    assert again.returncode == 0 and "nothing to copy" in again.stdout, again
    assert "conferences: copied 0, already there 2" in again.stdout
    checked = meetplugin("migrate-state", "--from", f"sqlite:{state}", "--to", url, "--check")
    assert checked.returncode == 0 and "nothing to copy" in checked.stdout

    # The server, started again on the database, runs the job it finds there.
    moved_server = RadicaleServer(
        tmp_path / "pg",
        plugin_config(telemost.url, state_url=url),
        env=ENV,
        storage=server.storage,
    ).start()
    try:
        conf = str(moved_server.folder / "radicale.conf")
        status = meetplugin("status", "-C", conf, "--json")
        assert status.returncode in (0, 1), status
        assert PASSWORD not in status.stdout + status.stderr
        assert status.stdout, status
        assert json.loads(status.stdout)["state_dir"].startswith("postgresql://meetplugin:***@")
        until(lambda: count(url, None, "SELECT COUNT(*) FROM jobs") == 0)
        text = moved_server.get("alice", f"{CAL}/{pending}.ics").text
        assert "https://telemost" in text  # the job moved over and ran there
        assert count(url, None, "SELECT COUNT(*) FROM conferences WHERE state='active'") == 2
        assert len(telemost.calls_of("POST")) == 1  # the done one was not made again
        why = meetplugin("explain", "-C", conf, f"{CAL}/{pending}")
        assert why.returncode == 0 and "https://telemost" in why.stdout, why
        assert PASSWORD not in why.stdout + why.stderr
    finally:
        moved_server.stop()
    assert PASSWORD not in moved_server.log
    assert "records in postgresql://meetplugin:***@" in moved_server.log


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migrate_brings_the_previous_version_up_to_date(tmp_path, telemost, pg_cluster, engine):
    url = pg_cluster.database() if engine == "postgresql" else ""
    folder = tmp_path / "r"
    server = RadicaleServer(folder, plugin_config(telemost.url, state_url=url), env=ENV)
    conf = str(folder / "radicale.conf")
    target = url or str(server.storage / ".meetplugin" / "records.sqlite")
    os.makedirs(server.storage / ".meetplugin", exist_ok=True)
    open_database(target, SCHEMA.upto(SCHEMA.version - 1)).close()

    check = meetplugin("migrate", "-C", conf, "--check")
    assert check.returncode == 1 and "1 step(s) to run" in check.stdout, check
    assert open_database(target, SCHEMA, migrate=False).version == SCHEMA.version - 1
    done = meetplugin("migrate", "-C", conf)
    assert done.returncode == 0, done.stderr
    assert f"schema version {SCHEMA.version - 1} -> {SCHEMA.version}" in done.stdout
    again = meetplugin("migrate", "-C", conf)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert PASSWORD not in done.stdout + again.stdout + check.stdout


def test_the_password_never_shows_and_libpq_supplies_it(tmp_path, telemost, pg_cluster):
    url = pg_cluster.database()
    without = url.replace(f":{PASSWORD}@", "@")
    folder = tmp_path / "r"
    RadicaleServer(folder, plugin_config(telemost.url, state_url=url), env=ENV)
    conf = str(folder / "radicale.conf")

    checked = meetplugin("check", "-C", conf)
    assert "state postgresql://meetplugin:***@" in checked.stdout, checked
    assert PASSWORD not in checked.stdout + checked.stderr

    wrong = url.replace(PASSWORD, "not-the-password-77")
    RadicaleServer(tmp_path / "w", plugin_config(telemost.url, state_url=wrong), env=ENV)
    refused = meetplugin("check", "-C", str(tmp_path / "w" / "radicale.conf"))
    assert refused.returncode == 1 and "state: NOT OK" in refused.stdout, refused
    assert "not-the-password-77" not in refused.stdout + refused.stderr
    status = meetplugin("status", "-C", str(tmp_path / "w" / "radicale.conf"))
    assert status.returncode == 2 and "not-the-password-77" not in status.stdout + status.stderr

    bad = wrong.replace("postgresql://", "mysql://")
    RadicaleServer(tmp_path / "b", plugin_config(telemost.url, state_url=bad), env=ENV)
    invalid = meetplugin("check", "-C", str(tmp_path / "b" / "radicale.conf"))
    assert "state_url" in invalid.stdout + invalid.stderr, invalid
    assert "not-the-password-77" not in invalid.stdout + invalid.stderr

    RadicaleServer(tmp_path / "e", plugin_config(telemost.url, state_url=without), env=ENV)
    env_conf = str(tmp_path / "e" / "radicale.conf")
    denied = meetplugin("check", "-C", env_conf, env={"PGPASSFILE": str(tmp_path / "none")})
    assert denied.returncode == 1 and "state: NOT OK" in denied.stdout
    by_env = meetplugin("check", "-C", env_conf, env={"PGPASSWORD": PASSWORD})
    assert "state postgresql://meetplugin@" in by_env.stdout, by_env
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_cluster.port}:*:meetplugin:{PASSWORD}\n")
    passfile.chmod(0o600)
    by_file = meetplugin("check", "-C", env_conf, env={"PGPASSFILE": str(passfile)})
    assert "state postgresql://meetplugin@" in by_file.stdout, by_file
