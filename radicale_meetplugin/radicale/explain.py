"""`meetplugin explain CALENDAR/UID`: what the plugin decided for a stored event and why (read-only).

Nothing is written: Radicale's storage is read with its own read lock (a plain
`multifilesystem` storage, not the plugin's, so no engine starts), the state
file is opened read-only, and providers are built as `meetplugin check` builds
them (no generated secret). The decision shown is the one a save of the
stored event would take now; it is computed, not committed.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import radicale.config
from radicale import pathutils
from radicale.storage import multifilesystem

from radicale_meetplugin import providers
from radicale_meetplugin.bootstrap import build_providers
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.detect import detect
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.state.records import RecordStore


class CannotExplain(Exception):
    """The event or the state cannot be read: one line for the admin."""


def _stored(configuration: radicale.config.Configuration, calendar: str, uid: str) -> str | None:
    """The event's stored text (found by href `<uid>.ics`, else by UID); None if absent."""
    storage = multifilesystem.Storage(configuration)
    with storage.acquire_lock("r"):
        col = next(iter(storage.discover(pathutils.unstrip_path(calendar, True))), None)
        if not isinstance(col, multifilesystem.Collection) or col.tag != "VCALENDAR":
            raise CannotExplain(f"{calendar}: no such calendar")
        href = f"{uid}.ics"
        item = (
            col._get(href, verify_href=False)
            if pathutils.is_safe_filesystem_path_component(href)
            else None
        )
        if item is None or item.uid != uid:
            item = next((i for i in col.get_all() if i.uid == uid), None)
        return item.serialize() if item is not None else None


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def explain(
    configuration: radicale.config.Configuration, plugin_config: str, state_dir: str, target: str
) -> Iterator[str]:
    """Lines saying what the plugin knows and decides about the event `target` (CALENDAR/UID)."""
    calendar, _, uid = pathutils.strip_path(pathutils.sanitize_path(f"/{target}")).rpartition("/")
    if not calendar or not uid:
        raise CannotExplain(f"{target}: give CALENDAR/UID, e.g. alice/calendar/1234@example.com")
    key = EventKey(calendar.split("/", 1)[0], calendar, uid)
    settings, plugins = providers.load_settings(plugin_config)
    state_dir = os.path.expanduser(settings.main["state_dir"] or state_dir)
    database = os.path.join(state_dir, "records.sqlite")
    ctx = providers.BuildContext(
        timeout=settings.main["call_timeout"], state_dir=state_dir, read_only=True
    )
    ready, per_user = build_providers(settings, plugins, ctx)
    text = _stored(configuration, calendar, uid)
    yield f"event: {calendar}/{uid}: " + ("stored" if text is not None else "not stored")
    state_url = settings.main["state_url"]
    if state_url:  # the database is read in read-only transactions, never migrated
        store: RecordStore | None = RecordStore(state_url, pool=1, read_only=True, migrate=False)
    elif not os.path.exists(database):
        yield f"state: {database} does not exist yet: no conference was ever recorded"
        store = None
    else:
        store = RecordStore(database, pool=1, read_only=True)
    try:
        yield from _facts(settings, plugins, ready, per_user, store, key, text)
    finally:
        if store is not None:
            store.close()


def _facts(settings, plugins, ready, per_user, store, key: EventKey, text: str | None):
    record = store.get(key) if store is not None else None
    if record is None:
        yield "record: none"
    else:
        conf = record.conference
        yield (
            f"record: {record.state.value}, provider {record.provider}"
            + (f", conference {conf.conference_id} {conf.join_url}" if conf else "")
            + (f", error {record.error_code}" if record.error_code else "")
            + (f", attempt {record.attempt}" if record.attempt else "")
            + f", updated {_when(record.updated_at)}"
        )
    jobs = [j for j in store.jobs() if j.key == key] if store is not None else []
    if not jobs:
        yield "jobs: none pending"
    for job in jobs:
        yield (
            f"job #{job.id}: {job.provider} {job.kind.value}, {job.tries} tries"
            + (f", last error: {job.last_error}" if job.last_error else "")
            + (", interrupted mid-call" if job.interrupted else "")
        )
    letters = store.mails(key) if store is not None else []
    if not letters:
        yield "letters: none"
    for _id, _uid, sequence, recipient, method, kind, state, tries in letters:
        yield f"letter: {method} {kind} to {recipient}, SEQUENCE {sequence}: {state} ({tries} tries)"
    if text is None:
        return
    try:
        cal = ical.parse(text)
    except ical.EventParseError as e:
        yield f"event: cannot be read: {e}; a save stores it as sent"
        return
    reader: Any = store if store is not None else _NoState()  # reads only, either way
    engine = Engine(settings, ready, plugins, reader, per_user)
    detection = detect(cal, engine.grammar)
    if detection.asked:
        yield (
            f"detection: asks for {detection.provider or detection.unknown}"
            f" (via {detection.via}"
            + (f", options {', '.join(detection.option_words)}" if detection.option_words else "")
            + ")"
            + ("" if detection.provider in engine.enabled else ": that provider is not enabled")
        )
    else:
        yield "detection: asks for no conference"
    organizer, why = engine.organizer_check(cal, key.owner)
    yield f"organizer: {'yes' if organizer else 'no'}: {why}"
    if not organizer:
        yield (
            "  (in a shared calendar the authenticated writer organizes events whose "
            "ORGANIZER is one of the writer's addresses)"
        )
    decision = engine.decide(key, ical.to_text(cal), lambda: text)
    action = decision.action
    yield (
        f"decision on a save now: {action.kind.value}"
        + (f" ({action.provider})" if action.provider else "")
        + (f": {action.error_code}" if action.error_code else "")
        + ("; the event would be rewritten" if decision.text is not None else "")
    )


class _NoState:
    """No state file yet: what a fresh one would answer."""

    def get(self, key):
        return None

    def pending_job_for(self, key, attempt):
        return False

    def find_adoptable(self, key, conference_id):
        return None

    def sharing(self, key, conference):
        return []

    def under(self, path):
        return []

    def mail_keys_under(self, path):
        return []

    def mail_state(self, key):
        return None
