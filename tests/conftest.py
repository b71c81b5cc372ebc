"""The fixtures shared by every kind of test: emulators, servers, the SMTP inbox (not pure).

Tests live by kind: `unit/` (no server, no socket, files only under tmp_path),
`integration/` (sqlite, or one server or emulator), `e2e/` (Radicale, Xandikos, SMTP
and the provider emulators as real processes and servers). Helpers shared between
modules stay here at the top: harness, bridge_support, smtp_inbox, emulators.

A module that needs a Radicale set up otherwise overrides `radicale_config`,
`radicale_env` or `radicale_secrets`; the `radicale` fixture itself exists once.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bridge_support import XandikosServer  # noqa: E402
from emulators.talk import TalkEmulator  # noqa: E402
from emulators.teams import TeamsEmulator  # noqa: E402
from emulators.telemost import TelemostEmulator  # noqa: E402
from emulators.trueconf import TrueConfEmulator  # noqa: E402
from emulators.videomost import VideomostEmulator  # noqa: E402
from emulators.zoom import ZoomEmulator  # noqa: E402
from harness import TOKEN, RadicaleServer, plugin_config  # noqa: E402
from pg_support import PgCluster, SetupFailed, Unavailable  # noqa: E402
from smtp_inbox import Inbox  # noqa: E402

UNIT = Path(__file__).parent / "unit"
TRUECONF_CLIENT, TRUECONF_SECRET = "meetplugin", "tc-secret-456"
VIDEOMOST_TOKEN = "vm-token-789"


# --- unit tests stay off the network -----------------------------------------------------


@pytest.fixture(autouse=True)
def no_sockets_in_unit_tests(request, monkeypatch):
    """A unit test that opens a connection or a port fails, naming what it tried."""
    if UNIT not in request.node.path.parents:
        yield
        return

    def refuse(self, address, *args, **kwargs):
        raise AssertionError(f"a unit test used the network: {address!r}; move it to integration/")

    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, refuse)
    yield


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (the openssl command line makes it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# --- provider emulators ------------------------------------------------------------------


@pytest.fixture(scope="module")
def telemost():
    emu = TelemostEmulator(token=TOKEN).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def tc():
    emu = TrueConfEmulator(TRUECONF_CLIENT, TRUECONF_SECRET).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def vm():
    emu = VideomostEmulator(VIDEOMOST_TOKEN).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def zoom():
    emu = ZoomEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def teams():
    emu = TeamsEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def talk():
    emu = TalkEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def fresh_emulator(request):
    """Each test counts only its own provider calls and meets only its own faults."""
    if "telemost" in request.fixturenames:
        emu = request.getfixturevalue("telemost")
        with emu._lock:
            emu.calls.clear()
            emu.faults.clear()
        emu.personal_account = False
        emu.live_streams = True
        emu.tokens = {emu.token}
    for name in ("tc", "vm", "zoom", "teams", "talk"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield


# --- SMTP --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inbox():
    server = Inbox().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_counts(request):
    """Each test counts only its own SMTP attempts."""
    if "inbox" in request.fixturenames:
        server = request.getfixturevalue("inbox")
        with server._changed:
            server.attempts.clear()
            server.faults.clear()
    yield


# --- CalDAV servers ----------------------------------------------------------------------


# --- the state's two engines -------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    """A throwaway PostgreSQL server for the whole run (skipped where it cannot be had)."""
    try:
        cluster = PgCluster().start()
    except Unavailable as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")
    except SetupFailed as e:
        pytest.fail(f"PostgreSQL did not start: {e}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request) -> str:
    """Each engine in turn: "" (sqlite under state_dir) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("pg_cluster").database()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_state_url(request) -> str:
    """`state_url` for a module's servers: one fresh database per module and engine."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("pg_cluster").database()


@pytest.fixture(scope="module")
def radicale_config(telemost) -> str:
    """The plugin config of the module's `radicale`: Jitsi default, Telemost emulated."""
    return plugin_config(telemost.url)


@pytest.fixture(scope="module")
def radicale_env() -> dict[str, str]:
    return {"TELEMOST_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def radicale_secrets() -> Callable[[], Iterable[str]]:
    """What must never appear in the server's log; asked once the server has stopped."""
    return lambda: [TOKEN]


@pytest.fixture(scope="module")
def radicale(tmp_path_factory, radicale_config, radicale_env, radicale_secrets):
    """Radicale with the plugin, users alice and bob; its log is checked when it stops."""
    server = RadicaleServer(
        tmp_path_factory.mktemp("radicale"), radicale_config, env=radicale_env
    ).start()
    server.ensure_user("alice")
    server.ensure_user("bob")
    yield server
    server.stop()
    assert "internal error" not in server.log and "Traceback" not in server.log, server.log[-3000:]
    assert not [s for s in radicale_secrets() if s in server.log], "a secret was logged"
    assert server.log.count("meetplugin: config") == 1  # one engine, one outbox per process


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Radicale without the plugin: just another CalDAV server."""
    server = RadicaleServer(tmp_path_factory.mktemp("plain"), plugin=False).start()
    server.ensure_user("alice")
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]


@pytest.fixture(scope="module")
def xandikos(tmp_path_factory):
    server = XandikosServer(tmp_path_factory.mktemp("xandikos")).start()
    yield server
    server.stop()
