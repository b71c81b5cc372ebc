"""Pasted meeting links: recognised wherever they stand, never written into an attendee copy."""

from __future__ import annotations

import pytest
from harness import event
from unit.test_effects import Inline, Reader, engine_of

from radicale_meetplugin import config, providers
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey

KEY = EventKey("alice", "alice/calendar", "pasted@test")
CAROL = "ORGANIZER;CN=Carol:mailto:carol@example.org\nATTENDEE;CN=Alice:mailto:alice@example.com"


@pytest.fixture
def engine(tmp_path):
    conf = tmp_path / "meetplugin.conf"
    conf.write_text("[meetplugin]\nowner_addresses = {user}@example.com\n")
    settings = config.load(str(conf), providers.schemas())
    return engine_of(settings, Inline(), reader=Reader())


def test_an_attendee_copy_with_a_pasted_link_is_stored_as_sent(engine):
    link = "https://meet.jit.si/MeetCarolsRoom"
    text = event(KEY.uid, location=link, description=f"Join: {link}", extra=CAROL)
    decision = engine.decide(KEY, text)
    assert (decision.text, decision.effects) == (None, [])


@pytest.mark.parametrize(
    "where",
    [
        {"location": "https://us02web.zoom.us/j/85012345678"},
        {"location": "https://meet.google.com/abc-defg-hij"},
        {"description": "https://meet.google.com/abc-defg-hij is the room"},
    ],
)
def test_a_bare_pasted_link_gets_a_conference_property(engine, where):
    decision = engine.decide(KEY, event(KEY.uid, **where))
    assert decision.text is not None
    text = "\n".join(ical.unfold(decision.text))
    assert "CONFERENCE;" in text and "X-MEETPLUGIN-PASTED=TRUE" in text
