"""What an admin runs: `meetplugin status` (text, JSON, Prometheus) read-only, one-line
errors and exit 2 on every command, the bridge's sd_notify over a real socket."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from bridge_support import ROOT, BridgeProcess, Dav, XandikosServer, bridge_config
from harness import TOKEN, RadicaleServer, event, plugin_config
from prometheus_client.parser import text_string_to_metric_families

ENV = {"TELEMOST_TOKEN": TOKEN}


def command(*args: str, env: dict | None = None, module: str = "radicale_meetplugin.cli"):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            **(env or {}),
        },
    )


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime: what "nothing written" compares."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# Prometheus' text format, line by line (the parser below is lenient about some of it).
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LINE = re.compile(
    rf"# HELP {_NAME} \S.*|# TYPE {_NAME} (gauge|counter|untyped)|"
    rf'{_NAME}(\{{{_NAME[:-1]}*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\}})? '
    r"-?[0-9.e+]+"
)


def metrics(text: str) -> dict[str, list]:
    assert text.endswith("\n")
    for line in text.splitlines():
        assert _LINE.fullmatch(line), line
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in families.values():
        assert family.documentation and family.type == "gauge", family
    return {name: f.samples for name, f in families.items()}


def test_status_reads_a_running_servers_state_and_writes_nothing(tmp_path, telemost):
    server = RadicaleServer(
        tmp_path / "r", plugin_config(telemost.url, retry_initial="60"), env=ENV
    )
    conf = str(server.folder / "radicale.conf")
    before_any = command("status", "-C", conf)
    assert before_any.returncode == 2 and before_any.stdout == ""
    assert "no plugin state" in before_any.stderr and len(before_any.stderr.splitlines()) == 1
    assert not (server.storage / ".meetplugin").exists()  # a missing state stays missing
    server.start()
    try:
        telemost.fail_next("POST", 503, {"error": "busy"}, times=50)
        uid = str(uuid.uuid4())
        mark = server.mark()
        assert server.put("alice", f"/alice/calendar/{uid}.ics", event(uid, location="telemost")).ok
        server.wait_for_log(r"telemost create failed .*next try", start=mark)
        state = server.storage / ".meetplugin"
        seen = files(state)
        out = command("status", "-C", conf, "--prometheus")
        assert out.returncode == 0, out.stderr
        samples = metrics(out.stdout)
        assert [s.value for s in samples["meetplugin_jobs"]] == [1]
        assert samples["meetplugin_oldest_job_age_seconds"][0].value < 60
        assert samples["meetplugin_suspects"][0].value == 0
        (error,) = samples["meetplugin_provider_last_error_timestamp_seconds"]
        assert error.labels["provider"] == "telemost" and "503" in error.labels["error"]
        assert "meetplugin_bridge_last_success_timestamp_seconds" not in samples
        as_json = json.loads(command("status", "-C", conf, "--json").stdout)
        assert as_json["jobs"] == 1 and as_json["providers"]["telemost"]["pending"] is True
        text = command("status", "-C", conf)
        assert "provider jobs queued: 1" in text.stdout and "nothing to look at" in text.stdout
        assert TOKEN not in out.stdout + text.stdout + json.dumps(as_json)
        after = files(state)
        for name in seen:  # Radicale's own writes move -wal/-shm; the database stays put
            if not name.endswith(("-wal", "-shm")):
                assert after[name] == seen[name], name
    finally:
        server.stop()
    # Stopped: the same, and no new file (a -wal or -shm owned by whoever runs it could lock
    # the server out). sqlite's read marks in an existing -shm are its own business.
    for clean in (False, True):
        if clean:  # as after a clean stop: everything in the database, no -wal or -shm
            with closing(sqlite3.connect(state / "records.sqlite")) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            assert not (state / "records.sqlite-wal").exists()
        seen = files(state)
        out = command("status", "-C", conf, "--state-dir", str(state), "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["jobs"] == 1
        now = files(state)
        assert now.keys() == seen.keys()
        assert {k: v for k, v in now.items() if not k.endswith("-shm")} == {
            k: v for k, v in seen.items() if not k.endswith("-shm")
        }


BROKEN = "[storage\ntype = radicale_meetplugin\n"


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--prometheus"),
        ("check",),
        ("reconcile",),
        ("token", "telemost", "--user", "alice", "--token-stdin"),
        ("telemost-token", "--user", "alice", "--token-stdin"),
    ],
)
def test_every_command_says_in_one_line_why_it_cannot_run(tmp_path, args):
    broken = tmp_path / "broken.conf"
    broken.write_text(BROKEN)
    for conf, words in (
        (tmp_path / "missing.conf", "config file not found"),
        (broken, "not a valid Radicale config"),
    ):
        out = command(*args, "-C", str(conf))
        assert out.returncode == 2, out
        assert out.stderr.startswith("meetplugin: ") and words in out.stderr, out.stderr
        assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    # Without -C: $RADICALE_CONFIG, else /etc/radicale/config.
    out = command(*args, env={"RADICALE_CONFIG": str(tmp_path / "env.conf")})
    assert out.returncode == 2 and f"{tmp_path / 'env.conf'}" in out.stderr


def test_the_bridge_says_in_one_line_why_it_cannot_run(tmp_path):
    broken = tmp_path / "bridge.conf"
    broken.write_text("[bridge\n")
    for flag in ("-C", "--config", "-c"):  # -c: the spelling of earlier releases
        out = command(flag, str(broken), "--once", module="bridge")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("meetplugin-bridge: ")
    out = command("--once", module="bridge", env={"MEETPLUGIN_BRIDGE_CONFIG": "/nonexistent"})
    assert out.returncode == 2 and "config file not found: /nonexistent" in out.stderr
    assert "-c " not in command("--help", module="bridge").stdout  # hidden alias


def test_bridge_notifies_systemd_and_records_its_cycles(tmp_path, telemost):
    xandikos = XandikosServer(tmp_path / "x").start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify")
    sock.bind(address)
    sock.settimeout(30)
    process = None
    try:
        dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
        conf = bridge_config(tmp_path / "bridge", dav, plugin_config(telemost.url))
        env = {**ENV, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
        process = BridgeProcess(conf, env=env)
        messages = []
        while "WATCHDOG=1" not in messages or messages.count("WATCHDOG=1") < 3:
            messages.append(sock.recv(4096).decode())
        ready = [m for m in messages if "READY=1" in m]
        assert ready and messages.index(ready[0]) < messages.index("WATCHDOG=1")
        process.wait_for(r"bridge: running")
        state = tmp_path / "bridge" / "state"
        out = command("status", "--state-dir", str(state), "--prometheus")
        assert out.returncode == 0, out.stderr
        (sample,) = metrics(out.stdout)["meetplugin_bridge_last_success_timestamp_seconds"]
        assert sample.labels == {"account": "alice"} and sample.value > 0
        process.process.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
        assert process.wait() == 0
    finally:
        if process is not None:
            process.stop()
        sock.close()
        xandikos.stop()


def test_each_decision_is_one_info_line_and_provider_requests_are_debug_lines(tmp_path, telemost):
    server = RadicaleServer(
        tmp_path / "r",
        plugin_config(telemost.url),
        env=ENV,
    )
    conf = server.folder / "radicale.conf"
    conf.write_text(conf.read_text().replace("level = info", "level = debug"))
    server.start()
    try:
        cases = {
            "plain": dict(location="Room 5"),
            "attendee": dict(
                location="telemost",
                extra="ORGANIZER:mailto:boss@elsewhere.org\nATTENDEE:mailto:alice@example.com",
            ),
            "disabled": dict(location="trueconf"),
            "marked": dict(location="telemost"),
        }
        uids = {name: f"{name}-{uuid.uuid4()}" for name in cases}
        for name, fields in cases.items():
            uid = uids[name]
            assert server.put("alice", f"/alice/calendar/{uid}.ics", event(uid, **fields)).ok
        server.wait_for_log(rf"{uids['marked']}: telemost conference attached")
        expected = {
            "plain": r"ignore: no marker",
            "attendee": r"ignore: attendee copy",
            "disabled": r"fail \(trueconf\): not provisioned: provider_disabled",
            "marked": r"create \(telemost\)$",
        }
        for name, pattern in expected.items():
            lines = [
                line.strip()
                for line in server.log_lines
                if f"meetplugin: alice/calendar/{uids[name]}: " in line
                and re.search(r": (ignore|fail|create|keep|pending|clear)\b", line)
            ]
            assert len(lines) == 1, (name, lines)
            assert re.search(pattern, lines[0]), lines[0]
            assert "[INFO]" in lines[0], lines[0]
        assert re.search(r"DEBUG.*meetplugin: telemost POST /\S+ -> 201 in \d+ ms", server.log)
        assert TOKEN not in server.log
    finally:
        server.stop()
