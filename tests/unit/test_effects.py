"""The effects of one save, asserted with no database: gather reads, apply lists, nothing writes."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from harness import event

from radicale_meetplugin import config, providers
from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Meeting,
    Record,
    RecordState,
)
from radicale_meetplugin.protocol.effects import (
    BeginCreate,
    Cancellations,
    DropRecord,
    PutRecord,
    QueueJob,
    ShareLetters,
)
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.providers.base import Capabilities, Provider, ProviderPlugin

KEY = EventKey("alice", "alice/calendar", "u1@test")


class Slow(Provider):
    """A provider that needs the network: creating it is a job, never done inline."""

    name = "slow"
    capabilities = Capabilities(network=True)

    def create(self, meeting: Meeting) -> Conference:  # pragma: no cover - never called here
        raise AssertionError("step 1 makes no provider call")

    def delete(self, conference: Conference) -> None:  # pragma: no cover
        raise AssertionError("step 1 makes no provider call")


class Inline(Provider):
    """Computed locally, like Jitsi: the conference is made during the decision."""

    name = "inline"
    capabilities = Capabilities(network=False)

    def create(self, meeting: Meeting) -> Conference:
        return Conference("inline", "room-" + meeting.key.uid, "https://meet.example/room-1")

    def delete(self, conference: Conference) -> None:
        pass


def plugin(cls: type[Provider]) -> ProviderPlugin:
    return ProviderPlugin(
        name=cls.name,
        labels={"en": cls.name.title()},
        keywords=(cls.name,),
        options={},
        build=lambda options, ctx: cls(),
        capabilities=lambda options: cls.capabilities,
    )


def engine_of(settings, *providers_: Provider, reader) -> Engine:
    return Engine(
        settings,
        {p.name: p for p in providers_},
        {p.name: plugin(type(p)) for p in providers_},
        reader,
    )


class Reader:
    """The state as step 1 sees it: a dict, and every write refused."""

    def __init__(self, *records: Record) -> None:
        self.records = {r.key: r for r in records}

    def get(self, key: EventKey) -> Record | None:
        return self.records.get(key)

    def pending_job_for(self, key: EventKey, attempt: str) -> bool:
        return True

    def find_adoptable(self, key: EventKey, conference_id: str) -> Record | None:
        for record in self.records.values():
            conf = record.conference
            if record.key.uid == key.uid and conf and conf.conference_id == conference_id:
                return record
        return None

    def sharing(self, key: EventKey, conference: Conference) -> list[EventKey]:
        return [
            r.key
            for r in self.records.values()
            if r.key != key
            and r.conference
            and r.conference.conference_id == conference.conference_id
        ]

    def under(self, path: str) -> list[Record]:
        return [r for r in self.records.values() if r.key.calendar == path]

    def mail_keys_under(self, path: str) -> list[EventKey]:
        return []

    def mail_state(self, key: EventKey) -> None:
        return None

    def transaction(self):
        return contextlib.nullcontext()

    def __getattr__(self, name: str):  # put, drop, enqueue, ...: step 1 must not call them
        raise AssertionError(f"step 1 wrote to the state: {name}")


@pytest.fixture
def engine_with():
    def make(*records: Record) -> Engine:
        settings = config.load("", providers.schemas())
        return engine_of(settings, Slow(), Inline(), reader=Reader(*records))

    return make


def test_a_marked_event_becomes_a_create_job_with_its_record(engine_with):
    decision = engine_with().decide(KEY, event(KEY.uid, location="slow"), href="u1.ics")
    assert decision.action.kind is ActionKind.CREATE
    [effect] = decision.effects
    assert isinstance(effect, BeginCreate)
    assert (effect.key, effect.provider, effect.job.kind) == (KEY, "slow", ActionKind.CREATE)
    assert effect.job.href == "u1.ics" and effect.job.meeting is not None
    assert decision.text is not None and "X-MEETPLUGIN-STATUS:pending" in decision.text
    assert decision.jobs == []  # nothing committed yet


def test_an_inline_provider_puts_an_active_record_and_no_job(engine_with):
    decision = engine_with().decide(KEY, event(KEY.uid, location="inline"))
    [effect] = decision.effects
    assert isinstance(effect, PutRecord)
    assert effect.record.state is RecordState.ACTIVE
    assert effect.record.conference and effect.record.conference.conference_id == "room-u1@test"
    assert "https://meet.example/room-1" in (decision.text or "")


def test_an_unmarked_event_has_no_effects_and_is_stored_as_sent(engine_with):
    decision = engine_with().decide(KEY, event(KEY.uid, location="Room 5"))
    assert (decision.text, decision.effects) == (None, [])


def test_cancelling_drops_the_record_and_queues_the_delete(engine_with):
    conf = Conference("slow", "c1", "https://slow.example/c1")
    record = Record(KEY, "slow", RecordState.ACTIVE, conf, "fp")
    text = event(KEY.uid, location=conf.join_url, extra="STATUS:CANCELLED")
    decision = engine_with(record).decide(KEY, text)
    assert decision.action.kind is ActionKind.DELETE
    [effect] = decision.effects
    assert isinstance(effect, DropRecord) and effect.key == KEY
    assert effect.then is not None and effect.then.kind is ActionKind.DELETE
    assert effect.then.conference == conf


def test_a_moved_time_is_an_update_job_for_a_scheduled_provider(engine_with):
    class Scheduled(Slow):
        capabilities = Capabilities(network=True, schedule=True)

    settings = config.load("", providers.schemas())
    conf = Conference("slow", "c1", "https://slow.example/c1")
    record = Record(KEY, "slow", RecordState.ACTIVE, conf, "old-fingerprint")
    engine = engine_of(settings, Scheduled(), reader=Reader(record))
    decision = engine.decide(KEY, event(KEY.uid, location=conf.join_url))
    [effect] = decision.effects
    assert isinstance(effect, QueueJob) and effect.job.kind is ActionKind.UPDATE
    assert effect.job.conference == conf


def test_a_same_uid_copy_from_another_calendar_refers_to_the_same_conference(engine_with):
    conf = Conference("slow", "c1", "https://slow.example/c1")
    there = Record(EventKey("alice", "alice/old", KEY.uid), "slow", RecordState.ACTIVE, conf, "")
    text = event(KEY.uid, location=conf.join_url, extra="X-MEETPLUGIN-CONFERENCE-ID:c1")
    decision = engine_with(there).decide(KEY, text)
    assert decision.effects[:2] == [
        PutRecord(dataclasses.replace(there, key=KEY)),
        ShareLetters(there.key, KEY),
    ]


def test_deleting_one_of_two_copies_keeps_the_conference(engine_with):
    conf = Conference("slow", "c1", "https://slow.example/c1")
    here = Record(KEY, "slow", RecordState.ACTIVE, conf, "fp")
    there = Record(EventKey("alice", "alice/old", KEY.uid), "slow", RecordState.ACTIVE, conf, "")
    assert engine_with(here, there).deleted(KEY) == [DropRecord(KEY)]
    assert engine_with(here).deleted(KEY)[0].then is not None  # the last copy: it goes


def test_deleting_lists_the_drop_and_the_delete_job(engine_with):
    conf = Conference("slow", "c1", "https://slow.example/c1")
    engine = engine_with(Record(KEY, "slow", RecordState.ACTIVE, conf, "fp"))
    [effect] = engine.deleted(KEY)
    assert effect == DropRecord(KEY, Job(0, ActionKind.DELETE, KEY, "slow", conference=conf))


def test_cancellation_letters_are_an_effect_when_mail_is_on(engine_with, tmp_path):
    conf_file = tmp_path / "meetplugin.conf"
    conf_file.write_text(
        "[mail]\nenabled = true\nhost = 127.0.0.1\nsecurity = none\nsender = cal@example.com\n"
    )
    settings = config.load(str(conf_file), providers.schemas())
    engine = engine_of(settings, Slow(), reader=Reader())
    assert engine.deleted(KEY) == [Cancellations(KEY)]
