"""Who organizes an event: e-mail logins, shared calendars' writers, and the log saying why."""

from __future__ import annotations

import logging

import pytest
from harness import event
from unit.test_effects import Inline, Reader, engine_of

from radicale_meetplugin import config, providers
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import ActionKind, EventKey


def settings_of(tmp_path, text: str) -> config.Settings:
    conf = tmp_path / "meetplugin.conf"
    conf.write_text(text)
    return config.load(str(conf), providers.schemas())


def organized_by(address: str) -> str:
    return f"ORGANIZER:mailto:{address}\nATTENDEE:mailto:dave@example.org"


def test_a_login_that_is_an_address_is_one_of_its_addresses(tmp_path):
    settings = settings_of(tmp_path, "[meetplugin]\nowner_addresses = {user}@example.com\n")
    assert settings.addresses_of("carol@example.com") == {"carol@example.com"}
    assert settings.addresses_of("Carol@Example.com") == {"carol@example.com"}
    assert settings.addresses_of("alice") == {"alice@example.com"}
    # Never the template glued to an address.
    assert all(a.count("@") == 1 for a in settings.addresses_of("carol@other.org"))


def test_an_email_login_gets_its_conference(tmp_path):
    settings = settings_of(tmp_path, "[meetplugin]\nowner_addresses = {user}@example.com\n")
    engine = engine_of(settings, Inline(), reader=Reader())
    key = EventKey("carol@example.com", "carol@example.com/calendar", "e1@test")
    text = event(key.uid, location="inline", extra=organized_by("carol@example.com"))
    assert engine.decide(key, text).action.kind is ActionKind.CREATE


def test_an_email_login_without_templates_is_its_own_address(tmp_path):
    engine = engine_of(settings_of(tmp_path, ""), Inline(), reader=Reader())
    key = EventKey("carol@example.com", "carol@example.com/calendar", "e2@test")
    text = event(key.uid, location="inline", extra=organized_by("carol@example.com"))
    assert engine.decide(key, text).action.kind is ActionKind.CREATE


@pytest.fixture
def engine(tmp_path):
    settings = settings_of(tmp_path, "[meetplugin]\nowner_addresses = {user}@example.com\n")
    return engine_of(settings, Inline(), reader=Reader())


TEAM = EventKey("team", "team/meet", "shared@test")


def test_the_writer_of_a_shared_calendar_organizes_their_events(engine):
    text = event(TEAM.uid, location="inline", extra=organized_by("alice@example.com"))
    assert engine.decide(TEAM, text).action.kind is ActionKind.IGNORE  # writer unknown
    decision = engine.decide(TEAM, text, writer="alice")
    assert decision.action.kind is ActionKind.CREATE and decision.text
    # bob writing alice's event into the shared calendar is not its organizer
    assert engine.decide(TEAM, text, writer="bob").action.kind is ActionKind.IGNORE


def test_a_foreign_organizer_is_said_in_the_log(engine, caplog):
    key = EventKey("alice", "alice/calendar", "foreign@test")
    text = event(key.uid, location="inline", extra=organized_by("carol@example.org"))
    with caplog.at_level(logging.INFO, logger="radicale.meetplugin"):
        decision = engine.decide(key, text)
    assert decision.action.kind is ActionKind.IGNORE and decision.text is None
    [line] = [r.getMessage() for r in caplog.records if "left alone" in r.getMessage()]
    assert "alice/calendar/foreign@test" in line
    assert "carol@example.org" in line and "alice@example.com" in line


def test_organizer_check_says_why(engine):
    cal = ical.parse(event("x@test", extra=organized_by("alice@example.com")))
    ok, why = engine.organizer_check(cal, "team", "alice")
    assert ok and "alice" in why and "writer" in why
    ok, why = engine.organizer_check(cal, "team")
    assert not ok and "team" in why
