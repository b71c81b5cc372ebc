"""The admin commands, run as a person would: `meetplugin check`, `telemost-token`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid

import icalendar
from harness import TOKEN, RadicaleServer, event, plugin_config


def meetplugin(
    server: RadicaleServer, *args: str, stdin: str = "", env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "radicale_meetplugin.cli",
            args[0],
            "-C",
            str(server.folder / "radicale.conf"),
            *args[1:],
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_check_says_what_works(tmp_path, telemost):
    server = RadicaleServer(tmp_path / "a", plugin_config(telemost.url))
    good = meetplugin(server, "check", env={"TELEMOST_TOKEN": TOKEN})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "config: OK" in good.stdout
    assert "telemost (service account): OK" in good.stdout
    assert "jitsi (service account): OK" in good.stdout
    assert telemost.calls_of("POST") == []  # nothing was created
    bad = meetplugin(server, "check", env={"TELEMOST_TOKEN": "wrong-token-xyz"})
    assert bad.returncode == 1
    assert "telemost (service account): NOT OK" in bad.stdout and "401" in bad.stdout
    assert "wrong-token-xyz" not in bad.stdout + bad.stderr


def test_check_reports_a_broken_config(tmp_path, telemost):
    server = RadicaleServer(tmp_path / "a", "[meetplugin]\nlanguage = de\n")
    out = meetplugin(server, "check")
    assert out.returncode == 1 and "config: NOT OK" in out.stdout and "language" in out.stdout


def test_telemost_token_is_checked_and_stored_privately(tmp_path, telemost):
    tokens = tmp_path / "tokens"
    server = RadicaleServer(
        tmp_path / "a", plugin_config(telemost.url) + f"user_token_dir = {tokens}\n"
    )
    bad = meetplugin(
        server,
        "telemost-token",
        "--user",
        "alice",
        "--client-id",
        "app123",
        "--token-stdin",
        stdin="not-a-valid-token\n",
    )
    assert bad.returncode == 1 and not (tokens / "alice.token").exists()
    assert "not-a-valid-token" not in bad.stdout
    telemost.tokens.add("alice-own-token")
    out = meetplugin(
        server,
        "telemost-token",
        "--user",
        "alice",
        "--client-id",
        "app123",
        "--token-stdin",
        stdin="alice-own-token\n",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "https://oauth.yandex.ru/authorize?response_type=token&client_id=app123" in out.stdout
    assert "telemost-api%3Aconferences.create" in out.stdout
    path = tokens / "alice.token"
    assert path.read_text().strip() == "alice-own-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o700
    assert "alice-own-token" not in out.stdout


def test_each_user_their_own_token(tmp_path, telemost):
    tokens = tmp_path / "tokens"
    tokens.mkdir(mode=0o700)
    (tokens / "alice.token").write_text("alice-own-token\n")
    os.chmod(tokens / "alice.token", 0o600)
    telemost.tokens.add("alice-own-token")
    telemost.tokens.add("bob-own-token")
    server = RadicaleServer(
        tmp_path / "a", plugin_config(telemost.url) + f"user_token_dir = {tokens}\n"
    ).start()  # no service account token
    try:
        for user in ("alice", "bob"):
            server.ensure_user(user)
        uid = f"{uuid.uuid4()}@own"
        server.put("alice", f"alice/calendar/{uid}.ics", event(uid, location="telemost"))
        assert [c.authorization for c in telemost.calls_of("POST")] == ["OAuth alice-own-token"]
        uid = f"{uuid.uuid4()}@own"
        path = f"bob/calendar/{uid}.ics"
        server.put("bob", path, event(uid, location="telemost", description="Повестка"))
        ev = icalendar.Calendar.from_ical(server.get("bob", path).text).walk("VEVENT")[0]
        assert "нет доступа к сервису Яндекс Телемост" in str(ev["DESCRIPTION"])
        assert len(telemost.calls_of("POST")) == 1
        # The admin stores Bob's token; Bob's next edit gets his conference.
        (tokens / "bob.token").write_text("bob-own-token\n")
        os.chmod(tokens / "bob.token", 0o600)
        cal = icalendar.Calendar.from_ical(server.get("bob", path).text)
        cal.walk("VEVENT")[0]["SUMMARY"] = icalendar.vText("Планёрка, вторая попытка")
        server.put("bob", path, cal.to_ical().decode())
        assert telemost.calls_of("POST")[-1].authorization == "OAuth bob-own-token"
        assert "X-TELEMOST-CONFERENCE" in server.get("bob", path).text
    finally:
        server.stop()
    assert "own-token" not in server.log
