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
import textwrap
import uuid
from pathlib import Path

import requests
from bridge_support import free_port, wait_listening
from harness import stop_process
from pg_support import (
    PgCluster,
    SetupFailed,
    Unavailable,
    as_postgres,
    ensure_packages,
    postgresql_installed,
    run,
)

__all__ = ["DavicalServer", "SetupFailed", "Unavailable"]

DAVICAL = Path("/usr/share/davical")
APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
CONFIG_DIR = Path("/etc/davical")  # DAViCal reads /etc/davical/<ServerName>-conf.php

# Debian package -> is it there?
PACKAGES = {
    "davical": lambda: (DAVICAL / "htdocs" / "caldav.php").exists(),
    "postgresql": postgresql_installed,
    "apache2": lambda: os.path.exists(APACHE),
    "libapache2-mod-php": lambda: bool(glob.glob(str(MODULES / "libphp*.so"))),
}


class DavicalServer:
    """DAViCal with users alice, bob and carol (password = the name), mail at example.com."""

    USERS = ("alice", "bob", "carol")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"meetplugin-test-{uuid.uuid4().hex[:10]}"
        self.port = 0
        self.apache: subprocess.Popen | None = None
        # DAViCal's own scripts log in over TCP without a password.
        self._pg = PgCluster(host_auth="trust")
        self._runtime = self._pg.runtime
        self._config = CONFIG_DIR / f"{self.name}-conf.php"

    @property
    def pg_port(self) -> int:
        return self._pg.port

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/caldav.php"

    def psql(self, sql: str, database: str = "davical") -> str:
        return self._pg.psql(sql, database)

    # --- start and stop ------------------------------------------------------

    def start(self) -> DavicalServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        ensure_packages(PACKAGES, self.folder / "apt.log")
        try:
            self._pg.start()
            self._create_davical_database()
            self._add_users()
            self._start_apache()
            self._touch_homes()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_davical_database(self) -> None:
        env = {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.pg_port),
            "PGUSER": "postgres",
            "USER": "postgres",
        }
        script = DAVICAL / "dba" / "create-database.sh"
        out = run(
            as_postgres(["env", *(f"{k}={v}" for k, v in env.items()), "sh", str(script)])
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
        self._pg.stop()
        self._config.unlink(missing_ok=True)
