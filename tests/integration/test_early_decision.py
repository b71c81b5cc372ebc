"""A marked PUT is decided before Radicale locks its storage (in-process Radicale, no server).

Only the commit of the decision's effects happens under the lock; a decision
whose facts changed meanwhile is made again there.
"""

from __future__ import annotations

import uuid

import pytest
from harness import event, in_process_radicale, stop_in_process, wsgi_request

from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.protocol.engine import Engine


@pytest.fixture
def app(tmp_path):
    application = in_process_radicale(
        tmp_path, "[meetplugin]\nowner_addresses = {user}@example.com\n"
    )
    yield application
    stop_in_process(application)


request = wsgi_request


@pytest.fixture
def decisions(app, monkeypatch):
    """Every Engine.decide call with the storage lock mode at that moment."""
    seen: list[str] = []
    original = Engine.decide

    def decide(self, *args, **kwargs):
        seen.append(app._storage._lock.locked)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "decide", decide)
    request(app, "PROPFIND", "/alice/")  # creates the predefined calendar
    return seen


def test_a_marked_save_is_decided_with_no_lock_held(app, decisions):
    uid = f"{uuid.uuid4()}@test"
    status, _ = request(app, "PUT", f"/alice/calendar/{uid}.ics", event(uid, location="jitsi"))
    assert status.startswith("201")
    assert decisions == [""]  # once, before the lock; under it only the commit
    _, stored = request(app, "GET", f"/alice/calendar/{uid}.ics")
    assert "https://meet.jit.si/" in stored


def test_a_decision_whose_record_changed_is_made_again_under_the_lock(app, decisions, monkeypatch):
    from radicale_meetplugin.radicale import early

    uid = f"{uuid.uuid4()}@test"
    original = early.decide

    def decide_then_change(adapter, path, content, *args):
        made = original(adapter, path, content, *args)
        # another save of this UID lands between the early decision and the lock
        request_record = adapter.engine.store
        key = made.decision.effects[0].record.key
        request_record.put(made.decision.effects[0].record)
        assert request_record.get(key) != made.decision.basis
        return made

    monkeypatch.setattr(early, "decide", decide_then_change)
    status, _ = request(app, "PUT", f"/alice/calendar/{uid}.ics", event(uid, location="jitsi"))
    assert status.startswith("201")
    assert decisions == ["", "w"]  # early, then again on the facts as they are now


def test_an_unmarked_save_costs_no_early_parse(app, decisions):
    uid = f"{uuid.uuid4()}@test"
    status, _ = request(app, "PUT", f"/alice/calendar/{uid}.ics", event(uid, location="Room 5"))
    assert status.startswith("201")
    assert decisions == ["w"]  # only the locked path's fast check


def test_an_unmarked_body_is_tested_once_and_its_record_still_read(app, decisions, monkeypatch):
    tested: list[str] = []
    original = Engine.may_ask

    def may_ask(self, text):
        tested.append(app._storage._lock.locked)
        return original(self, text)

    monkeypatch.setattr(Engine, "may_ask", may_ask)
    other = f"{uuid.uuid4()}@test"
    status, _ = request(app, "PUT", f"/alice/calendar/{other}.ics", event(other, location="Room"))
    assert status.startswith("201")
    assert tested == [""]  # the raw body once, before the lock; not again under it
    uid = f"{uuid.uuid4()}@test"
    path = f"/alice/calendar/{uid}.ics"
    status, _ = request(app, "PUT", path, event(uid, location="jitsi"))
    assert status.startswith("201")
    _, stored = request(app, "GET", path)
    assert "https://meet.jit.si/" in stored
    tested.clear()
    # The person removes the keyword and the link: the text cannot ask any more, but
    # the record says a conference belongs to it, so it is still dealt with.
    status, _ = request(app, "PUT", path, event(uid, location="Room 5"))
    assert status.startswith(("201", "204"))
    assert tested == [""]
    _, stored = request(app, "GET", path)
    assert "meet.jit.si" not in stored
    store = app._storage.meet.engine.store
    assert store.get(EventKey("alice", "alice/calendar", uid)) is None
