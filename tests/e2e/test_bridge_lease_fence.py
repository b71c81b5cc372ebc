"""A shared worker that lost an account's lease writes nothing into it, and loses nothing."""

from __future__ import annotations

import logging
import re
import threading
import uuid

import icalendar
from bridge_support import Dav, bridge_config
from harness import TOKEN, event, plugin_config

from bridge import config as bridge_config_module
from bridge.leases import Leases
from bridge.runner import Bridge
from bridge.state import BridgeState
from radicale_meetplugin.core.model import EventKey, RecordState


def location(dav: Dav, path: str) -> str:
    text, _etag = dav.get(path)
    [ev] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return str(ev.get("LOCATION", ""))


def test_a_result_after_the_lease_went_elsewhere_is_recorded_not_written(
    tmp_path, xandikos, telemost, monkeypatch, caplog
):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    monkeypatch.setenv("MEETPLUGIN_BRIDGE_LOCK_DIR", str(tmp_path))
    dav = Dav("xandikos", xandikos.url, "/alice/calendars/")
    conf = bridge_config(tmp_path / "b", dav, plugin_config(telemost.url))
    conf.write_text(
        conf.read_text().replace("[bridge]\n", "[bridge]\nworkers = shared\nlease_timeout = 30\n")
    )
    cal = dav.mkcalendar()
    uid = f"{uuid.uuid4()}@fence"
    path = f"{cal}{uid}.ics"
    assert dav.put(path, event(uid, location="telemost")).status_code in (201, 204)

    hold = telemost.hold_next("POST")
    bridge = Bridge(bridge_config_module.load(str(conf)))
    other_state = BridgeState(bridge.state.path)
    thief = Leases(other_state, ["alice"], 30, worker="elsewhere:1:thief")
    try:
        with caplog.at_level(logging.INFO, logger="meetplugin.bridge"):
            cycling = threading.Thread(target=bridge.cycle)
            cycling.start()  # judges the event, its create waits at the provider
            assert hold.entered.wait(30)
            assert bridge.leases is not None
            generation = bridge.leases.generation("alice")
            assert generation == 1
            # Meanwhile the lease goes to another worker (as if this one had hung).
            assert bridge.state.release_lease("alice", bridge.leases.worker, generation)
            thief.tick()
            assert thief.held() == {"alice": 2}
            hold.release.set()
            cycling.join(60)
        assert not cycling.is_alive()
        assert "came after this worker left the account" in caplog.text or re.search(
            r"alice: lease lost \(generation 1", caplog.text
        )
        # Nothing written into the event; the conference is recorded; the event is marked.
        assert "https://" not in location(dav, path)
        key = EventKey("alice", cal.strip("/"), uid)
        record = bridge.engine.store.get(key)
        assert record is not None and record.state is RecordState.ACTIVE
        assert record.conference is not None
        assert bridge.state.dirty("alice") == [(cal, path)]

        # The account comes back (the other worker stops): the link lands, one room in all.
        thief.stop()
        bridge.leases.tick()
        assert bridge.leases.generation("alice") == 3
        bridge.cycle()
        assert location(dav, path) == record.conference.join_url
        assert len(telemost.calls_of("POST")) == 1
        assert bridge.engine.store.suspects() == []
    finally:
        hold.release.set()
        thief.stop()
        other_state.close()
        bridge.close()
