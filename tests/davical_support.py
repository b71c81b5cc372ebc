"""DAViCal (Debian's package) on loopback for the bridge's tests: a throwaway PostgreSQL
cluster and an Apache with mod_php, both in a temporary folder, torn down after.

`DavicalServer.start()` installs the Debian packages when they are missing (as root,
with apt-get), makes a PostgreSQL cluster with initdb on a free loopback port,
builds DAViCal's database with DAViCal's own create-database.sh, adds the users,
writes a DAViCal config named after this server's ServerName and runs Apache on
another free port. `Unavailable`: the packages cannot be installed (the tests skip with
that reason); `SetupFailed`: they are there but DAViCal did not come up (a failure).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import textwrap
import uuid
from pathlib import Path

import requests
from bridge_support import free_port, wait_listening
from harness import stop_process

PACKAGES = ("davical", "postgresql", "apache2", "libapache2-mod-php")
DAVICAL = Path("/usr/share/davical")
APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
CONFIG_DIR = Path("/etc/davical")  # DAViCal reads /etc/davical/<ServerName>-conf.php


class Unavailable(RuntimeError):
    """The Debian packages are missing and cannot be installed here (the reason is the message)."""


class SetupFailed(RuntimeError):
    """The packages are there but DAViCal did not come up: a failure, not a skip."""


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SetupFailed(f"PostgreSQL's {name} not found")
    return found[-1]


def _missing() -> list[str]:
    checks = {
        "davical": (DAVICAL / "htdocs" / "caldav.php").exists(),
        "postgresql": bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        "apache2": os.path.exists(APACHE),
        "libapache2-mod-php": bool(glob.glob(str(MODULES / "libphp*.so"))),
    }
    return [p for p, ok in checks.items() if not ok]


def ensure_packages(log: Path) -> None:
    """Install what is missing (root only); Unavailable when that cannot be done."""
    missing = _missing()
    if not missing:
        return
    if os.geteuid() != 0:
        raise Unavailable(f"Debian packages missing ({', '.join(missing)}) and not root")
    if not shutil.which("apt-get"):
        raise Unavailable(f"Debian packages missing ({', '.join(missing)}) and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as out:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=1800
            )
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(command[:2])} failed (see {log})")
    if _missing():
        raise Unavailable(f"still missing after apt-get: {', '.join(_missing())}")


class DavicalServer:
    """DAViCal with users alice, bob and carol (password = the name), mail at example.com."""

    USERS = ("alice", "bob", "carol")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"meetplugin-test-{uuid.uuid4().hex[:10]}"
        self.pg_port = 0
        self.port = 0
        self.apache: subprocess.Popen | None = None
        # The cluster lives outside pytest's private temp folder: its user must reach it.
        self._runtime = Path(tempfile.mkdtemp(prefix="meetplugin-davical-"))
        self._pg_data = self._runtime / "pg"
        self._config = CONFIG_DIR / f"{self.name}-conf.php"
        self._pg_started = False

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/caldav.php"

    # --- running things as the database's own user --------------------------------

    def _as_postgres(self, command: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, command: list[str], what: str, env: dict | None = None, **kw) -> str:
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

    def psql(self, sql: str, database: str = "davical") -> str:
        return self._run(
            self._as_postgres(
                ["psql", "-qXAt", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres"]
                + ["-v", "ON_ERROR_STOP=1", "-c", sql, database]
            ),
            "psql",
        )

    # --- start and stop ------------------------------------------------------

    def start(self) -> DavicalServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        ensure_packages(self.folder / "apt.log")
        try:
            self._start_database()
            self._create_davical_database()
            self._add_users()
            self._start_apache()
            self._touch_homes()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_database(self) -> None:
        self._pg_data.mkdir()
        sockets = self._runtime / "pg-sockets"
        sockets.mkdir()
        os.chmod(self._runtime, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self._pg_data, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        self._run(
            self._as_postgres(
                [_pg_bin("initdb"), "-D", str(self._pg_data), "-U", "postgres"]
                + ["--auth=trust", "--encoding=UTF8", "--locale=C"]
            ),
            "initdb",
        )
        self.pg_port = free_port()
        options = f"-p {self.pg_port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            self._as_postgres(
                [_pg_bin("pg_ctl"), "-D", str(self._pg_data), "-o", options, "-w"]
                + ["-l", str(self._pg_data / "server.log"), "start"]
            ),
            "pg_ctl start",
        )
        self._pg_started = True

    def _create_davical_database(self) -> None:
        env = {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.pg_port),
            "PGUSER": "postgres",
            "USER": "postgres",
        }
        script = DAVICAL / "dba" / "create-database.sh"
        out = self._run(
            self._as_postgres(["env", *(f"{k}={v}" for k, v in env.items()), "sh", str(script)])
            + ["davical", "admin-password"],
            "DAViCal's create-database.sh",
            cwd=str(self._runtime),
        )
        (self.folder / "create-database.log").write_text(out)

    def _add_users(self) -> None:
        for user in self.USERS:
            self.psql(
                textwrap.dedent(f"""\
                WITH u AS (
                    INSERT INTO usr (active, email_ok, updated, username, password, fullname, email)
                    VALUES (TRUE, current_date, current_date, '{user}', '**{user}',
                            '{user.title()}', '{user}@example.com')
                    RETURNING user_no
                )
                INSERT INTO principal (type_id, user_no, displayname, default_privileges)
                SELECT 1, user_no, '{user.title()}',
                       privilege_to_bits(ARRAY['read-free-busy', 'schedule-deliver'])::BIT(24)
                FROM u;
                """)
            )

    def _start_apache(self) -> None:
        self.port = free_port()
        php = sorted(glob.glob(str(MODULES / "libphp*.so")))[-1]
        run = self._runtime / "apache"
        run.mkdir()
        if os.geteuid() == 0:
            shutil.chown(run, "www-data", "www-data")
        self._config.write_text(
            textwrap.dedent(f"""\
            <?php
            $c->pg_connect[] = "dbname=davical user=davical_app host=127.0.0.1 port={self.pg_port}";
            $c->system_name = "DAViCal for meetplugin tests";
            $c->admin_email = "admin@example.com";
            $c->collections_always_exist = true;
            $c->home_calendar_name = "calendar";
            $c->enable_auto_schedule = true;
            """)
        )
        modules = [
            ("mpm_prefork_module", MODULES / "mod_mpm_prefork.so"),
            ("authz_core_module", MODULES / "mod_authz_core.so"),
            ("mime_module", MODULES / "mod_mime.so"),
            ("dir_module", MODULES / "mod_dir.so"),
            ("alias_module", MODULES / "mod_alias.so"),
            ("php_module", Path(php)),
        ]
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        conf = self.folder / "apache.conf"
        conf.write_text(
            "".join(f"LoadModule {name} {path}\n" for name, path in modules)
            + user
            + textwrap.dedent(f"""\
            ServerRoot {run}
            DefaultRuntimeDir {run}
            PidFile {run}/apache.pid
            Listen 127.0.0.1:{self.port}
            ServerName {self.name}
            UseCanonicalName On
            ErrorLog {self.folder}/apache-error.log
            LogLevel warn
            TypesConfig /etc/mime.types
            StartServers 2
            MinSpareServers 1
            MaxSpareServers 4
            DocumentRoot {DAVICAL}/htdocs
            <Directory {DAVICAL}/htdocs>
                AllowOverride None
                Require all granted
                DirectoryIndex index.php
            </Directory>
            <FilesMatch "\\.php$">
                SetHandler application/x-httpd-php
            </FilesMatch>
            AcceptPathInfo On
            php_value include_path /usr/share/awl/inc
            php_value error_reporting "E_ALL & ~E_NOTICE & ~E_DEPRECATED"
            php_value default_charset "utf-8"
            php_flag display_errors off
            php_flag log_errors on
            """)
        )
        log = open(self.folder / "apache.out", "ab")
        self.apache = subprocess.Popen(
            [APACHE, "-f", str(conf), "-DFOREGROUND"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # prefork signals its whole process group when it stops
        )
        log.close()
        try:
            wait_listening(self.port, self.apache)
        except RuntimeError as e:
            raise SetupFailed(
                f"Apache did not start: {e}: {(self.folder / 'apache.out').read_text()[-1500:]}"
            ) from None

    def _touch_homes(self) -> None:
        """Each user makes their home calendar, as a client would (MKCALENDAR)."""
        for user in self.USERS:
            r = requests.request(
                "MKCALENDAR", f"{self.url}/{user}/calendar/", auth=(user, user), timeout=30
            )
            if r.status_code != 201:
                raise SetupFailed(
                    f"DAViCal answers {r.status_code} for {user}'s calendar: {r.text[:500]}"
                    f"\n{self.error_log()}"
                )

    def error_log(self) -> str:
        path = self.folder / "apache-error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.apache is not None:
            stop_process(self.apache)
            self.apache = None
        if self._pg_started:
            subprocess.run(
                self._as_postgres(
                    [_pg_bin("pg_ctl"), "-D", str(self._pg_data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                timeout=120,
            )
            self._pg_started = False
        self._config.unlink(missing_ok=True)
        shutil.rmtree(self._runtime, ignore_errors=True)
