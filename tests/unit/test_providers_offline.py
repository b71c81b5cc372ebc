"""Provider adapters (production code) where no network is needed: Jitsi rooms, warnings."""

from __future__ import annotations

from harness import TOKEN

from radicale_meetplugin.config import Secret
from radicale_meetplugin.core.model import EventKey, Meeting
from radicale_meetplugin.providers.jitsi import Jitsi
from radicale_meetplugin.providers.telemost import Telemost

MEETING = Meeting(EventKey("alice", "alice/calendar", "u@t"), summary="Планёрка")


def test_jitsi_room_is_an_hmac_of_the_event_key():
    a = Jitsi("https://meet.example.org/", b"s" * 32)
    b = Jitsi("https://meet.example.org", b"t" * 32)
    conf = a.create(MEETING)
    assert conf.join_url == f"https://meet.example.org/{conf.conference_id}"
    assert a.create(MEETING) == conf  # stable: retries make the same room
    assert b.create(MEETING).join_url != conf.join_url  # depends on the secret
    other = Meeting(EventKey("alice", "alice/calendar", "v@t"))
    assert a.create(other).join_url != conf.join_url
    a.delete(conf)  # nothing to delete, and no error


def test_plain_http_api_url_is_warned_about(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="radicale.meetplugin"):
        Telemost("http://proxy.example.org/telemost", Secret(TOKEN), "PUBLIC", 2)
        Telemost("http://127.0.0.1:9/telemost", Secret(TOKEN), "PUBLIC", 2)
    assert caplog.text.count("plain http") == 1 and TOKEN not in caplog.text
