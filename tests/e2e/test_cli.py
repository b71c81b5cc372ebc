"""The admin commands, run as a person would: `meetplugin check`, `token`, `telemost-token`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid

import icalendar
import pytest
from emulators.trueconf import TrueConfEmulator
from emulators.videomost import VideomostEmulator
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


# --- every provider checked for real; tokens for any provider with users ----------------------

TC_SECRET, VM_TOKEN = "tc-secret-456", "vm-token-789"


@pytest.fixture(scope="module")
def tc():
    emu = TrueConfEmulator("meetplugin", TC_SECRET).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def vm():
    emu = VideomostEmulator(VM_TOKEN).start()
    yield emu
    emu.stop()


def all_providers(telemost, tc, vm, extra: str = "") -> str:
    return (
        plugin_config(telemost.url)
        + "[provider:trueconf]\nserver_url = https://tc.example.ru\n"
        + f"api_url = {tc.api_url}\ntoken_url = {tc.token_url}\nclient_id = meetplugin\n"
        + f"[provider:videomost]\nserver_url = https://vm.example.ru\napi_url = {vm.api_url}\n"
        + extra
    )


def test_check_asks_every_provider_and_writes_nothing(tmp_path, telemost, tc, vm):
    tc.reset()
    vm.reset()
    server = RadicaleServer(tmp_path / "a", all_providers(telemost, tc, vm))
    good_env = {"TELEMOST_TOKEN": TOKEN, "TRUECONF_CLIENT_SECRET": TC_SECRET}
    good = meetplugin(server, "check", env={**good_env, "VIDEOMOST_TOKEN": VM_TOKEN})
    assert good.returncode == 0, good.stdout + good.stderr
    for name in ("telemost", "trueconf", "videomost"):
        assert f"{name} (service account): OK" in good.stdout
    assert "jitsi (service account): OK (no secret yet:" in good.stdout
    assert len(tc.calls_of("POST", target="token")) == 1  # a token request...
    assert [c.method for c in tc.calls_of("GET")] == ["GET"]  # ...and one read with it
    assert [c.authorization for c in vm.calls_of("GET")] == [f"Bearer {VM_TOKEN}"]
    assert tc.calls_of("POST") == [] and vm.calls_of("POST") == []  # nothing created
    assert not server.storage.exists()  # no records.sqlite, no jitsi.secret, no state folder

    tc.reset()
    vm.reset()
    bad = meetplugin(
        server,
        "check",
        env={
            "TELEMOST_TOKEN": TOKEN,
            "TRUECONF_CLIENT_SECRET": "wrong-tc",
            "VIDEOMOST_TOKEN": "x1",
        },
    )
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    (tc_line,) = [line for line in lines if line.startswith("trueconf (service account)")]
    (vm_line,) = [line for line in lines if line.startswith("videomost (service account)")]
    assert "NOT OK" in tc_line and "TrueConf" in tc_line and "401" in tc_line
    assert "NOT OK" in vm_line and "Videomost" in vm_line and "401" in vm_line
    assert "telemost (service account): OK" in bad.stdout
    assert len(tc.calls_of("POST", target="token")) == 1 and len(vm.calls_of("GET")) == 1
    for secret in ("wrong-tc", "x1", TC_SECRET, VM_TOKEN, TOKEN):
        assert secret not in bad.stdout + bad.stderr
    assert not server.storage.exists()


def test_token_for_any_provider_with_users_is_checked_and_owned_like_its_folder(
    tmp_path, telemost, tc, vm
):
    vm.reset()
    vm.user_tokens = {"alice-vm-token"}
    tokens = tmp_path / "vm-tokens"
    tokens.mkdir(mode=0o700)
    os.chown(tokens, 4242, 4343)  # the folder belongs to Radicale's user, not to root
    server = RadicaleServer(
        tmp_path / "a", all_providers(telemost, tc, vm, f"user_token_dir = {tokens}\n")
    )
    env = {"TELEMOST_TOKEN": TOKEN, "TRUECONF_CLIENT_SECRET": TC_SECRET}
    no = meetplugin(server, "token", "jitsi", "--user", "alice", "--token-stdin", env=env)
    assert no.returncode == 2
    assert "providers that take them: talk, telemost, trueconf, videomost" in no.stdout
    bad = meetplugin(
        server, "token", "videomost", "--user", "alice", "--token-stdin", stdin="nope\n", env=env
    )
    assert bad.returncode == 1 and not (tokens / "alice.token").exists()
    assert "nope" not in bad.stdout
    out = meetplugin(
        server,
        "token",
        "videomost",
        "--user",
        "alice",
        "--token-stdin",
        stdin="alice-vm-token\n",
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "alice-vm-token" not in out.stdout
    st = (tokens / "alice.token").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o600)
    assert [c.authorization for c in vm.calls_of("GET")][-1] == "Bearer alice-vm-token"
    # The check asks with alice's own token too.
    vm.reset()
    checked = meetplugin(server, "check", env={**env, "VIDEOMOST_TOKEN": VM_TOKEN})
    assert "videomost (user alice): OK" in checked.stdout, checked.stdout
    assert {c.authorization for c in vm.calls_of("GET")} == {
        f"Bearer {VM_TOKEN}",
        "Bearer alice-vm-token",
    }


def test_a_token_radicale_could_not_read_is_refused(tmp_path, telemost):
    tokens = tmp_path / "tokens"  # made by root, say by an earlier command run as root
    tokens.mkdir(mode=0o700)
    server = RadicaleServer(
        tmp_path / "a", plugin_config(telemost.url) + f"user_token_dir = {tokens}\n"
    )
    server.storage.mkdir(parents=True)
    os.chown(server.storage, 4242, 4343)  # Radicale runs as its own user
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
    assert out.returncode == 1
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("Not stored")]
    assert "belongs to root" in line and "chown 4242:4343" in line
    assert not (tokens / "alice.token").exists() and list(tokens.iterdir()) == []


def test_a_trueconf_user_signs_in_and_radicale_uses_their_account(tmp_path, telemost, tc, vm):
    tc.reset()
    tokens = tmp_path / "tc-tokens"
    tokens.mkdir(mode=0o700)
    conf = plugin_config(telemost.url) + "\n".join(
        [
            "[provider:trueconf]",
            "server_url = https://tc.example.ru",
            f"api_url = {tc.api_url}",
            f"token_url = {tc.token_url}",
            f"user_token_url = {tc.user_token_url}",
            f"redirect_uri = {tc.redirect_uri}",
            "client_id = meetplugin",
            f"user_token_dir = {tokens}",
            "",
        ]
    )
    env = {"TELEMOST_TOKEN": TOKEN, "TRUECONF_CLIENT_SECRET": TC_SECRET}
    server = RadicaleServer(tmp_path / "a", conf, env=env)
    code = tc.sign_in("alice")
    out = meetplugin(
        server,
        "token",
        "trueconf",
        "--user",
        "alice",
        "--token-stdin",
        stdin=f"{tc.redirect_uri}?code={code}\n",
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "https://tc.example.ru/oauth2/authorize?client_id=meetplugin" in out.stdout
    stored = (tokens / "alice.token").read_text().strip()
    assert tc.refresh_tokens[stored] == "alice"
    assert stored not in out.stdout and code not in out.stdout
    again = meetplugin(
        server, "token", "trueconf", "--user", "alice", "--token-stdin", stdin=f"{code}\n", env=env
    )
    assert again.returncode == 1 and "Nothing stored" in again.stdout  # a code works once
    assert (tokens / "alice.token").read_text().strip() == stored
    server.start()
    try:
        server.ensure_user("alice")
        server.ensure_user("bob")
        tc.reset()
        for user in ("alice", "bob"):
            uid = f"{uuid.uuid4()}@tc"
            extra = f"ORGANIZER:mailto:{user}@example.com"
            r = server.put(
                user, f"{user}/calendar/{uid}.ics", event(uid, location="trueconf", extra=extra)
            )
            assert r.ok
        alice, bob = tc.calls_of("POST")
        assert tc.token_users[alice.authorization.split()[1]] == "alice"
        assert bob.authorization.split()[1] not in tc.token_users  # the service account
    finally:
        server.stop()
    assert stored not in server.log and TC_SECRET not in server.log
