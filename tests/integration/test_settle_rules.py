"""Settling a job against the record as it is now (sqlite, no server)."""

from __future__ import annotations

import pytest

from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Meeting,
    Record,
    RecordState,
)
from radicale_meetplugin.protocol.ports import Outcome

KEY = EventKey("alice", "alice/calendar", "late-update@test")
C1 = Conference("telemost", "111", "https://telemost.yandex.ru/j/111")
C2 = Conference("telemost", "222", "https://telemost.yandex.ru/j/222")


@pytest.fixture
def engine(tmp_path, state_url):
    engine = build_engine("", str(tmp_path / "state"), default_state_url=state_url)
    yield engine
    engine.store.close()


def test_a_late_update_of_an_old_room_leaves_the_newer_rooms_record(engine):
    """Create C1, its PATCH is delayed; the event gets C2; then C1's PATCH lands."""
    engine.store.put(Record(KEY, "telemost", RecordState.ACTIVE, C2, "fp2"))
    job = Job(0, ActionKind.UPDATE, KEY, "telemost", meeting=Meeting(KEY), conference=C1)
    engine.settle(job, Outcome(conference=C1), None)
    record = engine.store.get(KEY)
    assert record is not None and record.conference == C2 and record.fingerprint == "fp2"


def test_an_update_of_the_current_room_is_recorded(engine):
    engine.store.put(Record(KEY, "telemost", RecordState.ACTIVE, C1, "old"))
    patched = Conference("telemost", "111", C1.join_url, {"waiting_room_level": "ADMINS"})
    job = Job(0, ActionKind.UPDATE, KEY, "telemost", meeting=Meeting(KEY), conference=C1)
    engine.settle(job, Outcome(conference=patched), None)
    record = engine.store.get(KEY)
    assert record is not None and record.conference == patched
    assert record.fingerprint == Meeting(KEY).fingerprint()


@pytest.fixture
def telemost_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("MEETPLUGIN_TEST_TOKEN", "not-a-real-token")
    conf = tmp_path / "meetplugin.conf"
    conf.write_text("[provider:telemost]\ntoken_env = MEETPLUGIN_TEST_TOKEN\n")
    engine = build_engine(str(conf), str(tmp_path / "state"))
    yield engine
    engine.store.close()


def pending_create(engine, uid: str):
    from harness import event

    key = EventKey("alice", "alice/calendar", uid)
    decision = engine.on_put(key, event(uid, location="телемост"))
    [job] = decision.jobs
    assert job.kind is ActionKind.CREATE and "X-MEETPLUGIN-STATUS:pending" in decision.text
    return key, job, decision.text


def test_an_event_cancelled_while_its_link_is_pending_loses_the_pending_note(telemost_engine):
    engine = telemost_engine
    key, job, shown = pending_create(engine, "cancel-pending@test")
    cancelled = shown.replace("BEGIN:VEVENT\r\n", "BEGIN:VEVENT\r\nSTATUS:CANCELLED\r\n")
    assert engine.on_put(key, cancelled).jobs == []  # the create is under way: nothing new
    text, more = engine.settle(job, Outcome(conference=C1), cancelled)
    assert [j.kind for j in more] == [ActionKind.DELETE]  # the room made meanwhile goes
    assert text is not None
    assert "X-MEETPLUGIN-STATUS" not in text and "появится" not in text
    assert "STATUS:CANCELLED" in text
    assert engine.store.get(key) is None


def test_removing_keyword_and_pending_block_stops_the_link(telemost_engine):
    """Clients keep X-MEETPLUGIN-PROVIDER: alone it is no request."""
    from radicale_meetplugin.core import ical

    engine = telemost_engine
    key, job, shown = pending_create(engine, "unasked-pending@test")
    cal = ical.parse(shown)
    for comp in ical.vevents(cal):
        comp.pop("DESCRIPTION")
        comp.pop("LOCATION")
    edited = ical.to_text(cal)
    assert "X-MEETPLUGIN-PROVIDER:telemost" in edited
    engine.on_put(key, edited)
    text, more = engine.settle(job, Outcome(conference=C1), edited)
    assert [j.kind for j in more] == [ActionKind.DELETE]
    assert text is not None and C1.join_url not in text
    assert "X-MEETPLUGIN-PROVIDER" not in text and "X-MEETPLUGIN-STATUS" not in text


def test_a_failed_create_no_longer_wanted_loses_the_pending_note(telemost_engine):
    from radicale_meetplugin.providers import ProviderError

    engine = telemost_engine
    key, job, shown = pending_create(engine, "failed-unwanted@test")
    cancelled = shown.replace("BEGIN:VEVENT\r\n", "BEGIN:VEVENT\r\nSTATUS:CANCELLED\r\n")
    text, more = engine.settle(job, Outcome(error=ProviderError("auth", status=401)), cancelled)
    assert more == [] and text is not None and "X-MEETPLUGIN-STATUS" not in text
