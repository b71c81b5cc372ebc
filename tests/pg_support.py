"""A throwaway PostgreSQL cluster on loopback for the tests (Debian's package; not pure).

`PgCluster.start()` makes a cluster with initdb in a temporary folder, runs it with
pg_ctl on a free loopback port and removes it in `stop()`. TCP logins need a
password (scram-sha-256) unless the cluster is made with `host_auth="trust"`; the
admin's own commands go over the cluster's Unix socket. `database()` gives a fresh,
empty database owned by the test role and its URL (with the password in it).

`ensure_packages` installs missing Debian packages as root with apt-get (DAViCal's
tests use it too). `Unavailable`: they cannot be installed here (the tests skip
with that reason); `SetupFailed`: they are there but the cluster did not come up.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from bridge_support import free_port

ROLE, PASSWORD = "meetplugin", "pg-secret-5f3a9c"


class Unavailable(RuntimeError):
    """The Debian packages are missing and cannot be installed here (the reason is the message)."""


class SetupFailed(RuntimeError):
    """The packages are there but the server did not come up: a failure, not a skip."""


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise SetupFailed(f"PostgreSQL's {name} not found")


def postgresql_installed() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or bool(shutil.which("initdb"))


def ensure_packages(checks: Mapping[str, Callable[[], bool]], log: Path) -> None:
    """Install the Debian packages whose check fails (root only); Unavailable when it cannot."""

    def missing() -> list[str]:
        return [name for name, present in checks.items() if not present()]

    if not missing():
        return
    if os.geteuid() != 0:
        raise Unavailable(f"Debian packages missing ({', '.join(missing())}) and not root")
    if not shutil.which("apt-get"):
        raise Unavailable(f"Debian packages missing ({', '.join(missing())}) and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as out:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", *checks]):
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=1800
            )
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(command[:2])} failed (see {log})")
    if missing():
        raise Unavailable(f"still missing after apt-get: {', '.join(missing())}")


def run(command: list[str], what: str, env: dict | None = None, **kw) -> str:
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        **kw,
    )
    if done.returncode != 0:
        raise SetupFailed(f"{what} failed: {(done.stdout + done.stderr)[-1500:]}")
    return done.stdout


def as_postgres(command: list[str]) -> list[str]:
    """Run as the database's own user when root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PgCluster:
    """One PostgreSQL server in a temporary folder, on 127.0.0.1:`port`."""

    def __init__(self, host_auth: str = "scram-sha-256") -> None:
        self.host_auth = host_auth
        self.port = 0
        # Outside pytest's private temp folder: the database's user must reach it.
        self.runtime = Path(tempfile.mkdtemp(prefix="meetplugin-pg-"))
        self.data = self.runtime / "pg"
        self.sockets = self.runtime / "pg-sockets"
        self._started = False

    def start(self) -> PgCluster:
        ensure_packages({"postgresql": postgresql_installed}, self.runtime / "apt.log")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.data.mkdir()
        self.sockets.mkdir()
        os.chmod(self.runtime, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        run(
            as_postgres(
                [pg_bin("initdb"), "-D", str(self.data), "-U", "postgres"]
                + ["--auth-local=trust", f"--auth-host={self.host_auth}"]
                + ["--encoding=UTF8", "--locale=C"]
            ),
            "initdb",
        )
        self.port = free_port()
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=16MB"
        )
        run(
            as_postgres(
                [pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w"]
                + ["-l", str(self.data / "server.log"), "start"]
            ),
            "pg_ctl start",
        )
        self._started = True
        self.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' CREATEDB")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` as the superuser over the Unix socket; its output (unaligned)."""
        return run(
            as_postgres(
                [pg_bin("psql"), "-qXAt", "-h", str(self.sockets), "-p", str(self.port)]
                + ["-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql, database]
            ),
            "psql",
        )

    def url(self, database: str, password: str | None = PASSWORD) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{ROLE}{secret}@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "state") -> str:
        """A new empty database owned by the test role: its URL, password included."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def log(self) -> str:
        path = self.data / "server.log"
        try:
            return path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._started:
            subprocess.run(
                as_postgres(
                    [pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                timeout=120,
            )
            self._started = False
        shutil.rmtree(self.runtime, ignore_errors=True)
