"""The link write-back: worked out with no lock, checked and written under Radicale's lock.

In-process Radicale with the plugin, Telemost at the emulator: the outbox's
settle reads and rewrites the event while nobody holds the storage lock,
then takes the exclusive lock only to check the stored version, commit the
record and write; an edit made meanwhile makes it settle again.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import pytest
from harness import (
    TOKEN,
    event,
    in_process_radicale,
    plugin_config,
    stop_in_process,
    wsgi_request,
)
from radicale.storage import multifilesystem

from radicale_meetplugin.core.model import EventKey, RecordState
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.outbox import JOBS
from radicale_meetplugin.radicale import early, storage


@pytest.fixture
def app(tmp_path, telemost, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    application = in_process_radicale(tmp_path, plugin_config(telemost.url))
    request(application, "PROPFIND", "/alice/")  # creates the predefined calendar
    yield application
    stop_in_process(application)


request = wsgi_request


@pytest.fixture
def write_back(monkeypatch):
    """A new meeting's link written back after its first write (as when the provider is
    slower than the save's budget), not stored in that write (radicale/early.py)."""
    monkeypatch.setattr(early, "_creates", lambda adapter, decision: False)


def test_a_new_meeting_gets_its_link_in_its_one_write(app, monkeypatch):
    meet = app._storage.meet
    seen: list[str] = []
    writes: list[str] = []
    original = Engine.prepare_settle
    upload = multifilesystem.Collection.upload

    def prepare(self, *args, **kwargs):
        seen.append(meet.events.storage._lock.locked)
        return original(self, *args, **kwargs)

    def counted(col, href, item):
        writes.append(item.serialize())
        return upload(col, href, item)

    monkeypatch.setattr(Engine, "prepare_settle", prepare)
    monkeypatch.setattr(multifilesystem.Collection, "upload", counted)
    monkeypatch.setattr(storage, "_base_upload", counted)
    uid = f"{uuid.uuid4()}@test"
    status, _ = request(app, "PUT", f"/alice/calendar/{uid}.ics", event(uid, location="телемост"))
    assert status.startswith("201")
    _, stored = request(app, "GET", f"/alice/calendar/{uid}.ics")
    assert "telemost" in stored and "X-MEETPLUGIN-STATUS:pending" not in stored
    assert seen == [""]  # worked out once, before the lock
    assert len(writes) == 1 and "X-MEETPLUGIN-STATUS:active" in writes[0]  # one write
    assert meet.events.batch.batches == 0  # no write-back
    record = meet.engine.store.get(EventKey("alice", "alice/calendar", uid))
    assert record is not None and record.state is RecordState.ACTIVE
    assert record.conference is not None and record.conference.join_url in stored
    concurrent.futures.wait(meet.outbox.worker.running(JOBS), timeout=30)
    assert meet.engine.store.jobs_queue.due(time.time() + 3600) == []  # its job is done


def test_the_one_write_is_radicales_own_text_and_no_pending_version_is_made(app, monkeypatch):
    """The link's write is spliced from the client's item with both rewrites' changes:
    it is the text Radicale itself stores for that event, and the pending version,
    which this save never stores, is not worked out."""
    import radicale.item as radicale_item

    made: list[str] = []
    original = storage.RadicaleEventStore.as_radicale_item

    def as_item(self, path, text, like=None, changes=None):
        made.append(text)
        return original(self, path, text, like, changes)

    monkeypatch.setattr(storage.RadicaleEventStore, "as_radicale_item", as_item)
    uid = f"{uuid.uuid4()}@test"
    body = event(uid, location="телемост", description="Повестка: итоги недели")
    status, _ = request(app, "PUT", f"/alice/calendar/{uid}.ics", body)
    assert status.startswith("201")
    assert len(made) == 1 and "X-MEETPLUGIN-STATUS:active" in made[0]  # not the pending one
    _, stored = request(app, "GET", f"/alice/calendar/{uid}.ics")
    assert "Повестка: итоги недели" in stored and "CONFERENCE;" in stored
    again = radicale_item.read_components(stored)[0].serialize()
    assert again == stored  # a client sending it back changes no byte

    def block(text: str, name: str) -> str:
        return text[text.index(f"BEGIN:{name}") : text.index(f"END:{name}")]

    # The event's lines are those of the whole rewritten text as Radicale stores it;
    # the rest is Radicale's text of what the client sent (icalendar would reorder
    # the time zone's RRULE parts).
    full = radicale_item.read_components(made[0])[0].serialize()
    assert block(stored, "VEVENT") == block(full, "VEVENT")
    sent = radicale_item.read_components(body)[0].serialize()
    assert block(stored, "VTIMEZONE") == block(sent, "VTIMEZONE")


def test_the_write_back_is_worked_out_with_no_lock_held(app, monkeypatch, write_back):
    meet = app._storage.meet
    seen: list[str] = []
    original = Engine.prepare_settle

    def prepare(self, *args, **kwargs):
        seen.append(meet.events.storage._lock.locked)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "prepare_settle", prepare)
    uid = f"{uuid.uuid4()}@test"
    status, _ = request(app, "PUT", f"/alice/calendar/{uid}.ics", event(uid, location="телемост"))
    assert status.startswith("201")
    _, stored = request(app, "GET", f"/alice/calendar/{uid}.ics")
    assert "telemost" in stored and "X-MEETPLUGIN-STATUS:pending" not in stored
    assert seen == [""]  # once, and with no lock: the exclusive lock only checks and writes
    assert meet.events.batch.batches >= 1


def test_an_edit_between_reading_and_writing_settles_again(app, monkeypatch, write_back):
    meet = app._storage.meet
    uid = f"{uuid.uuid4()}@test"
    path = f"/alice/calendar/{uid}.ics"
    calls: list[str] = []
    original = Engine.prepare_settle

    def prepare_then_edit(self, job, outcome, current_text):
        settlement = original(self, job, outcome, current_text)
        calls.append(current_text or "")
        if len(calls) == 1:  # the person saves an edit right after our read
            _, now = request(app, "GET", path)
            edited = now.replace("SUMMARY:Планёрка", "SUMMARY:Планёрка перенесена")
            status, _ = request(app, "PUT", path, edited)
            assert status.startswith("201") or status.startswith("204")
        return settlement

    monkeypatch.setattr(Engine, "prepare_settle", prepare_then_edit)
    status, _ = request(app, "PUT", path, event(uid, location="телемост"))
    assert status.startswith("201")
    assert meet.outbox is not None
    _, stored = request(app, "GET", path)
    assert len(calls) == 2 and "перенесена" in calls[1]  # read again after the edit
    assert "SUMMARY:Планёрка перенесена" in stored  # the edit kept
    assert "telemost" in stored and "X-MEETPLUGIN-STATUS:pending" not in stored
    record = meet.engine.store.get(EventKey("alice", "alice/calendar", uid))
    assert record is not None and record.state is RecordState.ACTIVE
    assert record.conference is not None and record.conference.join_url in stored


def test_a_job_run_before_its_event_is_stored_still_writes_the_link(app, monkeypatch, write_back):
    """The loop may run a save's job between the commit and Radicale storing the event.

    Its settle then reads no event; under the lock the event is there. That
    is not a deleted event: it settles again, the link goes in, the room stays.
    """
    import threading

    from radicale_meetplugin.protocol.outbox import JOBS
    from radicale_meetplugin.radicale import storage as storage_module

    meet = app._storage.meet
    uid = f"{uuid.uuid4()}@test"
    path = f"/alice/calendar/{uid}.ics"
    read_nothing = threading.Event()
    original_prepare = Engine.prepare_settle

    def prepare(self, job, outcome, current_text):
        if current_text is None:
            read_nothing.set()
        return original_prepare(self, job, outcome, current_text)

    monkeypatch.setattr(Engine, "prepare_settle", prepare)
    original_upload = storage_module._base_upload

    def upload(col, href, item):
        jobs = getattr(meet._request, "jobs", None) or []
        if href == f"{uid}.ics" and jobs and not read_nothing.is_set():
            # the loop's sweep takes the fresh job while this save still holds the lock
            meet.outbox.worker.submit(JOBS, [j.id for j in jobs])
            assert read_nothing.wait(10), "the job never read the event"
        return original_upload(col, href, item)

    monkeypatch.setattr(storage_module, "_base_upload", upload)
    status, _ = request(app, "PUT", path, event(uid, location="телемост"))
    assert status.startswith("201")
    assert read_nothing.is_set()  # the race did happen
    _, stored = request(app, "GET", path)
    record = meet.engine.store.get(EventKey("alice", "alice/calendar", uid))
    assert record is not None and record.state is RecordState.ACTIVE
    assert record.conference is not None and record.conference.join_url in stored
    assert "X-MEETPLUGIN-STATUS:pending" not in stored
