"""A real headless Thunderbird (Debian's package) driven over Marionette, for e2e tests (not pure).

`Thunderbird.start()` installs the `thunderbird` package when it is missing (as root, with
apt-get), makes a fresh profile (user.js: Marionette on a free loopback port, no updates,
telemetry, first-run pages or network beyond loopback, one real mail account whose SMTP
server is the test's aiosmtpd), starts `thunderbird --headless --marionette
--remote-allow-system-access --profile ...` (recent releases refuse the chrome context
without that last flag), awaits Marionette's "Listening on port" line and opens a session with the
PyPI `marionette_driver` client. The calendar side is then set up in the chrome context the way
Thunderbird's own dialogs do it (the login stored in the password manager first, so no
prompt ever appears; then the CalDAV calendar registered with the mail identity as its iTIP
identity), and events are created, moved and deleted through the calendar's transaction
path (`doTransaction`, as the event dialog does), so that Thunderbird's own iTIP logic
decides whether it e-mails the attendees itself or leaves scheduling to the server.
Everything Thunderbird prints (with its calendar and SMTP debug log) goes to
`<folder>/thunderbird.log`. `Unavailable`: the package cannot be installed (tests skip).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from harness import stop_process

PACKAGE = "thunderbird"
BINARY = "thunderbird"


class Unavailable(RuntimeError):
    """Thunderbird is missing and cannot be installed here (the reason is the message)."""


def ensure_thunderbird(log: Path) -> str:
    """The path of the `thunderbird` binary, installed with apt-get when missing (root only)."""
    found = shutil.which(BINARY)
    if found:
        return found
    if os.geteuid() != 0:
        raise Unavailable("Debian package thunderbird missing and not root")
    if not shutil.which("apt-get"):
        raise Unavailable("Debian package thunderbird missing and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as out:
        # another install running at the same time (a second test process) is waited for
        wait = ["-o", "DPkg::Lock::Timeout=600"]
        for step in (["update"], ["install", "-y", PACKAGE]):
            done = subprocess.run(
                ["apt-get", *wait, *step],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=1800,
            )
            if done.returncode != 0:
                raise Unavailable(f"apt-get {step[0]} failed (see {log})")
    found = shutil.which(BINARY)
    if not found:
        raise Unavailable("thunderbird still missing after apt-get")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pref(name: str, value: bool | int | str) -> str:
    return f"user_pref({json.dumps(name)}, {json.dumps(value)});\n"


def profile_prefs(marionette_port: int, smtp_port: int, email: str, name: str) -> dict:
    """user.js of the test profile: quiet, loopback only, one account that can send."""
    return {
        # Marionette, and its own set of prefs for automation (no updates, no
        # first-run pages, remote services pointed nowhere)
        "marionette.port": marionette_port,
        "remote.prefs.recommended": True,
        # no updates, telemetry, health reports or add-on checks
        "app.update.disabledForTesting": True,
        "app.update.auto": False,
        "app.update.staging.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "datareporting.healthreport.uploadEnabled": False,
        "toolkit.telemetry.enabled": False,
        "toolkit.telemetry.unified": False,
        "toolkit.telemetry.server": "",
        "extensions.update.enabled": False,
        "extensions.getAddons.cache.enabled": False,
        "extensions.blocklist.enabled": False,
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "services.settings.server": "http://127.0.0.1:1/",
        # no first-run pages, default-client question, account wizard or start page
        "mail.shell.checkDefaultClient": False,
        "mail.provider.suppress_dialog_on_startup": True,
        "mail.spotlight.firstRunDone": True,
        "mail.winsearch.firstRunDone": True,
        "mail.rights.version": 1,
        "mailnews.start_page.enabled": False,
        "mailnews.auto_config_url": "",
        "mail.inappnotifications.enabled": False,
        "app.donation.eoy.version.viewed": 999,
        "calendar.timezone.useSystemTimezone": False,
        "calendar.timezone.local": "UTC",
        # no network beyond loopback: every other HTTP(S) address goes to a proxy that is not
        # there (loopback itself is never proxied), and no captive portal or connectivity checks
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": 1,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": 1,
        "network.proxy.no_proxies_on": "localhost, 127.0.0.1",
        "network.proxy.allow_hijacking_localhost": False,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "network.dns.disablePrefetch": True,
        "network.prefetch-next": False,
        # what it does goes to its stdout, for the log file
        "browser.dom.window.dump.enabled": True,
        "devtools.console.stdout.chrome": True,
        "calendar.loglevel": "Debug",
        "mailnews.smtp.loglevel": "All",
        # one real account: an identity that sends through the test's SMTP server (a
        # profile with Local Folders only has no identity, and Thunderbird then sends
        # nothing, silently), a POP3 server that is never polled, and Local Folders
        "mail.accountmanager.accounts": "account1,account2",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.accountmanager.localfoldersserver": "server2",
        "mail.account.account1.server": "server1",
        "mail.account.account1.identities": "id1",
        "mail.account.account2.server": "server2",
        "mail.server.server1.type": "pop3",
        "mail.server.server1.hostname": "127.0.0.1",
        "mail.server.server1.port": 1,
        "mail.server.server1.userName": email.split("@")[0],
        "mail.server.server1.name": email,
        "mail.server.server1.login_at_startup": False,
        "mail.server.server1.check_new_mail": False,
        "mail.server.server1.download_on_biff": False,
        "mail.server.server2.type": "none",
        "mail.server.server2.hostname": "Local Folders",
        "mail.server.server2.userName": "nobody",
        "mail.server.server2.name": "Local Folders",
        "mail.identity.id1.useremail": email,
        "mail.identity.id1.fullName": name,
        "mail.identity.id1.smtpServer": "smtp1",
        "mail.identity.id1.valid": True,
        "mail.identity.id1.fcc": False,
        "mail.smtpservers": "smtp1",
        "mail.smtp.defaultserver": "smtp1",
        "mail.smtpserver.smtp1.type": "smtp",
        "mail.smtpserver.smtp1.hostname": "127.0.0.1",
        "mail.smtpserver.smtp1.port": smtp_port,
        "mail.smtpserver.smtp1.authMethod": 1,  # no authentication
        "mail.smtpserver.smtp1.try_ssl": 0,  # plain SMTP on loopback
        "mail.smtpserver.smtp1.description": "test SMTP",
    }


# The prologue of every chrome script: `args` is the Python side's argument, the value the
# async body returns (or the error it throws) goes back through Marionette's callback.
_WRAP = """
const args = arguments[0];
const resolve = arguments[arguments.length - 1];
const { cal } = ChromeUtils.importESModule("resource:///modules/calendar/calUtils.sys.mjs");
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
(async () => {
%s
})().then(
  value => resolve({ ok: value === undefined ? null : value }),
  e => resolve({ error: String(e) + "\\n" + (e && e.stack ? e.stack : "") })
);
"""


class ChromeScriptError(AssertionError):
    """A chrome script threw: its message and JS stack."""


class Thunderbird:
    """Headless Thunderbird with its own profile, an identity at `email`, mail to `smtp_port`."""

    def __init__(
        self, folder: Path, smtp_port: int, email: str = "alice@example.com", name: str = "Alice"
    ) -> None:
        self.folder = folder
        self.smtp_port = smtp_port
        self.email = email
        self.name = name
        self.profile = folder / "profile"
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.client: Any = None  # marionette_driver.marionette.Marionette
        self.version = ""
        self.exit_code: int | None = None
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None
        self._log_path = folder / "thunderbird.log"

    @property
    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    # --- start and stop ---------------------------------------------------------------

    def start(self, timeout: float = 120) -> Thunderbird:
        self.folder.mkdir(parents=True, exist_ok=True)
        binary = ensure_thunderbird(self.folder / "apt.log")
        from marionette_driver.marionette import Marionette

        self.profile.mkdir()
        self.port = _free_port()
        prefs = profile_prefs(self.port, self.smtp_port, self.email, self.name)
        (self.profile / "user.js").write_text("".join(_pref(k, v) for k, v in prefs.items()))
        env = {
            **os.environ,
            "MOZ_HEADLESS": "1",
            "MOZ_CRASHREPORTER_DISABLE": "1",
            "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
            "TMPDIR": str(self.folder),  # the iTIP letters' temporary files stay here
        }
        self.process = subprocess.Popen(
            # recent releases refuse the chrome context (system access) unless this allows it
            [binary, "--headless", "--marionette", "--remote-allow-system-access"]
            + ["--no-remote", "--profile", str(self.profile)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            if not self._listening.wait(timeout) or self.process.poll() is not None:
                raise RuntimeError(
                    f"Thunderbird's Marionette did not listen in {timeout} s:\n{self.log[-3000:]}"
                )
            self.client = Marionette(host="127.0.0.1", port=self.port, startup_timeout=timeout)
            session = self.client.start_session(timeout=timeout)
            self.version = session.get("browserVersion", "")
            self.client.set_context(self.client.CONTEXT_CHROME)
            self.client.timeout.script = 90
            self.chrome("""
              // the main window, with its calendar code, is there once startup has finished
              const win = Services.wm.getMostRecentWindow("mail:3pane");
              if (!win || win.document.readyState != "complete" || !win.doTransaction) {
                await new Promise(done => {
                  const observer = () => {
                    Services.obs.removeObserver(observer, "mail-startup-done");
                    done();
                  };
                  Services.obs.addObserver(observer, "mail-startup-done");
                });
              }
            """)
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self.process and self.process.stdout
        with open(self._log_path, "ab") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if b"Marionette" in line and b"Listening on port" in line:
                    self._listening.set()
        self._listening.set()  # it ended: wake the waiter, which sees poll() set

    def stop(self) -> None:
        """Quit from inside the application (profile flushed); SIGTERM/SIGKILL if it hangs
        or if no session was ever opened. `exit_code` tells how it ended."""
        asked = False
        if self.client is not None:
            try:
                # the driver's `quit()` only handles processes it launched itself;
                # this is the same Marionette:Quit command without the process part
                self.client._request_in_app_shutdown()
                asked = True
            except Exception:
                pass
            try:
                self.client.delete_session(send_request=False)
            except Exception:
                pass
            self.client = None
        if self.process is not None:
            try:
                self.process.wait(timeout=30 if asked else 0.1)
            except subprocess.TimeoutExpired:
                stop_process(self.process)
            self.exit_code = self.process.returncode
            self.process = None
        if self._reader:
            self._reader.join(timeout=5)

    # --- chrome scripts ----------------------------------------------------------------

    def chrome(self, body: str, args: Any = None, timeout: float = 90) -> Any:
        """Run an async JS body in the main window's chrome scope; its return value."""
        assert self.client is not None, "Thunderbird is not running"
        result = self.client.execute_async_script(
            _WRAP % body, script_args=[args], new_sandbox=True, script_timeout=int(timeout * 1000)
        )
        if not isinstance(result, dict):  # e.g. a prompt opened and ended the script
            raise ChromeScriptError(f"the chrome script gave no result: {result!r}")
        if "error" in result:
            raise ChromeScriptError(result["error"])
        return result["ok"]

    # --- the calendar, as the user would set it up ----------------------------------

    def add_caldav_calendar(
        self,
        url: str,
        user: str,
        password: str,
        realm: str,
        offline_cache: bool = True,
        timeout: float = 60,
    ) -> dict:
        """Store the login, register a CalDAV calendar at `url` as the new-calendar wizard
        does (its "offline support" box ticked by default; this identity for iTIP), and await
        its first load. Returns {id, autoschedule, identity}."""
        return self.chrome(
            """
            const { url, user, password, realm, email, offlineCache } = args;
            const uri = Services.io.newURI(url);
            // the password manager entry Thunderbird itself saves when a user ticks
            // "remember": the calendar's auth prompt finds it and never asks
            const login = Cc["@mozilla.org/login-manager/loginInfo;1"].createInstance(
              Ci.nsILoginInfo
            );
            login.init(uri.prePath, null, realm, user, password, "", "");
            const known = await Services.logins.searchLoginsAsync({
              origin: uri.prePath,
              httpRealm: realm,
            });
            if (!known.some(other => other.matches(login, false))) {
              await Services.logins.addLoginAsync(login);
            }

            const identity = MailServices.accounts.allIdentities.find(id => id.email == email);
            if (!identity) {
              throw new Error(`no identity for ${email}`);
            }
            const calendar = cal.manager.createCalendar("caldav", uri);
            calendar.name = "Alice (test)";
            calendar.setProperty("username", user);
            calendar.setProperty("cache.enabled", offlineCache);
            calendar.setProperty("imip.identity.key", identity.key);
            calendar.setProperty("calendar-main-default", true);
            // every calendar's observer, through the manager: the calendar it registers
            // may be a wrapper (the offline cache) around the one made here
            let observer;
            const loaded = new Promise((done, fail) => {
              observer = {
                QueryInterface: ChromeUtils.generateQI(["calIObserver"]),
                onStartBatch() {},
                onEndBatch() {},
                onLoad(loadedCalendar) {
                  if (loadedCalendar.id == calendar.id) {
                    done();
                  }
                },
                onAddItem() {},
                onModifyItem() {},
                onDeleteItem() {},
                onError(errorCalendar, errNo, message) {
                  if (errorCalendar?.id == calendar.id) {
                    fail(new Error(`calendar error ${errNo}: ${message}`));
                  }
                },
                onPropertyChanged() {},
                onPropertyDeleting() {},
              };
            });
            cal.manager.addCalendarObserver(observer);
            // registering loads it (one request chain: two at once would each meet the
            // 401, and the second would drop the stored login as "just failed")
            cal.manager.registerCalendar(calendar);
            const registered = cal.manager.getCalendarById(calendar.id);
            try {
              await loaded;
            } finally {
              cal.manager.removeCalendarObserver(observer);
            }
            return {
              id: calendar.id,
              autoschedule: Boolean(registered.getProperty("capabilities.autoschedule.supported")),
              identity: identity.key,
            };
            """,
            {
                "url": url,
                "user": user,
                "password": password,
                "realm": realm,
                "email": self.email,
                "offlineCache": offline_cache,
            },
            timeout=timeout,
        )

    def create_event(
        self,
        calendar_id: str,
        summary: str,
        location: str,
        start: str,
        end: str,
        attendees: list[str],
    ) -> str:
        """A new event with the organizer and attendees, saved as the event dialog saves
        it (`doTransaction("add", ...)` with the dialog's "notify attendees" on). Its UID."""
        return self.chrome(
            """
            const { CalEvent } = ChromeUtils.importESModule("resource:///modules/CalEvent.sys.mjs");
            const { CalAttendee } = ChromeUtils.importESModule(
              "resource:///modules/CalAttendee.sys.mjs"
            );
            const calendar = cal.manager.getCalendarById(args.calendar);
            const win = Services.wm.getMostRecentWindow("mail:3pane");
            const item = new CalEvent();
            item.id = cal.getUUID();
            item.calendar = calendar;
            item.title = args.summary;
            item.setProperty("LOCATION", args.location);
            // the dialog's "Notify attendees" box, ticked (its default once people are invited)
            item.setProperty("X-MOZ-SEND-INVITATIONS", "TRUE");
            item.startDate = cal.createDateTime(args.start);
            item.endDate = cal.createDateTime(args.end);
            // as the attendees dialog does: the organizer from the calendar's identity,
            // who also attends (chair, accepted), and each invitee with RSVP
            const organizer = new CalAttendee();
            const identity = cal.provider.getEmailIdentityOfCalendar(calendar);
            organizer.id = cal.email.prependMailTo(identity.email);
            organizer.commonName = identity.fullName;
            organizer.isOrganizer = true;
            item.organizer = organizer;
            const chair = new CalAttendee();
            chair.id = organizer.id;
            chair.commonName = organizer.commonName;
            chair.role = "CHAIR";
            chair.participationStatus = "ACCEPTED";
            chair.userType = "INDIVIDUAL";
            item.addAttendee(chair);
            for (const address of args.attendees) {
              const attendee = new CalAttendee();
              attendee.id = cal.email.prependMailTo(address);
              attendee.role = "REQ-PARTICIPANT";
              attendee.participationStatus = "NEEDS-ACTION";
              attendee.rsvp = "TRUE";
              attendee.userType = "INDIVIDUAL";
              item.addAttendee(attendee);
            }
            await win.doTransaction("add", item, calendar, null, null, {
              responseMode: Ci.calIItipItem.AUTO,
            });
            return item.id;
            """,
            {
                "calendar": calendar_id,
                "summary": summary,
                "location": location,
                "start": start,
                "end": end,
                "attendees": attendees,
            },
        )

    def move_event(self, calendar_id: str, uid: str, start: str, end: str) -> int:
        """Move the stored event as the dialog's save does (`doTransaction("modify", ...)`,
        which bumps SEQUENCE); the new SEQUENCE."""
        return self.chrome(
            """
            const calendar = cal.manager.getCalendarById(args.calendar);
            const win = Services.wm.getMostRecentWindow("mail:3pane");
            const old = await calendar.getItem(args.uid);
            if (!old) {
              throw new Error(`no event ${args.uid} in the calendar`);
            }
            const item = old.clone();
            item.startDate = cal.createDateTime(args.start);
            item.endDate = cal.createDateTime(args.end);
            await win.doTransaction("modify", item, calendar, old, null, {
              responseMode: Ci.calIItipItem.AUTO,
            });
            const saved = await calendar.getItem(args.uid);
            return cal.itip.getSequence(saved);
            """,
            {"calendar": calendar_id, "uid": uid, "start": start, "end": end},
        )

    def delete_event(self, calendar_id: str, uid: str) -> None:
        """Delete the event as the views do (`doTransaction("delete", ...)`), notifying."""
        self.chrome(
            """
            const calendar = cal.manager.getCalendarById(args.calendar);
            const win = Services.wm.getMostRecentWindow("mail:3pane");
            const item = await calendar.getItem(args.uid);
            if (!item) {
              throw new Error(`no event ${args.uid} in the calendar`);
            }
            await win.doTransaction("delete", item, calendar, null, null, {
              responseMode: Ci.calIItipItem.AUTO,
            });
            """,
            {"calendar": calendar_id, "uid": uid},
        )
