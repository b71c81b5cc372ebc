"""Invitation e-mails from the CalDAV bridge: the same engine, the same letters.

Xandikos holds the calendar; the bridge runs in-process (one cycle at a time) and
as a cron-style `--once` process, which must hand its letters over before exiting.
"""

from __future__ import annotations

import uuid

import pytest
from bridge_support import Dav, bridge_config, run_once
from harness import TOKEN, event, plugin_config
from test_e2e_mail import END, IVAN, ORGANIZER, START, mail_config

from bridge import config as bridge_config_module
from bridge.caldav_client import CalDAVClient
from bridge.runner import Bridge


@pytest.fixture
def dav(xandikos) -> Dav:
    return Dav("xandikos", xandikos.url, "/alice/calendars/")


def meeting(uid: str, *people: str) -> str:
    return event(
        uid, location="онлайн", start=START, end=END, extra="\n".join([ORGANIZER, *people])
    )


def test_the_bridge_invites_once_and_cancels_on_delete(tmp_path, dav, inbox, telemost, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    cal = dav.mkcalendar()
    path = bridge_config(
        tmp_path / "bridge", dav, plugin_config(telemost.url) + mail_config(inbox), cal
    )
    bridge = Bridge(bridge_config_module.load(str(path)), CalDAVClient)
    try:
        uid = f"{uuid.uuid4()}@bridge"
        assert dav.put(f"{cal}{uid}.ics", meeting(uid, IVAN)).status_code == 201
        bridge.cycle()
        [letter] = inbox.wait_letters(uid, 1)
        link = letter.event()["LOCATION"]
        assert str(link).startswith("https://meet.jit.si/")
        assert str(link) in dav.get(f"{cal}{uid}.ics")[0]  # the same link was written back
        for _ in range(3):  # the bridge reads its own write-back: nothing new
            bridge.cycle()
        dav.delete(f"{cal}{uid}.ics")
        bridge.cycle()
        [_, cancel] = inbox.wait_letters(uid, 2)
        assert (cancel.method, cancel.sequence) == ("CANCEL", 1)
        assert [
            (s, r, m) for _i, u, s, r, m, _k, _st, _t in bridge.engine.store.mails() if u == uid
        ] == [(0, "ivan@example.com", "REQUEST"), (1, "ivan@example.com", "CANCEL")]
    finally:
        bridge.close()


def test_a_cron_run_hands_its_letters_over_before_it_exits(tmp_path, dav, inbox, telemost):
    cal = dav.mkcalendar()
    path = bridge_config(
        tmp_path / "bridge", dav, plugin_config(telemost.url) + mail_config(inbox), cal
    )
    uid = f"{uuid.uuid4()}@bridge"
    dav.put(f"{cal}{uid}.ics", meeting(uid, IVAN))
    run_once(path, env={"TELEMOST_TOKEN": TOKEN})
    assert [letter.rcpt_tos for letter in inbox.of(uid)] == [["ivan@example.com"]]
    run_once(path, env={"TELEMOST_TOKEN": TOKEN})
    assert len(inbox.of(uid)) == 1
