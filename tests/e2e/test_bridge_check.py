"""`meetplugin check -C bridge.conf`: the bridge's config, providers and logins; writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge_support import Dav, bridge_config


def check(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radicale_meetplugin.cli", "check", "-C", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bridge_config_is_checked_with_a_login_at_each_account(tmp_path, plain):
    dav = Dav("radicale", plain.url, "/alice/", "alice", "alice")
    config = bridge_config(tmp_path / "ok", dav, "[meetplugin]\n")
    done = check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config: OK" in done.stdout and "Invalid section" not in done.stdout + done.stderr
    assert "account alice" in done.stdout and ": OK (calendar home /alice/)" in done.stdout
    assert not (tmp_path / "ok" / "state").exists()  # a check writes nothing


def test_a_refused_login_is_a_finding_and_the_password_is_not_shown(tmp_path, plain):
    dav = Dav("radicale", plain.url, "/alice/", "alice", "not-the-password-5e1f")
    config = bridge_config(tmp_path / "bad", dav, "[meetplugin]\n")
    done = check(config)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "account alice" in done.stdout and "NOT OK" in done.stdout
    assert "not-the-password-5e1f" not in done.stdout + done.stderr


def test_a_broken_bridge_config_says_why_in_one_line(tmp_path):
    config = tmp_path / "bridge.conf"
    config.write_text("[bridge]\ninterval = soon\n[account:a]\nurl = http://127.0.0.1:9/\n")
    done = check(config)
    assert done.returncode == 1
    assert "config: NOT OK" in done.stdout and "interval" in done.stdout
    assert "Traceback" not in done.stderr
