"""What a Radicale process with the plugin loads at start: no HTTP client, no mail, until used.

Memory: urllib3 (the providers' HTTP) costs ~0.6 MiB of RSS, requests (the
bridge's) ~5 MiB and the mail modules more; a server that makes no provider
call and sends no letters never loads them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import plugin_config

PROBE = """
import json, sys
import radicale
from radicale import config
app = radicale.Application(config.load([(sys.argv[1], False)]))
meet = app._storage.meet
loaded = {m: m in sys.modules for m in sys.argv[2:]}
meet.outbox.stop()
print(json.dumps(loaded))
"""

HEAVY = [
    "requests",
    "urllib3",
    "radicale_meetplugin.mail.mailer",
    "radicale_meetplugin.mail.mailing",
]


def start(tmp_path, options: str) -> dict[str, bool]:
    (tmp_path / "meetplugin.conf").write_text(options)
    (tmp_path / "radicale.conf").write_text(
        f"""[storage]
type = radicale_meetplugin
meetplugin_config = {tmp_path / "meetplugin.conf"}
filesystem_folder = {tmp_path / "collections"}
"""
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "radicale.conf"), *HEAVY],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TELEMOST_TOKEN": "not-a-real-token", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_server_with_http_providers_loads_no_http_client_before_a_call(tmp_path):
    loaded = start(tmp_path, plugin_config("http://127.0.0.1:9"))
    assert loaded == dict.fromkeys(HEAVY, False)


def test_mail_is_loaded_when_it_is_enabled(tmp_path):
    options = (
        plugin_config("http://127.0.0.1:9")
        + "[mail]\nenabled = true\nhost = 127.0.0.1\nsender = calendar@example.com\n"
    )
    loaded = start(tmp_path, options)
    assert loaded["radicale_meetplugin.mail.mailer"] and loaded["radicale_meetplugin.mail.mailing"]
    assert not loaded["requests"]
