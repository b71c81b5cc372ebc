"""One cycle over every account and calendar; the daemon loop around it.

A cycle, per account:

1. one PROPFIND for every calendar's ctag and sync token (Depth 1 on the
   calendar home, or Depth 0 per configured calendar); a calendar whose pair
   did not change since it was last followed to the end costs nothing more —
   so an idle cycle costs the same whatever the calendars hold;
2. for a changed calendar: RFC 6578 ``sync-collection`` from the stored token
   (ETags only), or, without sync, a PROPFIND listing of ETags; `follow` says
   which hrefs need reading (not the versions we handled or wrote ourselves);
3. the changed events are read (``calendar-multiget`` in batches) and judged
   (`writeback`), across all calendars of the account first; then deletions
   (so an event moved between two calendars keeps its conference); the new
   token is stored only after that, so a crash or stop means "redo from the
   old token", and the per-href ETags make the redo cheap and idempotent.

Provider calls run in the outbox meanwhile; the cycle waits for them up to
``provider_timeout`` with the lock released, so their results land in the
same cycle when the provider is quick.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from bridge import follow, leases, ownership
from bridge.caldav_client import (
    MULTIGET_BATCH,
    CalDAVClient,
    CalDAVError,
    CalendarInfo,
    Meter,
    Resource,
    SyncTokenInvalid,
    SyncUnsupported,
    path_of,
)
from bridge.config import Account, BridgeConfig
from bridge.leases import LeaseLost
from bridge.notify import Notifier
from bridge.state import BridgeState, CalendarState
from bridge.writeback import Link, Tally, Writer, calendar_key
from radicale_meetplugin import bootstrap
from radicale_meetplugin.core.model import ActionKind, EventKey, Job
from radicale_meetplugin.protocol.outbox import JOBS
from radicale_meetplugin.protocol.ports import Outcome
from radicale_meetplugin.state.worker import Worker

logger = logging.getLogger("meetplugin.bridge")

ClientFactory = Callable[..., CalDAVClient]


class BridgeBusy(RuntimeError):
    """Another bridge process works on the same state folder."""


@dataclass
class Report:
    """What one cycle did, for the log, the tests and the benchmark."""

    calendars: int = 0
    changed: int = 0  # calendars that needed a sync or listing
    read: int = 0  # events read and judged
    written: int = 0
    conflicts: int = 0  # 412 answers (edited meanwhile)
    ours: int = 0  # own write-backs recognised
    deleted: int = 0
    refused: int = 0
    jobs: int = 0
    errors: int = 0  # accounts that failed this cycle
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.calendars} calendars, {self.changed} changed; {self.read} read, "
            f"{self.written} written, {self.deleted} deleted, {self.ours} own write-backs "
            f"seen, {self.conflicts} conflicts, {self.jobs} provider jobs; "
            f"{self.requests} requests, {self.bytes / 1024:.1f} KiB, {self.seconds:.2f} s"
        )

    @property
    def busy(self) -> bool:
        return bool(self.read or self.written or self.deleted or self.errors or self.jobs)


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        client_factory: ClientFactory = CalDAVClient,
        adopt: bool = False,
    ) -> None:
        """`adopt`: take over events another bridge instance marked as its own."""
        self.config = config
        self.shared = config.workers == "shared"
        os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
        # Two bridges judging the same events at once could race for one conference
        # (a cron run overtaking a slow one): one process per state folder — or, with
        # workers = shared, any number of them, each account leased to one (leases.py).
        self._lockfile = open(os.path.join(config.state_dir, "bridge.lock"), "a")
        try:
            fcntl.flock(
                self._lockfile.fileno(),
                (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB,
            )
        except BlockingIOError:
            self._lockfile.close()
            raise BridgeBusy(
                f"another meetplugin-bridge is running on {config.state_dir}"
                + (
                    " with workers = single"
                    if self.shared
                    else " (several need workers = shared in every config)"
                )
            ) from None
        self.engine = bootstrap.build_engine(
            config.meetplugin_config,
            config.state_dir,
            service_folder="",
            default_state_url=config.state_url,
        )
        state_folder = self.engine.state_dir
        self.state_folder = state_folder
        # The plugin config's state_url wins, as its state_dir does.
        state_url = self.engine.settings.main["state_url"] or config.state_url
        self.state = BridgeState(state_url or os.path.join(state_folder, "bridge.sqlite"))
        self.instance = ownership.instance_id(state_folder)
        if self.shared:  # the workers on one state are one instance, whatever their folders
            self.instance = self.state.shared_value(leases.INSTANCE, self.instance)
        self._account_locks: list[ownership.AccountLock] = []
        self._local_locks: dict[str, ownership.AccountLock] = {}  # lock file -> lock
        self._local_users: dict[str, set[str]] = {}  # lock file -> accounts leased under it
        self._busy_noted: set[str] = set()
        if not self.shared:
            try:
                self._lock_accounts(config.accounts, state_folder)
            except BridgeBusy:
                self.state.close()
                self.engine.store.close()
                self._lockfile.close()
                raise
        self._extend_addresses(config.accounts)
        if adopt:  # the events left alone before are judged again, to be taken over
            for account in config.accounts:
                self.state.adopt_again(account.name)
        self.meter = Meter()
        self.links = [
            Link(
                a,
                client_factory(
                    a.url, a.username, a.password.value, config.http_timeout, self.meter
                ),
            )
            for a in config.accounts
        ]
        self.leases: leases.Leases | None = None
        self._woken = threading.Event()  # cut the wait between two cycles short
        if self.shared:
            self.leases = leases.Leases(
                self.state,
                (a.name for a in config.accounts),
                config.lease_timeout,
                lock_local=self._lock_local,
                unlock_local=self._unlock_local,
            )
            self.leases.keep = self._calls_under_way
            self.leases.taken = self._woken.set  # a new account: cycle now, not at the interval
        for link in self.links:
            self._prepare_login(link)
            if self.leases is not None:  # the servers' logs tell the workers apart
                agent = link.client.session.headers.get("User-Agent", "")
                link.client.session.headers["User-Agent"] = f"{agent} worker/{self.leases.worker}"
        self.by_owner = {link.owner: link for link in self.links}
        self.lock = threading.RLock()  # one judge at a time; CalDAV calls of one client serial
        self.writer = Writer(
            self.engine,
            self.state,
            self.lock,
            instance=self.instance,
            adopt=adopt,
            fence=self.leases.check if self.leases is not None else None,
        )
        self.budget = float(self.engine.settings.main["provider_timeout"])
        self._calls: dict[concurrent.futures.Future, str] = {}  # provider calls -> account
        self._calls_lock = threading.Lock()
        self.outbox = bootstrap.build_outbox(
            self.engine,
            self.settle,
            worker=_LeasedJobs(self._wanted_jobs) if self.leases is not None else None,
        )
        self.stop_event = threading.Event()
        self.beat: Callable[[], None] = _nothing  # the watchdog's heartbeat (run_forever)
        self._futures: list[concurrent.futures.Future] = []  # this cycle's jobs
        self._inflight: set[concurrent.futures.Future] = set()  # every job not known done
        logger.info(
            "bridge: instance %s; %d account(s): %s; state: %s%s",
            self.instance,
            len(self.links),
            ", ".join(f"{a.name} ({a.url})" for a in config.accounts),
            state_folder,
            "; taking over events of other instances (--adopt)" if adopt else "",
        )
        if self.leases is not None:
            logger.info(
                "bridge: worker %s; workers = shared, lease_timeout %g s",
                self.leases.worker,
                config.lease_timeout,
            )
            try:
                self.leases.register()
            except BaseException:
                self.close()
                raise

    # --- shared workers -------------------------------------------------------

    def _lock_local(self, account_name: str) -> bool:
        """Lock a leased account on this host too (a hung worker or a single bridge keeps it).

        Accounts with one URL and login share one lock file: this process holds it once
        for all of them.
        """
        account = next(a for a in self.config.accounts if a.name == account_name)
        lock = ownership.AccountLock(account.url, account.username)
        users = self._local_users.get(lock.path)
        if users:
            users.add(account_name)
            return True
        holder = f"pid {os.getpid()}, instance {self.instance}, state {self.state_folder}, shared"
        try:
            lock.acquire(holder)
        except (ownership.AccountBusy, OSError) as e:
            level = logging.DEBUG if account_name in self._busy_noted else logging.WARNING
            self._busy_noted.add(account_name)
            logger.log(
                level,
                "bridge: %s: another process on this machine follows it (%s); not taken",
                account_name,
                e,
            )
            return False
        self._busy_noted.discard(account_name)
        self._local_locks[lock.path] = lock
        self._local_users[lock.path] = {account_name}
        return True

    def _unlock_local(self, account_name: str) -> None:
        for path, users in list(self._local_users.items()):
            if account_name in users:
                users.discard(account_name)
                if not users:
                    del self._local_users[path]
                    self._local_locks.pop(path).release()

    def _calls_under_way(self, account_name: str) -> bool:
        """Provider calls this worker runs for the account (it keeps the account for them)."""
        with self._calls_lock:
            self._calls = {f: a for f, a in self._calls.items() if not f.done()}
            return account_name in self._calls.values()

    def _wanted_jobs(self, jobs: list[Job]) -> list[Job]:
        """The due jobs this worker runs: its accounts', deletes, and those of no account."""
        assert self.leases is not None
        held = self.leases.held()
        wanted = []
        for job in jobs:
            link = self.by_owner.get(job.key.owner)
            if job.kind is ActionKind.DELETE or link is None or link.name in held:
                wanted.append(job)
        return wanted

    def _lock_accounts(self, accounts: tuple[Account, ...], state_folder: str) -> None:
        """One bridge process per account on this machine, whatever its state folder."""
        holder = f"pid {os.getpid()}, instance {self.instance}, state {state_folder}"
        for account in accounts:
            lock = ownership.AccountLock(account.url, account.username)
            if any(held.path == lock.path for held in self._account_locks):
                continue  # another account with the same URL and login: locked already
            try:
                lock.acquire(holder)
            except ownership.AccountBusy as e:
                self._unlock_accounts()
                raise BridgeBusy(
                    f"account {account.name} ({account.url}) is followed by another "
                    f"meetplugin-bridge on this machine ({e})"
                ) from None
            except OSError as e:
                self._unlock_accounts()
                raise BridgeBusy(f"cannot lock account {account.name}: {e}") from None
            self._account_locks.append(lock)

    def _unlock_accounts(self) -> None:
        for lock in self._account_locks:
            lock.release()
        self._account_locks = []

    def _extend_addresses(self, accounts: tuple[Account, ...]) -> None:
        """Each account's `addresses` join the plugin config's [owner_addresses]."""
        settings = self.engine.settings
        extra = {user: tuple(v) for user, v in settings.owner_addresses.items()}
        for account in accounts:
            if account.addresses:
                user = account.owner.lower()
                extra[user] = (*extra.get(user, ()), *account.addresses)
        self.engine.settings = dataclasses.replace(settings, owner_addresses=extra)
        if self.engine.mailing is not None:  # it kept the old settings: the letters' fallback
            self.engine.mailing.settings = self.engine.settings

    # --- running -------------------------------------------------------------

    def run_forever(self, notifier: Notifier | None = None) -> None:
        """Cycle every `interval` seconds until `stop()` (SIGTERM).

        Under systemd (`Type=notify`) it says READY=1 once the outbox runs, and, with
        `WatchdogSec=`, WATCHDOG=1 between cycles and after each account and batch in one,
        so a hung cycle gets the process restarted.
        """
        notifier = notifier or Notifier()
        self.beat = notifier.beat
        self.outbox.start()
        if self.leases is not None:  # workers started together see each other first
            self.leases.start(delay=min(1.0, self.leases.period))
        logger.info("bridge: running, a cycle every %g s", self.config.interval)
        notifier.ready(f"a cycle every {self.config.interval:g} s")
        while not self.stop_event.is_set():
            notifier.beat()
            self._woken.clear()
            report = self.cycle()
            notifier.status(f"last cycle: {report.line()}")
            deadline = time.monotonic() + self.config.interval
            while not self.stop_event.is_set() and not self._woken.is_set():
                notifier.beat()
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._woken.wait(notifier.wait_slice(left))
        notifier.stopping()
        logger.info("bridge: stopped")

    def run_once(self) -> Report:
        """One cycle, plus the outbox's due jobs (for cron); waits up to the budget."""
        if self.leases is not None:
            self.leases.start()  # its share first: the due jobs run where their account is
        futures = self.outbox.submit_due()
        self._futures.extend(futures)
        self._inflight.update(futures)
        self.outbox.mail_queued()  # letters left from an earlier run go now
        return self.cycle()

    def stop(self) -> None:
        self.stop_event.set()
        self._woken.set()

    def close(self) -> None:
        """Let provider calls already under way finish and land, then let go."""
        self._inflight = {f for f in self._inflight if not f.done()}
        if self._inflight:
            logger.info("bridge: waiting for %d provider call(s) under way", len(self._inflight))
            concurrent.futures.wait(
                self._inflight, timeout=self.engine.settings.main["call_timeout"] + 5
            )
        letters = self.outbox.sending()
        if letters and self.engine.mailer is not None:  # invitation e-mails being handed over
            logger.info("bridge: waiting for %d e-mail(s) being sent", len(letters))
            concurrent.futures.wait(letters, timeout=4 * self.engine.mailer.timeout + 5)
        self.outbox.stop()
        if self.leases is not None:
            self.leases.stop()
        for link in self.links:
            link.client.close()
        for lock in self._local_locks.values():
            lock.release()
        self._local_locks, self._local_users = {}, {}
        self.state.close()
        self.engine.store.close()
        self._unlock_accounts()
        self._lockfile.close()  # releases the lock

    def cycle(self) -> Report:
        if self.leases is not None and not self.leases.started:
            self.leases.start()  # a --once run, or a caller cycling by hand: take a share now
        started = time.monotonic()
        requests0, bytes0 = self.meter.snapshot()
        report = Report()
        with self.lock:
            for link in self.links:
                if self.stop_event.is_set():
                    break
                self.beat()
                generation = self.leases.begin(link.name) if self.leases is not None else 0
                if self.leases is not None and not generation:
                    continue  # another worker's account
                logger.debug("bridge: %s: begin (lease generation %d)", link.name, generation)
                tally = Tally()
                errors = report.errors
                failure = ""
                lost = False
                try:
                    self._cycle_account(link, tally, report)
                except LeaseLost:
                    lost = True  # logged where it was found: this worker leaves the account
                except Exception as e:
                    report.errors += 1
                    failure = _reason(e)
                    logger.warning(
                        "bridge: %s: cycle failed, next cycle tries again: %s",
                        link.name,
                        failure,
                    )
                    logger.debug("bridge: %s: failure details", link.name, exc_info=True)
                finally:
                    self._submit(tally, link.name)
                    self._remember_login(link)
                    if self.leases is not None:
                        self.leases.end(link.name)
                    logger.debug("bridge: %s: end", link.name)
                if not lost and (not self.stop_event.is_set() or failure):
                    if not failure and report.errors > errors:
                        failure = f"{report.errors - errors} calendar(s) skipped"
                    self._record_cycle(link.name, failure)
                for name in ("read", "written", "conflicts", "ours", "deleted", "refused"):
                    setattr(report, name, getattr(report, name) + getattr(tally, name))
                report.jobs += tally.submitted
        futures, self._futures = self._futures, []
        if futures:
            concurrent.futures.wait(futures, timeout=self.budget)
        self._inflight = {f for f in self._inflight if not f.done()}
        requests1, bytes1 = self.meter.snapshot()
        report.requests, report.bytes = requests1 - requests0, bytes1 - bytes0
        report.seconds = time.monotonic() - started
        logger.log(
            logging.INFO if report.busy else logging.DEBUG, "bridge: cycle: %s", report.line()
        )
        return report

    def _record_cycle(self, account: str, failure: str) -> None:
        """Keep the account's outcome for `meetplugin status` (a state error is only logged)."""
        try:
            self.state.cycle_done(account, time.time(), failure)
        except Exception as e:
            logger.warning("bridge: %s: cannot record the cycle: %s", account, _reason(e))

    def _submit(self, tally: Tally, account: str = "") -> None:
        """Hand the queued provider jobs to the outbox now (they run outside the lock)."""
        if tally.jobs:
            futures = self.outbox.submit(j.id for j in tally.jobs)
            self._futures.extend(futures)
            self._inflight.update(futures)
            if account and self.leases is not None:
                with self._calls_lock:
                    self._calls.update((f, account) for f in futures)
            tally.submitted += len(tally.jobs)
            tally.jobs = []

    # --- logging in ----------------------------------------------------------

    def _prepare_login(self, link: Link) -> None:
        """Basic up front when the account says so or the server took it before."""
        account, client = link.account, link.client
        if account.auth == "digest":
            client.digest_only = True
        elif account.auth == "basic" or self.state.login_scheme(link.name, account.url) == "basic":
            client.send_basic_first()

    def _remember_login(self, link: Link) -> None:
        scheme = link.client.scheme
        if scheme and scheme != self.state.login_scheme(link.name, link.account.url):
            self.state.set_login_scheme(link.name, link.account.url, scheme)

    # --- one account ---------------------------------------------------------

    def _cycle_account(self, link: Link, tally: Tally, report: Report) -> None:
        infos = self._calendars(link, tally)
        report.calendars += len(infos)
        work: list[tuple[str, follow.Changes, CalendarState]] = []
        for info in infos:
            stored = self.state.calendar(link.name, info.href)
            version = f"{info.ctag}|{info.sync_token}"
            if stored is not None and version != "|" and stored.version == version:
                continue  # unchanged since we last followed it to the end
            report.changed += 1
            try:
                changes, new_state, delta = self._changes(link, info, stored, version)
            except CalDAVError as e:  # this calendar only; a refused login stops the account
                if e.status == 401:
                    raise
                report.errors += 1
                logger.warning("bridge: %s: %s skipped this cycle: %s", link.name, info.href, e)
                continue
            if delta:
                tally.ours += len(changes.own)
            work.append((info.href, changes, new_state))
        for calendar, changes, _state in work:  # every change first, then deletions
            self._fence(link)
            self.state.seen_many(link.name, calendar, dict(changes.seen))
            self._read_and_judge(link, calendar, changes.fetch, tally)
            if self.stop_event.is_set():
                return  # tokens stay: the next start redoes this cheaply
        for calendar, changes, new_state in work:
            self._fence(link)
            for href in changes.deleted:
                item = self.state.item(link.name, href)
                if item is not None and item.uid:
                    tally.jobs.extend(
                        self.engine.on_delete(
                            EventKey(link.owner, calendar_key(calendar), item.uid)
                        )
                    )
                self.state.drop_item(link.name, href)
                tally.deleted += 1
            self.state.save_calendar(link.name, calendar, new_state)
        for calendar, href in self.state.dirty(link.name):
            self._fence(link)
            res = link.client.get(href)
            if res is None:
                item = self.state.item(link.name, href)
                self.state.seen(link.name, calendar, href, item.uid if item else "", "")
                continue
            tally.read += 1
            self.writer.judge(link, calendar, res, tally)

    def _fence(self, link: Link) -> None:
        """With shared workers: still this worker's account? (LeaseLost stops the work.)"""
        if self.leases is not None:
            self.leases.check(link.name)

    def _read_and_judge(
        self, link: Link, calendar: str, hrefs: tuple[str, ...], tally: Tally
    ) -> None:
        for i in range(0, len(hrefs), MULTIGET_BATCH):
            batch = hrefs[i : i + MULTIGET_BATCH]
            self._fence(link)
            known = self.state.known(link.name, calendar, batch)
            found = link.client.fetch(calendar, batch)
            for href in batch:
                res = found.get(href)
                if res is None:
                    continue  # gone since the listing: the next one says so
                if follow.handled(known.get(href), res.etag):
                    continue  # the listing gave no ETag, and this version is handled
                tally.read += 1
                self.writer.judge(link, calendar, res, tally)
            self._submit(tally, link.name)
            self.beat()
            if self.stop_event.is_set():
                return

    def _changes(
        self, link: Link, info: CalendarInfo, stored: CalendarState | None, version: str
    ) -> tuple[follow.Changes, CalendarState, bool]:
        """(what changed, the calendar's state once handled, is it a delta)."""
        account, client = link.account, link.client
        if account.sync == "etag":
            mode = "etag"
        elif stored is not None and stored.mode == "nosync":
            mode = "nosync"
        elif info.sync_token or (stored is not None and stored.mode == "sync"):
            mode = "sync"
        else:
            mode = "nosync"
        if mode == "sync":
            token = stored.token if stored is not None and stored.mode == "sync" else ""
            try:
                try:
                    delta = client.sync(info.href, token)
                except SyncTokenInvalid:
                    logger.info(
                        "bridge: %s: %s: the server forgot our sync token; comparing "
                        "the whole calendar once",
                        link.name,
                        info.href,
                    )
                    delta = client.sync(info.href, "")
            except SyncUnsupported as e:
                logger.info(
                    "bridge: %s: %s: no WebDAV sync (%s); following it by ETags",
                    link.name,
                    info.href,
                    e,
                )
                mode = "nosync"
            else:
                if delta.full:
                    changes = follow.from_listing(
                        self.state.known(link.name, info.href), delta.changed
                    )
                else:
                    changes = follow.from_delta(
                        self.state.known(link.name, info.href, [*delta.changed, *delta.deleted]),
                        delta.changed,
                        delta.deleted,
                    )
                return changes, CalendarState(version, delta.token, "sync"), not delta.full
        listing = client.etags(info.href)
        changes = follow.from_listing(self.state.known(link.name, info.href), listing)
        return changes, CalendarState(version, "", mode), False

    def _calendars(self, link: Link, tally: Tally) -> list[CalendarInfo]:
        """The account's calendars with their ctags: one request (or one per listed calendar)."""
        account, client = link.account, link.client
        if account.calendars:
            found = []
            for wanted in account.calendars:
                href = path_of(urllib.parse.urljoin(account.url, wanted))
                href = href if href.endswith("/") else href + "/"
                info = client.calendar(href)
                if info is None:
                    self._calendar_gone(link, href, tally)
                    logger.warning("bridge: %s: calendar %s not found", link.name, href)
                    continue
                found.append(info)
            return found
        home, principal = self.state.home(link.name, account.url)
        infos: list[CalendarInfo] | None = None
        if home:
            try:
                infos = client.calendars(home)
            except CalDAVError as e:
                logger.info(
                    "bridge: %s: calendar home %s answered %s; discovering it again",
                    link.name,
                    home,
                    e.status,
                )
        if infos is None:
            home = client.discover_home()
            principal = client.principal_href
            self.state.set_home(link.name, account.url, home, principal)
            logger.info("bridge: %s: calendar home %s", link.name, home)
            infos = client.calendars(home)
        mine = [
            i
            for i in infos
            if i.events
            and not (i.owner and principal and i.owner.rstrip("/") != principal.rstrip("/"))
        ]
        present = {i.href for i in infos}
        for href in self.state.calendars(link.name):
            if href not in present:
                self._calendar_gone(link, href, tally)
        return mine

    def _calendar_gone(self, link: Link, href: str, tally: Tally) -> None:
        """A followed calendar vanished: if it is really gone, so are its conferences."""
        if self.state.calendar(link.name, href) is None:
            return
        if link.client.calendar(href) is not None:
            return  # still there, only no longer listed as ours: stop following it
        self._fence(link)
        logger.info("bridge: %s: calendar %s was deleted", link.name, href)
        tally.jobs.extend(self.engine.on_delete_calendar(calendar_key(href)))
        self.state.forget_calendar(link.name, href)

    # --- the outbox's callback ---------------------------------------------

    def settle(self, job: Job, outcome: Outcome) -> list[Job]:
        """Write a job's final outcome into the event as it is now (the outbox calls this)."""
        if job.kind is ActionKind.DELETE:
            return self.engine.settle(job, outcome, None)[1]
        link = self.by_owner.get(job.key.owner)
        with self.lock:
            if link is None:  # the account left the config: the conference is not wanted
                return self.engine.settle(job, outcome, None)[1]
            if self.leases is None:
                return self.writer.settle(link, job, outcome)
            generation = self.leases.begin(link.name)
            if not generation:
                logger.info(
                    "bridge: %s: %s/%s: the %s result came after this worker left the "
                    "account; it is recorded and the worker holding the account writes it",
                    link.name,
                    job.key.calendar,
                    job.key.uid,
                    job.provider,
                )
            else:
                logger.debug(
                    "bridge: %s: begin settle (lease generation %d)", link.name, generation
                )
            try:
                return self.writer.settle(link, job, outcome)
            except LeaseLost:
                return []  # recorded; the event is marked for the lease holder's next cycle
            finally:
                if generation:
                    self.leases.end(link.name)
                    logger.debug("bridge: %s: end settle", link.name)


class _LeasedJobs(Worker):
    """The outbox's worker of a shared bridge: due provider jobs of its own accounts only.

    Jobs a cycle queues go to `submit` at once (its account is leased); a retry
    or a job whose worker died waits for the worker that holds its account.
    """

    def __init__(self, wanted: Callable[[list[Job]], list[Job]]) -> None:
        super().__init__()
        self._wanted = wanted
        self._skipped = False

    def submit_due(self, name: str, now: float | None = None) -> list[concurrent.futures.Future]:
        if name != JOBS:
            return super().submit_due(name, now)
        queue = self.lane(name).queue
        now = time.time() if now is None else now
        orphaned = [i for i, holder in queue.held_by_others(self.owner) if not self.alive(holder)]
        ids = list(dict.fromkeys([*queue.due(now, owner=self.owner), *orphaned]))
        if not ids:
            return []
        jobs = queue.items(f"id IN ({','.join('?' * len(ids))})", ids)
        mine = [j.id for j in self._wanted(jobs)]
        self._skipped = len(mine) < len(jobs)
        return self.submit(name, mine)

    def sweep(self) -> float | None:
        next_at = super().sweep()
        if self._skipped and next_at is not None:  # another worker's jobs: look again soon
            next_at = max(next_at, time.time() + 1.0)
        return next_at


def _nothing() -> None:
    pass


def _reason(error: Exception) -> str:
    """A short, secret-free reason for the log."""
    if isinstance(error, CalDAVError):
        return str(error)
    return f"{type(error).__name__}: {str(error)[:200]}"


__all__ = ["Bridge", "Report", "Resource"]
