"""`meetplugin reconcile`: compare records, events, jobs and providers; fix on request.

Dry run by default: it reads Radicale's storage under Radicale's own lock, one
calendar at a time (the lock is global: a server's PUT waits at most for one
calendar's read), and says what does not add up. With ``fix`` it repairs what
it safely can, through the same engine as a save would: the event is
re-submitted as it is stored.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass

import radicale.item as radicale_item
from radicale.storage import multifilesystem

from radicale_meetplugin.core import ical
from radicale_meetplugin.core.detect import detect
from radicale_meetplugin.core.model import ActionKind, EventKey, Job, RecordState
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.radicale import scheduling
from radicale_meetplugin.radicale.storage import Storage


@dataclass
class Finding:
    kind: str  # short name, e.g. "orphan", "missing-link"
    key: EventKey | None
    detail: str
    fix: str = ""  # what --fix does ("" = nothing it can do)
    fixed: bool = False

    def line(self) -> str:
        todo = f" -> {'fixed: ' if self.fixed else 'fix: '}{self.fix}" if self.fix else ""
        return f"{self.kind:16} {self.where}: {self.detail}{todo}"

    @property
    def where(self) -> str:
        return f"{self.key.calendar}/{self.key.uid}" if self.key else "-"

    @property
    def problem(self) -> bool:
        """Something to look at (queued jobs and unlistable providers are only said)."""
        return self.kind not in ("queued", "cannot-list") and not self.fixed


Progress = Callable[[str], None]


class ToolStorage(Storage):
    """The plugin's storage without the background loop: admin tools run jobs in the foreground."""

    _run_outbox = False


def _calendar_paths(storage: Storage) -> list[str]:
    """Every calendar's path, sorted (read under the lock, briefly)."""
    paths: list[str] = []
    with storage.acquire_lock("r"):
        for principal in storage.discover("/", depth="1"):
            if not isinstance(principal, multifilesystem.Collection) or not principal.is_principal:
                continue
            for col in storage.discover(f"/{principal.path}/", depth="1"):
                if (
                    isinstance(col, multifilesystem.Collection)
                    and col.tag == "VCALENDAR"
                    and col.path != principal.path
                    and not scheduling.box_kind(col)
                ):
                    paths.append(col.path)
    return sorted(paths)


def _events(
    storage: Storage, progress: Progress | None = None
) -> dict[EventKey, tuple[multifilesystem.Collection, str, str]]:
    """Every stored event, read one calendar per lock: a PUT waits for one calendar only."""
    events = {}
    paths = _calendar_paths(storage)
    said = time.monotonic()
    for n, path in enumerate(paths, 1):
        with storage.acquire_lock("r"):
            col = next(iter(storage.discover(f"/{path}/")), None)
            if isinstance(col, multifilesystem.Collection) and col.tag == "VCALENDAR":
                for item in col.get_all():
                    if item.component_name == "VEVENT" and item.href:
                        events[EventKey(col.owner, col.path, item.uid)] = (
                            col,
                            item.href,
                            item.serialize(),
                        )
        if progress is not None and (n == len(paths) or time.monotonic() - said >= 1):
            said = time.monotonic()
            progress(f"read {n}/{len(paths)} calendars, {len(events)} events")
    return events


def reconcile(
    storage: Storage, fix: bool = False, progress: Progress | None = None
) -> list[Finding]:
    """What does not add up, sorted by kind and place; repaired where `fix` can."""
    engine = storage.meet.engine
    store = engine.store
    storage.meet.session.budget = None  # a tool waits for its jobs to finish
    events = _events(storage, progress)
    findings: list[Finding] = []
    resubmit: list[tuple[EventKey, Finding]] = []
    drop: list[tuple[EventKey, Finding]] = []
    recorded: set[EventKey] = set()

    pending = {(j.key, j.attempt) for j in store.jobs()}
    for record in store.all():
        key = record.key
        recorded.add(key)
        conf = record.conference
        if key not in events:
            if record.state is RecordState.ACTIVE and conf:
                f = Finding(
                    "orphan",
                    key,
                    f"{record.provider} conference {conf.conference_id} has no event any more",
                    "delete the conference",
                )
            elif record.state is RecordState.CREATING and (key, record.attempt) in pending:
                continue  # in progress
            else:
                f = Finding(
                    "stale-record",
                    key,
                    f"{record.state.value} record without an event",
                    "forget the record",
                )
            findings.append(f)
            drop.append((key, f))
            continue
        if record.state is RecordState.CREATING and (key, record.attempt) not in pending:
            f = Finding(
                "abandoned",
                key,
                "a create was started and never finished",
                "submit the event again",
            )
            findings.append(f)
            resubmit.append((key, f))

    for key, (_col, _href, text) in events.items():
        if key in recorded:
            continue
        try:
            cal = ical.parse(text)
        except ical.EventParseError:
            continue
        if not engine.is_organizer(cal, key.owner) or ical.is_cancelled(cal):
            continue
        shown = ical.text_of(ical.master(cal) or ical.vevents(cal)[0], "X-MEETPLUGIN-CONFERENCE-ID")
        if shown:
            findings.append(
                Finding(
                    "unrecorded-link",
                    key,
                    f"shows conference {shown} that no record owns (copied or forged); left alone",
                )
            )
        elif detect(cal, engine.grammar).asked:
            f = Finding(
                "missing-link", key, "asks for a conference but has none", "submit the event again"
            )
            findings.append(f)
            resubmit.append((key, f))

    for job in store.jobs():
        findings.append(
            Finding(
                "queued",
                job.key,
                f"{job.provider} {job.kind.value}, "
                f"{job.tries} tries so far"
                f"{', last error: ' + job.last_error if job.last_error else ''}",
            )
        )
    for provider_name, key, reason, at in store.suspects():
        findings.append(
            Finding(
                "suspect",
                key,
                f"a {provider_name} create got no answer ({reason}) at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))}: the provider may hold a "
                f"room for it that nobody uses; check the account, then run with --forget-suspects",
            )
        )
    known = {r.conference.conference_id for r in store.all() if r.conference}
    for name, provider in engine.providers.items():
        try:
            ids = provider.list_conferences() if provider.capabilities.network else []
        except ProviderError as e:
            findings.append(
                Finding(
                    "cannot-list",
                    None,
                    f"{name}: listing its conferences failed ({e}); try again later",
                )
            )
            continue
        if ids is None:
            findings.append(
                Finding(
                    "cannot-list",
                    None,
                    f"{name}: its API cannot list "
                    "conferences, so rooms nobody recorded cannot be found",
                )
            )
            continue
        for conf_id in sorted(set(ids) - known):
            findings.append(
                Finding("orphan", None, f"{name} conference {conf_id} belongs to no event")
            )

    if fix:
        for key, f in drop:
            f.fixed = _drop(storage, key)
        for key, f in resubmit:
            _resubmit(storage, events[key], key)
            f.fixed = True
    findings.sort(key=lambda f: (f.kind, f.where, f.detail))
    return findings


def _drop(storage: Storage, key: EventKey) -> bool:
    """Forget a record whose event is gone; its conference is deleted through the outbox."""
    with storage.acquire_lock("w"):
        # Calendars were read one at a time: the event may have come since. Look again.
        if storage.meet.events.locate(Job(0, ActionKind.DELETE, key, "")):
            return False
        jobs = storage.meet.engine.on_delete(key)
        storage.meet._later(jobs)
    return True


def _resubmit(storage: Storage, where, key: EventKey) -> None:
    """Store the event again as it is: the engine decides as for any save."""
    col, href, _text = where
    with storage.acquire_lock("w"):
        record = storage.meet.engine.store.get(key)
        if record is not None and record.state is RecordState.CREATING:
            storage.meet.engine.store.drop(key)  # the abandoned attempt
        current = col._get(href, verify_href=False)
        if current is not None:
            item = radicale_item.Item(collection_path=col.path, text=current.serialize())
            item.prepare()
            col.upload(href, item)


def wait_for_jobs(storage: Storage, timeout: float) -> None:
    """Run every queued job now (a tool has no background loop)."""
    futures = storage.meet.outbox.submit(j.id for j in storage.meet.engine.store.jobs())
    concurrent.futures.wait(futures, timeout=timeout)
