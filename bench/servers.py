"""Plain Radicale and Radicale with the plugin as real processes on loopback (not pure).

Both run from the interpreter that runs the benchmark (one venv, one Radicale),
with the same settings; only `[storage] type` differs. The plugin's options are
its defaults except the Telemost API address (the emulator). Each server logs to
a file in its folder at Radicale's default level, so no reader in the timing
process competes with the measurement.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

USERS = ("alice", "bob")
TOKEN = "bench-telemost-token"


def plugin_options(telemost_url: str) -> str:
    return "\n".join(
        [
            "[meetplugin]",
            "default_provider = jitsi",
            "language = ru",
            "owner_addresses = {user}@example.com",
            "[provider:jitsi]",
            "base_url = https://meet.jit.si",
            "[provider:telemost]",
            f"api_url = {telemost_url}",
            "token_env = TELEMOST_TOKEN",
            "",
        ]
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One Radicale process in its own folder."""

    def __init__(self, name: str, folder: Path, plugin: bool, telemost_url: str = "") -> None:
        self.name = name
        self.folder = folder
        self.plugin = plugin
        self.storage = folder / "collections"
        self.log_path = folder / "radicale.log"
        self.port = 0
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "users").write_text("".join(f"{u}:{u}\n" for u in USERS))
        storage = "type = multifilesystem\n"
        if plugin:
            (folder / "meetplugin.conf").write_text(plugin_options(telemost_url))
            storage = (
                f"type = radicale_meetplugin\nmeetplugin_config = {folder / 'meetplugin.conf'}\n"
            )
        self._conf_tail = (
            "[auth]\ntype = htpasswd\n"
            f"htpasswd_filename = {folder / 'users'}\n"
            "htpasswd_encryption = plain\ndelay = 0\n"
            "[rights]\ntype = owner_only\n"
            "[storage]\n"
            f"filesystem_folder = {self.storage}\n"
            # Radicale keeps a history entry of every deleted event for sync tokens and
            # looks at all of them on every write: with thousands of timed events made and
            # deleted, plain Radicale's PUT grew from 15 to 90 ms within one run. Kept for
            # 10 s (the benchmark's sync-collection starts without a token), the history
            # and so the calendars stay the same size through a comparison.
            "max_sync_token_age = 10\n"
            'predefined_collections = {"calendar": {"tag": "VCALENDAR", '
            '"D:displayname": "Calendar"}}\n' + storage
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def lock_file(self) -> Path:
        """Radicale's storage lock: every write holds it exclusively."""
        return self.storage / ".Radicale.lock"

    def start(self, timeout: float = 60) -> Server:
        self.port = free_port()
        conf = self.folder / "radicale.conf"
        conf.write_text(f"[server]\nhosts = 127.0.0.1:{self.port}\n" + self._conf_tail)
        env = {**os.environ, "TELEMOST_TOKEN": TOKEN}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                r = requests.options(self.url + "/", timeout=2)
                if r.status_code < 500:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)  # polling a port: no event to await from another process
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def ensure_users(self) -> None:
        """Radicale makes a user's principal and predefined calendar on the first request."""
        for user in USERS:
            r = requests.request(
                "PROPFIND", f"{self.url}/{user}/", auth=(user, user), headers={"Depth": "0"}
            )
            if r.status_code != 207:
                raise RuntimeError(f"{self.name}: PROPFIND /{user}/ gave {r.status_code}")

    def status_kib(self, field: str) -> int:
        assert self.process
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system), from /proc/PID/stat.

        Unlike a request's latency it does not include waiting for the disk (Radicale
        fsyncs every write), so it shows the plugin's own work when latencies are noisy.
        """
        assert self.process
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        """Resident memory now (VmRSS)."""
        return self.status_kib("VmRSS")

    def peak_kib(self) -> int:
        """The highest resident memory since start (VmHWM)."""
        return self.status_kib("VmHWM")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [
            line
            for line in text.splitlines()
            if any(mark in line for mark in ("Traceback", "[ERROR]", "[CRITICAL]"))
            or ("[WARNING]" in line and "meetplugin:" in line)
        ]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
