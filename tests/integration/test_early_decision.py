"""A marked PUT is decided before Radicale locks its storage (in-process Radicale, no server).

Only the commit of the decision's effects happens under the lock; a decision
whose facts changed meanwhile is made again there.
"""

from __future__ import annotations

import base64
import io
import uuid

import pytest
import radicale
from harness import event
from radicale import config as radicale_config

from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.protocol.engine import Engine


@pytest.fixture
def app(tmp_path):
    (tmp_path / "users").write_text("alice:alice\n")
    (tmp_path / "meetplugin.conf").write_text(
        "[meetplugin]\nowner_addresses = {user}@example.com\n"
    )
    (tmp_path / "radicale.conf").write_text(
        f"""[auth]
type = htpasswd
htpasswd_filename = {tmp_path / "users"}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
type = radicale_meetplugin
meetplugin_config = {tmp_path / "meetplugin.conf"}
filesystem_folder = {tmp_path / "collections"}
predefined_collections = {{"calendar": {{"tag": "VCALENDAR"}}}}
"""
    )
    configuration = radicale_config.load([(str(tmp_path / "radicale.conf"), False)])
    application = radicale.Application(configuration)
    yield application
    application._storage.meet.outbox.stop()
    application._storage.meet.engine.store.close()


def request(app, method: str, path: str, body: str = "") -> tuple[str, str]:
    data = body.encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5232",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "text/calendar",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:alice").decode(),
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0], answer.decode()


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
