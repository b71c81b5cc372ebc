"""systemd's service notification (sd_notify): READY, WATCHDOG, STATUS, STOPPING.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` names an abstract socket). ``$WATCHDOG_USEC`` (for
this process, if ``$WATCHDOG_PID`` says so) asks for ``WATCHDOG=1`` at least that often.
Without ``$NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) every call does nothing.
The two maintained packages that do this are a C extension (systemd-python, cysystemd);
the last pure-Python one (sdnotify) had its last release in 2017; so it is done here.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger("meetplugin.bridge")


class Notifier:
    def __init__(self, address: str = "", watchdog: float = 0.0) -> None:
        self.address = address
        self.watchdog = watchdog  # seconds systemd waits for WATCHDOG=1; 0: no watchdog
        self._last_beat = 0.0
        self._warned = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        address = env.get("NOTIFY_SOCKET", "")
        watchdog = 0.0
        pid = env.get("WATCHDOG_PID", "")
        if env.get("WATCHDOG_USEC", "").isdigit() and (not pid or pid == str(os.getpid())):
            watchdog = int(env["WATCHDOG_USEC"]) / 1e6
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; False if it could not be sent."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall("\n".join(fields).encode())
        except OSError as e:
            if not self._warned:  # once: a broken socket must not flood the log
                self._warned = True
                logger.warning("bridge: cannot notify systemd at %s: %s", self.address, e)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *((f"STATUS={status}",) if status else ()))

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def beat(self) -> None:
        """WATCHDOG=1, at most twice per watchdog period (callers may call it often)."""
        if not self.watchdog or not self.address:
            return
        now = time.monotonic()
        if now - self._last_beat >= self.watchdog / 4:
            self._last_beat = now
            self.send("WATCHDOG=1")

    def wait_slice(self, interval: float) -> float:
        """How long to sleep at most between beats (the whole interval without a watchdog)."""
        return min(interval, self.watchdog / 2) if self.watchdog else interval
