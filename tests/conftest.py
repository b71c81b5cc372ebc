from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from emulators.telemost import TelemostEmulator  # noqa: E402
from harness import TOKEN, RadicaleServer, plugin_config  # noqa: E402,F401


@pytest.fixture(scope="module")
def telemost():
    emu = TelemostEmulator(token=TOKEN).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory, telemost):
    """Radicale with the plugin, Jitsi default, Telemost pointed at the emulator."""
    server = RadicaleServer(
        tmp_path_factory.mktemp("radicale"),
        plugin_config(telemost.url),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    server.ensure_user("alice")
    server.ensure_user("bob")
    yield server
    server.stop()
    assert "internal error" not in server.log and "Traceback" not in server.log, server.log[-3000:]


@pytest.fixture(autouse=True)
def fresh_emulator(request):
    """Each test counts only its own provider calls."""
    if "telemost" in request.fixturenames:
        emu = request.getfixturevalue("telemost")
        with emu._lock:
            emu.calls.clear()
            emu.faults.clear()
        emu.personal_account = False
        emu.tokens = {emu.token}
    yield
